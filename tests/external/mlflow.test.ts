/**
 * The MLflow REST client and MlflowRegistry against a REAL MLflow tracking
 * server (artifact proxy on): experiments, runs with params / per-epoch
 * metrics / tags, artifact upload and download through the proxy, registered
 * model versions, the `champion` alias, rejection, rollback and checksum
 * verification of fetched artifacts.
 *
 * Needs the server: `scripts/services/mlflow.sh start` (listens on
 * MLFLOW_TRACKING_URI, default http://127.0.0.1:5055). Fails, never skips,
 * when it is not reachable. Every run uses a fresh registered-model name, so
 * reruns against the same server do not collide.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArtifactError } from '../../common/errors.ts';
import { MlflowClient, proxyPathFromUri } from '../../common/mlflow/client.ts';
import { MlflowAlreadyExistsError, MlflowNotFoundError } from '../../common/mlflow/errors.ts';
import { MlflowRegistry } from '../../common/registry/mlflow.ts';
import { createRegistry } from '../../common/registry/factory.ts';
import type { ModelVersion } from '../../common/registry/types.ts';

const TRACKING_URI =
  process.env.MLFLOW_TRACKING_URI || `http://127.0.0.1:${process.env.MLFLOW_PORT || '5055'}`;
const MODEL = `driftline-test-${Date.now()}-${randomBytes(3).toString('hex')}`;

function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A small fake artifact: metadata.json listing sha256+bytes of model.json, weights.bin, reference.json. */
async function makeArtifact(dir: string, seed: number): Promise<string> {
  await mkdir(dir, { recursive: true });
  const files: Record<string, Uint8Array> = {
    'model.json': Buffer.from(
      JSON.stringify({ modelTopology: { seed }, weightsManifest: [{ paths: ['weights.bin'] }] }),
    ),
    'weights.bin': Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 31 + seed * 17) % 256)),
    'reference.json': Buffer.from(
      JSON.stringify({ size: 2, features: { temperature: [1, 2] }, classShares: { high: 1 }, seed }),
    ),
  };
  const table: Record<string, { sha256: string; bytes: number }> = {};
  for (const [name, data] of Object.entries(files)) {
    await writeFile(path.join(dir, name), data);
    table[name] = { sha256: sha256(data), bytes: data.byteLength };
  }
  await writeFile(
    path.join(dir, 'metadata.json'),
    JSON.stringify(
      {
        format: 'driftline-model/1',
        name: MODEL,
        version: 'candidate',
        createdAt: new Date().toISOString(),
        files: table,
      },
      null,
      2,
    ),
  );
  return dir;
}

async function sameFiles(a: string, b: string): Promise<void> {
  const names = (await readdir(a)).sort();
  expect((await readdir(b)).sort()).toEqual(names);
  for (const name of names)
    expect(sha256(await readFile(path.join(b, name))), name).toBe(sha256(await readFile(path.join(a, name))));
}

