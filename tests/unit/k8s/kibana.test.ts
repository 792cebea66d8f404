/**
 * k8s/kibana/driftline-kibana.ndjson, the Kibana saved objects (data view,
 * saved searches, Lens chart, dashboard): every line parses, every reference
 * resolves inside the file, and every panel's query names `event.action`
 * values that some service really logs — found by reading the source, so a
 * renamed action breaks this test instead of silently emptying a panel.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DEFAULT_INDEX_PREFIX } from '../../../common/logging/elasticsearch-template.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const FILE = path.join(ROOT, 'k8s/kibana/driftline-kibana.ndjson');
const SOURCE_DIRS = ['broker', 'edge-inference', 'retrainer', 'simulator', 'common'];

interface SavedObject {
  id: string;
  type: string;
  attributes: Record<string, unknown>;
  references: { id: string; name: string; type: string }[];
  coreMigrationVersion?: string;
  typeMigrationVersion?: string;
}

const lines = readFileSync(FILE, 'utf8').split('\n');
const objects: SavedObject[] = lines.filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as SavedObject);
const byKey = new Map(objects.map((o) => [`${o.type}:${o.id}`, o]));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === 'node_modules' ? [] : sourceFiles(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') ? [p] : [];
  });
}

/** Members of string-literal unions declared as `prop: 'a' | 'b'` (or `prop?:`) in `texts`. */
function unionMembers(texts: string[], prop: string): string[] {
  const out: string[] = [];
  const re = new RegExp(`\\b${prop}\\??:\\s*((?:'[^'\\n]*'\\s*\\|\\s*)+'[^'\\n]*')`, 'g');
  for (const text of texts) {
    for (const m of text.matchAll(re))
      for (const lit of (m[1] ?? '').matchAll(/'([^']*)'/g)) out.push(lit[1] ?? '');
  }
  return out;
}

/**
 * The `event.action` values the services log, read from the source:
 * - literals: `action: 'drift-alarm'`;
 * - expressions: `action: change.type` → the members of a `type: 'a' | 'b'`
 *   union declared in the same service or in common/;
 * - template literals: `action: \`registry.${action}\`` → expanded with the
 *   union of the interpolated name (`action: 'promote' | 'rollback'`), or kept
 *   as a pattern when there is none.
 */
