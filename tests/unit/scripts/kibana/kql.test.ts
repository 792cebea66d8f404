/**
 * The KQL → Elasticsearch translator (scripts/kibana/kql.ts) on the queries of
 * the saved objects in k8s/kibana/driftline-kibana.ndjson and on the rest of the
 * subset it supports; tests/external/kibana-searches.test.ts runs the
 * translations against a real Elasticsearch.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { KqlError, kqlToEs } from '../../../../scripts/kibana/kql.ts';

const objects = readFileSync('k8s/kibana/driftline-kibana.ndjson', 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((l) => JSON.parse(l) as { id: string; type: string; attributes: Record<string, unknown> });

function savedQuery(id: string): string {
  const o = objects.find((x) => x.id === id);
  const meta = o?.attributes.kibanaSavedObjectMeta as { searchSourceJSON: string } | undefined;
  const source = JSON.parse(meta?.searchSourceJSON ?? '{}') as {
    query?: { query: string; language: string };
  };
  expect(source.query?.language).toBe('kuery');
  return source.query?.query ?? '';
}

const anyOf = (...qs: unknown[]) => ({ bool: { should: qs, minimum_should_match: 1 } });
const phrase = (v: string) => ({ match_phrase: { 'event.action': v } });

describe('KQL of the saved searches', () => {
  it('drift alarms', () => {
    expect(kqlToEs(savedQuery('driftline-search-drift-alarms'))).toEqual(phrase('drift-alarm'));
  });

  it('retrains: a wildcard or a list of phrases', () => {
    expect(kqlToEs(savedQuery('driftline-search-retrains'))).toEqual(
      anyOf(
        { query_string: { fields: ['event.action'], query: 'retrain\\-*' } },
        anyOf(
          phrase('training-started'),
          phrase('training-finished'),
          phrase('evaluation'),
          phrase('rejected'),
        ),
      ),
    );
  });

  it('promotions', () => {
    expect(kqlToEs(savedQuery('driftline-search-promotions'))).toEqual(
      anyOf(
        ...[
          'promoted',
          'registry.promote',
          'registry.rollback',
          'model-promoted',
          'model-rolled-back',
          'model-swap',
        ].map(phrase),
      ),
    );
  });

  it('dead letters, and the Lens layer query', () => {
    expect(kqlToEs(savedQuery('driftline-search-dead-letters'))).toEqual(phrase('dead-letter'));
    const lens = objects.find((o) => o.id === 'driftline-lens-pipeline-events');
    const q = (lens?.attributes.state as { query: { query: string } }).query.query;
    expect(kqlToEs(q)).toEqual(
      anyOf(
        ...['drift-alarm', 'retrain-request', 'training-finished', 'promoted', 'dead-letter'].map(phrase),
      ),
    );
  });
});

describe('the rest of the subset', () => {
  it('and, not, precedence and parentheses', () => {
    expect(kqlToEs('a : 1 or b : 2 and not c : 3')).toEqual(
      anyOf(
        { match: { a: '1' } },
        { bool: { filter: [{ match: { b: '2' } }, { bool: { must_not: { match: { c: '3' } } } }] } },
      ),
    );
    expect(kqlToEs('(a:1 OR a:2) AND b:x')).toEqual({
      bool: { filter: [anyOf({ match: { a: '1' } }, { match: { a: '2' } }), { match: { b: 'x' } }] },
    });
    expect(kqlToEs('f : (x and not y)')).toEqual({
      bool: { filter: [{ match: { f: 'x' } }, { bool: { must_not: { match: { f: 'y' } } } }] },
    });
  });

  it('exists, ranges, escapes, empty', () => {
    expect(kqlToEs('trace.id : *')).toEqual({ exists: { field: 'trace.id' } });
    expect(kqlToEs('event.duration_ms >= 100')).toEqual({ range: { 'event.duration_ms': { gte: '100' } } });
    expect(kqlToEs('message : "say \\"hi\\""')).toEqual({ match_phrase: { message: 'say "hi"' } });
    expect(kqlToEs('f : a\\:b*')).toEqual({ query_string: { fields: ['f'], query: 'a\\:b*' } });
    expect(kqlToEs('f : a\\ b')).toEqual({ match: { f: 'a b' } });
    expect(kqlToEs('  ')).toEqual({ match_all: {} });
  });

  it('refuses what it does not support', () => {
    expect(() => kqlToEs('drift')).toThrow(/free-text/);
    expect(() => kqlToEs('a : (b')).toThrow(KqlError);
    expect(() => kqlToEs('items:{ name : x }')).toThrow(/nested/);
    expect(() => kqlToEs('a : "open')).toThrow(/unterminated/);
  });
});
