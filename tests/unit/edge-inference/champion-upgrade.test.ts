import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { InProcessBus } from '../../../common/bus/in-process.ts';
import { silentLogger } from '../../../common/logging/logger.ts';
import { createSigner, createTrust, generateSigningKey } from '../../../common/model/signature.ts';
import type { LoadedModel } from '../../../common/model/types.ts';
import { DirectoryRegistry } from '../../../common/registry/directory.ts';
import { signLegacyChampions } from '../../../common/registry/sign-version.ts';
import { FakeIngest, fakeModel } from '../../../edge-inference/src/testing/fakes.ts';
import { createEdgeWorker } from '../../../edge-inference/src/worker.ts';
import { makeFakeArtifact } from '../../helpers/dashboard/stack.ts';

/**
 * Promise (upgrade to registry-version signatures): an edge worker that starts on a champion promoted before
 * versions were signed refuses it once (`version_unsigned`, not ready) and loads it as soon as the
 * bootstrap (the cluster's bootstrap-champion Job, `npm start`) has signed that same version in place — it
 * does not wait for another version for ever.
 */
const MODEL = 'driftline-efficiency';
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('edge worker: a champion signed for its version in place', () => {
  it('refuses it unsigned, then loads it once signed, without retrying meanwhile', async () => {
    const key = createSigner(generateSigningKey());
    const tmp = await mkdtemp(path.join(os.tmpdir(), 'driftline-edge-upgrade-'));
    const registry = new DirectoryRegistry({ root: path.join(tmp, 'registry') });
    cleanups.push(
      () => rm(tmp, { recursive: true, force: true }),
      () => registry.close(),
    );
    const dir = await makeFakeArtifact(path.join(tmp, 'a1'), 1);
    await key.signArtifact(dir); // signed the old way: metadata only
    await registry.registerVersion(MODEL, dir, { correlationId: 'c1', metrics: {} });
    await registry.setChampion(MODEL, '1', { by: 'retrainer', reason: 'before version signatures' });
    const worker = createEdgeWorker({
      bus: new InProcessBus(),
      ingest: new FakeIngest(),
      http: false,
      championPollMs: 20,
      statusIntervalMs: 0,
      modelName: MODEL,
      modelRegistry: registry,
      loader: async (d: string): Promise<LoadedModel> => fakeModel(path.basename(path.dirname(d))),
      modelTrust: createTrust([key.publicKey]),
    });
    cleanups.push(() => worker.stop());
    const starting = worker.start();
    await new Promise((r) => setTimeout(r, 300));
    expect(worker.ready()).toBe(false);
    const refused = async (): Promise<string | undefined> =>
      /loads_refused_total\{reason="version_unsigned"\} (\d+)/.exec(
        await worker.metrics.registry.metrics(),
      )?.[1];
    expect(await refused()).toBe('1'); // once, not on every poll

    expect(await signLegacyChampions(registry, key, MODEL, silentLogger())).toEqual({
      signed: ['1'],
      refused: [],
    });
    await starting;
    expect(worker.holder.version).toBe('1');
    expect(await refused()).toBe('1');
  });
});
