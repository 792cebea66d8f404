import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { DriftlineError, TimeoutError, describeError } from '../../common/errors.ts';
import { loadWarmStart, saveArtifact, type WarmStart } from '../../common/model/artifact.ts';
import { trainClassifier, type EpochLog, type TrainedClassifier } from '../../common/model/classifier.ts';
import { loadTf, type Tf } from '../../common/model/tf.ts';
import type { EvalMetrics, LabelledRow } from '../../common/model/types.ts';

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
  /** Validation rows (best-epoch selection). */
  validation: LabelledRow[];
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
  | { type: 'epoch'; log: EpochLog }
  | { type: 'done'; result: TrainResult }
  | { type: 'error'; name: string; message: string; code?: string };

/** Options of {@link createWorkerTrainer}. */
export interface WorkerTrainerOptions {
  /** Node flags of the worker. Default: this process's `execArgv` (inherited as is). */
  execArgv?: string[];
  /** V8 heap limits of the worker. Default: Node's. */
  resourceLimits?: { maxOldGenerationSizeMb?: number; maxYoungGenerationSizeMb?: number };
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
export function workerBootstrap(entry: URL = new URL('./train-worker.ts', import.meta.url)): string {
  const tsxDir = path.dirname(createRequire(import.meta.url).resolve('tsx/package.json'));
  const api = pathToFileURL(path.join(tsxDir, 'dist', 'esm', 'api', 'index.mjs')).href;
  return [
    `import(${JSON.stringify(api)})`,
    `  .then((tsx) => { tsx.register(); return import(${JSON.stringify(entry.href)}); })`,
    `  .catch((err) => { require('node:worker_threads').parentPort.postMessage({ type: 'error', name: err && err.name || 'Error', message: 'cannot start the training worker: ' + (err && err.message || String(err)) }); });`,
  ].join('\n');
}

/** A trainer that runs each training in a fresh worker thread and terminates it at the time limit. */
export function createWorkerTrainer(options: WorkerTrainerOptions = {}): Trainer {
  const execArgv = options.execArgv ?? [...process.execArgv];
  const bootstrap = workerBootstrap();
  return {
    kind: 'worker',
    train(job, run) {
      return new Promise<TrainResult>((resolve, reject) => {
        run.signal?.throwIfAborted();
        const worker = new Worker(bootstrap, {
          eval: true,
          workerData: job,
          execArgv,
          ...(options.resourceLimits ? { resourceLimits: options.resourceLimits } : {}),
        });
        let settled = false;
        const finish = (err: unknown, result?: TrainResult): void => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          run.signal?.removeEventListener('abort', onAbort);
          // terminate() resolves once the thread is gone: never leave one running (it holds the tfjs heap).
          void worker.terminate().finally(() => (err ? reject(err) : resolve(result as TrainResult)));
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
      });
    },
  };
}
