import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../../common/errors.ts';
import { FEATURES, type Feature } from '../../../../common/schema/features.ts';
import { validateObject } from '../../../../common/schema/telemetry.ts';
import {
  generateStream,
  labelFor,
  phaseBounds,
  SEED_RULE,
  type GeneratedSample,
} from '../../../../common/scenario/generator.ts';
import { formatJsonlLine } from '../../../../simulator/src/jsonl.ts';
import {
  loadScenarioFile,
  parseScenario,
  phaseChangesAnything,
  type Scenario,
} from '../../../../common/scenario/scenario.ts';

/**
 * Every scenario operation, checked on the generated values. The seed profile
 * draws each feature from its own random stream, so a drifted scenario and the
 * plain baseline with the same seed share the underlying draws: the drifted
 * value is a known function of the baseline value.
 */
const Z = 5;
const SCENARIO_DIR = new URL('../../../../scenarios/', import.meta.url);

type PhaseSpec = Record<string, unknown>;

function scenario(phases: PhaseSpec[], extra: Record<string, unknown> = {}): Scenario {
  return parseScenario({ seed: 42, machines: 4, profile: 'seed', phases, ...extra });
}

function run(s: Scenario): GeneratedSample[] {
  return [...generateStream(s)];
}

/** Baseline of the same total length and seed, for comparison. */
function baselineFor(s: Scenario): GeneratedSample[] {
  return run({ ...s, phases: [{ name: 'baseline', samples: s.phases.reduce((a, p) => a + p.samples, 0) }] });
}

function inPhase(samples: GeneratedSample[], phase: number): GeneratedSample[] {
  return samples.filter((s) => s.phaseIndex === phase);
}

function expectShare(count: number, n: number, p: number): void {
  const se = Math.sqrt((p * (1 - p)) / n);
  expect(Math.abs(count / n - p), `share ${count / n} vs ${p}`).toBeLessThanOrEqual(Z * se);
}

/** Max |f(baseline value) − drifted value| over a phase, for one feature. */
function maxDeviation(
  drifted: GeneratedSample[],
  base: GeneratedSample[],
  feature: Feature,
  f: (x: number, s: GeneratedSample) => number,
): number {
  let worst = 0;
  for (const s of drifted) {
    const b = base[s.index] as GeneratedSample;
    worst = Math.max(worst, Math.abs(f(b.telemetry[feature], s) - s.telemetry[feature]));
  }
  return worst;
}

