import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { DriftlineError, TimeoutError, describeError } from '../../common/errors.ts';
import { loadWarmStart, saveArtifact, type WarmStart } from '../../common/model/artifact.ts';
import { trainClassifier, type EpochLog, type TrainedClassifier } from '../../common/model/classifier.ts';
import { loadTf, type Tf } from '../../common/model/tf.ts';
import type { EvalMetrics, FeatureRow, LabelledRow } from '../../common/model/types.ts';
import { EFFICIENCY_CLASSES, FEATURES, OPERATION_MODES, SEED_RANGES } from '../../common/schema/features.ts';

/**
 * Trainers: run `trainClassifier` on a dataset and save the result as an
 * artifact directory, within a time limit.
 *
 * - {@link createWorkerTrainer} (the service default) trains in a worker
 *   thread, so the event loop that answers health checks and consumes the bus
 *   stays free; the time limit terminates the worker, whatever it is doing.
 * - {@link createInThreadTrainer} trains on the calling thread (the offline
 *   evaluator, tests, debugging). Its time limit is checked between epochs.
 */

/** Hyper-parameters of one training. */
export interface TrainHyperparameters {
  /** Passes over the training set. */
  epochs: number;
  /** Mini-batch size. */
  batchSize: number;
  /** Initial Adam learning rate. */
  learningRate: number;
  /** Seed of shuffling and initialisers. */
  seed: number;
  /** Loss weighting per class. */
  classWeight: 'none' | 'balanced';
}

/** Everything one training needs; plain data (it is copied to the worker). */
export interface TrainJob {
  /** Training rows. */
  train: LabelledRow[];
  /** Validation rows: the model's reported quality (nothing is selected on them; stage 1: the holdout's). */
  validation: LabelledRow[];
  /** Rows of the drift reference sample when they are not the training rows (`Dataset.reference`). */
  reference?: LabelledRow[];
  /** Hyper-parameters. */
  hyperparameters: TrainHyperparameters;
  /** Where the artifact is written; must not exist yet. */
  outDir: string;
  /** Registered model name written into the artifact metadata. */
  modelName: string;
  /** Provenance stored in the artifact metadata (`training.source`). */
  source: Record<string, unknown>;
  /**
   * A champion artifact to warm-start from (its weights and scaler); absent:
   * train from scratch. Fine-tuning the champion reaches the champion's quality
   * from a much smaller window of recent data (see retrainer/README.md).
   */
  warmStartDir?: string;
}

/** What a finished training reports. */
export interface TrainResult {
  /** The artifact directory (= `job.outDir`). */
  dir: string;
  /** Quality on the validation rows, with the weights kept. */
  validation: EvalMetrics;
  /** Epochs run. */
  epochs: number;
  /** Epoch whose weights were kept. */
  bestEpoch: number;
  /** Training rows. */
  samples: number;
  /** tfjs backend that trained. */
  backend: string;
  /** Wall time of the training call, ms. */
  durationMs: number;
}

/** Per-run options of {@link Trainer.train}. */
export interface TrainRunOptions {
  /** Time limit, ms; beyond it the training is stopped and {@link TrainingTimeoutError} thrown. */
  timeoutMs: number;
  /** Stops the training early (rejects with the signal's reason). */
  signal?: AbortSignal;
  /** Called after every epoch. */
  onEpoch?: (log: EpochLog) => void;
}

/** Runs trainings. */
export interface Trainer {
  /** `worker` or `in-thread`; for logs. */
  readonly kind: string;
  train(job: TrainJob, options: TrainRunOptions): Promise<TrainResult>;
  /**
   * Gets ready for the next training ahead of time (a worker trainer with `prewarm` starts its spare
   * worker); idempotent, optional. The retrainer service calls it when it starts.
   */
  prepare?(): void;
  /** Releases what the trainer holds between trainings (a spare worker); optional. */
  close?(): Promise<void>;
}

/** A training ran past its time limit; the champion stays. */
export class TrainingTimeoutError extends TimeoutError {
  readonly timeoutMs: number;
  constructor(timeoutMs: number) {
    super(`training timed out after ${timeoutMs} ms`);
    this.timeoutMs = timeoutMs;
  }
}

