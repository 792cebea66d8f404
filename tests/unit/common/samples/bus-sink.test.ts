import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InProcessBus } from '../../../../common/bus/in-process.ts';
import { BUS_TOPICS } from '../../../../common/bus/types.ts';
import { TransportError } from '../../../../common/errors.ts';
import { SAMPLE_SINK_GROUP, startSampleBusSink } from '../../../../common/samples/bus-sink.ts';
import { openFileSampleStore } from '../../../../common/samples/file-store.ts';
import type { LabelledSample, LabelledSampleStore } from '../../../../common/samples/types.ts';

function sample(i: number): LabelledSample {
  return {
    machineId: 'press-1',
    seq: i,
    ts: 1_700_000_000_000 + i,
    sampleIndex: i,
    row: {
      operationMode: 'Idle',
      temperatureC: 40,
      vibrationHz: 2,
      powerKw: 3,
      networkLatencyMs: 5,
      packetLossPct: 0,
      defectRatePct: 1,
      productionSpeedUph: 300,
      maintenanceScore: 0.9,
      errorRatePct: 1,
    },
    label: 'Medium',
    prediction: 'Low',
    modelVersion: '3',
  };
}

describe('sample bus sink', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'driftline-sink-'));
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('appends single samples, arrays and {samples} batches published before and after it started', async () => {
    const bus = new InProcessBus();
    const store = await openFileSampleStore({ dir });
    await bus.publish(BUS_TOPICS.labelledSamples, 'press-1', sample(0));
    const sink = await startSampleBusSink({ bus, store });
    await bus.publish(BUS_TOPICS.labelledSamples, 'press-1', [sample(1), sample(2)]);
    await bus.publish(BUS_TOPICS.labelledSamples, 'press-1', { samples: [sample(3)] });
    await bus.idle();
    expect((await store.readWindow()).map((s) => s.seq)).toEqual([0, 1, 2, 3]);
    expect(sink.appended).toBe(4);
    await sink.close();
    await bus.close();
    await store.close();
    // The data outlives the process that consumed it.
    const reopened = await openFileSampleStore({ dir, readOnly: true });
    expect(await reopened.readWindow({ fromSample: 2 })).toEqual([sample(2), sample(3)]);
  });

  it('keeps the valid samples of a mixed batch and dead-letters a message with none', async () => {
    const bus = new InProcessBus();
    const store = await openFileSampleStore({ dir });
    const sink = await startSampleBusSink({ bus, store });
    const dead: unknown[] = [];
    await bus.subscribe(BUS_TOPICS.deadLetter, { group: 'dlq' }, async (m) => void dead.push(m.value));
    await bus.publish(BUS_TOPICS.labelledSamples, 'press-1', [sample(1), { ...sample(2), label: 'Great' }]);
    await bus.publish(BUS_TOPICS.labelledSamples, 'press-1', { hello: 'world' });
    await bus.idle();
    expect((await store.readWindow()).map((s) => s.seq)).toEqual([1]);
    expect(sink.invalid).toBe(2);
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({ topic: BUS_TOPICS.labelledSamples, group: SAMPLE_SINK_GROUP });
    await sink.close();
    await store.close();
  });

  it('lets the bus redeliver when the store fails for now', async () => {
    const bus = new InProcessBus({ redeliveryDelayMs: 1 });
    const written: LabelledSample[] = [];
    let failures = 1;
    const store: LabelledSampleStore = {
      kind: 'fake',
      async append(s) {
        if (failures-- > 0) throw new TransportError('disk busy');
        written.push(...s);
      },
      readWindow: async () => written,
      stats: async () => ({ samples: written.length, segments: 1, bytes: 0, skippedLines: 0 }),
      close: async () => undefined,
    };
    await startSampleBusSink({ bus, store });
    await bus.publish(BUS_TOPICS.labelledSamples, 'press-1', sample(7));
    await bus.idle();
    expect(written.map((s) => s.seq)).toEqual([7]);
  });
});
