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

describe('deployment', () => {
  it('the Ansible playbook passes ansible-playbook --syntax-check', () => {
    needAnsible();
    const out = execFileSync('ansible-playbook', ['--syntax-check', 'deploy.yml'], {
      cwd: path.join(root, 'ansible'),
      encoding: 'utf8',
    });
    expect(out).toContain('playbook: deploy.yml');
  });

  it('every kustomization resource exists and parses, and every service has a Dockerfile', () => {
    needAnsible();
    const kustomization = parseYaml(path.join(root, 'k8s/kustomization.yaml'))[0] as {
      resources: string[];
      images: { name: string }[];
    };
    for (const r of kustomization.resources) {
      const docs = parseYaml(path.join(root, 'k8s', r)) as { kind?: string; metadata?: { name?: string } }[];
      expect(docs.length, r).toBeGreaterThan(0);
      for (const d of docs) expect(d.kind && d.metadata?.name, `${r}: kind and metadata.name`).toBeTruthy();
    }
    for (const image of kustomization.images) {
      const service = image.name.replace('driftline/', '');
      expect(existsSync(path.join(root, service, 'Dockerfile')), `${service}/Dockerfile`).toBe(true);
    }
  });

  it('every env var the manifests set is one the services read (.env.example)', () => {
    const documented = readFileSync(path.join(root, '.env.example'), 'utf8');
    const set = new Set<string>();
    for (const f of readdirSync(path.join(root, 'k8s/base'))) {
      for (const m of readFileSync(path.join(root, 'k8s/base', f), 'utf8').matchAll(
        /name: ([A-Z][A-Z0-9_]+)\b/g,
      ))
        set.add(m[1] as string);
      for (const m of readFileSync(path.join(root, 'k8s/base', f), 'utf8').matchAll(
        /^\s+([A-Z][A-Z0-9_]+): /gm,
      ))
        set.add(m[1] as string);
    }
    const missing = [...set].filter((v) => !documented.includes(`# ${v}=`));
    expect(missing).toEqual([]);
  });
});
