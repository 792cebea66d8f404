import { FEATURES, OPERATION_MODES, VALID_LIMITS, type Feature } from '../schema/features.ts';
import type { Label, Telemetry } from '../schema/telemetry.ts';
import { Rng } from '../util/rng.ts';
import {
  DEFAULT_MODE_SHARE,
  SEED_WIDTHS,
  STREAMS,
  createProfile,
  defaultFeatureDists,
  deriveSeed,
  vec9,
  type FeatureDist,
  type PhaseSettings,
  type Vec9,
} from './profiles.ts';
import { classify, sameRule, type LabelRule } from './rule.ts';
import { machineIdsOf, ruleOf, type Scenario, type ScenarioPhase } from './scenario.ts';

export { labelFor, SEED_RULE, type LabelRule } from './rule.ts';

/**
 * Turns a scenario into its deterministic stream of telemetry and labels:
 * sample i goes to machine i % machines (round robin), its `seq` is that
 * machine's counter from 0 and its `ts` follows a sample clock, so the same
 * scenario always yields the same records, byte for byte.
 *
 * Per sample: pick the operation mode, draw the features (profile), apply
 * sensor faults to the reading, clamp to VALID_LIMITS, round to 4 decimals,
 * and label the noise-free, fault-free values with the phase's rule.
 */
export interface GeneratedSample {
  /** Position in the whole stream, from 0. */
  index: number;
  phaseIndex: number;
  phaseName: string;
  telemetry: Telemetry;
  label: Label;
}

export interface GenerateOptions {
  /** Timestamp of sample 0, epoch ms. Default 1_700_000_000_000. */
  startTs?: number;
  /** Sample clock step, ms (may be fractional; ts is rounded). Default 1000 / (2 × machines): 2 Hz per machine. */
  intervalMs?: number;
}

export const DEFAULT_START_TS = 1_700_000_000_000;

/** Where each phase starts and ends in the stream (`end` exclusive). */
export function phaseBounds(scenario: Scenario): { name: string; start: number; end: number }[] {
  let start = 0;
  return scenario.phases.map((p) => {
    const bounds = { name: p.name, start, end: start + p.samples };
    start += p.samples;
    return bounds;
  });
}

const LIMIT_LO: readonly number[] = FEATURES.map((f) => VALID_LIMITS[f][0]);
const LIMIT_HI: readonly number[] = FEATURES.map((f) => VALID_LIMITS[f][1]);
const SPEED = FEATURES.indexOf('productionSpeedUph');
const ERROR = FEATURES.indexOf('errorRatePct');
/** Default spike probability per reading. */
export const DEFAULT_SPIKE_PROBABILITY = 0.02;

/** Clamps feature i to its valid limits and rounds to 4 decimals. */
function finish(v: number, i: number): number {
  const lo = LIMIT_LO[i] as number;
  const hi = LIMIT_HI[i] as number;
  const c = v < lo ? lo : v > hi ? hi : v;
  return Math.round(c * 1e4) / 1e4;
}

interface CompiledFault {
  feature: number;
  kind: 'stuck' | 'spikes';
  /** Stuck value; undefined until captured from the last reading. */
  value: number | undefined;
  probability: number;
  magnitude: number;
}

interface CompiledPhase {
  name: string;
  samples: number;
  ramp: number;
  settings: PhaseSettings;
  /** Faults per machine index. */
  faults: (CompiledFault[] | undefined)[];
}

/** The fully resolved settings of a phase (profile defaults where the phase says nothing). */
export function settingsOf(phase: Pick<ScenarioPhase, 'features' | 'modeShare' | 'rule'>): PhaseSettings {
  const features = defaultFeatureDists();
  for (const [name, change] of Object.entries(phase.features ?? {})) {
    const d = features[FEATURES.indexOf(name as Feature)];
    if (!d || !change) continue;
    if (change.range) [d.lo, d.hi] = change.range;
    d.mul = change.mul ?? 1;
    d.add = change.add ?? 0;
  }
  let modeShare = [...DEFAULT_MODE_SHARE];
  if (phase.modeShare) {
    const share = phase.modeShare;
    const raw = OPERATION_MODES.map((m) => share[m] ?? 0);
    const sum = raw.reduce((a, b) => a + b, 0);
    modeShare = raw.map((x) => x / sum);
  }
  return { features, modeShare, rule: ruleOf(phase) };
}

function compile(scenario: Scenario, machineIds: readonly string[]): CompiledPhase[] {
  return scenario.phases.map((p) => {
    const faults: (CompiledFault[] | undefined)[] = machineIds.map(() => undefined);
    for (const f of p.faults ?? []) {
      const m = machineIds.indexOf(f.machine);
      const feature = FEATURES.indexOf(f.feature);
      const compiled: CompiledFault =
        f.kind === 'stuck'
          ? { feature, kind: 'stuck', value: f.value, probability: 0, magnitude: 0 }
          : {
              feature,
              kind: 'spikes',
              value: undefined,
              probability: f.probability ?? DEFAULT_SPIKE_PROBABILITY,
              magnitude: f.magnitude ?? (SEED_WIDTHS[feature] as number),
            };
      (faults[m] ??= []).push(compiled);
    }
    return { name: p.name, samples: p.samples, ramp: p.rampSamples ?? 0, settings: settingsOf(p), faults };
  });
}

