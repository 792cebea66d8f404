import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

// .ci/run with a stand-in `make` first on PATH: it records its arguments and exits with a chosen status,
// so the switch is tested without running the project's tests or touching a cluster.
const ciRun = fileURLToPath(new URL('../../../.ci/run', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'ci-run-'));
const calls = join(dir, 'calls');
writeFileSync(
  join(dir, 'make'),
  `#!/bin/sh\nprintf '%s CI=%s\\n' "$*" "$CI" >> '${calls}'\nexit "\${FAKE_MAKE_STATUS:-0}"\n`,
);
chmodSync(join(dir, 'make'), 0o755);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(env: Record<string, string>) {
  rmSync(calls, { force: true });
  // Not what an outer .ci/run exported (this suite runs inside CI too): each case sets its own.
  const inherited = { ...process.env };
  for (const k of ['CI_CLUSTER', 'CI_RUN_INNER', 'CI_BUDGET_S', 'DRIFTLINE_CACHE']) delete inherited[k];
  const r = spawnSync('bash', [ciRun], {
    env: { ...inherited, PATH: `${dir}:${process.env.PATH ?? ''}`, ...env },
    encoding: 'utf8',
    timeout: 20_000,
  });
  let made = '';
  try {
    made = readFileSync(calls, 'utf8');
  } catch {
    // make was never called
  }
  return { status: r.status, out: r.stdout + r.stderr, made };
}

describe('.ci/run CI_CLUSTER switch', () => {
  it('CI_CLUSTER=0 runs exactly `make test`, says the cluster stage is skipped, and exits with its status', () => {
    for (const status of [0, 3]) {
      const r = run({ CI_CLUSTER: '0', FAKE_MAKE_STATUS: String(status) });
      expect(r.made).toBe('test CI=true\n');
      expect(r.status).toBe(status);
      expect(r.out).toMatch(/CI_CLUSTER=0 .*cluster stage SKIPPED/);
    }
  });

  it('refuses any value other than auto, 0 or 1 before running anything', () => {
    const r = run({ CI_CLUSTER: 'yes' });
    expect(r.status).toBe(2);
    expect(r.made).toBe('');
    expect(r.out).toContain('CI_CLUSTER must be auto, 1');
  });

  it('auto on an agent without the cluster toolchain: exactly `make test`, and says why', () => {
    const cache = mkdtempSync(join(tmpdir(), 'ci-run-cache-'));
    try {
      const r = run({ DRIFTLINE_CACHE: cache, CI_CLUSTER: 'auto', FAKE_MAKE_STATUS: '4' });
      expect(r.made).toBe('test CI=true\n');
      expect(r.status).toBe(4);
      expect(r.out).toMatch(/cluster stage SKIPPED: the cluster toolchain is not built on this agent/);
    } finally {
      rmSync(cache, { recursive: true, force: true });
    }
  });

  it('default is the cluster stage, and auto looks for the six binaries scripts/cluster/build-binaries.sh caches (static check: running the stage needs a cluster)', () => {
    const text = readFileSync(ciRun, 'utf8');
    expect(text).toContain('mode="${CI_CLUSTER:-1}"');
    expect(text).toMatch(/^make test-once$/m);
    expect(text).toMatch(/^SKIP_TEST=1 make buildtestup/m);
    expect(text).toMatch(/for b in kube-apiserver kubelet kubeadm kubectl etcd minikube; do/);
  });
});