/** A training failed (bad data, tfjs error, worker crash). */
export class TrainingFailedError extends DriftlineError {
  constructor(message: string, cause?: unknown) {
    super(message, { code: 'TRAINING_FAILED', retriable: false, cause });
  }
}

/** Trains `job` on `tf` and saves the artifact; the shared core of both trainers. */
export async function trainAndSave(
  tf: Tf,
  job: TrainJob,
  options: { signal?: AbortSignal; onEpoch?: (log: EpochLog) => void } = {},
): Promise<TrainResult> {
  const started = performance.now();
  const h = job.hyperparameters;
  let trained: TrainedClassifier | undefined;
  let warm: WarmStart | undefined;
  try {
    if (job.warmStartDir !== undefined) warm = await loadWarmStart(job.warmStartDir, tf);
    trained = await trainClassifier(tf, job.train, {
      ...(warm ? { initial: { weights: warm.weights, scaler: warm.scaler } } : {}),
      epochs: h.epochs,
      batchSize: h.batchSize,
      learningRate: h.learningRate,
      seed: h.seed,
      classWeight: h.classWeight,
      validation: job.validation,
      ...(job.reference ? { referenceRows: job.reference } : {}),
      signal: options.signal,
      onEpoch: options.onEpoch ? (_epoch, log) => options.onEpoch?.(log) : undefined,
    });
    await saveArtifact(job.outDir, trained, {
      name: job.modelName,
      version: 'candidate',
      source: job.source,
    });
    return {
      dir: job.outDir,
      validation: trained.validation,
      epochs: trained.epochs,
      bestEpoch: trained.bestEpoch,
      samples: trained.samples,
      backend: trained.backend,
      durationMs: performance.now() - started,
    };
  } finally {
    trained?.model.dispose();
    warm?.dispose();
  }
}

/**
 * A throw-away training on a few synthetic rows (12 short epochs), run by a spare worker before its job
 * arrives: the first training in a fresh thread pays for compiling tfjs's JavaScript and WASM paths (about
 * 0.3 s here); the warm-up pays it ahead of time.
 */
export async function warmUpTraining(tf: Tf): Promise<void> {
  const rows: LabelledRow[] = Array.from({ length: 256 }, (_, i) => {
    const row = { operationMode: OPERATION_MODES[i % OPERATION_MODES.length] } as FeatureRow;
    FEATURES.forEach((f, j) => {
      const [lo, hi] = SEED_RANGES[f];
      row[f] = lo + ((hi - lo) * ((i * (j + 3)) % 17)) / 16;
    });
    return { row, label: EFFICIENCY_CLASSES[i % EFFICIENCY_CLASSES.length] as LabelledRow['label'] };
  });
  const trained = await trainClassifier(tf, rows, {
    epochs: 12,
    batchSize: 128,
    learningRate: 0.01,
    validation: rows.slice(0, 64),
    referenceSize: 16,
  });
  trained.model.dispose();
}

/** Options of {@link createInThreadTrainer}. */
export interface InThreadTrainerOptions {
  /** The tfjs instance; default `loadTf()` on first use. */
  tf?: Tf;
}

/** A trainer on the calling thread. Its time limit is checked between epochs (an epoch is not interrupted). */
export function createInThreadTrainer(options: InThreadTrainerOptions = {}): Trainer {
  return {
    kind: 'in-thread',
    async train(job, run) {
      const tf = options.tf ?? (await loadTf()).tf;
      const controller = new AbortController();
      const timer = setTimeout(
        () => controller.abort(new TrainingTimeoutError(run.timeoutMs)),
        run.timeoutMs,
      );
      const onOuterAbort = (): void => controller.abort(run.signal?.reason);
      run.signal?.addEventListener('abort', onOuterAbort, { once: true });
      try {
        return await trainAndSave(tf, job, { signal: controller.signal, onEpoch: run.onEpoch });
      } catch (err) {
        if (controller.signal.aborted && controller.signal.reason instanceof TrainingTimeoutError)
          throw controller.signal.reason;
        if (err instanceof DriftlineError) throw err;
        throw new TrainingFailedError(`training failed: ${describeError(err)}`, err);
      } finally {
        clearTimeout(timer);
        run.signal?.removeEventListener('abort', onOuterAbort);
      }
    },
  };
}

