/**
 * The deployment as Ansible left it (run after `make deploy`; `make smoke` runs it before the smoke test):
 * - the playbook is idempotent: run again it reports changed=0, and `--check` reports changed=0 too;
 * - the teardown playbook runs (`--check`) without any vault password, as `make teardown` runs it;
 * - every manifest passes `kubectl apply --dry-run=server` on the real cluster (the overlay as committed,
 *   and the generated kustomization with this build's image tags);
 * - every workload runs with the restricted securityContext, no service-account token, requests and
 *   limits, and probes (Jobs: no probes);
 * - the edge's HorizontalPodAutoscaler shows a real CPU figure (metrics-server), its PDB and the
 *   NetworkPolicies exist.
 * The vault password comes from the environment as for `make deploy` (ANSIBLE_VAULT_PASSWORD_FILE).
 * Fails, never skips.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { NAMESPACE, kubeJson, kubectl, waitFor } from './helpers/kube.ts';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../..');
const CACHE = process.env.DRIFTLINE_CACHE || path.join(os.homedir(), '.cache/driftline');

/** ansible-playbook deploy.yml [extra]; returns the PLAY RECAP counters and the output. */
async function playbook(extra: string[]): Promise<{ recap: Record<string, number>; out: string }> {
  const env = { ...process.env };
  if (!env.ANSIBLE_VAULT_PASSWORD_FILE && env.ANSIBLE_VAULT_PASSWORD)
    env.ANSIBLE_VAULT_PASSWORD_FILE = path.join(ROOT, 'scripts/ansible-vault-pass-from-env.sh');
  let out: string;
  try {
    const r = await run('ansible-playbook', ['deploy.yml', ...extra], {
      cwd: path.join(ROOT, 'ansible'),
      env,
      maxBuffer: 64 << 20,
      timeout: 1_800_000,
    });
    out = r.stdout;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(
      `ansible-playbook deploy.yml ${extra.join(' ')} failed:\n${(e.stdout ?? '').slice(-4000)}\n${e.stderr ?? e.message}`,
    );
  }
  const line = /localhost\s+:\s+(.*)$/m.exec(out)?.[1] ?? '';
  const recap = Object.fromEntries(
    [...line.matchAll(/(\w+)=(\d+)/g)].map((m) => [m[1] as string, Number(m[2])]),
  );
  return { recap, out };
}

interface Container {
  name: string;
  securityContext?: {
    allowPrivilegeEscalation?: boolean;
    readOnlyRootFilesystem?: boolean;
    capabilities?: { drop?: string[]; add?: string[] };
    privileged?: boolean;
  };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  readinessProbe?: unknown;
  livenessProbe?: unknown;
}
interface PodSpec {
  automountServiceAccountToken?: boolean;
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; seccompProfile?: { type?: string } };
  containers: Container[];
}
interface Workload {
  kind: string;
  metadata: { name: string };
  spec: { template: { spec: PodSpec } };
}

