import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ArtifactError } from '../../../../common/errors.ts';
import { verifyArtifactFiles } from '../../../../common/model/artifact-files.ts';
import { DirectoryRegistry } from '../../../../common/registry/directory.ts';
import { RegistryError } from '../../../../common/registry/errors.ts';
import { createRegistry } from '../../../../common/registry/factory.ts';
import { championStack, rollbackTarget } from '../../../../common/registry/history.ts';
import type { AliasChange, ModelVersion } from '../../../../common/registry/types.ts';

const MODEL = 'driftline-efficiency';
const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '../../../..');

function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A small fake artifact: metadata.json listing sha256+bytes of model.json, weights.bin, reference.json. */
async function makeArtifact(dir: string, seed: number, metadataVersion = 'candidate'): Promise<string> {
  await mkdir(dir, { recursive: true });
  const files: Record<string, Uint8Array> = {
    'model.json': Buffer.from(JSON.stringify({ modelTopology: { seed }, weightsManifest: [] })),
    'weights.bin': Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 7 + seed) % 256)),
    'reference.json': Buffer.from(JSON.stringify({ size: 1, features: {}, classShares: {}, seed })),
  };
  const table: Record<string, { sha256: string; bytes: number }> = {};
  for (const [name, data] of Object.entries(files)) {
    await writeFile(path.join(dir, name), data);
    table[name] = { sha256: sha256(data), bytes: data.byteLength };
  }
  const metadata = {
    format: 'driftline-model/1',
    name: MODEL,
    version: metadataVersion,
    createdAt: new Date().toISOString(),
    files: table,
  };
  await writeFile(path.join(dir, 'metadata.json'), JSON.stringify(metadata, null, 2));
  return dir;
}