/** Messages from the training worker. */
export type WorkerMessage =
  | { type: 'ready' }
  | { type: 'epoch'; log: EpochLog }
  | { type: 'done'; result: TrainResult }
  | { type: 'error'; name: string; message: string; code?: string };

/** Messages to the training worker: its one job. */
export type WorkerRequest = { type: 'job'; job: TrainJob };

/** Options of {@link createWorkerTrainer}. */
export interface WorkerTrainerOptions {
  /** Node flags of the worker. Default: this process's `execArgv` (inherited as is). */
  execArgv?: string[];
  /** V8 heap limits of the worker. Default: Node's. */
  resourceLimits?: { maxOldGenerationSizeMb?: number; maxYoungGenerationSizeMb?: number };
  /**
   * Keep one worker started ahead of the next training (a spare: thread up, tsx hooks registered, tfjs
   * loaded, waiting for its job), so a training does not wait ~1 s for the thread and tfjs to start
   * (`RETRAIN_PREWARM_WORKER`). The spare is started by {@link Trainer.prepare} and again
   * `prewarmDelayMs` after each training; every training still runs in a thread of its own, terminated
   * when it ends. {@link Trainer.close} terminates the spare. Default false.
   */
  prewarm?: boolean;
  /**
   * Wait after a training ends before the next spare starts, ms, so its start-up does not compete with
   * the promotion and the edge's model load that follow a training. Default 1,000.
   */
  prewarmDelayMs?: number;
  /** Called when a worker thread starts: `spare` ahead of a training, `job` for a training that found none. */
  onWorkerStart?: (role: 'spare' | 'job') => void;
  /** The training thread's module. Default {@link trainWorkerEntry}: the sources, or the bundle beside a bundle. */
  entry?: URL;
}

/**
 * The worker's entry: a small bootstrap that registers tsx's ESM hooks inside
 * the worker, then imports `train-worker.ts`.
 *
 * Why not just `new Worker(new URL('./train-worker.ts', import.meta.url), { execArgv })`:
 * on Node 20 the loader that `tsx` puts into `process.execArgv`
 * (`--import …/tsx/dist/loader.mjs`) is inherited but does not apply to the
 * worker's entry module (nodejs/node#47747, privatenumber/tsx#354), which then
 * fails with `ERR_UNKNOWN_FILE_EXTENSION ".ts"`; adding `--import tsx` fails the
 * same way. Registering the hooks from inside the worker (tsx's `register()`
 * API) before a dynamic import works under `tsx`, under vitest and under plain
 * node alike.
 */
export function workerBootstrap(entry: URL = trainWorkerEntry()): string {
  if (!entry.pathname.endsWith('.ts')) return builtWorkerBootstrap(entry);
  const tsxDir = path.dirname(createRequire(import.meta.url).resolve('tsx/package.json'));
  const api = pathToFileURL(path.join(tsxDir, 'dist', 'esm', 'api', 'index.mjs')).href;
  return [
    `import(${JSON.stringify(api)})`,
    `  .then((tsx) => { tsx.register(); return import(${JSON.stringify(entry.href)}); })`,
    `  .catch((err) => { require('node:worker_threads').parentPort.postMessage({ type: 'error', name: err && err.name || 'Error', message: 'cannot start the training worker: ' + (err && err.message || String(err)) }); });`,
  ].join('\n');
}

/**
 * The training thread's module: `train-worker.ts` beside this one, or, when this code runs from a
 * bundle (`dist/retrainer.mjs`, `dist/driftline.mjs`: scripts/build.mjs), the bundle built from it,
 * `dist/train-worker.mjs`, which plain node loads without tsx.
 */
export function trainWorkerEntry(self: string = import.meta.url): URL {
  return new URL(self.endsWith('.ts') ? './train-worker.ts' : './train-worker.mjs', self);
}

/** The bootstrap of a built training thread: import the bundle, report a failure as `train-worker.ts` would. */
function builtWorkerBootstrap(entry: URL): string {
  return [
    `import(${JSON.stringify(entry.href)})`,
    `  .catch((err) => { require('node:worker_threads').parentPort.postMessage({ type: 'error', name: err && err.name || 'Error', message: 'cannot start the training worker: ' + (err && err.message || String(err)) }); });`,
  ].join('\n');
}

