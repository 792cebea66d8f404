import { describe, expect, it } from 'vitest';
import { DeadLetterSink } from '../../../common/deadletter.ts';
import { silentLogger } from '../../../common/logging/logger.ts';
import type { Prediction } from '../../../common/schema/telemetry.ts';
import { MqttIngest } from '../../../edge-inference/src/ingest.ts';

const prediction = (seq: number): Prediction => ({
  machineId: 'm-1',
  seq,
  ts: 1,
  predictedAt: 2,
  efficiency: 'High',
  probabilities: { Low: 0, Medium: 0, High: 1 },
  modelVersion: '1',
  latencyMs: 1,
});

describe('MqttIngest.publishPredictions', () => {
  it('before connecting: every prediction of the batch goes to onError, the batch promise resolves', async () => {
    const ingest = new MqttIngest({
      url: 'mqtt://127.0.0.1:1',
      clientId: 'edge-test',
      deadLetters: new DeadLetterSink({
        source: 'edge-inference',
        logger: silentLogger(),
        publish: async () => undefined,
      }),
    });
    const failed: number[] = [];
    await ingest.publishPredictions([prediction(1), prediction(2)], (p, err) => {
      expect(err.message).toMatch(/not connected/);
      failed.push(p.seq);
    });
    expect(failed).toEqual([1, 2]);
  });
});
