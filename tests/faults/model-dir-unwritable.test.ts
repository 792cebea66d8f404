import { execFile } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InProcessBus } from '../../common/bus/in-process.ts';
import { silentLogger } from '../../common/logging/logger.ts';
import { loadArtifact } from '../../common/model/artifact.ts';
import { createSigner, createTrust, generateSigningKey } from '../../common/model/signature.ts';
import { loadTf, type Tf } from '../../common/model/tf.ts';
import { ensureChampion } from '../../common/registry/bootstrap.ts';
import { DirectoryRegistry } from '../../common/registry/directory.ts';
import { FakeIngest, makeTelemetry } from '../../edge-inference/src/testing/fakes.ts';
import { createEdgeWorker, type EdgeWorker } from '../../edge-inference/src/worker.ts';
import { trainSmallChampion } from './helpers/champion.ts';
import { waitFor } from './helpers/services.ts';

/**
 * Fault: the model directory (the embedded directory registry, common/registry/directory.ts) cannot be
 * written while the retrainer registers and promotes a challenger:
 * - "unwritable": the retrainer runs as an unprivileged user (`setpriv`, uid 65534) and the registry belongs
 *   to root (readable by all, writable by root): every write fails with EACCES. (The tests run as root, whom chmod does not stop.)
 * - "full": the retrainer's first registration runs with its RLIMIT_FSIZE lowered (`prlimit --pid`) to
 *   1 KiB: writes past it fail with EFBIG, as on a full disk; the limit is lifted afterwards (space freed).
 *
 * Promise: the registration and the alias move report a typed `RegistryError` — `REGISTRY_STORAGE_DENIED`
 * (not retriable: the request fails with that reason) or `REGISTRY_STORAGE_FULL` (retriable: the request is
 * retried, and promoted or rejected once the space is back) — the retrainer process does not crash, nothing
 * half-written is left or becomes the champion, and the edge keeps serving the champion (predictions by v1
 * continue throughout).
 */
const MODEL = 'driftline-fault-dir';
const CHILD = path.resolve('tests/faults/helpers/retrain-child.ts');
const NOBODY = 65_534;

let tmp: string;
let tf: Tf;
let bootstrapDir: string;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'driftline-fault-dir-'));
  await chmod(tmp, 0o755);
  ({ tf } = await loadTf());
  bootstrapDir = path.join(tmp, 'bootstrap');
  await trainSmallChampion(bootstrapDir);
}, 300_000);

afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

interface ChildRun {
  code: number | null;
  result: Record<string, unknown> & {
    record: { status?: string; attempts?: number; reason?: string; version?: string };
  };
  stderr: string;
}

function runChild(wrap: string[], env: Record<string, string>): Promise<ChildRun> {
  return new Promise((resolve) => {
    const [cmd, ...args] = [...wrap, process.execPath, '--import', 'tsx', CHILD];
    execFile(
      cmd as string,
      args,
      { env: { ...process.env, ...env }, timeout: 300_000 },
      (err, stdout, stderr) => {
        const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
        resolve({
          code: err ? ((err as { code?: number }).code ?? 1) : 0,
          result: line ? JSON.parse(line.slice(7)) : { record: {} },
          stderr: stderr.slice(-2000),
        });
      },
    );
  });
}

