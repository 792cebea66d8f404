/**
 * What the embedded event bus (common/bus/in-process.ts) costs the edge: the
 * heap its retention holds when full (10,000 messages, the default) of
 * labelled-sample batches shaped as the edge publishes them (`{ samples }`,
 * one message per machine per prediction batch: 64 readings over 20 machines
 * is ~3 samples each), and the time per publish with no consumer group (the
 * edge alone: nobody in the process reads its labelled samples) and with one
 * (the all-in-one: the retrainer's sample sink).
 *
 * Run through `npm run bench -- bus`.
 */
import { InProcessBus } from '../common/bus/in-process.ts';
import { BUS_TOPICS } from '../common/bus/types.ts';
import { EFFICIENCY_CLASSES, FEATURES } from '../common/schema/features.ts';
import { heapUsedMb } from './heap.ts';

const RETENTION = 10_000;
const SAMPLES_PER_MESSAGE = 3;

/** A batch of labelled samples as the edge worker publishes it; values vary so nothing is shared. */
function batch(i: number): { samples: unknown[] } {
  const samples = [];
  for (let j = 0; j < SAMPLES_PER_MESSAGE; j++) {
    const seq = i * SAMPLES_PER_MESSAGE + j;
    const row: Record<string, unknown> = { operationMode: 'Active' };
    for (const [k, f] of FEATURES.entries())
      row[f] = Math.round(((seq * 7919 + k * 104_729) % 100_000) / 10) / 100;
    samples.push({
      machineId: `m-${String(i % 20).padStart(3, '0')}`,
      seq,
      ts: 1_764_000_000_000 + seq * 50,
      row,
      label: EFFICIENCY_CLASSES[seq % 3],
      prediction: EFFICIENCY_CLASSES[(seq + 1) % 3],
      modelVersion: '7',
    });
  }
  return { samples };
}

/** µs per publish of `n` batches on a bus with `groups` consumer groups (each handler does nothing). */
async function publishCost(n: number, groups: number): Promise<number> {
  const bus = new InProcessBus({ retention: RETENTION });
  for (let g = 0; g < groups; g++)
    await bus.subscribe(BUS_TOPICS.labelledSamples, { group: `g${g}` }, async () => undefined);
  const messages = Array.from({ length: n }, (_, i) => batch(i));
  const t0 = performance.now();
  for (const [i, m] of messages.entries()) await bus.publish(BUS_TOPICS.labelledSamples, `m-${i % 20}`, m);
  await bus.idle();
  const us = ((performance.now() - t0) / n) * 1000;
  await bus.close();
  return Number(us.toFixed(2));
}

export async function run(): Promise<Record<string, unknown>> {
  // Each batch is made as it is published, so the heap measured afterwards holds only what the bus keeps.
  let json = 0;
  const before = heapUsedMb();
  const bus = new InProcessBus({ retention: RETENTION });
  for (let i = 0; i < RETENTION; i++) {
    const m = batch(i);
    json += JSON.stringify(m).length;
    await bus.publish(BUS_TOPICS.labelledSamples, `m-${i % 20}`, m);
  }
  const held = heapUsedMb() - before;
  if (bus.retained(BUS_TOPICS.labelledSamples).length !== RETENTION)
    throw new Error('the bus did not keep its retention');
  await bus.close();
  // Warm up, then measure.
  await publishCost(20_000, 1);
  return {
    retention: RETENTION,
    samplesPerMessage: SAMPLES_PER_MESSAGE,
    'JSON MB of the retained messages': Number((json / 2 ** 20).toFixed(1)),
    'heap MB held by a full retention': Number(held.toFixed(1)),
    'µs per publish, no consumer group': await publishCost(50_000, 0),
    'µs per publish and delivery, one group': await publishCost(50_000, 1),
  };
}
