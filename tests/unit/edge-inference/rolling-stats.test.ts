import { describe, expect, it } from 'vitest';
import { ClassMix, LatencyReservoir } from '../../../edge-inference/src/rolling-stats.ts';

describe('LatencyReservoir and ClassMix', () => {
  it('LatencyReservoir: nearest-rank percentiles per interval; ClassMix: shares of the last N', () => {
    const r = new LatencyReservoir(1000);
    for (let i = 1; i <= 100; i++) r.add(i);
    expect(r.drain()).toEqual({ p50: 50, p95: 95, p99: 99 });
    expect(r.drain()).toEqual({ p50: null, p95: null, p99: null });
    const small = new LatencyReservoir(10, () => 0.999);
    for (let i = 0; i < 1000; i++) small.add(5);
    expect(small.drain().p99).toBe(5);

    const mix = new ClassMix(4);
    expect(mix.shares()).toEqual({ Low: 0, Medium: 0, High: 0 });
    for (const c of ['Low', 'Low', 'High', 'Medium', 'High'] as const) mix.add(c);
    expect(mix.shares()).toEqual({ Low: 0.25, Medium: 0.25, High: 0.5 });
  });
});
