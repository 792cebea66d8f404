/**
 * Cost of the edge worker's repeat filter (edge-inference/src/dedup.ts) per
 * message (one telemetry and one label check), in microseconds, below its
 * bound and at it (every new key evicts the oldest). The Map-as-FIFO it
 * replaced cost 130–540 µs per message at the 100,000-key bound (V8 skips the
 * deleted slots at the front of the table on every `keys().next()`).
 *
 * Run through `npm run bench -- dedup`.
 */
import { RepeatFilter } from '../edge-inference/src/dedup.ts';

export async function run(): Promise<Record<string, unknown>> {
  const f = new RepeatFilter();
  const out: Record<string, number> = {};
  let i = 0;
  for (const upTo of [50_000, 100_000, 200_000, 400_000]) {
    const start = i;
    const t0 = performance.now();
    for (; i < upTo; i++) {
      f.telemetryRepeat(`m-${i % 20}`, i, i);
      f.labelRepeat(`m-${i % 20}`, i, 'High');
    }
    out[`messages ${start}–${upTo}, µs per message`] = Number(
      (((performance.now() - t0) / (upTo - start)) * 1000).toFixed(2),
    );
  }
  return { maxEntries: 100_000, ...out };
}
