import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');

function needAnsible(): void {
  try {
    execFileSync('ansible-playbook', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error(
      'ansible-playbook is missing: run scripts/setup/system-packages.sh (Debian package ansible)',
    );
  }
}

/** Parses YAML with the PyYAML that Debian's ansible brings along. */
function parseYaml(file: string): unknown[] {
  const out = execFileSync(
    '/usr/bin/python3',
    ['-c', 'import sys, json, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))', file],
    { encoding: 'utf8' },
  );
  return JSON.parse(out) as unknown[];
}

/** Every manifest file (not the kustomizations, not the Argo CD Application: a CRD). */
function manifestFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(path.join(root, dir), { withFileTypes: true })) {
      const rel = `${dir}/${e.name}`;
      if (e.isDirectory()) {
        if (e.name !== 'argocd') walk(rel);
      } else if (/\.ya?ml$/.test(e.name) && e.name !== 'kustomization.yaml') out.push(rel);
    }
  };
  walk('k8s');
  return out.sort();
}

describe('deployment', () => {
  it('the Ansible playbooks pass ansible-playbook --syntax-check', () => {
    needAnsible();
    for (const playbook of ['deploy.yml', 'teardown.yml']) {
      const out = execFileSync('ansible-playbook', ['--syntax-check', playbook], {
        cwd: path.join(root, 'ansible'),
        encoding: 'utf8',
      });
      expect(out).toContain(`playbook: ${playbook}`);
    }
  });

  it('every kustomization (base, overlay, component) names files that exist and parse', () => {
    needAnsible();
    for (const dir of ['k8s/base', 'k8s/overlays/minikube', 'k8s/components/kibana']) {
      const k = parseYaml(path.join(root, dir, 'kustomization.yaml'))[0] as {
        resources?: string[];
        patches?: { path?: string }[];
        configMapGenerator?: { envs?: string[] }[];
      };
      const files = [
        ...(k.resources ?? []),
        ...(k.patches ?? []).flatMap((p) => (p.path ? [p.path] : [])),
        ...(k.configMapGenerator ?? []).flatMap((g) => g.envs ?? []),
      ];
      expect(files.length, dir).toBeGreaterThan(0);
      for (const r of files) {
        const file = path.join(root, dir, r);
        if (existsSync(path.join(file, 'kustomization.yaml'))) continue;
        expect(existsSync(file), `${dir}: ${r}`).toBe(true);
        if (!/\.ya?ml$/.test(r)) continue;
        const docs = parseYaml(file) as { kind?: string; metadata?: { name?: string } }[];
        for (const d of docs) expect(d.kind && d.metadata?.name, `${r}: kind and metadata.name`).toBeTruthy();
      }
    }
  });

  it('every manifest passes kubernetes-validate --strict offline (Kubernetes 1.34 schemas)', () => {
    const bin = path.join(root, '.venv/bin/kubernetes-validate');
    if (!existsSync(bin))
      throw new Error(
        'kubernetes-validate is missing: run scripts/setup/python-venv.sh (requirements-test.txt)',
      );
    const files = manifestFiles();
    expect(files.length).toBeGreaterThan(12);
    let out = '';
    try {
      out = execFileSync(bin, ['--strict', '-k', '1.34.0', ...files], { cwd: root, encoding: 'utf8' });
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string };
      throw new Error(`kubernetes-validate failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
    }
    const passed = out.split('\n').filter((l) => / passed for resource /.test(l));
    expect(passed.length).toBeGreaterThanOrEqual(37);
    expect(out).not.toMatch(/failed|ERROR|WARN/);
  });

  it('every env var the service manifests set is one the services read (.env.example)', () => {
    const documented = readFileSync(path.join(root, '.env.example'), 'utf8');
    const set = new Set<string>();
    const add = (text: string): void => {
      for (const m of text.matchAll(/name: ([A-Z][A-Z0-9_]+)\b/g)) set.add(m[1] as string);
      for (const m of text.matchAll(/^\s*([A-Z][A-Z0-9_]+)[:=]/gm)) set.add(m[1] as string);
    };
    add(readFileSync(path.join(root, 'k8s/base/config.env'), 'utf8'));
    for (const f of manifestFiles()) {
      for (const doc of readFileSync(path.join(root, f), 'utf8').split(/^---$/m)) {
        // Driftline's own services (not the Kafka, MLflow, Elasticsearch or Kibana images, nor the Jobs).
        if (
          /image: driftline\/(broker|kafka-bridge|edge-inference|retrainer|dashboard|simulator)\b/.test(doc)
        )
          add(doc);
      }
    }
    const missing = [...set].filter((v) => !documented.includes(`# ${v}=`));
    expect(missing).toEqual([]);
    expect(set.size).toBeGreaterThan(20);
  });
});