async function scenario(kind: 'unwritable' | 'full'): Promise<void> {
  const dir = path.join(tmp, kind);
  const root = path.join(dir, 'registry');
  const state = path.join(dir, 'state');
  await mkdir(state, { recursive: true });
  await chmod(dir, 0o755);
  const key = generateSigningKey();
  const signer = createSigner(key);
  const registry = new DirectoryRegistry({ root });
  const v1 = await ensureChampion(registry, MODEL, bootstrapDir, silentLogger(), signer);
  expect(v1.version).toBe('1');
  if (kind === 'unwritable') {
    // Readable by everyone (versions are assembled in 0700 temp directories), writable by root only.
    await promisify(execFile)('chmod', ['-R', 'a+rX', root]);
    await chown(state, NOBODY, NOBODY);
  }

  const ingest = new FakeIngest();
  const edge: EdgeWorker = createEdgeWorker({
    bus: new InProcessBus(),
    ingest,
    logger: silentLogger(),
    modelRegistry: new DirectoryRegistry({ root, watchIntervalMs: 100 }),
    modelName: MODEL,
    loader: (d) => loadArtifact(d, tf),
    modelTrust: createTrust([signer.publicKey]),
    championPollMs: 100,
    http: false,
    statusIntervalMs: 0,
    drift: false,
    accuracy: false,
    batchMaxWaitMs: 1,
  });
  try {
    await edge.start();
    // Telemetry all along: the edge predicts while the retrainer meets the fault.
    let seq = 0;
    let feeding = true;
    const feeder = (async () => {
      while (feeding) {
        await ingest.telemetry(makeTelemetry('m-000', seq++));
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const wrap =
      kind === 'unwritable' ? ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups'] : [];
    const run = await runChild(wrap, {
      FAULT_REGISTRY: root,
      FAULT_STATE: state,
      FAULT_MODEL: MODEL,
      FAULT_SIGNING_KEY: key,
      ...(kind === 'full' ? { FAULT_FSIZE: '1024' } : {}),
    });
    const servedDuringRun = new Set(ingest.predictions.map((p) => p.modelVersion));
    const predictionsDuringRun = ingest.predictions.length;
    const after = await registry.listVersions(MODEL);
    const champion = await registry.getChampion(MODEL);
    if (champion && champion.version !== edge.holder.version)
      await waitFor(() => edge.holder.version === champion.version, 30_000, 'the edge to follow');
    const n = ingest.predictions.length;
    await waitFor(() => ingest.predictions.length >= n + 20, 30_000, 'predictions after the run');
    feeding = false;
    await feeder;
    console.log(
      JSON.stringify({
        fault: `model-dir-${kind}`,
        exitCode: run.code,
        ...run.result,
        predictionsDuringRun,
        servedDuringRun: [...servedDuringRun],
        versions: after.map((v) => `${v.version}:${v.status}`),
        champion: champion?.version,
      }),
    );
    expect(run.code, run.stderr).toBe(0);
    expect(predictionsDuringRun).toBeGreaterThan(50);
    if (kind === 'unwritable') {
      expect(run.result.uid).toBe(NOBODY);
      for (const probe of [run.result.registerProbe, run.result.promoteProbe])
        expect(probe).toMatchObject({
          name: 'RegistryError',
          code: 'REGISTRY_STORAGE_DENIED',
          retriable: false,
        });
      expect(run.result.record).toMatchObject({ status: 'failed', attempts: 1 });
      expect(run.result.record.reason).toMatch(/RegistryError: .*not writable \(EACCES/);
      expect(run.result.events).toEqual([expect.stringMatching(/^model-rejected: .*not writable/)]);
      expect(servedDuringRun).toEqual(new Set(['1']));
      expect(after.map((v) => `${v.version}:${v.status}`)).toEqual(['1:champion']);
    } else {
      for (const probe of [run.result.registerProbe])
        expect(probe).toMatchObject({
          name: 'RegistryError',
          code: 'REGISTRY_STORAGE_FULL',
          retriable: true,
        });
      expect(run.result.registrations).toBe(2); // the failed one, then the retry once the space is back
      expect(run.result.record.attempts).toBe(2);
      expect(['promoted', 'rejected']).toContain(run.result.record.status);
      // Nothing of the failed registration: the retry's version is 2 and verifies; the probe left nothing.
      expect(after.map((v) => v.version)).toEqual(['1', '2']);
      await createTrust([signer.publicKey]).verifyArtifact(await registry.fetchArtifact(MODEL, '2'));
      expect(champion?.version).toBe(run.result.record.status === 'promoted' ? '2' : '1');
      // v1 served throughout the fault; v2, once promoted, may or may not have reached the edge by the time
      // the retrainer's process exited (its poll), but it serves the champion now.
      expect(servedDuringRun.has('1')).toBe(true);
      expect([...servedDuringRun].filter((v) => v !== '1' && v !== '2')).toEqual([]);
      expect(edge.holder.version).toBe(champion?.version);
    }
    expect(run.result.tmpLeftovers).toBe(0);
  } finally {
    await edge.stop();
    await registry.close();
  }
}

describe('fault: model directory unwritable or full', () => {
  it('unwritable (EACCES): a typed error, the request fails clearly, the champion keeps serving', async () => {
    await scenario('unwritable');
  }, 400_000);

  it('full (EFBIG): a typed retriable error, retried once space is back, the champion serves meanwhile', async () => {
    await scenario('full');
  }, 400_000);
});
