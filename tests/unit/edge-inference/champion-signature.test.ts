import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { InProcessBus } from '../../../common/bus/in-process.ts';
import { BUS_TOPICS } from '../../../common/bus/types.ts';
import { createSigner, createTrust, generateSigningKey } from '../../../common/model/signature.ts';
import type { LoadedModel } from '../../../common/model/types.ts';
import { metadataChecksum } from '../../../common/model/version-signature.ts';
import type { ChampionRef, RegistryPort } from '../../../edge-inference/src/ports.ts';
import { FakeIngest, fakeModel, makeTelemetry } from '../../../edge-inference/src/testing/fakes.ts';
import { createEdgeWorker, type EdgeWorker } from '../../../edge-inference/src/worker.ts';

/**
 * Promise: the edge serves only models whose metadata the retrainer's key signed. A version that is
 * unsigned, or signed by another key, is refused (counted by reason, logged) even when the registry's
 * champion alias points at it, and the champion that serves keeps serving.
 */

const workers: EdgeWorker[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

const retrainerKey = createSigner(generateSigningKey());
const attackerKey = createSigner(generateSigningKey());

/** A registry of artifact directories holding a metadata.json signed (or not) as asked. */
async function registry(
  versions: Record<string, 'signed' | 'unsigned' | 'forged'>,
): Promise<RegistryPort & { champion: string | undefined; fetched: string[] }> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'driftline-edge-sig-'));
  const signatures = new Map<string, string>();
  dirs.push(root);
  for (const [version, how] of Object.entries(versions)) {
    const dir = path.join(root, version);
    await mkdir(dir);
    await writeFile(
      path.join(dir, 'metadata.json'),
      JSON.stringify({ format: 'driftline-model/1', version }),
    );
    const key = how === 'signed' ? retrainerKey : how === 'forged' ? attackerKey : undefined;
    if (key) {
      await key.signArtifact(dir);
      const claim = { name: 'driftline-efficiency', version, checksum: await metadataChecksum(dir) };
      signatures.set(version, key.signVersion(claim));
    }
  }
  const reg = {
    champion: '1' as string | undefined,
    fetched: [] as string[],
    async getChampion(name: string): Promise<ChampionRef | undefined> {
      return reg.champion === undefined ? undefined : { name, version: reg.champion };
    },
    async fetchArtifact(_name: string, version: string): Promise<string> {
      reg.fetched.push(version);
      return path.join(root, version);
    },
    async getVersion(_name: string, version: string): Promise<{ versionSignature?: string }> {
      const versionSignature = signatures.get(version);
      return versionSignature === undefined ? {} : { versionSignature };
    },
  };
  return reg;
}

const loader = async (dir: string): Promise<LoadedModel> => fakeModel(path.basename(dir));

function promoted(version: string): Record<string, unknown> {
  return {
    type: 'model-promoted',
    modelName: 'driftline-efficiency',
    version,
    previousVersion: '1',
    metrics: { samples: 10, accuracy: 0.99, macroF1: 0.99 },
    correlationId: `promote-${version}`,
    requestId: null,
    reason: 'test',
    at: Date.now(),
  };
}

describe('edge worker: model signatures', () => {
  it('refuses unsigned and wrongly signed champions, counts them, keeps serving the signed one', async () => {
    const bus = new InProcessBus();
    const ingest = new FakeIngest();
    const reg = await registry({ '1': 'signed', '2': 'unsigned', '3': 'forged', '4': 'signed' });
    const worker = createEdgeWorker({
      bus,
      ingest,
      http: false,
      championPollMs: 0,
      batchMaxWaitMs: 1,
      modelRegistry: reg,
      loader,
      modelTrust: createTrust([retrainerKey.publicKey]),
    });
    workers.push(worker);
    await worker.start();
    expect(worker.holder.version).toBe('1');

    // Someone who reaches the registry moves the alias to an unsigned, then a forged version.
    for (const v of ['2', '3']) {
      reg.champion = v;
      await bus.publish(BUS_TOPICS.modelEvents, 'driftline-efficiency', promoted(v));
      await bus.idle();
      expect(worker.holder.version).toBe('1');
    }
    await ingest.telemetry(makeTelemetry('m1', 1));
    await new Promise((r) => setTimeout(r, 20));
    expect(ingest.predictions.map((p) => p.modelVersion)).toEqual(['1']);
    const metrics = await worker.metrics.registry.metrics();
    expect(metrics).toContain('driftline_edge_model_loads_refused_total{reason="unsigned"} 1');
    expect(metrics).toContain('driftline_edge_model_loads_refused_total{reason="signature_invalid"} 1');

    // A version the retrainer signed is followed as before.
    reg.champion = '4';
    await bus.publish(BUS_TOPICS.modelEvents, 'driftline-efficiency', promoted('4'));
    await bus.idle();
    expect(worker.holder.version).toBe('4');
  });

  it('does not become ready on an unsigned champion', async () => {
    const bus = new InProcessBus();
    const ingest = new FakeIngest();
    const reg = await registry({ '1': 'unsigned', '2': 'signed' });
    const worker = createEdgeWorker({
      bus,
      ingest,
      http: false,
      championPollMs: 20,
      modelRegistry: reg,
      loader,
      modelTrust: createTrust([retrainerKey.publicKey]),
    });
    workers.push(worker);
    const starting = worker.start();
    await new Promise((r) => setTimeout(r, 150));
    expect(worker.ready()).toBe(false);
    expect(worker.holder.version).toBeUndefined();
    reg.champion = '2';
    await starting;
    expect(worker.holder.version).toBe('2');
  });
});
