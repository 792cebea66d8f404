import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';

// scripts/cluster/build-binaries.sh with a stand-in `go` first on PATH (fixtures/fake-go: keeps go.mod
// files as the real one would, answers the alignment's `go list` queries from a small fixed module
// graph, records every `go build` and writes a dummy binary). So the build modes, the fallback, the
// stamps and the single Kubernetes build are tested without compiling or downloading anything.
const script = fileURLToPath(new URL('../../../scripts/cluster/build-binaries.sh', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'build-binaries-'));
const calls = join(dir, 'calls');
// The stand-in go is tests/unit/scripts/fixtures/fake-go (copied: the checkout's file modes are not relied on).
writeFileSync(join(dir, 'go'), readFileSync(fileURLToPath(new URL('./fixtures/fake-go', import.meta.url))));
chmodSync(join(dir, 'go'), 0o755);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const LP = 'local-path-provisioner';
let cache = '';
beforeEach(() => {
  cache = mkdtempSync(join(tmpdir(), 'build-binaries-cache-'));
});
afterEach(() => rmSync(cache, { recursive: true, force: true }));

function run(args: string[], env: Record<string, string> = {}) {
  rmSync(calls, { force: true });
  const inherited = { ...process.env };
  for (const k of ['DRIFTLINE_ALIGN_DEPS', 'COREDNS_PLUGINS', 'K8S_VERSION', 'GO_BUILD_P'])
    delete inherited[k];
  const r = spawnSync('bash', [script, ...args], {
    env: {
      ...inherited,
      PATH: `${dir}:${process.env.PATH ?? ''}`,
      DRIFTLINE_CACHE: cache,
      FAKE_GO_CALLS: calls,
      ...env,
    },
    encoding: 'utf8',
    timeout: 30_000,
  });
  const builds = existsSync(calls)
    ? readFileSync(calls, 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('build '))
    : [];
  return { status: r.status, out: r.stdout + r.stderr, builds };
}
const stampOf = (name: string) => readFileSync(join(cache, 'cluster/bin/.stamps', name), 'utf8').split('\n');
const fileIn = (...p: string[]) => readFileSync(join(cache, 'cluster', ...p), 'utf8');