function loggedActions(): { literals: Set<string>; patterns: RegExp[] } {
  const literals = new Set<string>();
  const patterns: RegExp[] = [];
  const texts = new Map(
    SOURCE_DIRS.map((dir) => [dir, sourceFiles(path.join(ROOT, dir)).map((f) => readFileSync(f, 'utf8'))]),
  );
  const scope = (dir: string): string[] => [
    ...(texts.get(dir) ?? []),
    ...(dir === 'common' ? [] : (texts.get('common') ?? [])),
  ];
  const escape = (x: string): string => x.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  for (const [dir, files] of texts) {
    for (const text of files) {
      for (const m of text.matchAll(
        /\baction:\s*(?:(['"`])((?:(?!\1)[^\n])*)\1|([A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*)\s*[,}])/g,
      )) {
        if (m[3] !== undefined) {
          // an expression: resolve its last property through a declared union
          const prop = m[3].split('.').at(-1) ?? '';
          for (const member of unionMembers(scope(dir), prop)) literals.add(member);
          continue;
        }
        const value = m[2] ?? '';
        if (m[1] !== '`' || !value.includes('${')) {
          literals.add(value);
          continue;
        }
        const holes = [...value.matchAll(/\$\{([^}]*)\}/g)].map(
          (h) => (h[1] ?? '').trim().split('.').at(-1) ?? '',
        );
        const fixed = value.split(/\$\{[^}]*\}/);
        const choices = holes.map((h) => unionMembers(scope(dir), h));
        if (choices.every((c) => c.length > 0)) {
          let expanded = [fixed[0] ?? ''];
          choices.forEach((members, i) => {
            expanded = expanded.flatMap((prefix) =>
              members.map((member) => `${prefix}${member}${fixed[i + 1] ?? ''}`),
            );
          });
          for (const e of expanded) literals.add(e);
        } else {
          patterns.push(new RegExp(`^${fixed.map(escape).join('[A-Za-z0-9_.-]+')}$`));
        }
      }
    }
  }
  return { literals, patterns };
}

/** `event.action : "a"`, `event.action : (a or "b")`, `event.action : retrain-*` → the values. */
function actionsInQuery(query: string): string[] {
  const out: string[] = [];
  for (const m of query.matchAll(/event\.action\s*:\s*(\([^)]*\)|"[^"]*"|[^\s()]+)/g)) {
    const group = (m[1] ?? '').replace(/^\(|\)$/g, '');
    for (const token of group.split(/\s+or\s+/i)) out.push(token.trim().replace(/^"|"$/g, ''));
  }
  return out.filter((t) => t !== '');
}

function isLogged(action: string, logged: ReturnType<typeof loggedActions>): boolean {
  if (action.includes('*')) {
    const wildcard = new RegExp(
      `^${action
        .split('*')
        .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
        .join('.*')}$`,
    );
    return [...logged.literals].some((l) => wildcard.test(l));
  }
  return logged.literals.has(action) || logged.patterns.some((p) => p.test(action));
}

function queryOf(o: SavedObject): string {
  if (o.type === 'search') {
    const meta = o.attributes.kibanaSavedObjectMeta as { searchSourceJSON: string };
    return (JSON.parse(meta.searchSourceJSON) as { query: { query: string } }).query.query;
  }
  if (o.type === 'lens') return (o.attributes.state as { query: { query: string } }).query.query;
  throw new Error(`no query in a ${o.type}`);
}

describe('k8s/kibana/driftline-kibana.ndjson', () => {
  it('is one saved object per line, each with id, type, attributes and references, ids unique', () => {
    expect(lines.at(-1)).toBe(''); // ends with a newline
    expect(lines.slice(0, -1).every((l) => l.trim() !== '')).toBe(true);
    for (const o of objects) {
      expect(typeof o.id).toBe('string');
      expect(['index-pattern', 'search', 'lens', 'dashboard', 'visualization']).toContain(o.type);
      expect(typeof o.attributes.title).toBe('string');
      expect(Array.isArray(o.references)).toBe(true);
      expect(o.coreMigrationVersion).toMatch(/^8\./);
    }
    expect(byKey.size).toBe(objects.length);
  });

  it('has the edge-mlops-* data view on @timestamp', () => {
    const views = objects.filter((o) => o.type === 'index-pattern');
    expect(views).toHaveLength(1);
    expect(views[0]?.attributes).toMatchObject({
      title: `${DEFAULT_INDEX_PREFIX}-*`,
      timeFieldName: '@timestamp',
    });
  });

  it('resolves every reference inside the file, including the names panels and searches use', () => {
    for (const o of objects) {
      for (const ref of o.references) {
        expect(byKey.has(`${ref.type}:${ref.id}`), `${o.type}:${o.id} → ${ref.type}:${ref.id}`).toBe(true);
      }
      const names = new Set(o.references.map((r) => r.name));
      if (o.type === 'search') {
        const meta = o.attributes.kibanaSavedObjectMeta as { searchSourceJSON: string };
        const source = JSON.parse(meta.searchSourceJSON) as { indexRefName?: string };
        expect(source.indexRefName && names.has(source.indexRefName), `${o.id} indexRefName`).toBe(true);
      }
      if (o.type === 'lens') {
        const layers = (
          o.attributes.state as { datasourceStates: { formBased: { layers: Record<string, unknown> } } }
        ).datasourceStates.formBased.layers;
        for (const layerId of Object.keys(layers))
          expect(names.has(`indexpattern-datasource-layer-${layerId}`), `${o.id} layer ${layerId}`).toBe(
            true,
          );
      }
      if (o.type === 'dashboard') {
        const panels = JSON.parse(String(o.attributes.panelsJSON)) as {
          panelIndex: string;
          panelRefName: string;
          type: string;
          gridData: { i: string };
        }[];
        for (const p of panels) {
          expect(p.gridData.i).toBe(p.panelIndex);
          const ref = o.references.find((r) => r.name === `${p.panelIndex}:${p.panelRefName}`);
          expect(ref, `panel ${p.panelIndex}`).toBeDefined();
          expect(ref?.type).toBe(p.type);
        }
      }
    }
  });

  it('has the dashboard "Driftline — drift and retraining" with drift alarm, retrain, promotion and dead-letter panels', () => {
    const dashboards = objects.filter((o) => o.type === 'dashboard');
    expect(dashboards).toHaveLength(1);
    const dashboard = dashboards[0] as SavedObject;
    expect(dashboard.attributes.title).toBe('Driftline — drift and retraining');
    const panelActions = dashboard.references.map((r) => {
      const target = byKey.get(`${r.type}:${r.id}`);
      if (!target) throw new Error(`missing ${r.type}:${r.id}`);
      return actionsInQuery(queryOf(target));
    });
    const all = panelActions.flat();
    expect(all).toContain('drift-alarm');
    expect(all.some((a) => a.startsWith('retrain-'))).toBe(true);
    expect(all).toContain('promoted');
    expect(all).toContain('dead-letter');
  });

  it('queries only event.action values that some service really logs', () => {
    const logged = loggedActions();
    // sanity: the scan finds the well-known ones, direct and indirect
    for (const known of [
      'drift-alarm',
      'dead-letter',
      'promoted',
      'model-promoted',
      'registry.promote',
      'registry.rollback',
    ]) {
      expect(logged.literals.has(known), known).toBe(true);
    }
    for (const o of objects.filter((x) => x.type === 'search' || x.type === 'lens')) {
      const actions = actionsInQuery(queryOf(o));
      expect(actions.length, `${o.id} names no event.action`).toBeGreaterThan(0);
      for (const a of actions)
        expect(isLogged(a, logged), `${o.id}: no service logs event.action "${a}"`).toBe(true);
    }
  });
});