/** Collects failures in hot loops (one `expect` per sample is slow) and reports the first few. */
function checker(): { check(ok: boolean, what: () => string): void; done(): void } {
  const problems: string[] = [];
  return {
    check(ok, what) {
      if (!ok && problems.length < 5) problems.push(what());
    },
    done() {
      expect(problems).toEqual([]);
    },
  };
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

function expectOthersUnchanged(
  drifted: GeneratedSample[],
  base: GeneratedSample[],
  changed: readonly Feature[],
): void {
  for (const f of FEATURES) {
    if (changed.includes(f)) continue;
    expect(
      maxDeviation(drifted, base, f, (x) => x),
      f,
    ).toBe(0);
  }
}

describe('feature operations', () => {
  const N = 4000;

  it('add shifts the feature by the constant', () => {
    const s = scenario([
      { name: 'base', samples: N },
      { name: 'drift', samples: N, features: { vibrationHz: { add: 1.5 } } },
    ]);
    const out = run(s);
    const base = baselineFor(s);
    expect(maxDeviation(inPhase(out, 0), base, 'vibrationHz', (x) => x)).toBe(0);
    expect(maxDeviation(inPhase(out, 1), base, 'vibrationHz', (x) => x + 1.5)).toBeLessThan(2e-4);
    expectOthersUnchanged(inPhase(out, 1), base, ['vibrationHz']);
  });

  it('mul scales the feature', () => {
    const s = scenario([
      { name: 'base', samples: N },
      { name: 'hot', samples: N, features: { temperatureC: { mul: 1.1 } } },
    ]);
    const out = run(s);
    const base = baselineFor(s);
    expect(maxDeviation(inPhase(out, 1), base, 'temperatureC', (x) => x * 1.1)).toBeLessThan(2e-4);
    expectOthersUnchanged(inPhase(out, 1), base, ['temperatureC']);
  });

  it('range replaces the uniform range', () => {
    const s = scenario([
      { name: 'base', samples: N },
      { name: 'slow', samples: N, features: { productionSpeedUph: { range: [50, 350] } } },
    ]);
    const out = inPhase(run(s), 1);
    const base = baselineFor(s);
    const speeds = out.map((x) => x.telemetry.productionSpeedUph);
    expect(Math.min(...speeds)).toBeGreaterThanOrEqual(50);
    expect(Math.max(...speeds)).toBeLessThanOrEqual(350);
    // Same draw, mapped from [50, 500) onto [50, 350).
    expect(maxDeviation(out, base, 'productionSpeedUph', (x) => 50 + ((x - 50) * 300) / 450)).toBeLessThan(
      2e-4,
    );
    // Labels still follow the seed rule on the new values: no High above 350.
    expect(out.some((x) => x.label.efficiency === 'High')).toBe(false);
    expect(out.every((x) => x.label.efficiency === labelFor(x.telemetry))).toBe(true);
  });

  it('applies range, then mul, then add', () => {
    const s = scenario([
      { name: 'all', samples: N, features: { temperatureC: { range: [10, 20], mul: 2, add: 5 } } },
    ]);
    const out = run(s);
    const base = baselineFor(s);
    // Baseline temperature is 30 + 60u; drifted is (10 + 10u) * 2 + 5.
    expect(maxDeviation(out, base, 'temperatureC', (x) => (10 + (10 * (x - 30)) / 60) * 2 + 5)).toBeLessThan(
      3e-4,
    );
    const temps = out.map((x) => x.telemetry.temperatureC);
    expect(Math.min(...temps)).toBeGreaterThanOrEqual(25);
    expect(Math.max(...temps)).toBeLessThanOrEqual(45);
  });

  it('clamps drifted values to VALID_LIMITS so every record stays valid', () => {
    const s = scenario([
      {
        name: 'extreme',
        samples: 400,
        features: {
          maintenanceScore: { add: 1000 },
          temperatureC: { add: -1000 },
          powerKw: { mul: -1 },
          vibrationHz: { mul: 1e6 },
        },
      },
    ]);
    for (const x of run(s)) {
      expect(x.telemetry.maintenanceScore).toBe(1);
      expect(x.telemetry.temperatureC).toBe(-50);
      expect(x.telemetry.powerKw).toBe(0);
      expect(x.telemetry.vibrationHz).toBe(100);
      expect(validateObject('telemetry', x.telemetry).ok).toBe(true);
    }
  });
});

describe('mode shares', () => {
  it('modeShare changes the operation-mode mix and nothing else', () => {
    const n = 40_000;
    const s = scenario([
      { name: 'shift', samples: n, modeShare: { Active: 0.5, Idle: 0.3, Maintenance: 0.2 } },
    ]);
    const out = run(s);
    const counts = { Active: 0, Idle: 0, Maintenance: 0 };
    for (const x of out) counts[x.telemetry.operationMode]++;
    expectShare(counts.Active, n, 0.5);
    expectShare(counts.Idle, n, 0.3);
    expectShare(counts.Maintenance, n, 0.2);
    expectOthersUnchanged(out, baselineFor(s), []);
  });

  it('a mode missing from modeShare never occurs', () => {
    const out = run(scenario([{ name: 'busy', samples: 5000, modeShare: { Active: 1 } }]));
    expect(out.every((x) => x.telemetry.operationMode === 'Active')).toBe(true);
  });
});

describe('rule (concept drift)', () => {
  const rule = { high: { speedAbove: 350, errorBelow: 3 }, medium: { speedAbove: 150, errorBelow: 6 } };

  it('relabels by the new thresholds while the inputs stay identical', () => {
    const s = scenario([
      { name: 'base', samples: 8000 },
      { name: 'spec', samples: 8000, rule },
    ]);
    const out = run(s);
    const base = baselineFor(s);
    const c = checker();
    for (const x of out) {
      c.check(
        same(x.telemetry, (base[x.index] as GeneratedSample).telemetry),
        () => `inputs changed at ${x.index}`,
      );
      c.check(
        x.label.efficiency === labelFor(x.telemetry, x.phaseIndex === 0 ? SEED_RULE : rule),
        () => `label at ${x.index}`,
      );
    }
    c.done();
    // The change is visible: some labels differ from the seed rule.
    expect(
      inPhase(out, 1).filter((x) => x.label.efficiency !== labelFor(x.telemetry)).length,
    ).toBeGreaterThan(500);
  });

  it('a partial rule keeps the seed thresholds for the missing class', () => {
    const s = scenario([
      { name: 'strict-high', samples: 4000, rule: { high: { speedAbove: 450, errorBelow: 1 } } },
    ]);
    const partial = { high: { speedAbove: 450, errorBelow: 1 }, medium: SEED_RULE.medium };
    expect(run(s).every((x) => x.label.efficiency === labelFor(x.telemetry, partial))).toBe(true);
  });
});

describe('ramps', () => {
  it('interpolates add linearly over rampSamples, then holds', () => {
    const ramp = 2000;
    const s = scenario([
      { name: 'base', samples: 1000 },
      { name: 'warming', samples: 4000, rampSamples: ramp, features: { temperatureC: { add: 10 } } },
    ]);
    const out = run(s);
    const base = baselineFor(s);
    const start = phaseBounds(s)[1]?.start ?? 0;
    const dev = maxDeviation(
      inPhase(out, 1),
      base,
      'temperatureC',
      (x, smp) => x + 10 * Math.min(1, (smp.index - start) / ramp),
    );
    expect(dev).toBeLessThan(2e-4);
  });

  it('interpolates mul and range bounds from the previous phase settings', () => {
    const ramp = 1000;
    const s = scenario([
      {
        name: 'first',
        samples: 1000,
        features: { powerKw: { mul: 2 }, productionSpeedUph: { range: [100, 200] } },
      },
      {
        name: 'second',
        samples: 2000,
        rampSamples: ramp,
        features: { powerKw: { mul: 3 }, productionSpeedUph: { range: [300, 500] } },
      },
    ]);
    const out = run(s);
    const base = baselineFor(s);
    const expected = (x: number, smp: GeneratedSample): number => {
      const f = Math.min(1, (smp.index - 1000) / ramp);
      const lo = 100 + 200 * f;
      const hi = 200 + 300 * f;
      return lo + ((x - 50) / 450) * (hi - lo);
    };
    expect(maxDeviation(inPhase(out, 1), base, 'productionSpeedUph', expected)).toBeLessThan(2e-4);
    expect(
      maxDeviation(
        inPhase(out, 1),
        base,
        'powerKw',
        (x, smp) => x * (2 + Math.min(1, (smp.index - 1000) / ramp)),
      ),
    ).toBeLessThan(4e-4);
  });

  it('ramps mode shares and the rule (new rule with probability = ramp fraction)', () => {
    const ramp = 40_000;
    const rule = { high: { speedAbove: 100, errorBelow: 10 }, medium: { speedAbove: 60, errorBelow: 14 } };
    const s = scenario([{ name: 'ramp', samples: ramp, rampSamples: ramp, modeShare: { Idle: 1 }, rule }]);
    const out = run(s);
    const halves = [out.slice(0, ramp / 2), out.slice(ramp / 2)];
    halves.forEach((half, h) => {
      const meanF = (h === 0 ? 0.25 : 0.75) - 0.5 / ramp;
      // Idle share goes from 0.2 to 1: 0.2 + 0.8 f.
      expectShare(
        half.filter((x) => x.telemetry.operationMode === 'Idle').length,
        half.length,
        0.2 + 0.8 * meanF,
      );
      // Where the rules disagree, the new rule's label wins with probability f.
      const disputed = half.filter((x) => labelFor(x.telemetry, rule) !== labelFor(x.telemetry));
      const byNew = disputed.filter((x) => x.label.efficiency === labelFor(x.telemetry, rule)).length;
      expect(disputed.length).toBeGreaterThan(5000);
      expectShare(byNew, disputed.length, meanF);
      // Every label is one of the two rules' answers.
      const c = checker();
      for (const x of half)
        c.check(
          [labelFor(x.telemetry), labelFor(x.telemetry, rule)].includes(x.label.efficiency),
          () => `label at ${x.index}`,
        );
      c.done();
    });
  });
});

describe('sensor faults', () => {
  const N = 4000;

  it('stuck reports a constant on that machine only; labels follow the true values', () => {
    const s = scenario([
      { name: 'base', samples: N },
      {
        name: 'fault',
        samples: N,
        faults: [{ machine: 'm-002', feature: 'temperatureC', kind: 'stuck', value: 85 }],
      },
    ]);
    const out = run(s);
    const base = baselineFor(s);
    const c = checker();
    for (const x of inPhase(out, 1)) {
      const b = base[x.index] as GeneratedSample;
      if (x.telemetry.machineId === 'm-002')
        c.check(
          x.telemetry.temperatureC === 85 &&
            same({ ...x.telemetry, temperatureC: 0 }, { ...b.telemetry, temperatureC: 0 }),
          () => `m-002 at ${x.index}`,
        );
      else c.check(same(x.telemetry, b.telemetry), () => `other machine changed at ${x.index}`);
      c.check(same(x.label, b.label), () => `label changed at ${x.index}`);
    }
    c.done();
  });

  it('stuck without a value freezes the last reading before the fault', () => {
    const s = scenario([
      { name: 'base', samples: 400 },
      { name: 'fault', samples: 400, faults: [{ machine: 'm-001', feature: 'powerKw', kind: 'stuck' }] },
    ]);
    const out = run(s);
    const before = inPhase(out, 0)
      .filter((x) => x.telemetry.machineId === 'm-001')
      .pop() as GeneratedSample;
    const during = inPhase(out, 1).filter((x) => x.telemetry.machineId === 'm-001');
    expect(new Set(during.map((x) => x.telemetry.powerKw))).toEqual(new Set([before.telemetry.powerKw]));
  });

  it('spikes add ±magnitude with the given probability', () => {
    const n = 40_000;
    const s = scenario([
      {
        name: 'spiky',
        samples: n,
        faults: [
          { machine: 'm-001', feature: 'temperatureC', kind: 'spikes', probability: 0.1, magnitude: 20 },
        ],
      },
    ]);
    const out = run(s);
    const base = baselineFor(s);
    let up = 0;
    let down = 0;
    const c = checker();
    for (const x of out) {
      const b = base[x.index] as GeneratedSample;
      c.check(same(x.label, b.label), () => `label changed at ${x.index}`);
      if (x.telemetry.machineId !== 'm-001') {
        c.check(same(x.telemetry, b.telemetry), () => `other machine changed at ${x.index}`);
        continue;
      }
      const d = x.telemetry.temperatureC - b.telemetry.temperatureC;
      if (Math.abs(d - 20) < 2e-4) up++;
      else if (Math.abs(d + 20) < 2e-4) down++;
      else c.check(d === 0, () => `unexpected change ${d} at ${x.index}`);
    }
    c.done();
    const machineSamples = n / 4;
    expectShare(up + down, machineSamples, 0.1);
    expectShare(up, up + down, 0.5);
  });
});

describe('determinism', () => {
  const text = (s: Scenario, n = Number.POSITIVE_INFINITY): string => {
    const lines: string[] = [];
    for (const x of generateStream(s)) {
      if (lines.length >= n) break;
      lines.push(formatJsonlLine(x));
    }
    return lines.join('\n');
  };

  it('the same file gives the same stream, byte for byte', async () => {
    const path = new URL('sudden-shift.json', SCENARIO_DIR).pathname;
    const a = text(await loadScenarioFile(path));
    const b = text(await loadScenarioFile(path));
    expect(a.length).toBeGreaterThan(1_000_000);
    expect(a === b).toBe(true);
  });

  it('every operation is reproducible, including realistic noise, ramps and faults', () => {
    const phases = [
      { name: 'base', samples: 2000 },
      {
        name: 'all',
        samples: 3000,
        rampSamples: 1000,
        features: { vibrationHz: { add: 1 } },
        modeShare: { Active: 0.4, Idle: 0.4, Maintenance: 0.2 },
        rule: { high: { speedAbove: 300, errorBelow: 4 } },
        faults: [
          { machine: 'm-000', feature: 'errorRatePct', kind: 'spikes' },
          { machine: 'm-003', feature: 'packetLossPct', kind: 'stuck' },
        ],
      },
    ];
    for (const profile of ['seed', 'realistic']) {
      expect(text(scenario(phases, { profile })) === text(scenario(phases, { profile }))).toBe(true);
    }
  });

  it('a different seed gives a different stream', () => {
    const phases = [{ name: 'b', samples: 100 }];
    expect(text(scenario(phases, { seed: 1 }))).not.toBe(text(scenario(phases, { seed: 2 })));
  });

  it('uses machineIds and the sample clock options', () => {
    const s = scenario([{ name: 'b', samples: 6 }], { machines: 2, machineIds: ['press-a', 'press-b'] });
    const out = [...generateStream(s, { startTs: 1000, intervalMs: 250 })];
    expect(out.map((x) => `${x.telemetry.machineId}#${x.telemetry.seq}@${x.telemetry.ts}`)).toEqual([
      'press-a#0@1000',
      'press-b#0@1250',
      'press-a#1@1500',
      'press-b#1@1750',
      'press-a#2@2000',
      'press-b#2@2250',
    ]);
  });
});

describe('phaseBounds and phaseChangesAnything', () => {
  it('gives start and exclusive end of each phase', () => {
    const s = scenario([
      { name: 'a', samples: 10 },
      { name: 'b', samples: 5 },
      { name: 'c', samples: 1 },
    ]);
    expect(phaseBounds(s)).toEqual([
      { name: 'a', start: 0, end: 10 },
      { name: 'b', start: 10, end: 15 },
      { name: 'c', start: 15, end: 16 },
    ]);
  });

  it('is false only for phases identical to the baseline', () => {
    const s = scenario([
      { name: 'plain', samples: 1 },
      {
        name: 'no-ops',
        samples: 1,
        rampSamples: 1,
        features: { vibrationHz: { add: 0, mul: 1 } },
        modeShare: { Active: 0.7, Idle: 0.2, Maintenance: 0.1 },
        rule: { high: { speedAbove: 400, errorBelow: 2 } },
        faults: [],
      },
      { name: 'add', samples: 1, features: { vibrationHz: { add: 0.1 } } },
      { name: 'range', samples: 1, features: { powerKw: { range: [1.5, 10] } } },
      { name: 'modes', samples: 1, modeShare: { Active: 0.6, Idle: 0.3, Maintenance: 0.1 } },
      { name: 'rule', samples: 1, rule: { medium: { speedAbove: 150, errorBelow: 5 } } },
      { name: 'fault', samples: 1, faults: [{ machine: 'm-000', feature: 'powerKw', kind: 'stuck' }] },
    ]);
    expect(s.phases.map((p) => phaseChangesAnything(p))).toEqual([
      false,
      false,
      true,
      true,
      true,
      true,
      true,
    ]);
  });
});

describe('invalid scenario files', () => {
  const valid = (): Record<string, unknown> => ({
    seed: 7,
    machines: 4,
    phases: [
      { name: 'base', samples: 10 },
      { name: 'drift', samples: 10 },
    ],
  });
  const withPhase = (phase: Record<string, unknown>): Record<string, unknown> => ({
    ...valid(),
    phases: [
      { name: 'base', samples: 10 },
      { name: 'drift', samples: 10, ...phase },
    ],
  });

  const cases: [string, unknown, RegExp][] = [
    [
      'a non-number mul',
      withPhase({ features: { vibrationHz: { mul: 'x' } } }),
      /phases\[1\]\.features\.vibrationHz\.mul: expected a number/,
    ],
    [
      'an unknown feature',
      withPhase({ features: { vibration: { add: 1 } } }),
      /phases\[1\]\.features\.vibration: unknown feature/,
    ],
    [
      'an unknown operation',
      withPhase({ features: { vibrationHz: { shift: 1 } } }),
      /phases\[1\]\.features\.vibrationHz\.shift: unknown field/,
    ],
    [
      'a missing seed',
      { machines: 4, phases: [{ name: 'a', samples: 1 }] },
      /^invalid scenario: seed: required, expected a number$/,
    ],
    ['zero samples', withPhase({ samples: 0 }), /phases\[1\]\.samples: expected a number >= 1, got 0/],
    [
      'fractional samples',
      withPhase({ samples: 1.5 }),
      /phases\[1\]\.samples: expected an integer, got 1\.5/,
    ],
    [
      'an unknown profile',
      { ...valid(), profile: 'fancy' },
      /profile: expected one of seed, realistic, got "fancy"/,
    ],
    [
      'mode shares not summing to 1',
      withPhase({ modeShare: { Active: 0.5, Idle: 0.3 } }),
      /phases\[1\]\.modeShare: shares must sum to 1/,
    ],
    [
      'an unknown mode',
      withPhase({ modeShare: { Running: 1 } }),
      /phases\[1\]\.modeShare\.Running: unknown field/,
    ],
    [
      'a reversed range',
      withPhase({ features: { powerKw: { range: [5, 1] } } }),
      /phases\[1\]\.features\.powerKw\.range: expected \[min, max\] with min <= max/,
    ],
    [
      'a short range',
      withPhase({ features: { powerKw: { range: [5] } } }),
      /phases\[1\]\.features\.powerKw\.range: expected at least 2 items/,
    ],
    [
      'a non-number rule threshold',
      withPhase({ rule: { high: { speedAbove: '350', errorBelow: 3 } } }),
      /phases\[1\]\.rule\.high\.speedAbove: expected a number, got "350"/,
    ],
    [
      'a ramp longer than its phase',
      withPhase({ rampSamples: 11 }),
      /phases\[1\]\.rampSamples: expected at most samples \(10\)/,
    ],
    [
      'an unknown fault kind',
      withPhase({ faults: [{ machine: 'm-001', feature: 'powerKw', kind: 'melted' }] }),
      /phases\[1\]\.faults\[0\]\.kind: expected one of stuck, spikes/,
    ],
    [
      'a fault on an unknown machine',
      withPhase({ faults: [{ machine: 'm-009', feature: 'powerKw', kind: 'stuck' }] }),
      /phases\[1\]\.faults\[0\]\.machine: unknown machine "m-009"/,
    ],
    [
      'a fault on an unknown feature',
      withPhase({ faults: [{ machine: 'm-001', feature: 'power', kind: 'stuck' }] }),
      /phases\[1\]\.faults\[0\]\.feature: expected one of temperatureC/,
    ],
    [
      'a spike probability above 1',
      withPhase({ faults: [{ machine: 'm-001', feature: 'powerKw', kind: 'spikes', probability: 2 }] }),
      /phases\[1\]\.faults\[0\]\.probability: expected a number <= 1, got 2/,
    ],
    [
      'a stuck value outside the valid limits',
      withPhase({ faults: [{ machine: 'm-001', feature: 'temperatureC', kind: 'stuck', value: 900 }] }),
      /phases\[1\]\.faults\[0\]\.value: expected a value within the valid limits of temperatureC/,
    ],
    ['too few machine ids', { ...valid(), machineIds: ['a', 'b'] }, /machineIds: expected 4 ids/],
    [
      'duplicate machine ids',
      { ...valid(), machines: 2, machineIds: ['a', 'a'] },
      /machineIds\[1\]: duplicate machine id "a"/,
    ],
    [
      'a machine id with a topic separator',
      { ...valid(), machines: 1, machineIds: ['a/b'] },
      /machineIds\[0\]: machineId must be/,
    ],
    ['no phases', { ...valid(), phases: [] }, /phases: expected at least 1 item$/],
    ['an unknown top-level field', { ...valid(), phasez: [] }, /phasez: unknown field/],
    ['a non-object', 42, /scenario: expected an object, got 42/],
    ['zero machines', { ...valid(), machines: 0 }, /machines: expected a number >= 1, got 0/],
  ];

  for (const [what, input, message] of cases) {
    it(`refuses ${what}`, () => {
      let error: unknown;
      try {
        parseScenario(input);
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(ValidationError);
      expect((error as ValidationError).message).toMatch(message);
    });
  }

  it('names every problem at once', () => {
    expect(() => parseScenario(withPhase({ samples: -1, features: { vibrationHz: { add: 'a' } } }))).toThrow(
      /phases\[1\]\.samples: .*; phases\[1\]\.features\.vibrationHz\.add: expected a number/,
    );
  });

  it('loadScenarioFile names the file for bad JSON and bad fields', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sim-scenario-'));
    const broken = join(dir, 'broken.json');
    writeFileSync(broken, '{"seed": 1,');
    await expect(loadScenarioFile(broken)).rejects.toThrow(/broken\.json is not valid JSON/);
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify(withPhase({ features: { vibrationHz: { mul: 'x' } } })));
    await expect(loadScenarioFile(bad)).rejects.toThrow(
      /bad\.json: invalid scenario: phases\[1\]\.features\.vibrationHz\.mul: expected a number/,
    );
    await expect(loadScenarioFile(join(dir, 'missing.json'))).rejects.toThrow(
      /cannot read scenario file .*missing\.json/,
    );
  });
});