async function waitFor<T>(probe: () => T | undefined, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('waitFor: timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Runs a TypeScript snippet in a child process (real process boundary: crashes and races). */
function runChild(
  source: string,
  cwd: string,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    void (async () => {
      const file = path.join(cwd, `child-${Math.random().toString(16).slice(2)}.mts`); // .mts: ESM with top-level await outside the package
      await writeFile(file, source);
      const child = spawn(process.execPath, ['--import', 'tsx', file], {
        cwd: repoRoot,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', reject);
      child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    })().catch(reject);
  });
}

const directoryModule = JSON.stringify(path.join(repoRoot, 'common/registry/directory.ts'));

describe('DirectoryRegistry', () => {
  let tmp: string;
  let root: string;
  let registry: DirectoryRegistry;
  const info = { correlationId: 'corr-1', metrics: { accuracy: 0.9, macroF1: 0.88 } };
  const audit = { by: 'test', reason: 'beats champion', correlationId: 'corr-1' };

  beforeEach(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'driftline-registry-'));
    root = path.join(tmp, 'registry');
    registry = new DirectoryRegistry({ root, watchIntervalMs: 20 });
  });
  afterEach(async () => {
    await registry.close();
    await rm(tmp, { recursive: true, force: true });
  });

  it('registers versions 1, 2… with checksums, keeping the artifact metadata untouched', async () => {
    const art = await makeArtifact(path.join(tmp, 'a1'), 1, 'bootstrap');
    const v1 = await registry.registerVersion(MODEL, art, {
      ...info,
      runId: 'run-1',
      requestId: 'req-1',
      source: 'bootstrap',
      tags: { scenario: 'steady', 'driftline.evil': 'x' },
    });
    const v2 = await registry.registerVersion(MODEL, await makeArtifact(path.join(tmp, 'a2'), 2), info);
    expect([v1.version, v2.version]).toEqual(['1', '2']);
    expect(v1.checksum).toBe(sha256(await readFile(path.join(art, 'metadata.json'))));
    expect(v1).toMatchObject({
      name: MODEL,
      status: 'candidate',
      runId: 'run-1',
      metrics: { accuracy: 0.9, macroF1: 0.88 },
    });
    expect(v1.tags).toEqual({
      scenario: 'steady',
      'driftline.correlation_id': 'corr-1',
      'driftline.request_id': 'req-1',
      'driftline.source': 'bootstrap',
    });

    const dir = await registry.fetchArtifact(MODEL, '1');
    expect(dir).toBe(path.join(root, MODEL, 'versions', '1', 'artifact'));
    const stored = JSON.parse(await readFile(path.join(dir, 'metadata.json'), 'utf8')) as { version: string };
    expect(stored.version).toBe('bootstrap'); // the registry's number is ModelVersion.version, not metadata.version
    expect((await registry.listVersions(MODEL)).map((v) => v.version)).toEqual(['1', '2']);
    expect(await registry.getVersion(MODEL, '3')).toBeUndefined();
    expect(await registry.getChampion(MODEL)).toBeUndefined();
    expect(registry.kind).toBe(`directory ${root}`);
  });

  it('refuses to register an artifact whose files do not match its metadata', async () => {
    const art = await makeArtifact(path.join(tmp, 'bad'), 1);
    await writeFile(path.join(art, 'weights.bin'), Buffer.alloc(64, 1));
    await expect(registry.registerVersion(MODEL, art, info)).rejects.toBeInstanceOf(ArtifactError);
    expect(await registry.listVersions(MODEL)).toEqual([]);
  });

  it('promotes, records who/why in the history and derives statuses', async () => {
    await registry.registerVersion(MODEL, await makeArtifact(path.join(tmp, 'a1'), 1), info);
    await registry.registerVersion(MODEL, await makeArtifact(path.join(tmp, 'a2'), 2), info);
    await registry.setChampion(MODEL, '1', { by: 'bootstrap', reason: 'first model' });
    await registry.setChampion(MODEL, '2', audit);
    await registry.setChampion(MODEL, '2', audit); // no-op: already champion

    expect((await registry.getChampion(MODEL))?.version).toBe('2');
    const history = await registry.history(MODEL);
    expect(history).toHaveLength(2);
    expect(history[0]).toMatchObject({
      name: MODEL,
      alias: 'champion',
      to: '1',
      by: 'bootstrap',
      reason: 'first model',
      action: 'promote',
    });
    expect(history[0]?.from).toBeUndefined();
    expect(history[1]).toMatchObject({
      from: '1',
      to: '2',
      by: 'test',
      reason: 'beats champion',
      correlationId: 'corr-1',
      action: 'promote',
    });
    expect(Date.parse(history[1]?.at ?? '')).not.toBeNaN();
    expect((await registry.listVersions(MODEL)).map((v) => [v.version, v.status])).toEqual([
      ['1', 'retired'],
      ['2', 'champion'],
    ]);
  });

  it('a crash between writing the alias file and renaming it leaves the old champion intact and loadable', async () => {
    await registry.registerVersion(MODEL, await makeArtifact(path.join(tmp, 'a1'), 1), info);
    await registry.setChampion(MODEL, '1', audit);
    const crashing = new DirectoryRegistry({
      root,
      faults: {
        beforeAliasRename: () => {
          throw new Error('simulated crash');
        },
      },
    });
    await crashing.registerVersion(MODEL, await makeArtifact(path.join(tmp, 'a2'), 2), info);
    await expect(crashing.setChampion(MODEL, '2', audit)).rejects.toThrow('simulated crash');

    const champion = await registry.getChampion(MODEL);
    expect(champion?.version).toBe('1');
    await expect(
      verifyArtifactFiles(await registry.fetchArtifact(MODEL, '1'), champion?.checksum),
    ).resolves.toBeDefined();
    expect((await registry.history(MODEL)).map((h) => h.to)).toEqual(['1']);
    const leftovers = (await readdir(path.join(root, MODEL))).filter(
      (f) => f.startsWith('.aliases.json') || f === '.lock',
    );
    expect(leftovers).toEqual([]);
    // The registry still works: the promotion can be redone.
    await registry.setChampion(MODEL, '2', audit);
    expect((await registry.getChampion(MODEL))?.version).toBe('2');
  });

  it('a crash after copying the artifact registers nothing and does not burn a version number', async () => {
    await registry.registerVersion(MODEL, await makeArtifact(path.join(tmp, 'a1'), 1), info);
    await registry.setChampion(MODEL, '1', audit);
    const crashing = new DirectoryRegistry({
      root,
      faults: {
        afterArtifactCopy: () => {
          throw new Error('simulated crash');
        },
      },
    });
    await expect(
      crashing.registerVersion(MODEL, await makeArtifact(path.join(tmp, 'a2'), 2), info),
    ).rejects.toThrow('simulated crash');
    expect((await registry.listVersions(MODEL)).map((v) => v.version)).toEqual(['1']);
    expect((await registry.getChampion(MODEL))?.version).toBe('1');
    const next = await registry.registerVersion(MODEL, await makeArtifact(path.join(tmp, 'a3'), 3), info);
    expect(next.version).toBe('2');
  });

  it('a process killed (SIGKILL) in the middle of an alias move leaves the old champion loadable', async () => {
    await registry.registerVersion(MODEL, await makeArtifact(path.join(tmp, 'a1'), 1), info);
    await registry.registerVersion(MODEL, await makeArtifact(path.join(tmp, 'a2'), 2), info);
    await registry.setChampion(MODEL, '1', audit);
    const result = await runChild(
      `import { DirectoryRegistry } from ${directoryModule};
       const r = new DirectoryRegistry({ root: ${JSON.stringify(root)}, faults: { beforeAliasRename: () => { process.kill(process.pid, 'SIGKILL'); } } });
       await r.setChampion(${JSON.stringify(MODEL)}, '2', { by: 'child', reason: 'crash test' });
       console.log('not reached');`,
      tmp,
    );
    expect(result.signal).toBe('SIGKILL');
    expect(result.stdout).not.toContain('not reached');
    const champion = await registry.getChampion(MODEL);
    expect(champion?.version).toBe('1');
    await expect(registry.fetchArtifact(MODEL, '1')).resolves.toContain(
      path.join('versions', '1', 'artifact'),
    );
    // The dead process's lock is broken (its pid is gone) and work goes on.
    await registry.setChampion(MODEL, '2', audit);
    expect((await registry.getChampion(MODEL))?.version).toBe('2');
  });

  it('rolls back along the champion stack, skipping rejected versions, and errors when there is none', async () => {
    for (let i = 1; i <= 4; i++)
      await registry.registerVersion(MODEL, await makeArtifact(path.join(tmp, `a${i}`), i), info);
    await expect(registry.rollback(MODEL, audit)).rejects.toMatchObject({ code: 'REGISTRY_NO_PREVIOUS' });
    await registry.setChampion(MODEL, '1', audit);
    await expect(registry.rollback(MODEL, audit)).rejects.toMatchObject({ code: 'REGISTRY_NO_PREVIOUS' });
    await registry.setChampion(MODEL, '2', audit);
    await registry.setChampion(MODEL, '3', audit);
    await registry.setChampion(MODEL, '4', audit);

    const back = await registry.rollback(MODEL, {
      by: 'cli:ops',
      reason: 'accuracy dropped',
      correlationId: 'corr-rb',
    });
    expect(back.version).toBe('3');
    expect(back.status).toBe('champion');
    await registry.markRejected(MODEL, '2', 'found broken later');
    expect((await registry.rollback(MODEL, { by: 'cli:ops', reason: 'again' })).version).toBe('1');
    await expect(registry.rollback(MODEL, audit)).rejects.toBeInstanceOf(RegistryError);

    const history = await registry.history(MODEL);
    expect(history.slice(-2)).toMatchObject([
      {
        from: '4',
        to: '3',
        by: 'cli:ops',
        reason: 'accuracy dropped',
        correlationId: 'corr-rb',
        action: 'rollback',
      },
      { from: '3', to: '1', action: 'rollback' },
    ]);
  });

  it('refuses a checksum mismatch in a stored version (fetch and promote)', async () => {
    await registry.registerVersion(MODEL, await makeArtifact(path.join(tmp, 'a1'), 1), info);
    const weights = path.join(root, MODEL, 'versions', '1', 'artifact', 'weights.bin');
    const bytes = await readFile(weights);
    bytes[10] = (bytes[10] ?? 0) ^ 0xff;
    await writeFile(weights, bytes);
    await expect(registry.fetchArtifact(MODEL, '1')).rejects.toBeInstanceOf(ArtifactError);
    await expect(registry.setChampion(MODEL, '1', audit)).rejects.toBeInstanceOf(ArtifactError);
    expect(await registry.getChampion(MODEL)).toBeUndefined();
  });

  it('refuses a swapped metadata.json (its sha256 is the registered checksum)', async () => {
    await registry.registerVersion(MODEL, await makeArtifact(path.join(tmp, 'a1'), 1), info);
    const metadataFile = path.join(root, MODEL, 'versions', '1', 'artifact', 'metadata.json');
    const metadata = JSON.parse(await readFile(metadataFile, 'utf8')) as Record<string, unknown>;
    await writeFile(metadataFile, JSON.stringify({ ...metadata, version: 'tampered' }));
    await expect(registry.fetchArtifact(MODEL, '1')).rejects.toThrow(/registered checksum/);
  });

  it('concurrent registrations from two registries on the same directory get distinct versions', async () => {
    const other = new DirectoryRegistry({ root });
    const arts = await Promise.all(
      Array.from({ length: 12 }, (_, i) => makeArtifact(path.join(tmp, `c${i}`), i)),
    );
    const results = await Promise.all(
      arts.map((art, i) => (i % 2 === 0 ? registry : other).registerVersion(MODEL, art, info)),
    );
    const versions = results.map((v) => Number(v.version)).sort((a, b) => a - b);
    expect(versions).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    // Each version holds the artifact it was registered with.
    for (const v of results) expect(v.checksum).toBe((await registry.getVersion(MODEL, v.version))?.checksum);
  });

  it('concurrent registrations from two processes get distinct versions', async () => {
    const arts = await Promise.all(
      Array.from({ length: 2 }, (_, i) => makeArtifact(path.join(tmp, `p${i}`), i)),
    );
    const child = (art: string): string => `import { DirectoryRegistry } from ${directoryModule};
       const r = new DirectoryRegistry({ root: ${JSON.stringify(root)} });
       const out = await Promise.all(Array.from({ length: 5 }, () => r.registerVersion(${JSON.stringify(MODEL)}, ${JSON.stringify(art)}, { correlationId: 'c', metrics: {} })));
       console.log(JSON.stringify(out.map((v) => v.version)));`;
    const [a, b] = await Promise.all(arts.map((art) => runChild(child(art), tmp)));
    expect(a?.code, a?.stderr).toBe(0);
    expect(b?.code, b?.stderr).toBe(0);
    const all = [
      ...(JSON.parse(a?.stdout ?? '[]') as string[]),
      ...(JSON.parse(b?.stdout ?? '[]') as string[]),
    ]
      .map(Number)
      .sort((x, y) => x - y);
    expect(all).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('watchChampion fires on a change made by another registry instance (promote and rollback)', async () => {
    await registry.registerVersion(MODEL, await makeArtifact(path.join(tmp, 'a1'), 1), info);
    await registry.registerVersion(MODEL, await makeArtifact(path.join(tmp, 'a2'), 2), info);
    await registry.setChampion(MODEL, '1', audit);
    const seen: Array<ModelVersion | undefined> = [];
    const unwatch = registry.watchChampion(MODEL, (v) => seen.push(v), { intervalMs: 20, emitInitial: true });
    await waitFor(() => (seen.length >= 1 ? true : undefined)); // the baseline: no timing assumptions
    expect(seen[0]?.version).toBe('1');

    const cli = new DirectoryRegistry({ root });
    await cli.setChampion(MODEL, '2', audit);
    await waitFor(() => (seen.length >= 2 ? true : undefined));
    expect(seen[1]).toMatchObject({ version: '2', status: 'champion' });
    await cli.rollback(MODEL, { by: 'cli:ops', reason: 'bad' });
    await waitFor(() => (seen.length >= 3 ? true : undefined));
    expect(seen[2]?.version).toBe('1');
    unwatch();
    await cli.setChampion(MODEL, '2', audit);
    await new Promise((r) => setTimeout(r, 80));
    expect(seen).toHaveLength(3);
  });

  it('watchChampion can emit the current champion first', async () => {
    await registry.registerVersion(MODEL, await makeArtifact(path.join(tmp, 'a1'), 1), info);
    await registry.setChampion(MODEL, '1', audit);
    const seen: Array<ModelVersion | undefined> = [];
    registry.watchChampion(MODEL, (v) => seen.push(v), { intervalMs: 20, emitInitial: true });
    await waitFor(() => (seen.length >= 1 ? true : undefined));
    expect(seen[0]?.version).toBe('1');
  });

  it('markRejected keeps the reason, blocks promotion and refuses the champion', async () => {
    await registry.registerVersion(MODEL, await makeArtifact(path.join(tmp, 'a1'), 1), info);
    await registry.registerVersion(MODEL, await makeArtifact(path.join(tmp, 'a2'), 2), info);
    await registry.setChampion(MODEL, '1', audit);
    await registry.markRejected(MODEL, '2', 'macroF1 0.71 < champion 0.80', 'corr-2');
    const v2 = await registry.getVersion(MODEL, '2');
    expect(v2).toMatchObject({ status: 'rejected', rejectedReason: 'macroF1 0.71 < champion 0.80' });
    await expect(registry.setChampion(MODEL, '2', audit)).rejects.toMatchObject({ code: 'REGISTRY_STATE' });
    await expect(registry.markRejected(MODEL, '1', 'no')).rejects.toMatchObject({ code: 'REGISTRY_STATE' });
    await expect(registry.markRejected(MODEL, '9', 'no')).rejects.toMatchObject({
      code: 'REGISTRY_NOT_FOUND',
    });
    await expect(registry.setChampion(MODEL, '9', audit)).rejects.toMatchObject({
      code: 'REGISTRY_NOT_FOUND',
    });
    await expect(registry.fetchArtifact(MODEL, '9')).rejects.toMatchObject({ code: 'REGISTRY_NOT_FOUND' });
  });

  it('recovers the history entry of a move whose history line was lost in a crash', async () => {
    await registry.registerVersion(MODEL, await makeArtifact(path.join(tmp, 'a1'), 1), info);
    await registry.registerVersion(MODEL, await makeArtifact(path.join(tmp, 'a2'), 2), info);
    await registry.setChampion(MODEL, '1', audit);
    await registry.setChampion(MODEL, '2', audit);
    const historyFile = path.join(root, MODEL, 'history.jsonl');
    const lines = (await readFile(historyFile, 'utf8')).trim().split('\n');
    await writeFile(historyFile, `${lines[0]}\n{"torn":`); // the second append never finished
    expect((await registry.history(MODEL)).map((h) => h.to)).toEqual(['1', '2']);
    expect((await registry.rollback(MODEL, audit)).version).toBe('1');
    expect((await registry.history(MODEL)).map((h) => `${h.action}:${h.to}`)).toEqual([
      'promote:1',
      'promote:2',
      'rollback:1',
    ]);
  });

  it('rejects unsafe model names and malformed versions', async () => {
    const art = await makeArtifact(path.join(tmp, 'a1'), 1);
    await expect(registry.registerVersion('../escape', art, info)).rejects.toMatchObject({
      code: 'REGISTRY_INVALID',
    });
    await expect(registry.getVersion(MODEL, '01')).rejects.toMatchObject({ code: 'REGISTRY_INVALID' });
    await expect(registry.setChampion(MODEL, 'latest', audit)).rejects.toMatchObject({
      code: 'REGISTRY_INVALID',
    });
  });

  it('createRegistry picks the directory registry without MLFLOW_TRACKING_URI and MLflow with it', async () => {
    const dir = createRegistry({ registryDir: root, env: {} });
    expect(dir.kind).toBe(`directory ${root}`);
    const mlflow = createRegistry({
      registryDir: root,
      env: { MLFLOW_TRACKING_URI: 'http://127.0.0.1:5055/' },
    });
    expect(mlflow.kind).toBe('mlflow http://127.0.0.1:5055');
    await dir.close();
    await mlflow.close();
  });
});

describe('rollback rules', () => {
  const change = (to: string, action: AliasChange['action'] = 'promote'): AliasChange => ({
    at: '',
    name: 'm',
    alias: 'champion',
    to,
    by: 't',
    reason: 'r',
    action,
  });

  it('replays promotions as pushes and rollbacks as pops', () => {
    expect(championStack([change('1'), change('2'), change('3'), change('2', 'rollback')])).toEqual([
      '1',
      '2',
    ]);
    expect(championStack([change('1'), change('2'), change('7', 'rollback')])).toEqual(['7']);
  });

  it('finds the previous champion, skipping rejected ones and the current one', () => {
    const h = [change('1'), change('2'), change('3')];
    expect(rollbackTarget(h, '3', () => false)).toBe('2');
    expect(rollbackTarget(h, '3', (v) => v === '2')).toBe('1');
    expect(rollbackTarget([change('1')], '1', () => false)).toBeUndefined();
    // The current champion is missing from the history (a lost audit line): the stack top is the previous one.
    expect(rollbackTarget([change('1'), change('2')], '3', () => false)).toBe('2');
    expect(rollbackTarget([change('1'), change('2'), change('1')], '1', () => false)).toBe('2');
  });
});
