import { afterEach, describe, expect, it, vi } from 'vitest';
import { MicroBatcher, type BatchInfo } from '../../../edge-inference/src/batcher.ts';

function collector(): {
  batches: number[][];
  infos: BatchInfo[];
  process: (b: number[], info: BatchInfo) => void;
} {
  const batches: number[][] = [];
  const infos: BatchInfo[] = [];
  return { batches, infos, process: (b, info) => void (batches.push(b), infos.push(info)) };
}

describe('MicroBatcher', () => {
  afterEach(() => vi.useRealTimers());

  it('flushes as soon as N items are queued', async () => {
    vi.useFakeTimers();
    const c = collector();
    const b = new MicroBatcher<number>({
      maxBatchSize: 4,
      maxWaitMs: 10_000,
      maxQueue: 64,
      process: c.process,
    });
    for (let i = 0; i < 10; i++) b.push(i);
    await vi.advanceTimersByTimeAsync(0);
    expect(c.batches).toEqual([
      [0, 1, 2, 3],
      [4, 5, 6, 7],
    ]);
    expect(c.infos.map((i) => i.trigger)).toEqual(['size', 'size']);
    expect(b.size).toBe(2);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(c.batches[2]).toEqual([8, 9]);
    expect(c.infos[2]?.trigger).toBe('time');
  });

  it('flushes a partial batch T ms after its first item', async () => {
    vi.useFakeTimers();
    const c = collector();
    const b = new MicroBatcher<number>({
      maxBatchSize: 64,
      maxWaitMs: 20,
      maxQueue: 640,
      process: c.process,
    });
    b.push(1);
    await vi.advanceTimersByTimeAsync(10);
    b.push(2);
    b.push(3);
    await vi.advanceTimersByTimeAsync(9);
    expect(c.batches).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(c.batches).toEqual([[1, 2, 3]]);
    // the clock restarts with the next item
    b.push(4);
    await vi.advanceTimersByTimeAsync(19);
    expect(c.batches).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(c.batches).toEqual([[1, 2, 3], [4]]);
  });

  it('runs one batch at a time, in order', async () => {
    const seen: number[][] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    const b = new MicroBatcher<number>({
      maxBatchSize: 3,
      maxWaitMs: 1,
      maxQueue: 100,
      process: async (batch) => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await new Promise((r) => setTimeout(r, 2));
        seen.push(batch);
        inFlight--;
      },
    });
    for (let i = 0; i < 20; i++) b.push(i);
    await b.flush();
    expect(maxInFlight).toBe(1);
    expect(seen.flat()).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  it('pushes back when the queue is full, counts it, and never drops an item', async () => {
    const processed: number[] = [];
    let release: () => void = () => undefined;
    const pauses: number[] = [];
    const b = new MicroBatcher<number>({
      maxBatchSize: 4,
      maxWaitMs: 1,
      maxQueue: 8,
      onBackpressure: (n) => pauses.push(n),
      process: async (batch) => {
        await new Promise<void>((r) => (release = r));
        processed.push(...batch);
      },
    });
    // The first 4 start a batch (blocked), 8 more fill the queue: the 12th push must wait.
    const results: (Promise<void> | undefined)[] = [];
    for (let i = 0; i < 12; i++) results.push(b.push(i));
    expect(results.slice(0, 11).every((r) => r === undefined)).toBe(true);
    const wait = results[11];
    expect(wait).toBeInstanceOf(Promise);
    expect(b.paused).toBe(true);
    expect(pauses).toEqual([8]);
    let resumed = false;
    void wait?.then(() => (resumed = true));
    await new Promise((r) => setTimeout(r, 5));
    expect(resumed).toBe(false);
    release(); // first batch done: the next batch is taken and the queue drops below the limit
    await new Promise((r) => setTimeout(r, 5));
    expect(resumed).toBe(true);
    const draining = b.close();
    for (let i = 0; i < 5; i++) {
      release();
      await new Promise((r) => setTimeout(r, 2));
    }
    await draining;
    expect(processed.sort((x, y) => x - y)).toEqual(Array.from({ length: 12 }, (_, i) => i));
  });

  it('keeps going after a batch fails', async () => {
    const ok: number[] = [];
    const errors: unknown[] = [];
    const b = new MicroBatcher<number>({
      maxBatchSize: 2,
      maxWaitMs: 1,
      maxQueue: 10,
      onError: (err) => errors.push(err),
      process: (batch) => {
        if (batch.includes(0)) throw new Error('boom');
        ok.push(...batch);
      },
    });
    for (let i = 0; i < 6; i++) b.push(i);
    await b.flush();
    expect(errors).toHaveLength(1);
    expect(ok).toEqual([2, 3, 4, 5]);
  });

  it('close() drains what is queued and refuses new items', async () => {
    const c = collector();
    const b = new MicroBatcher<number>({
      maxBatchSize: 100,
      maxWaitMs: 60_000,
      maxQueue: 1000,
      process: c.process,
    });
    b.push(1);
    b.push(2);
    await b.close();
    expect(c.batches).toEqual([[1, 2]]);
    expect(c.infos[0]?.trigger).toBe('drain');
    expect(() => b.push(3)).toThrow(/closed/);
  });
});
