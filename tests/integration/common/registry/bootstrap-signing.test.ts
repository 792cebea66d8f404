import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureChampion } from '../../../../common/registry/bootstrap.ts';
import { silentLogger } from '../../../../common/logging/logger.ts';
import { DEFAULT_SCENARIO_FILE, runBootstrapTraining } from '../../../../common/model/bootstrap.ts';
import { createSigner, createTrust, generateSigningKey } from '../../../../common/model/signature.ts';
import { DirectoryRegistry } from '../../../../common/registry/directory.ts';

/**
 * Promise (`npm start` on embedded defaults): the bootstrap champion is signed with the local key, so the
 * edge accepts it; a champion left unsigned by an older version in the local directory registry is replaced
 * by the signed bootstrap instead of leaving the edge waiting forever.
 */
const MODEL = 'driftline-efficiency';
let dir: string;
let artifact: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'driftline-bootstrap-sign-'));
  artifact = path.join(dir, 'bootstrap');
  await runBootstrapTraining({
    out: artifact,
    scenarioFile: DEFAULT_SCENARIO_FILE,
    samples: 1_000,
    epochs: 2,
    seed: 1,
    holdout: 200,
    force: true,
  });
}, 120_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('bootstrap champion signing', () => {
  it('registers a signed bootstrap; replaces an unsigned local champion once', async () => {
    const signer = createSigner(generateSigningKey());
    const trust = createTrust([signer.publicKey]);
    const registry = new DirectoryRegistry({ root: path.join(dir, 'registry') });
    // State from before signing: the artifact registered and promoted unsigned.
    const old = await registry.registerVersion(MODEL, artifact, { correlationId: 'old', metrics: {} });
    await registry.setChampion(MODEL, old.version, { by: 'test', reason: 'old state' });
    await expect(trust.verifyArtifact(await registry.fetchArtifact(MODEL, old.version))).rejects.toThrow(
      /not signed/,
    );

    const champion = await ensureChampion(registry, MODEL, artifact, silentLogger(), signer);
    expect(champion.version).not.toBe(old.version);
    await expect(trust.verifyArtifact(await registry.fetchArtifact(MODEL, champion.version))).resolves.toBe(
      undefined,
    );
    expect((await registry.history(MODEL)).at(-1)?.reason).toMatch(/not signed by key/);

    // Signed now: a second start keeps it.
    const again = await ensureChampion(registry, MODEL, artifact, silentLogger(), signer);
    expect(again.version).toBe(champion.version);
    expect(await registry.listVersions(MODEL)).toHaveLength(2);
    await registry.close();
  });

  it('leaves an unsigned champion of a shared registry alone unless told to replace it (the cluster Job)', async () => {
    const signer = createSigner(generateSigningKey());
    const trust = createTrust([signer.publicKey]);
    const local = new DirectoryRegistry({ root: path.join(dir, 'shared') });
    // A registry that is not the local directory one (MLflow in the cluster), same behaviour otherwise.
    const shared = new Proxy(local, {
      get: (target, prop, receiver) =>
        prop === 'kind' ? 'mlflow' : (Reflect.get(target, prop, receiver) as unknown),
    });
    const old = await local.registerVersion(MODEL, artifact, { correlationId: 'old', metrics: {} });
    await local.setChampion(MODEL, old.version, { by: 'test', reason: 'deployed before signing' });

    const kept = await ensureChampion(shared, MODEL, artifact, silentLogger(), signer);
    expect(kept.version).toBe(old.version);
    expect(await local.listVersions(MODEL)).toHaveLength(1);

    const replaced = await ensureChampion(shared, MODEL, artifact, silentLogger(), signer, {
      replaceUnsigned: true,
    });
    expect(replaced.version).not.toBe(old.version);
    expect((await local.getChampion(MODEL))?.version).toBe(replaced.version);
    await expect(trust.verifyArtifact(await local.fetchArtifact(MODEL, replaced.version))).resolves.toBe(
      undefined,
    );
    await local.close();
  });
});
