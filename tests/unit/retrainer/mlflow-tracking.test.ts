import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { MlflowMetric, MlflowTag } from '../../../common/mlflow/types.ts';
import { DirectoryRegistry } from '../../../common/registry/directory.ts';
import { MlflowRegistry } from '../../../common/registry/mlflow.ts';
import {
  createMlflowTracking,
  mlflowTrackingFor,
  type MlflowRunLogger,
} from '../../../retrainer/src/mlflow-tracking.ts';
import { MemoryRegistry } from '../../../retrainer/src/testing/fakes.ts';

describe('mlflowTrackingFor: the tracker main.ts chooses', () => {
  it('tracks on MLflow for an MlflowRegistry and not at all for any other registry', async () => {
    const mlflow = new MlflowRegistry({ clientOptions: { trackingUri: 'http://127.0.0.1:9' } });
    const tracking = mlflowTrackingFor(mlflow);
    expect(tracking?.kind).toBe(mlflow.kind);
    expect(mlflowTrackingFor(new MemoryRegistry())).toBeUndefined();
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'driftline-tracking-dir-'));
    try {
      expect(mlflowTrackingFor(new DirectoryRegistry({ root: dir }))).toBeUndefined();
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
    await mlflow.close();
  });
});

describe('MLflow tracking adapter (fake MlflowRegistry)', () => {
  function fakeMlflow() {
    const calls: {
      op: string;
      runId?: string;
      metrics?: unknown;
      step?: number;
      tags?: MlflowTag[];
      status?: string;
      start?: unknown;
    }[] = [];
    const logger: MlflowRunLogger = {
      kind: 'mlflow fake',
      startRun: async (options) => {
        calls.push({ op: 'startRun', start: options });
        return { runId: 'r1', experimentId: '1', artifactUri: 'mlflow-artifacts:/1/r1/artifacts' };
      },
      logMetrics: async (runId, metrics, step) => {
        calls.push({ op: 'logMetrics', runId, metrics, ...(step !== undefined ? { step } : {}) });
      },
      logEpochMetrics: async (runId, epochs, firstStep) => {
        await new Promise((r) => setTimeout(r, 5)); // slower than the caller: ordering must still hold
        calls.push({
          op: 'logEpochMetrics',
          runId,
          metrics: epochs,
          ...(firstStep !== undefined ? { step: firstStep } : {}),
        });
      },
      finishRun: async (runId, status) => {
        calls.push({ op: 'finishRun', runId, ...(status !== undefined ? { status } : {}) });
      },
      client: {
        logBatch: async (runId: string, batch: { metrics?: MlflowMetric[]; tags?: MlflowTag[] }) => {
          calls.push({ op: 'logBatch', runId, ...(batch.tags ? { tags: batch.tags } : {}) });
        },
      },
    };
    return { calls, logger };
  }

  it('starts a run in the experiment, logs epochs at step = epoch before the holdout metrics, tags and finishes', async () => {
    const { calls, logger } = fakeMlflow();
    const tracking = createMlflowTracking(logger, { experiment: 'driftline' });
    const run = await tracking.startRun({
      runName: 'retrain-x',
      params: { epochs: 3, long: 'x'.repeat(7000) },
      tags: { 'driftline.correlation_id': 'c1' },
    });
    expect(run.runId).toBe('r1');
    run.logEpoch({
      epoch: 1,
      loss: 0.9,
      learningRate: 0.01,
      valLoss: 1,
      valAccuracy: 0.6,
      valMacroF1: 0.5,
      durationMs: 3,
    });
    run.logEpoch({
      epoch: 2,
      loss: 0.5,
      learningRate: 0.01,
      valLoss: 0.7,
      valAccuracy: 0.8,
      valMacroF1: 0.7,
      durationMs: 3,
    });
    await run.logMetrics({ holdout_accuracy: 0.9 });
    await run.setTags({ 'driftline.outcome': 'promoted' });
    await run.finish('FINISHED');
    expect(calls.map((c) => c.op)).toEqual([
      'startRun',
      'logEpochMetrics',
      'logEpochMetrics',
      'logMetrics',
      'logBatch',
      'finishRun',
    ]);
    const start = calls[0]?.start as { experiment: string; params: Record<string, string> };
    expect(start.experiment).toBe('driftline');
    expect(start.params.long).toHaveLength(6000);
    expect(calls[1]).toMatchObject({
      step: 1,
      metrics: [
        { loss: 0.9, val_loss: 1, val_accuracy: 0.6, val_macro_f1: 0.5, learning_rate: 0.01, epoch_ms: 3 },
      ],
    });
    expect(calls[2]).toMatchObject({ step: 2 });
    expect(calls[4]?.tags).toEqual([{ key: 'driftline.outcome', value: 'promoted' }]);
    expect(calls[5]).toMatchObject({ status: 'FINISHED' });
  });
});
