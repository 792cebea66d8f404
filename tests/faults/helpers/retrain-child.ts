import { execFileSync } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { InProcessBus } from '../../../common/bus/in-process.ts';
import { BUS_TOPICS } from '../../../common/bus/types.ts';
import { DriftlineError, describeError } from '../../../common/errors.ts';
import { parseModelEvent } from '../../../common/events/schemas.ts';
import { silentLogger } from '../../../common/logging/logger.ts';
import { createSigner } from '../../../common/model/signature.ts';
import { loadTf } from '../../../common/model/tf.ts';
import { DirectoryRegistry } from '../../../common/registry/directory.ts';
import { MemorySampleStore } from '../../../common/samples/memory-store.ts';
import { createRetrainer } from '../../../retrainer/src/service.ts';
import { makeRequest, makeSamples, seedLabel } from '../../../retrainer/src/testing/fakes.ts';
import { createInThreadTrainer } from '../../../retrainer/src/trainer.ts';

/**
 * The retrainer of tests/faults/model-dir-unwritable.test.ts, as its own process (so the test can start it
 * as another user, or lower its file-size limit, and see whether it crashes). Environment: FAULT_REGISTRY,
 * FAULT_STATE, FAULT_MODEL, FAULT_SIGNING_KEY; FAULT_FSIZE (bytes): the first registration of the retrainer
 * (and the probe) runs with the process's RLIMIT_FSIZE lowered to it (`prlimit --pid`: writes past it fail
 * with EFBIG, as on a full disk), restored afterwards (the space freed). Prints one line `RESULT <json>`.
 */
const env = (name: string): string => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const root = env('FAULT_REGISTRY');
const model = env('FAULT_MODEL');
const fsize = process.env.FAULT_FSIZE;

/** Runs `fn` with this process's file-size limit lowered to FAULT_FSIZE (when set). */
async function limited<T>(fn: () => Promise<T>): Promise<T> {
  if (!fsize) return fn();
  const pid = String(process.pid);
  // The soft limit only: lifting it again needs no privilege (the tests run without CAP_SYS_RESOURCE).
  execFileSync('prlimit', ['--pid', pid, `--fsize=${fsize}:`]);
  try {
    return await fn();
  } finally {
    execFileSync('prlimit', ['--pid', pid, '--fsize=unlimited:']);
  }
}

function errorOf(err: unknown): Record<string, unknown> {
  return err instanceof DriftlineError
    ? { name: err.name, code: err.code, retriable: err.retriable, message: err.message }
    : { name: 'untyped', message: describeError(err) };
}

const { tf } = await loadTf();
const registry = new DirectoryRegistry({ root });
const logger = silentLogger();

// Probes: what a registration and an alias move report.
const source = await registry.fetchArtifact(model, '1');
const probe = async (fn: () => Promise<unknown>): Promise<Record<string, unknown>> =>
  limited(fn).then(
    () => ({ name: 'none' }),
    (err: unknown) => errorOf(err),
  );
const registerProbe = await probe(() =>
  registry.registerVersion(model, source, { correlationId: 'probe', metrics: { accuracy: 0 } }),
);
const promoteProbe = await probe(() => registry.setChampion(model, '1', { by: 'probe', reason: 'probe' }));

// The retrainer: its first registration meets the fault.
let registrations = 0;
const register = registry.registerVersion.bind(registry);
registry.registerVersion = (...args) =>
  registrations++ === 0 ? limited(() => register(...args)) : register(...args);
const store = new MemorySampleStore();
await store.append(makeSamples(1500, { label: (r) => seedLabel(r, 150) }));
const bus = new InProcessBus({ redeliveryDelayMs: 1 });
const retrainer = createRetrainer({
  bus,
  registry,
  store,
  tf,
  trainer: createInThreadTrainer({ tf }),
  signer: createSigner(env('FAULT_SIGNING_KEY')),
  logger,
  consumeSamples: false,
  config: {
    modelName: model,
    stateDir: env('FAULT_STATE'),
    minSamples: 300,
    epochs: 15,
    inThread: true,
    timeoutMs: 120_000,
    dataRetryMs: 200,
    dataMaxAttempts: 3,
    minAccuracy: 0.5, // promote when it beats the champion: the edge then follows the version registered after the fault
  },
});
await retrainer.start();
const request = makeRequest({
  modelName: model,
  championVersion: '1',
  window: { fromTs: 1_700_000_000_000, toTs: 1_700_000_000_000 + 1500 * 1000 },
});
await retrainer.submit(request);
await retrainer.idle();
const record = retrainer.record(request.requestId);
await bus.idle();
const events = bus.retained(BUS_TOPICS.modelEvents).map((m) => {
  const e = parseModelEvent(m.value);
  return e.ok ? `${e.value.type}${'reason' in e.value ? `: ${String(e.value.reason)}` : ''}` : e.reason;
});
await retrainer.close();
const leftovers = await readdir(path.join(root, model, '.tmp')).catch(() => []);
console.log(
  `RESULT ${JSON.stringify({
    uid: process.getuid?.(),
    registerProbe,
    promoteProbe,
    registrations,
    record: {
      status: record?.status,
      attempts: record?.attempts,
      reason: record?.reason,
      version: record?.version,
    },
    events,
    tmpLeftovers: leftovers.length,
  })}`,
);
await registry.close();
