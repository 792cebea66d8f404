import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ArtifactError } from '../../common/errors.ts';
import { RegistryError } from '../../common/registry/errors.ts';
import type { ModelRegistry, ModelVersion } from '../../common/registry/types.ts';

/**
 * The `ModelRegistry` contract (`common/registry/types.ts`), one suite run
 * against every implementation: `DirectoryRegistry` in `npm test`
 * (tests/unit/common/registry/contract.test.ts), `MlflowRegistry`
 * against a real MLflow server (tests/external/mlflow-contract.test.ts).
 *
 * What the interface promises: a registered version is a `candidate` numbered
 * by the registry ("1", "2", …), after its files were checked against its
 * `metadata.json` (whose sha256 is the version's checksum); the `champion`
 * alias moves only to a registered, unrejected version and every move is in the
 * history with who and why; statuses follow (champion, retired, rejected,
 * candidate); the champion cannot be rejected; a rollback returns to the
 * previous champion skipping rejected versions, and fails with
 * `REGISTRY_NO_PREVIOUS` when there is none; `fetchArtifact` gives a verified
 * local copy; a version signature is stored as given and read back with its
 * version; a watcher sees every champion change; unknown versions are
 * undefined to the getters and a `REGISTRY_NOT_FOUND` error to the others.
 */

/** One registry of the suite. */
export interface RegistryUnderTest {
  registry: ModelRegistry;
  /** A model name no other test (and no earlier run against the same server) used. */
  model: string;
  /** A second registry on the same store: another process (the CLI), for the watcher test. */
  other(): ModelRegistry;
  /** Removes what the test created besides the registries. Optional. */
  cleanup?(): Promise<void>;
}

export interface RegistryContractOptions {
  /** How long the watcher test waits for a change, ms. */
  timeoutMs: number;
  /** Poll interval the watcher test asks for, ms. */
  watchIntervalMs: number;
}

const sha256 = (data: Uint8Array | string): string => createHash('sha256').update(data).digest('hex');

/** A small artifact: metadata.json listing sha256 and size of model.json, weights.bin, reference.json. */
export async function contractArtifact(dir: string, seed: number): Promise<string> {
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
  const metadata = { format: 'driftline-model/1', name: 'contract', version: 'candidate', files: table };
  await writeFile(path.join(dir, 'metadata.json'), JSON.stringify(metadata, null, 2));
  return dir;
}

async function sameFiles(a: string, b: string): Promise<void> {
  const names = (await readdir(a)).sort();
  expect((await readdir(b)).sort()).toEqual(names);
  for (const name of names)
    expect(sha256(await readFile(path.join(b, name))), name).toBe(sha256(await readFile(path.join(a, name))));
}