describe(`MLflow at ${TRACKING_URI}`, () => {
  let tmp: string;
  let client: MlflowClient;
  let registry: MlflowRegistry;
  let mlflowVersion = '?';
  let unreachable: Error | undefined;

  /** Every test calls this first, so an absent server fails each test by name (never a skip). */
  function requireServer(): void {
    if (unreachable) throw unreachable;
  }

  beforeAll(async () => {
    try {
      const health = await fetch(`${TRACKING_URI}/health`, { signal: AbortSignal.timeout(5000) });
      if (!health.ok) throw new Error(`/health answered ${health.status}`);
      const version = await fetch(`${TRACKING_URI}/version`, { signal: AbortSignal.timeout(5000) });
      if (version.ok) mlflowVersion = (await version.text()).trim();
    } catch (err) {
      unreachable = new Error(
        `MLflow is not reachable at ${TRACKING_URI} (${String(err)}). Start it with: scripts/services/mlflow.sh start`,
      );
    }
    tmp = await mkdtemp(path.join(os.tmpdir(), 'driftline-mlflow-'));
    client = new MlflowClient({ trackingUri: TRACKING_URI });
    registry = new MlflowRegistry({
      client,
      cacheDir: path.join(tmp, 'cache', 'mlflow'),
      watchIntervalMs: 100,
    });
  });

  afterAll(async () => {
    await registry?.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('creates the driftline experiment idempotently', async () => {
    requireServer();
    const id = await client.getOrCreateExperiment('driftline');
    expect(await client.getOrCreateExperiment('driftline')).toBe(id);
    await expect(client.createExperiment('driftline')).rejects.toBeInstanceOf(MlflowAlreadyExistsError);
    const experiment = await client.getExperimentByName('driftline');
    expect(experiment?.experiment_id).toBe(id);
    expect(experiment?.artifact_location).toMatch(/^mlflow-artifacts:/);
    expect(await client.getExperimentByName(`missing-${MODEL}`)).toBeUndefined();
    console.log(`MLflow server version ${mlflowVersion}`);
  });

  it('logs a run with params, per-epoch metrics and tags, and uploads/downloads a model directory through the artifact proxy', async () => {
    requireServer();
    const art = await makeArtifact(path.join(tmp, 'run-art'), 1);
    const run = await registry.startRun({
      runName: 'external-test',
      params: { epochs: 3, learningRate: 0.01, seed: 42 },
      tags: { 'driftline.correlation_id': 'ext-1', scenario: 'test' },
    });
    expect(run.artifactUri).toMatch(/^mlflow-artifacts:\//);
    await registry.logEpochMetrics(run.runId, [
      { loss: 1.2, accuracy: 0.5 },
      { loss: 0.8, accuracy: 0.7 },
      { loss: 0.5, accuracy: 0.82 },
    ]);
    await registry.logMetrics(run.runId, { val_accuracy: 0.81, val_macroF1: 0.79, bad: Number.NaN });
    await client.setTag(run.runId, 'stage', 'trained');

    const uploaded = await registry.uploadArtifactDir(run.runId, 'model', art);
    expect(uploaded).toEqual(['metadata.json', 'model.json', 'reference.json', 'weights.bin']);
    const listing = await client.listArtifacts(run.runId, 'model');
    expect((listing.files ?? []).map((f) => f.path).sort()).toEqual(uploaded.map((f) => `model/${f}`));
    const back = path.join(tmp, 'run-back');
    await mkdir(back, { recursive: true });
    for (const file of uploaded)
      await writeFile(
        path.join(back, file),
        await client.downloadArtifact(`${proxyPathFromUri(run.artifactUri)}/model/${file}`),
      );
    await sameFiles(art, back);

    await registry.finishRun(run.runId, 'FINISHED');
    const got = await client.getRun(run.runId);
    expect(got.info.status).toBe('FINISHED');
    expect(got.info.end_time).toBeGreaterThan(0);
    const params = Object.fromEntries((got.data?.params ?? []).map((p) => [p.key, p.value]));
    expect(params).toEqual({ epochs: '3', learningRate: '0.01', seed: '42' });
    const tags = Object.fromEntries((got.data?.tags ?? []).map((t) => [t.key, t.value]));
    expect(tags).toMatchObject({ 'driftline.correlation_id': 'ext-1', scenario: 'test', stage: 'trained' });
    const loss = await client.getMetricHistory(run.runId, 'loss');
    expect(loss.map((m) => [m.step, m.value])).toEqual([
      [0, 1.2],
      [1, 0.8],
      [2, 0.5],
    ]);
    expect((got.data?.metrics ?? []).map((m) => m.key).sort()).toEqual([
      'accuracy',
      'loss',
      'val_accuracy',
      'val_macroF1',
    ]);
  });

  it('registers versions, moves the champion alias, rejects, rolls back and verifies fetched artifacts', async () => {
    requireServer();
    // v1: artifacts already uploaded to the retrainer's run.
    const art1 = await makeArtifact(path.join(tmp, 'a1'), 1);
    const run = await registry.startRun({ runName: 'retrain-1' });
    await registry.uploadArtifactDir(run.runId, 'model', art1);
    const v1 = await registry.registerVersion(MODEL, art1, {
      correlationId: 'corr-1',
      runId: run.runId,
      metrics: { accuracy: 0.9 },
      tags: { scenario: 'steady' },
      source: 'external-test',
    });
    await registry.finishRun(run.runId);
    expect(v1).toMatchObject({
      name: MODEL,
      version: '1',
      status: 'candidate',
      runId: run.runId,
      metrics: { accuracy: 0.9 },
    });
    expect(v1.checksum).toBe(sha256(await readFile(path.join(art1, 'metadata.json'))));
    expect(v1.tags).toEqual({
      scenario: 'steady',
      'driftline.correlation_id': 'corr-1',
      'driftline.source': 'external-test',
    });
    const mv1 = await client.getModelVersion(MODEL, '1');
    expect(mv1.source).toBe(`runs:/${run.runId}/model`);

    // v2 and v3: no run given, the registry creates one per registration.
    const v2 = await registry.registerVersion(MODEL, await makeArtifact(path.join(tmp, 'a2'), 2), {
      correlationId: 'corr-2',
      metrics: { accuracy: 0.92 },
    });
    const v3 = await registry.registerVersion(MODEL, await makeArtifact(path.join(tmp, 'a3'), 3), {
      correlationId: 'corr-3',
      metrics: { accuracy: 0.7 },
    });
    expect([v2.version, v3.version]).toEqual(['2', '3']);
    expect(v2.runId).toBeTruthy();

    expect(await registry.getChampion(MODEL)).toBeUndefined();
    await registry.setChampion(MODEL, '1', { by: 'bootstrap', reason: 'first model' });
    expect((await client.getModelVersionByAlias(MODEL, 'champion'))?.version).toBe('1');
    await registry.setChampion(MODEL, '2', {
      by: 'retrainer',
      reason: 'accuracy 0.92 > 0.90',
      correlationId: 'corr-2',
    });
    expect((await registry.getChampion(MODEL))?.version).toBe('2');
    expect((await client.getRegisteredModel(MODEL)).aliases).toEqual([{ alias: 'champion', version: '2' }]);

    await registry.markRejected(MODEL, '3', 'accuracy 0.70 < champion 0.92', 'corr-3');
    expect(await registry.getVersion(MODEL, '3')).toMatchObject({
      status: 'rejected',
      rejectedReason: 'accuracy 0.70 < champion 0.92',
    });
    await expect(registry.setChampion(MODEL, '3', { by: 't', reason: 'x' })).rejects.toMatchObject({
      code: 'REGISTRY_STATE',
    });
    await expect(registry.markRejected(MODEL, '2', 'champion')).rejects.toMatchObject({
      code: 'REGISTRY_STATE',
    });

    // Another process (the CLI) rolls back; a watcher here follows it.
    const seen: Array<ModelVersion | undefined> = [];
    const unwatch = registry.watchChampion(MODEL, (v) => seen.push(v), { intervalMs: 100 });
    await new Promise((r) => setTimeout(r, 300));
    const cli = createRegistry({
      mlflowTrackingUri: TRACKING_URI,
      mlflowCacheDir: path.join(tmp, 'cli-cache'),
      env: {},
    });
    expect(cli.kind).toBe(`mlflow ${TRACKING_URI.replace(/\/+$/, '')}`);
    const back = await cli.rollback(MODEL, {
      by: 'cli:ops',
      reason: 'live accuracy dropped',
      correlationId: 'corr-rb',
    });
    expect(back).toMatchObject({ version: '1', status: 'champion' });
    await cli.close();
    const deadline = Date.now() + 10_000;
    while (seen.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    unwatch();
    expect(seen[0]?.version).toBe('1');

    // Statuses and the audit trail.
    expect((await registry.listVersions(MODEL)).map((v) => [v.version, v.status])).toEqual([
      ['1', 'champion'],
      ['2', 'retired'],
      ['3', 'rejected'],
    ]);
    const history = await registry.history(MODEL);
    expect(history.map((h) => [h.action, h.from ?? null, h.to, h.by])).toEqual([
      ['promote', null, '1', 'bootstrap'],
      ['promote', '1', '2', 'retrainer'],
      ['rollback', '2', '1', 'cli:ops'],
    ]);
    expect(history[2]).toMatchObject({
      reason: 'live accuracy dropped',
      correlationId: 'corr-rb',
      alias: 'champion',
      name: MODEL,
    });
    await expect(registry.rollback(MODEL, { by: 't', reason: 'nothing left' })).rejects.toMatchObject({
      code: 'REGISTRY_NO_PREVIOUS',
    });

    // fetchArtifact: downloaded through the proxy into <cache>/<name>/<version>, verified, identical.
    const dir = await registry.fetchArtifact(MODEL, '1');
    expect(dir).toBe(path.join(tmp, 'cache', 'mlflow', MODEL, '1'));
    await sameFiles(art1, dir);
    // A corrupted cache copy is detected and downloaded again.
    await writeFile(path.join(dir, 'weights.bin'), Buffer.alloc(4096, 0));
    expect(await registry.fetchArtifact(MODEL, '1')).toBe(dir);
    await sameFiles(art1, dir);

    await expect(registry.fetchArtifact(MODEL, '99')).rejects.toMatchObject({ code: 'REGISTRY_NOT_FOUND' });
    await expect(client.getModelVersion(MODEL, '99')).rejects.toBeInstanceOf(MlflowNotFoundError);
  });

  it('refuses an artifact tampered with on the server (checksum mismatch → ArtifactError)', async () => {
    requireServer();
    const name = `${MODEL}-tamper`;
    const art = await makeArtifact(path.join(tmp, 't1'), 9);
    const v = await registry.registerVersion(name, art, { correlationId: 'corr-t', metrics: {} });
    // Overwrite weights.bin in the run's artifacts through the proxy.
    const run = await client.getRun(v.runId as string);
    const proxyRoot = run.info.artifact_uri.replace(/^mlflow-artifacts:\/+/, '');
    const evil = await readFile(path.join(art, 'weights.bin'));
    evil[0] = (evil[0] ?? 0) ^ 0xff;
    await client.uploadArtifact(`${proxyRoot}/model/weights.bin`, evil);

    const err = await registry.fetchArtifact(name, v.version).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ArtifactError);
    expect(String((err as Error).message)).toMatch(/weights\.bin/);
    await expect(registry.setChampion(name, v.version, { by: 't', reason: 'x' })).rejects.toBeInstanceOf(
      ArtifactError,
    );
    expect(await registry.getChampion(name)).toBeUndefined();
    // Nothing half-downloaded is left in the cache.
    const cached = await readdir(path.join(tmp, 'cache', 'mlflow', name)).catch(() => []);
    expect(cached).toEqual([]);
  });
});
