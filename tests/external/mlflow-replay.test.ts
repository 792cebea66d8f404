/**
 * Replay of an older signed artifact against the real MLflow server (scripts/services/mlflow.sh,
 * MLFLOW_TRACKING_URI or MLFLOW_PORT). Someone with MLflow access (no Driftline code: the REST API) registers
 * v1's files again as a new version, copying every tag of v1 — its checksum, its file table and its
 * registry-version signature — and moves the `champion` alias to it. The edge (MlflowRegistry, the
 * retrainer's public key) refuses it: `version_mismatch`, counted, the champion (v2) keeps serving. The
 * alias moved back to the ORIGINAL v1 (a rollback) is followed.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InProcessBus } from '../../common/bus/in-process.ts';
import { createSigner, createTrust, generateSigningKey } from '../../common/model/signature.ts';
import { MlflowRegistry } from '../../common/registry/mlflow.ts';
import { signRegisteredVersion } from '../../common/registry/sign-version.ts';
import { FakeIngest, fakeModel } from '../../edge-inference/src/testing/fakes.ts';
import { createEdgeWorker, type EdgeWorker } from '../../edge-inference/src/worker.ts';
import { contractArtifact } from '../contracts/model-registry.ts';

const TRACKING_URI = (
  process.env.MLFLOW_TRACKING_URI || `http://127.0.0.1:${process.env.MLFLOW_PORT || '5055'}`
).replace(/\/+$/, '');
const MODEL = `driftline-replay-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
let tmp: string;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'driftline-mlflow-replay-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** The MLflow REST API, as anyone who reaches the server can use it. */
async function rest(pathAndQuery: string, body?: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${TRACKING_URI}/api/2.0/mlflow/${pathAndQuery}`, {
    method: body === undefined ? 'GET' : 'POST',
    ...(body === undefined
      ? {}
      : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    signal: AbortSignal.timeout(10_000),
  });
  if (!res.ok) throw new Error(`${pathAndQuery} → ${res.status}: ${await res.text()}`);
  return (await res.json()) as Record<string, unknown>;
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('MLflow: an older signed artifact registered again as a new version', () => {
  it('is refused by the edge (version_mismatch); a rollback to the original version is followed', async () => {
    const key = createSigner(generateSigningKey());
    const registry = new MlflowRegistry({
      clientOptions: { trackingUri: TRACKING_URI },
      cacheDir: path.join(tmp, 'cache'),
    });
    // The retrainer's way: signed files, registered, signed for the version, promoted.
    for (const seed of [1, 2]) {
      const dir = await contractArtifact(path.join(tmp, `a${seed}`), seed);
      await key.signArtifact(dir);
      const v = await registry.registerVersion(MODEL, dir, { correlationId: `c${seed}`, metrics: {} });
      await signRegisteredVersion(registry, key, v, dir);
      await registry.setChampion(MODEL, v.version, { by: 'retrainer', reason: 'test' });
    }
    const edgeRegistry = new MlflowRegistry({
      clientOptions: { trackingUri: TRACKING_URI },
      cacheDir: path.join(tmp, 'edge-cache'),
    });
    const ingest = new FakeIngest();
    const edge: EdgeWorker = createEdgeWorker({
      bus: new InProcessBus(),
      ingest,
      modelName: MODEL,
      modelRegistry: edgeRegistry,
      // The MLflow cache keeps each version in <cache>/<name>/<version>.
      loader: async (dir) => fakeModel(path.basename(dir)),
      modelTrust: createTrust([key.publicKey]),
      championPollMs: 100,
      http: false,
      statusIntervalMs: 0,
      drift: false,
      accuracy: false,
    });
    try {
      await edge.start();
      expect(edge.holder.version).toBe('2');

      // The replay, through the REST API: v1's source and every tag of v1, then the alias.
      const v1 = (await rest(`model-versions/get?name=${MODEL}&version=1`)).model_version as {
        source: string;
        run_id: string;
        tags: { key: string; value: string }[];
      };
      const created = (await rest('model-versions/create', {
        name: MODEL,
        source: v1.source,
        run_id: v1.run_id,
        tags: v1.tags,
      })) as { model_version: { version: string } };
      const replay = created.model_version.version;
      expect(replay).toBe('3');
      await rest('registered-models/alias', { name: MODEL, alias: 'champion', version: replay });
      const refused = async (): Promise<number> =>
        Number(
          /driftline_edge_model_loads_refused_total\{reason="version_mismatch"\} (\d+)/.exec(
            await edge.metrics.registry.metrics(),
          )?.[1] ?? 0,
        );
      let count = 0;
      const end = Date.now() + 20_000;
      while ((count = await refused()) === 0 && Date.now() < end)
        await new Promise((r) => setTimeout(r, 100));
      expect(count).toBe(1);
      expect(edge.holder.version).toBe('2');
      expect((await edgeRegistry.getVersion(MODEL, replay))?.versionSignature).toBe(
        (await registry.getVersion(MODEL, '1'))?.versionSignature,
      );

      // A rollback: the alias back to the original v1.
      await rest('registered-models/alias', { name: MODEL, alias: 'champion', version: '1' });
      await until(() => edge.holder.version === '1', 20_000, 'the edge to follow the rollback to v1');
    } finally {
      await edge.stop();
      await edgeRegistry.close();
      await registry.close();
    }
  }, 120_000);
});