describe('shipped scenarios', () => {
  const files = readdirSync(SCENARIO_DIR).filter((f) => f.endsWith('.json'));
  const load = (name: string): Promise<Scenario> => loadScenarioFile(new URL(name, SCENARIO_DIR).pathname);

  it('include the documented set', () => {
    for (const name of [
      'stationary',
      'sudden-shift',
      'gradual-drift',
      'concept-drift',
      'sensor-fault',
      'half-sd-shift',
      'demo',
    ]) {
      expect(files).toContain(`${name}.json`);
    }
  });

  for (const file of files) {
    it(`${file} parses, starts stationary and yields valid records`, async () => {
      const s = await load(file);
      expect(phaseChangesAnything(s.phases[0] as Scenario['phases'][number])).toBe(false);
      let n = 0;
      for (const x of generateStream(s)) {
        const r = validateObject('telemetry', x.telemetry);
        if (!r.ok) expect.fail(`${file} sample ${x.index}: ${r.detail}`);
        if (++n >= 2000) break;
      }
    });
  }

  it('match their descriptions', async () => {
    const stationary = await load('stationary.json');
    expect(stationary.phases).toHaveLength(1);
    expect(stationary.phases[0]?.samples).toBeGreaterThanOrEqual(1_000_000);

    const sudden = await load('sudden-shift.json');
    expect(sudden.phases[0]?.samples).toBe(20_000);
    expect(sudden.phases[1]?.rampSamples ?? 0).toBe(0);
    expect(phaseChangesAnything(sudden.phases[1] as Scenario['phases'][number])).toBe(true);

    const gradual = await load('gradual-drift.json');
    expect(gradual.phases[1]?.rampSamples).toBeGreaterThan(0);

    const concept = await load('concept-drift.json');
    expect(concept.phases[1]?.rule).toBeDefined();
    expect(concept.phases[1]?.features).toBeUndefined();
    expect(concept.phases[1]?.modeShare).toBeUndefined();

    const fault = await load('sensor-fault.json');
    expect(new Set(fault.phases[1]?.faults?.map((f) => f.machine))).toEqual(new Set(['m-002']));

    const half = await load('half-sd-shift.json');
    expect(half.phases[1]?.features?.temperatureC?.add).toBeCloseTo(60 / Math.sqrt(12) / 2, 2);

    const demo = await load('demo.json');
    expect(demo.phases.map((p) => p.samples)).toEqual([10_000, 30_000]);
    expect(demo.phases[1]?.rule).toBeDefined();
  });
});
