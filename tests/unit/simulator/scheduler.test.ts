import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Pacer, dueMessages } from '../../../simulator/src/scheduler.ts';
import { Fifo, RateMeter } from '../../../simulator/src/stats.ts';

describe('dueMessages', () => {
  it('is rate × elapsed, the first message due at once', () => {
    expect(dueMessages(0, 500, 0)).toBe(1);
    expect(dueMessages(1000, 500, 0)).toBe(501);
    expect(dueMessages(1000, 500, 501)).toBe(0);
    expect(dueMessages(9, 500, 1)).toBe(4);
    expect(dueMessages(10, 2, 5)).toBe(0);
  });
});

describe('Pacer', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('sends exactly rate × time at 500 msg/s, a few per tick, without drift', () => {
    const batches: number[] = [];
    const pacer = new Pacer({ ratePerSecond: 500, tickMs: 10, now: () => Date.now() }, (n) => {
      batches.push(n);
      return n;
    });
    pacer.start();
    vi.advanceTimersByTime(10_000);
    pacer.stop();
    expect(pacer.total).toBe(5001);
    expect(Math.max(...batches)).toBeLessThanOrEqual(6);
    // Stopped: nothing more.
    vi.advanceTimersByTime(1000);
    expect(pacer.total).toBe(5001);
  });

  it('keeps low rates (2 Hz) exact', () => {
    const pacer = new Pacer({ ratePerSecond: 2, now: () => Date.now() }, (n) => n);
    pacer.start();
    vi.advanceTimersByTime(60_000);
    pacer.stop();
    expect(pacer.total).toBe(121);
  });

  it('after a blocked sender, catches up at most maxBacklogMs worth in one go', () => {
    let open = false;
    const batches: number[] = [];
    const pacer = new Pacer(
      { ratePerSecond: 100, tickMs: 10, maxBacklogMs: 1000, now: () => Date.now() },
      (n) => {
        if (!open) return 0;
        batches.push(n);
        return n;
      },
    );
    pacer.start();
    vi.advanceTimersByTime(5000);
    expect(pacer.total).toBe(0);
    open = true;
    vi.advanceTimersByTime(10);
    expect(batches[0]).toBe(100);
    vi.advanceTimersByTime(990);
    pacer.stop();
    // Back on schedule: one second at 100/s after the catch-up.
    expect(pacer.total).toBeGreaterThanOrEqual(199);
    expect(pacer.total).toBeLessThanOrEqual(201);
  });

  it('in max mode sends whenever the sender has room', async () => {
    vi.useRealTimers();
    let inFlight = 0;
    let sent = 0;
    const window = 50;
    const pacer = new Pacer({ ratePerSecond: 'max' }, (max) => {
      const n = Math.min(max, window - inFlight, 1000 - sent);
      inFlight += n;
      sent += n;
      return n;
    });
    pacer.start();
    for (let round = 0; round < 100 && sent < 1000; round++) {
      await new Promise((r) => setImmediate(r));
      expect(inFlight).toBeLessThanOrEqual(window);
      inFlight = 0; // all acknowledged
      pacer.wake();
    }
    pacer.stop();
    expect(sent).toBe(1000);
    expect(pacer.total).toBe(1000);
  });

  it('refuses a non-positive rate', () => {
    expect(() => new Pacer({ ratePerSecond: 0 }, (n) => n)).toThrow(/positive number or 'max'/);
  });
});

describe('RateMeter', () => {
  it('reports per-machine rates over the last window', () => {
    let now = 0;
    const meter = new RateMeter(['a', 'b'], () => now);
    for (let i = 0; i < 10; i++) meter.add(0);
    meter.add(1);
    now = 2000;
    expect(meter.byMachineId()).toEqual({ a: 5, b: 0.5 });
    meter.roll();
    for (let i = 0; i < 30; i++) meter.add(1);
    now = 7000;
    expect(meter.byMachineId()).toEqual({ a: 5, b: 0.5 });
    meter.roll();
    expect(meter.byMachineId()).toEqual({ a: 0, b: 6 });
  });
});

describe('Fifo', () => {
  it('keeps order through many pushes and shifts', () => {
    const q = new Fifo<number>();
    let next = 0;
    for (let i = 0; i < 5000; i++) {
      q.push(i);
      if (i % 3 === 0) expect(q.shift()).toBe(next++);
    }
    expect(q.length).toBe(5000 - next);
    while (q.length > 0) expect(q.shift()).toBe(next++);
    expect(q.shift()).toBeUndefined();
    expect(q.peek()).toBeUndefined();
  });
});
