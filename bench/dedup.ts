/**
 * Cost of the edge worker's repeat filter (edge-inference/src/dedup.ts) per
 * message (one telemetry and one label check), in microseconds, below its
 * bound and at it (every new key evicts the oldest). The Map-as-FIFO it
 * replaced cost 130–540 µs per message at the 100,000-key bound (V8 skips the
 * deleted slots at the front of the table on every `keys().next()`).
 *
 * Also the memory the filter holds at its bound (JS heap after full collections, plus its typed arrays).
 *
 * Run through `npm run bench -- dedup`.
 */
import { RepeatFilter } from '../edge-inference/src/dedup.ts';
import { heapUsedMb } from './heap.ts';

export async function run(): Promise<Record<string, unknown>> {
  const before = heapUsedMb();
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
  // At its bound: 100,000 keys remembered (half readings, half labels) and what they hold.
  const held = heapUsedMb() - before;
  return {
    maxEntries: 100_000,
    ...out,
    'heap MB held at the bound (JS heap + typed arrays)': Number((held + typedArrayMb(f)).toFixed(1)),
  };
}

/** Bytes of the filter's typed arrays (outside the JS heap), MB; 0 for an implementation without them. */
function typedArrayMb(f: object): number {
  let bytes = 0;
  for (const v of Object.values(f)) if (ArrayBuffer.isView(v)) bytes += v.byteLength;
  return bytes / 2 ** 20;
}