/** Registers the contract suite for one implementation; `open` gives a registry and a fresh model name per test. */
export function modelRegistryContract(
  name: string,
  open: (test: string) => Promise<RegistryUnderTest>,
  options: RegistryContractOptions,
): void {
  describe(`ModelRegistry contract: ${name}`, () => {
    let tmp: string;
    let seed = 0;
    const opened: RegistryUnderTest[] = [];
    const others: ModelRegistry[] = [];
    const fresh = async (test: string): Promise<RegistryUnderTest> => {
      const r = await open(test);
      opened.push(r);
      return r;
    };
    const artifact = (): Promise<string> => contractArtifact(path.join(tmp, `a${++seed}`), seed);
    const audit = (by: string, reason: string) => ({ by, reason, correlationId: `corr-${by}` });

    beforeAll(async () => {
      tmp = await mkdtemp(path.join(os.tmpdir(), 'driftline-registry-contract-'));
    });
    afterEach(async () => {
      for (const o of others.splice(0)) await o.close();
      for (const r of opened.splice(0)) {
        await r.registry.close();
        await r.cleanup?.();
      }
    });
    afterAll(async () => {
      await rm(tmp, { recursive: true, force: true });
    });

    /** Registers `n` versions of the test's model. */
    async function register(r: RegistryUnderTest, n: number): Promise<ModelVersion[]> {
      const out: ModelVersion[] = [];
      for (let i = 0; i < n; i++)
        out.push(
          await r.registry.registerVersion(r.model, await artifact(), {
            correlationId: `corr-${i + 1}`,
            requestId: `req-${i + 1}`,
            metrics: { accuracy: 0.9 + i / 100 },
            tags: { purpose: 'contract' },
            source: 'contract-test',
          }),
        );
      return out;
    }

    it('registers candidates numbered 1, 2, … with the checksum of metadata.json, metrics and tags', async () => {
      const r = await fresh('register');
      const { registry, model } = r;
      expect(typeof registry.kind).toBe('string');
      expect(await registry.listVersions(model)).toEqual([]);
      expect(await registry.getChampion(model)).toBeUndefined();
      const dir = await artifact();
      const v1 = await registry.registerVersion(model, dir, {
        correlationId: 'corr-1',
        metrics: { accuracy: 0.91, macroF1: 0.88 },
        tags: { purpose: 'contract' },
        source: 'contract-test',
      });
      expect(v1).toMatchObject({
        name: model,
        version: '1',
        status: 'candidate',
        checksum: sha256(await readFile(path.join(dir, 'metadata.json'))),
        metrics: { accuracy: 0.91, macroF1: 0.88 },
      });
      expect(v1.tags).toMatchObject({
        purpose: 'contract',
        'driftline.correlation_id': 'corr-1',
        'driftline.source': 'contract-test',
      });
      expect(Number.isNaN(Date.parse(v1.createdAt))).toBe(false);
      const [v2] = await register(r, 1);
      expect(v2?.version).toBe('2');
      expect((await registry.listVersions(model)).map((v) => [v.version, v.status])).toEqual([
        ['1', 'candidate'],
        ['2', 'candidate'],
      ]);
      expect(await registry.getVersion(model, '2')).toMatchObject({ version: '2', checksum: v2?.checksum });
      expect(await registry.getVersion(model, '3')).toBeUndefined();
      expect(await registry.getChampion(model)).toBeUndefined(); // registering never moves the alias
    });

    it('refuses an artifact whose files do not match its metadata, registering nothing', async () => {
      const { registry, model } = await fresh('tampered');
      const dir = await artifact();
      await writeFile(path.join(dir, 'weights.bin'), Buffer.alloc(64, 1));
      await expect(
        registry.registerVersion(model, dir, { correlationId: 'corr-t', metrics: {} }),
      ).rejects.toBeInstanceOf(ArtifactError);
      expect(await registry.listVersions(model)).toEqual([]);
    });

    it('moves the champion alias with an audit trail; statuses follow', async () => {
      const r = await fresh('promote');
      const { registry, model } = r;
      await register(r, 3);
      await registry.setChampion(model, '1', audit('bootstrap', 'first model'));
      expect(await registry.getChampion(model)).toMatchObject({ version: '1', status: 'champion' });
      await registry.setChampion(model, '2', audit('retrainer', 'better on the holdout'));
      expect((await registry.getChampion(model))?.version).toBe('2');
      expect((await registry.listVersions(model)).map((v) => [v.version, v.status])).toEqual([
        ['1', 'retired'],
        ['2', 'champion'],
        ['3', 'candidate'],
      ]);
      const history = await registry.history(model);
      expect(history.map((h) => [h.action, h.from ?? null, h.to, h.by, h.reason])).toEqual([
        ['promote', null, '1', 'bootstrap', 'first model'],
        ['promote', '1', '2', 'retrainer', 'better on the holdout'],
      ]);
      expect(history[1]).toMatchObject({ name: model, alias: 'champion', correlationId: 'corr-retrainer' });
      expect(Number.isNaN(Date.parse(history[1]?.at ?? ''))).toBe(false);
    });

    it('refuses to promote a rejected or unknown version, and to reject the champion', async () => {
      const r = await fresh('refuse');
      const { registry, model } = r;
      await register(r, 2);
      await registry.setChampion(model, '1', audit('bootstrap', 'first model'));
      await registry.markRejected(model, '2', 'worse than the champion', 'corr-2');
      expect(await registry.getVersion(model, '2')).toMatchObject({
        status: 'rejected',
        rejectedReason: 'worse than the champion',
      });
      const promoteRejected = await registry
        .setChampion(model, '2', audit('t', 'x'))
        .catch((e: unknown) => e);
      expect(promoteRejected).toBeInstanceOf(RegistryError);
      expect(promoteRejected).toMatchObject({ code: 'REGISTRY_STATE' });
      await expect(registry.setChampion(model, '9', audit('t', 'x'))).rejects.toMatchObject({
        code: 'REGISTRY_NOT_FOUND',
      });
      await expect(registry.markRejected(model, '1', 'it is the champion')).rejects.toMatchObject({
        code: 'REGISTRY_STATE',
      });
      await expect(registry.markRejected(model, '9', 'unknown')).rejects.toMatchObject({
        code: 'REGISTRY_NOT_FOUND',
      });
      expect((await registry.getChampion(model))?.version).toBe('1');
      expect(await registry.history(model)).toHaveLength(1);
    });

    it('rolls back to the previous champion skipping rejected versions, then has nothing to roll back to', async () => {
      const r = await fresh('rollback');
      const { registry, model } = r;
      await register(r, 3);
      await registry.setChampion(model, '1', audit('bootstrap', 'first'));
      await registry.setChampion(model, '2', audit('retrainer', 'second'));
      await registry.setChampion(model, '3', audit('retrainer', 'third'));
      await registry.rollback(model, audit('cli:ops', 'live accuracy dropped'));
      expect((await registry.getChampion(model))?.version).toBe('2');
      // 1 is rejected meanwhile: the next rollback has nowhere to go.
      await registry.markRejected(model, '1', 'found a bug in it');
      await expect(registry.rollback(model, audit('cli:ops', 'again'))).rejects.toMatchObject({
        code: 'REGISTRY_NO_PREVIOUS',
      });
      expect((await registry.getChampion(model))?.version).toBe('2');
      expect((await registry.history(model)).map((h) => [h.action, h.from ?? null, h.to])).toEqual([
        ['promote', null, '1'],
        ['promote', '1', '2'],
        ['promote', '2', '3'],
        ['rollback', '3', '2'],
      ]);
    });

    it('hands out a verified local copy of a version; an unknown version is REGISTRY_NOT_FOUND', async () => {
      const r = await fresh('fetch');
      const { registry, model } = r;
      const dir = await artifact();
      await registry.registerVersion(model, dir, { correlationId: 'corr-f', metrics: {} });
      await sameFiles(dir, await registry.fetchArtifact(model, '1'));
      await expect(registry.fetchArtifact(model, '2')).rejects.toMatchObject({ code: 'REGISTRY_NOT_FOUND' });
    });

    it('stores a version signature as given, returns it with that version only; unknown version is REGISTRY_NOT_FOUND', async () => {
      const r = await fresh('versionsig');
      const { registry, model } = r;
      await register(r, 2);
      expect((await registry.getVersion(model, '1'))?.versionSignature).toBeUndefined();
      const text = JSON.stringify({ format: 'driftline-version-signature/1', version: '1', value: 'opaque' });
      await registry.setVersionSignature(model, '1', text);
      await registry.setChampion(model, '1', audit('bootstrap', 'first'));
      expect((await registry.getVersion(model, '1'))?.versionSignature).toBe(text);
      expect((await registry.getChampion(model))?.versionSignature).toBe(text);
      expect((await registry.listVersions(model)).map((v) => v.versionSignature)).toEqual([text, undefined]);
      await registry.setVersionSignature(model, '1', `${text} `);
      expect((await registry.getVersion(model, '1'))?.versionSignature).toBe(`${text} `);
      await expect(registry.setVersionSignature(model, '3', text)).rejects.toMatchObject({
        code: 'REGISTRY_NOT_FOUND',
      });
    });

    it('tells a watcher about every champion change, made here or by another registry on the same store', async () => {
      const r = await fresh('watch');
      const { registry, model } = r;
      await register(r, 2);
      await registry.setChampion(model, '1', audit('bootstrap', 'first'));
      const seen: (string | undefined)[] = [];
      const unwatch = registry.watchChampion(model, (v) => seen.push(v?.version), {
        intervalMs: options.watchIntervalMs,
        emitInitial: true,
      });
      const waitSeen = async (n: number): Promise<void> => {
        const deadline = Date.now() + options.timeoutMs;
        while (seen.length < n && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
      };
      await waitSeen(1);
      expect(seen).toEqual(['1']);
      const other = r.other();
      others.push(other);
      await other.setChampion(model, '2', audit('cli:ops', 'promoted by hand'));
      await waitSeen(2);
      expect(seen).toEqual(['1', '2']);
      await other.rollback(model, audit('cli:ops', 'back'));
      await waitSeen(3);
      expect(seen).toEqual(['1', '2', '1']);
      unwatch();
      await other.setChampion(model, '2', audit('cli:ops', 'after unwatch'));
      await new Promise((res) => setTimeout(res, options.watchIntervalMs * 4));
      expect(seen).toEqual(['1', '2', '1']);
    });
  });
}
