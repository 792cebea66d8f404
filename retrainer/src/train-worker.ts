import { parentPort, workerData } from 'node:worker_threads';
import { describeError } from '../../common/errors.ts';
import { loadTf } from '../../common/model/tf.ts';
import { trainAndSave, type TrainJob, type WorkerMessage } from './trainer.ts';

/**
 * The training worker thread: trains the job it was started with
 * (`workerData`), saves the artifact and posts `done`, or posts `error`.
 * The parent enforces the time limit by terminating this thread.
 * Started by `createWorkerTrainer` in `trainer.ts`; never imported elsewhere.
 */

const port = parentPort;
if (!port) throw new Error('train-worker.ts must run in a worker thread');

const post = (msg: WorkerMessage): void => port.postMessage(msg);

try {
  const job = workerData as TrainJob;
  const { tf } = await loadTf();
  const result = await trainAndSave(tf, job, { onEpoch: (log) => post({ type: 'epoch', log }) });
  post({ type: 'done', result });
} catch (err) {
  const e = err instanceof Error ? err : new Error(describeError(err));
  const code = (e as Error & { code?: unknown }).code;
  post({ type: 'error', name: e.name, message: e.message, ...(typeof code === 'string' ? { code } : {}) });
}
