import { describe, expect, it } from 'vitest';
import { DASH, latencyMs } from '../../../dashboard/src/client/format.ts';

describe('latencyMs (the pipeline view latency KPI)', () => {
  it('keeps every latency within four characters, so p50 · p95 · p99 fit one card', () => {
    const cases: [number, string][] = [
      [0.42, '0.4'],
      [7.46, '7.5'],
      [9.99, '10'],
      [74.4, '74'],
      [999.4, '999'],
      [999.6, '1.0k'],
      [1021, '1.0k'],
      [1755, '1.8k'],
      [9_949, '9.9k'],
      [9_951, '10k'],
      [180_400, '180k'],
      [999_499, '999k'],
      [2_000_000, '>1M'],
    ];
    for (const [v, s] of cases) {
      expect(latencyMs(v), String(v)).toBe(s);
      expect(latencyMs(v).length, String(v)).toBeLessThanOrEqual(4);
    }
  });

  it('shows a dash for no value', () => {
    expect(latencyMs(null)).toBe(DASH);
    expect(latencyMs(undefined)).toBe(DASH);
    expect(latencyMs(Number.NaN)).toBe(DASH);
  });
});