describe(`the deployment in namespace ${NAMESPACE}`, () => {
  it('a second playbook run changes nothing (changed=0)', async () => {
    const t = Date.now();
    const { recap, out } = await playbook([]);
    process.stdout.write(
      `second run: ${JSON.stringify(recap)} in ${((Date.now() - t) / 1000).toFixed(0)} s\n`,
    );
    const changed = [...out.matchAll(/^changed: \[localhost\].*$|^TASK \[(.*)\]/gm)];
    expect(recap.failed, out.slice(-3000)).toBe(0);
    expect(recap.changed, `tasks that changed:\n${changed.map((m) => m[0]).join('\n')}`).toBe(0);
  }, 1_800_000);

  it('--check runs through and reports changed=0', async () => {
    const t = Date.now();
    const { recap, out } = await playbook(['--check']);
    process.stdout.write(`--check: ${JSON.stringify(recap)} in ${((Date.now() - t) / 1000).toFixed(0)} s\n`);
    expect(recap.failed, out.slice(-3000)).toBe(0);
    expect(recap.changed, out.slice(-3000)).toBe(0);
  }, 1_800_000);

  it('the teardown needs no vault password (make teardown, Jenkins post.cleanup): --check runs through', async () => {
    // As `make teardown` runs it (ANSIBLE_VARS_ENABLED= : group_vars/all/vault.yml is not loaded), with every
    // way to the vault password removed; --check deletes nothing.
    const env: NodeJS.ProcessEnv = { ...process.env, ANSIBLE_VARS_ENABLED: '', XDG_CONFIG_HOME: os.tmpdir() };
    delete env.ANSIBLE_VAULT_PASSWORD_FILE;
    delete env.ANSIBLE_VAULT_PASSWORD;
    const makefile = await readFile(path.join(ROOT, 'Makefile'), 'utf8');
    expect(makefile).toMatch(/ANSIBLE_VARS_ENABLED= ansible-playbook teardown\.yml/);
    const r = await run('ansible-playbook', ['teardown.yml', '--check'], {
      cwd: path.join(ROOT, 'ansible'),
      env,
      timeout: 300_000,
    });
    expect(r.stdout).toMatch(/localhost\s+:\s+ok=\d+\s+changed=\d+\s+unreachable=0\s+failed=0/);
    expect(
      (await kubeJson<{ status: { phase: string } }>(['get', 'namespace', NAMESPACE])).status.phase,
    ).toBe('Active');
  }, 600_000);

  it('every manifest passes kubectl apply --dry-run=server: as deployed, and the overlay as committed', async () => {
    // As deployed: the generated kustomization (this build's tags), server-side, as Ansible's field manager.
    const deployed = await kubectl([
      'apply',
      '--server-side',
      '--field-manager=driftline-ansible',
      '--force-conflicts',
      '--dry-run=server',
      '-k',
      path.join(CACHE, 'deploy/kustomize'),
    ]);
    const lines = deployed.trim().split('\n');
    expect(lines.length).toBeGreaterThan(30);
    for (const l of lines) expect(l).toMatch(/\(server dry run\)$/);
    // As committed (tags `dev`): into a scratch namespace with the same Pod Security labels, where every
    // object would be created; nothing is, and the namespace is deleted again.
    const scratch = `driftline-dryrun-${Date.now().toString(36)}`;
    const ns = (await kubectl(['kustomize', path.join(ROOT, 'k8s/overlays/minikube')])).split(/^---$/m);
    const namespaceDoc = ns.find((d) => /^kind: Namespace$/m.test(d)) ?? '';
    await kubectl(['apply', '-f', '-'], {
      input: namespaceDoc.replace(/^ {2}name: driftline$/m, `  name: ${scratch}`),
    });
    try {
      const rest = ns
        .filter((d) => !/^kind: Namespace$/m.test(d))
        .map((d) => d.replace(/^ {2}namespace: driftline$/m, `  namespace: ${scratch}`))
        // The deployed dashboard holds node port 30080: let the scratch copy get any.
        .map((d) => d.replace(/^ +nodePort: \d+\n/m, ''))
        .join('---');
      const out = await kubectl(['apply', '--dry-run=server', '-f', '-'], { input: rest });
      const created = out.trim().split('\n');
      expect(created.length).toBeGreaterThan(30);
      for (const l of created) expect(l).toMatch(/ created \(server dry run\)$/);
    } finally {
      await kubectl(['delete', 'namespace', scratch, '--wait=false']);
    }
  }, 300_000);

  it('every workload: restricted securityContext, no service-account token, requests and limits, probes', async () => {
    const problems: string[] = [];
    const kinds = ['deployments', 'statefulsets', 'jobs'];
    let count = 0;
    for (const kind of kinds) {
      const list = await kubeJson<{ items: Workload[] }>(['get', kind]);
      for (const w of list.items) {
        count++;
        const id = `${w.kind}/${w.metadata.name}`;
        const pod = w.spec.template.spec;
        if (pod.automountServiceAccountToken !== false) problems.push(`${id}: service-account token mounted`);
        if (pod.securityContext?.runAsNonRoot !== true) problems.push(`${id}: runAsNonRoot`);
        if (pod.securityContext?.seccompProfile?.type !== 'RuntimeDefault') problems.push(`${id}: seccomp`);
        for (const c of pod.containers) {
          const sc = c.securityContext ?? {};
          if (sc.allowPrivilegeEscalation !== false)
            problems.push(`${id}/${c.name}: allowPrivilegeEscalation`);
          if (sc.readOnlyRootFilesystem !== true) problems.push(`${id}/${c.name}: readOnlyRootFilesystem`);
          if (!(sc.capabilities?.drop ?? []).includes('ALL'))
            problems.push(`${id}/${c.name}: capabilities not dropped`);
          if ((sc.capabilities?.add ?? []).length > 0) problems.push(`${id}/${c.name}: capabilities added`);
          for (const r of ['cpu', 'memory']) {
            if (!c.resources?.requests?.[r]) problems.push(`${id}/${c.name}: no ${r} request`);
            if (!c.resources?.limits?.[r]) problems.push(`${id}/${c.name}: no ${r} limit`);
          }
          if (w.kind !== 'Job' && (!c.readinessProbe || !c.livenessProbe))
            problems.push(`${id}/${c.name}: probes`);
        }
      }
    }
    expect(count).toBeGreaterThanOrEqual(11);
    expect(problems).toEqual([]);
    // Pod Security Admission enforces it for every pod the namespace will ever get.
    const ns = await kubectl(['get', 'namespace', NAMESPACE, '-o', 'jsonpath={.metadata.labels}']);
    expect(JSON.parse(ns)['pod-security.kubernetes.io/enforce']).toBe('restricted');
  });

  it('the edge autoscaler sees real CPU figures; the PDB and NetworkPolicies are in place', async () => {
    const cpu = await waitFor(
      'a CPU figure on the edge HPA',
      async () => {
        const hpa = await kubeJson<{
          spec: { minReplicas: number; maxReplicas: number };
          status: { currentMetrics?: { resource?: { current?: { averageUtilization?: number } } }[] };
        }>(['get', 'hpa', 'edge-inference']);
        expect([hpa.spec.minReplicas, hpa.spec.maxReplicas]).toEqual([1, 3]);
        const v = hpa.status.currentMetrics?.[0]?.resource?.current?.averageUtilization;
        return typeof v === 'number' ? v : undefined;
      },
      180_000,
      5000,
    );
    process.stdout.write(
      `edge HPA: cpu ${cpu}% of request\n${await kubectl(['-n', NAMESPACE, 'get', 'hpa'])}`,
    );
    const pdb = await kubeJson<{ spec: { minAvailable: number } }>(['get', 'pdb', 'edge-inference']);
    expect(pdb.spec.minAvailable).toBe(1);
    const policies = await kubeJson<{ items: { metadata: { name: string } }[] }>(['get', 'networkpolicies']);
    expect(policies.items.map((p) => p.metadata.name)).toEqual(
      expect.arrayContaining([
        'default-deny-ingress',
        'broker',
        'kafka',
        'mlflow',
        'elasticsearch',
        'dashboard',
      ]),
    );
  }, 300_000);
});