describe('build-binaries.sh aligned builds', () => {
  it("raises the shared modules to the Kubernetes build's versions (never lowers), builds aligned, stamps the mode, then skips", () => {
    const r = run([LP]);
    expect(r.status, r.out).toBe(0);
    expect(r.builds).toEqual([
      `build ${LP}-v0.0.30-k8s-v1.34.4 -o ${join(cache, `cluster/bin/${LP}.tmp`)} github.com/rancher/local-path-provisioner`,
    ]);
    expect(r.out).toMatch(
      /local-path-provisioner v0\.0\.30: built aligned with Kubernetes v1\.34\.4's module versions \(modules raised to Kubernetes v1\.34\.4's versions: 1, kept newer: 1;/,
    );
    const dir = `src/${LP}-v0.0.30-k8s-v1.34.4`;
    // k8s.io/api raised; x/net stays at the newer version the tool's graph needs; urfave/cli (only the
    // tool compiles it) untouched; no replace lines; the tool's own module unchanged.
    expect(fileIn(dir, 'raised.txt')).toBe('k8s.io/api v0.34.4\n');
    expect(fileIn(dir, 'newer.txt')).toBe('golang.org/x/net v0.43.0 v0.38.0\n');
    expect(fileIn(dir, 'go.mod')).toContain('require k8s.io/api v0.34.4');
    expect(fileIn(dir, 'go.mod')).not.toMatch(/urfave|replace/);
    expect(fileIn(`src/${LP}-v0.0.30/go.mod`)).not.toContain('k8s.io/api');
    expect(stampOf(LP)[0]).toBe('v0.0.30 align=k8s-v1.34.4');
    expect(stampOf(LP)[1]).toMatch(
      /^aligned: modules raised to Kubernetes v1\.34\.4's versions: 1, kept newer: 1;/,
    );

    const again = run([LP]);
    expect(again.status, again.out).toBe(0);
    expect(again.builds).toEqual([]);
    expect(again.out).toMatch(
      /local-path-provisioner v0\.0\.30: cached \(aligned: modules raised to Kubernetes v1\.34\.4's versions: 1,/,
    );
  });

  it("falls back to the module's own versions when the aligned build fails, and does not retry on the next run", () => {
    const r = run([LP], { FAKE_GO_FAIL: '-k8s-' });
    expect(r.status, r.out).toBe(0);
    expect(r.builds.map((b) => b.split(' ')[1])).toEqual([`${LP}-v0.0.30-k8s-v1.34.4`, `${LP}-v0.0.30`]);
    const failLines = r.out.split('\n').filter((l) => l.includes('aligned build FAILED'));
    expect(failLines).toHaveLength(1);
    expect(failLines[0]).toContain('undefined: NewThing');
    expect(failLines[0]).toContain('building with its own module versions');
    expect(r.out).toMatch(/local-path-provisioner v0\.0\.30: built with its module's own versions/);
    expect(existsSync(join(cache, `cluster/bin/${LP}`))).toBe(true);
    expect(existsSync(join(cache, `cluster/bin/${LP}.tmp`))).toBe(false);
    expect(stampOf(LP)[0]).toBe('v0.0.30 align=k8s-v1.34.4');
    expect(stampOf(LP)[1]).toMatch(/^own: module's own versions \(aligned build failed/);

    const again = run([LP], { FAKE_GO_FAIL: '-k8s-' });
    expect(again.builds).toEqual([]);
    expect(again.out).toMatch(/local-path-provisioner v0\.0\.30: cached \(own: /);
  });

  it('a change of mode is a rebuild: DRIFTLINE_ALIGN_DEPS=0 builds with the own versions under the bare version stamp', () => {
    expect(run([LP]).status).toBe(0);
    const r = run([LP], { DRIFTLINE_ALIGN_DEPS: '0' });
    expect(r.status, r.out).toBe(0);
    expect(r.builds.map((b) => b.split(' ')[1])).toEqual([`${LP}-v0.0.30`]);
    expect(stampOf(LP)[0]).toBe('v0.0.30');
    expect(run([LP], { DRIFTLINE_ALIGN_DEPS: '0' }).builds).toEqual([]);
    // back to aligned: rebuilt again
    expect(run([LP]).builds.map((b) => b.split(' ')[1])).toEqual([`${LP}-v0.0.30-k8s-v1.34.4`]);
  });

  it('DRIFTLINE_ALIGN_DEPS names the binaries to align; by default crictl is not (it would gain nothing)', () => {
    const own = run(['crictl']);
    expect(own.status, own.out).toBe(0);
    expect(own.builds.map((b) => b.split(' ')[1])).toEqual(['crictl-v1.34.0']);
    expect(stampOf('crictl')[0]).toBe('v1.34.0');
    const named = run(['crictl', LP], { DRIFTLINE_ALIGN_DEPS: 'crictl' });
    expect(named.builds.map((b) => b.split(' ')[1])).toEqual(['crictl-v1.34.0-k8s-v1.34.4', `${LP}-v0.0.30`]);
    expect(stampOf('crictl')[0]).toBe('v1.34.0 align=k8s-v1.34.4');
    const bad = run(['crictl'], { DRIFTLINE_ALIGN_DEPS: 'etcd' });
    expect(bad.status).not.toBe(0);
    expect(bad.out).toContain('DRIFTLINE_ALIGN_DEPS: etcd cannot be aligned');
    expect(bad.builds).toEqual([]);
  });

  it('CoreDNS: a main with only COREDNS_PLUGINS, and the plugin list is part of the stamp', () => {
    const r = run(['coredns']);
    expect(r.status, r.out).toBe(0);
    const main = fileIn('src/coredns-v1.12.1-min/main.go');
    for (const p of [
      'errors',
      'health',
      'ready',
      'kubernetes',
      'metrics',
      'forward',
      'cache',
      'loop',
      'reload',
      'loadbalance',
      'log',
      'hosts',
      'whoami',
    ]) {
      expect(main).toContain(`_ "github.com/coredns/coredns/plugin/${p}"`);
    }
    expect(main).not.toContain('plugin/route53');
    expect(main).toContain('_ "github.com/coredns/coredns/core/dnsserver"');
    expect(main).toContain('coremain.Run()');
    expect(r.builds).toEqual([
      'build coredns-v1.12.1-min -o ' + join(cache, 'cluster/bin/coredns.tmp') + ' .',
    ]);
    expect(stampOf('coredns')[0]).toBe(
      'v1.12.1 plugins=errors,health,ready,kubernetes,metrics,forward,cache,loop,reload,loadbalance,log,hosts,whoami',
    );

    const more = run(['coredns'], { COREDNS_PLUGINS: 'errors forward' });
    expect(more.builds).toHaveLength(1);
    expect(fileIn('src/coredns-v1.12.1-min/main.go')).not.toContain('plugin/kubernetes');
  });

  it('the Kubernetes commands asked for are one go build -o DIR/ with the version ldflags, each stamped', () => {
    const r = run(['kubectl', LP, 'kubeadm']);
    expect(r.status, r.out).toBe(0);
    expect(r.builds).toHaveLength(2);
    expect(r.builds[0]).toBe(
      `build k8s-v1.34.4 -o ${join(cache, 'cluster/bin/.k8s-build')}/ k8s.io/kubernetes/cmd/kubectl k8s.io/kubernetes/cmd/kubeadm`,
    );
    const raw = readFileSync(calls, 'utf8');
    expect(raw).toContain('-X k8s.io/component-base/version.gitVersion=v1.34.4');
    expect(raw).toContain('-X k8s.io/client-go/pkg/version.gitVersion=v1.34.4');
    expect(r.builds[1]).toMatch(/^build local-path-provisioner-v0\.0\.30-k8s-v1\.34\.4 /);
    // its modules were resolved in the background while the Kubernetes build ran
    expect(fileIn('logs/prefetch.log')).toMatch(
      /local-path-provisioner: aligned resolution OK \(modules raised to Kubernetes v1\.34\.4's versions: 1, kept newer: 1;/,
    );
    for (const n of ['kubectl', 'kubeadm']) {
      expect(existsSync(join(cache, 'cluster/bin', n))).toBe(true);
      expect(stampOf(n)[0]).toBe('v1.34.4');
    }
    expect(existsSync(join(cache, 'cluster/bin/.k8s-build'))).toBe(false);
    expect(run(['kubectl', 'kubeadm']).builds).toEqual([]);
    // only the missing one is built
    expect(run(['kubectl', 'kubelet']).builds).toEqual([
      `build k8s-v1.34.4 -o ${join(cache, 'cluster/bin/.k8s-build')}/ k8s.io/kubernetes/cmd/kubelet`,
    ]);
  });

  it('refuses an unknown name before building anything', () => {
    const r = run(['kubectl', 'nope']);
    expect(r.status).not.toBe(0);
    expect(r.builds).toEqual([]);
    expect(r.out).toContain('unknown binary nope');
  });
});