/**
 * A trainer that runs each training in a worker thread of its own and terminates it at the time limit
 * (and when the training ends). With `prewarm`, the thread of the next training is started ahead of time.
 */
export function createWorkerTrainer(options: WorkerTrainerOptions = {}): Trainer {
  const execArgv = options.execArgv ?? [...process.execArgv];
  const bootstrap = workerBootstrap(options.entry ?? trainWorkerEntry());
  const prewarm = options.prewarm ?? false;
  const prewarmDelayMs = options.prewarmDelayMs ?? 1_000;
  let spare: Worker | undefined;
  let spareTimer: NodeJS.Timeout | undefined;
  let closed = false;

  const spawn = (spareThread = false): Worker => {
    options.onWorkerStart?.(spareThread ? 'spare' : 'job');
    return new Worker(bootstrap, {
      eval: true,
      execArgv,
      // A spare warms tfjs up with a throw-away training while it waits (`warmUpTraining`).
      workerData: { warmUp: spareThread },
      ...(options.resourceLimits ? { resourceLimits: options.resourceLimits } : {}),
    });
  };

  /** Starts the spare unless there is one; an idle spare does not keep the process alive. */
  const startSpare = (): void => {
    if (closed || spare) return;
    const worker = spawn(true);
    worker.unref();
    // A spare that fails or exits while idle is dropped; the next training starts a thread of its own.
    const drop = (): void => {
      if (spare !== worker) return;
      spare = undefined;
      void worker.terminate();
    };
    worker.on('message', (msg: WorkerMessage) => {
      if (msg.type === 'error') drop();
    });
    worker.on('error', drop);
    worker.on('exit', drop);
    spare = worker;
  };

  const scheduleSpare = (): void => {
    if (!prewarm || closed || spare || spareTimer) return;
    spareTimer = setTimeout(() => {
      spareTimer = undefined;
      startSpare();
    }, prewarmDelayMs);
    spareTimer.unref();
  };

  /** The spare (detached from its idle listeners), or a new thread. */
  const takeWorker = (): Worker => {
    const worker = spare;
    if (!worker) return spawn();
    spare = undefined;
    worker.removeAllListeners('message');
    worker.removeAllListeners('error');
    worker.removeAllListeners('exit');
    worker.ref();
    return worker;
  };

  return {
    kind: 'worker',
    prepare() {
      if (prewarm) startSpare();
    },
    async close() {
      closed = true;
      if (spareTimer) clearTimeout(spareTimer);
      spareTimer = undefined;
      const worker = spare;
      spare = undefined;
      await worker?.terminate();
    },
    train(job, run) {
      return new Promise<TrainResult>((resolve, reject) => {
        run.signal?.throwIfAborted();
        const worker = takeWorker();
        let settled = false;
        const finish = (err: unknown, result?: TrainResult): void => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          run.signal?.removeEventListener('abort', onAbort);
          // Never leave a thread running (it holds the tfjs heap). A result does not wait for the thread to be
          // gone (10-40 ms); a failure does, so nothing of a failed or timed-out training outlives the call.
          const gone = worker
            .terminate()
            .catch(() => undefined)
            .then(scheduleSpare);
          if (err) void gone.then(() => reject(err));
          else resolve(result as TrainResult);
        };
        const timer = setTimeout(() => finish(new TrainingTimeoutError(run.timeoutMs)), run.timeoutMs);
        const onAbort = (): void => finish(run.signal?.reason ?? new Error('training aborted'));
        run.signal?.addEventListener('abort', onAbort, { once: true });
        worker.on('message', (msg: WorkerMessage) => {
          if (msg.type === 'epoch') run.onEpoch?.(msg.log);
          else if (msg.type === 'done') finish(undefined, msg.result);
          else if (msg.type === 'error')
            finish(new TrainingFailedError(`training failed: ${msg.name}: ${msg.message}`));
        });
        worker.on('error', (err) =>
          finish(new TrainingFailedError(`training failed: worker crashed: ${describeError(err)}`, err)),
        );
        worker.on('exit', (code) =>
          finish(
            new TrainingFailedError(
              `training failed: worker exited with code ${code} before reporting a result`,
            ),
          ),
        );
        const request: WorkerRequest = { type: 'job', job };
        worker.postMessage(request);
      });
    },
  };
}
