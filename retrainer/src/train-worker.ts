import { parentPort, workerData } from 'node:worker_threads';
import { describeError } from '../../common/errors.ts';
import { loadTf } from '../../common/model/tf.ts';
import {
  trainAndSave,
  warmUpTraining,
  type TrainJob,
  type WorkerMessage,
  type WorkerRequest,
} from './trainer.ts';

/**
 * The training worker thread: loads tfjs, posts `ready`, waits for its one
 * job (`{ type: 'job' }` from the parent), trains it, saves the artifact and
 * posts `done`, or posts `error`. Loading tfjs before the job arrives lets the
 * parent start a worker ahead of the next training (a spare, `prewarm`), so a
 * training does not wait for the thread's start-up and tfjs's initialisation;
 * a spare (`workerData.warmUp`) also runs a throw-away training first.
 * The parent enforces the time limit by terminating this thread, and uses each
 * thread for one job. Started by `createWorkerTrainer` in `trainer.ts`; never
 * imported elsewhere.
 */

const port = parentPort;
if (!port) throw new Error('train-worker.ts must run in a worker thread');

const post = (msg: WorkerMessage): void => port.postMessage(msg);

try {
  const { tf } = await loadTf();
  if ((workerData as { warmUp?: boolean } | undefined)?.warmUp === true) await warmUpTraining(tf);
  post({ type: 'ready' });
  const job = await new Promise<TrainJob>((resolve) => {
    const onMessage = (msg: WorkerRequest): void => {
      if (msg?.type !== 'job') return;
      port.off('message', onMessage);
      resolve(msg.job);
    };
    port.on('message', onMessage);
  });
  const result = await trainAndSave(tf, job, { onEpoch: (log) => post({ type: 'epoch', log }) });
  post({ type: 'done', result });
} catch (err) {
  const e = err instanceof Error ? err : new Error(describeError(err));
  const code = (e as Error & { code?: unknown }).code;
  post({ type: 'error', name: e.name, message: e.message, ...(typeof code === 'string' ? { code } : {}) });
}