/** Linear blend of two settings' distributions and mode shares into `out` (f = 0 gives `a`, 1 gives `b`). */
function blend(a: PhaseSettings, b: PhaseSettings, f: number, out: PhaseSettings): void {
  for (let i = 0; i < 9; i++) {
    const x = a.features[i] as FeatureDist;
    const y = b.features[i] as FeatureDist;
    const o = out.features[i] as FeatureDist;
    o.lo = x.lo + (y.lo - x.lo) * f;
    o.hi = x.hi + (y.hi - x.hi) * f;
    o.mul = x.mul + (y.mul - x.mul) * f;
    o.add = x.add + (y.add - x.add) * f;
  }
  for (let i = 0; i < out.modeShare.length; i++) {
    const x = a.modeShare[i] as number;
    out.modeShare[i] = x + ((b.modeShare[i] as number) - x) * f;
  }
}

/** Index of the mode that a uniform `r` in [0, 1) picks under `shares` (which sum to 1). */
function pickMode(shares: readonly number[], r: number): number {
  let acc = 0;
  let last = 0;
  for (let i = 0; i < shares.length; i++) {
    const s = shares[i] as number;
    if (s <= 0) continue;
    acc += s;
    last = i;
    if (r < acc) return i;
  }
  return last;
}

/** Applies a machine's faults to its reading (before clamping). */
function applyFaults(
  faults: readonly CompiledFault[],
  reading: Vec9,
  last: readonly number[],
  offset: number,
  rng: Rng,
): void {
  for (const fault of faults) {
    const i = fault.feature;
    if (fault.kind === 'stuck') {
      const previous = last[offset + i] as number;
      fault.value ??= Number.isNaN(previous) ? (reading[i] as number) : previous;
      reading[i] = fault.value;
    } else if (rng.next() < fault.probability) {
      reading[i] = (reading[i] as number) + (rng.next() < 0.5 ? -fault.magnitude : fault.magnitude);
    }
  }
}

/**
 * The scenario's samples in order. Finite for every parsed scenario (the
 * default-profile scenario is practically endless); stop early by breaking out.
 */
export function* generateStream(
  scenario: Scenario,
  options: GenerateOptions = {},
): Generator<GeneratedSample> {
  const machineIds = machineIdsOf(scenario);
  const n = machineIds.length;
  const startTs = options.startTs ?? DEFAULT_START_TS;
  const intervalMs = options.intervalMs ?? 1000 / (2 * n);
  const profile = createProfile(scenario.profile, scenario.seed, n);
  const modeRng = new Rng(deriveSeed(scenario.seed, STREAMS.modes));
  const faultRng = new Rng(deriveSeed(scenario.seed, STREAMS.faults));
  const ruleRng = new Rng(deriveSeed(scenario.seed, STREAMS.rule));
  const phases = compile(scenario, machineIds);
  const ramping = settingsOf({});
  const truth = vec9();
  const reading = vec9();
  const out = vec9();
  /** Last published reading of machine m at [9m, 9m + 9), for stuck faults without a value; NaN before the first. */
  const last: number[] = new Array<number>(9 * n).fill(Number.NaN);

  let previous = settingsOf({});
  let index = 0;
  for (let p = 0; p < phases.length; p++) {
    const phase = phases[p] as CompiledPhase;
    const target = phase.settings;
    const ruleChanges = !sameRule(previous.rule, target.rule);
    for (let j = 0; j < phase.samples; j++, index++) {
      const machine = index % n;
      let settings = target;
      let rule: LabelRule = target.rule;
      if (j < phase.ramp) {
        const f = j / phase.ramp;
        blend(previous, target, f, ramping);
        settings = ramping;
        if (ruleChanges && ruleRng.next() >= f) rule = previous.rule;
      }
      const mode = pickMode(settings.modeShare, modeRng.next());
      profile.sample(machine, mode, settings, truth, reading);
      const faults = phase.faults[machine];
      const offset = 9 * machine;
      if (faults) applyFaults(faults, reading, last, offset, faultRng);
      for (let i = 0; i < 9; i++) last[offset + i] = out[i] = finish(reading[i] as number, i);

      const machineId = machineIds[machine] as string;
      const seq = Math.floor(index / n);
      const telemetry: Telemetry = {
        machineId,
        seq,
        ts: Math.round(startTs + index * intervalMs),
        operationMode: OPERATION_MODES[mode] ?? 'Active',
        temperatureC: out[0],
        vibrationHz: out[1],
        powerKw: out[2],
        networkLatencyMs: out[3],
        packetLossPct: out[4],
        defectRatePct: out[5],
        productionSpeedUph: out[6],
        maintenanceScore: out[7],
        errorRatePct: out[8],
      };
      const efficiency = classify(
        finish(truth[SPEED] as number, SPEED),
        finish(truth[ERROR] as number, ERROR),
        rule,
      );
      yield { index, phaseIndex: p, phaseName: phase.name, telemetry, label: { machineId, seq, efficiency } };
    }
    previous = target;
  }
}
