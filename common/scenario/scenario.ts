import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { ValidationError } from '../errors.ts';
import { FEATURES, OPERATION_MODES, VALID_LIMITS, type Feature } from '../schema/features.ts';
import { machineIdSchema } from '../schema/telemetry.ts';
import { DEFAULT_MODE_SHARE, PROFILE_NAMES, type ProfileName } from './profiles.ts';
import { describeIssues } from './issues.ts';
import { SEED_RULE, sameRule, type LabelRule } from './rule.ts';

/**
 * Drift scenario files: a seed, the machines, a profile and a list of phases.
 * Every phase states its settings relative to the profile's defaults (a phase
 * without changes is back to baseline); see `scenarios/README.md`.
 */

/** Most machines one scenario may simulate. */
export const MAX_MACHINES = 10_000;

const featureChangeSchema = z.strictObject({
  /** Added last. */
  add: z.number().optional(),
  /** Multiplies the value drawn from the range. */
  mul: z.number().optional(),
  /** Replaces the uniform range [min, max]. */
  range: z
    .tuple([z.number(), z.number()])
    .refine(([lo, hi]) => lo <= hi, 'expected [min, max] with min <= max')
    .optional(),
});
export type FeatureChange = z.infer<typeof featureChangeSchema>;

const featuresSchema = z.strictObject(
  Object.fromEntries(FEATURES.map((f) => [f, featureChangeSchema.optional()])) as {
    [K in Feature]: z.ZodOptional<typeof featureChangeSchema>;
  },
);

const modeShareSchema = z
  .strictObject(
    Object.fromEntries(OPERATION_MODES.map((m) => [m, z.number().min(0).max(1).optional()])) as {
      [K in (typeof OPERATION_MODES)[number]]: z.ZodOptional<z.ZodNumber>;
    },
  )
  .refine((s) => Math.abs(OPERATION_MODES.reduce((sum, m) => sum + (s[m] ?? 0), 0) - 1) < 1e-6, {
    message: 'shares must sum to 1 (a missing mode counts as 0)',
  });

const thresholdsSchema = z.strictObject({ speedAbove: z.number(), errorBelow: z.number() });
const ruleSchema = z.strictObject({ high: thresholdsSchema.optional(), medium: thresholdsSchema.optional() });

const faultBase = { machine: machineIdSchema, feature: z.enum(FEATURES) };
const faultSchema = z
  .discriminatedUnion('kind', [
    /** The sensor reports a constant: `value`, or the last reading before the fault. */
    z.strictObject({ ...faultBase, kind: z.literal('stuck'), value: z.number().optional() }),
    /**
     * With `probability` (default 0.02) per reading, add ±`magnitude` (default: the width of the feature's
     * seed range).
     */
    z.strictObject({
      ...faultBase,
      kind: z.literal('spikes'),
      probability: z.number().min(0).max(1).optional(),
      magnitude: z.number().min(0).optional(),
    }),
  ])
  .superRefine((f, ctx) => {
    if (f.kind === 'stuck' && f.value !== undefined) {
      const [lo, hi] = VALID_LIMITS[f.feature];
      if (f.value < lo || f.value > hi)
        ctx.addIssue({
          code: 'custom',
          path: ['value'],
          message: `expected a value within the valid limits of ${f.feature} [${lo}, ${hi}]`,
        });
    }
  });
export type Fault = z.infer<typeof faultSchema>;

const phaseSchema = z
  .strictObject({
    name: z.string().min(1),
    description: z.string().optional(),
    /** Messages in this phase, across all machines. */
    samples: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
    /** Blend in this phase's settings linearly over its first rampSamples samples. */
    rampSamples: z.number().int().min(0).optional(),
    features: featuresSchema.optional(),
    modeShare: modeShareSchema.optional(),
    rule: ruleSchema.optional(),
    faults: z.array(faultSchema).optional(),
  })
  .superRefine((p, ctx) => {
    if (p.rampSamples !== undefined && p.rampSamples > p.samples) {
      ctx.addIssue({
        code: 'custom',
        path: ['rampSamples'],
        message: `expected at most samples (${p.samples})`,
      });
    }
  });

export const scenarioSchema = z
  .strictObject({
    description: z.string().optional(),
    /** Seeds every random stream: the same file always yields the same stream. */
    seed: z
      .number()
      .int()
      .min(-(2 ** 31))
      .max(2 ** 32 - 1),
    machines: z.number().int().min(1).max(MAX_MACHINES),
    profile: z.enum(PROFILE_NAMES).default('seed'),
    /** Default `m-000`, `m-001`, … */
    machineIds: z.array(machineIdSchema).optional(),
    phases: z.array(phaseSchema).min(1),
  })
  .superRefine((s, ctx) => {
    const ids = s.machineIds ?? defaultMachineIds(s.machines);
    if (s.machineIds !== undefined) {
      if (s.machineIds.length !== s.machines) {
        ctx.addIssue({
          code: 'custom',
          path: ['machineIds'],
          message: `expected ${s.machines} ids (one per machine), got ${s.machineIds.length}`,
        });
      }
      const seen = new Set<string>();
      s.machineIds.forEach((id, i) => {
        if (seen.has(id))
          ctx.addIssue({
            code: 'custom',
            path: ['machineIds', i],
            message: `duplicate machine id ${JSON.stringify(id)}`,
          });
        seen.add(id);
      });
    }
    const known = new Set(ids);
    s.phases.forEach((p, i) =>
      p.faults?.forEach((f, j) => {
        if (!known.has(f.machine)) {
          ctx.addIssue({
            code: 'custom',
            path: ['phases', i, 'faults', j, 'machine'],
            message: `unknown machine ${JSON.stringify(f.machine)} (machines are ${describeIds(ids)})`,
          });
        }
      }),
    );
  });

export type Scenario = z.infer<typeof scenarioSchema>;
export type ScenarioPhase = Scenario['phases'][number];

/** `m-000`, `m-001`, … */
export function defaultMachineIds(machines: number): string[] {
  return Array.from({ length: machines }, (_, i) => `m-${String(i).padStart(3, '0')}`);
}

/** The scenario's machine ids, in round-robin order. */
export function machineIdsOf(scenario: Scenario): string[] {
  return scenario.machineIds ?? defaultMachineIds(scenario.machines);
}

/**
 * Validates a parsed scenario file. Throws a {@link ValidationError} whose
 * message names every bad field, e.g.
 * `invalid scenario: phases[1].features.vibrationHz.mul: expected a number, got "x"`.
 */
export function parseScenario(json: unknown): Scenario {
  const result = scenarioSchema.safeParse(json, { reportInput: true });
  if (result.success) return result.data;
  throw new ValidationError(
    'invalid_scenario',
    `invalid scenario: ${describeIssues(result.error.issues, 'scenario').join('; ')}`,
  );
}

/** Reads, parses and validates a scenario file; errors name the file and the field. */
export async function loadScenarioFile(path: string): Promise<Scenario> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ValidationError('unreadable', `cannot read scenario file ${path}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ValidationError(
      'not_json',
      `scenario file ${path} is not valid JSON: ${(err as Error).message}`,
    );
  }
  try {
    return parseScenario(json);
  } catch (err) {
    if (err instanceof ValidationError) throw new ValidationError(err.reason, `${path}: ${err.message}`);
    throw err;
  }
}

/** The default profile forever: one endless baseline phase. */
export function defaultScenario(options: {
  machines: number;
  profile?: ProfileName;
  seed?: number;
  machineIds?: string[];
}): Scenario {
  return parseScenario({
    seed: options.seed ?? 1,
    machines: options.machines,
    profile: options.profile ?? 'seed',
    ...(options.machineIds ? { machineIds: options.machineIds } : {}),
    phases: [{ name: 'baseline', samples: Number.MAX_SAFE_INTEGER }],
  });
}

/**
 * True when the phase's inputs or labels differ from the profile's baseline:
 * a feature change (add ≠ 0, mul ≠ 1, or a range), mode shares other than
 * 70/20/10, a rule other than the seed rule, or a fault. Phases for which this is
 * false are stationary: an alarm raised in one counts as a false alarm.
 */
export function phaseChangesAnything(phase: ScenarioPhase): boolean {
  const features = Object.values(phase.features ?? {}).some(
    (c) => c !== undefined && ((c.add ?? 0) !== 0 || (c.mul ?? 1) !== 1 || c.range !== undefined),
  );
  const share = phase.modeShare;
  const modes =
    share !== undefined &&
    OPERATION_MODES.some((m, i) => Math.abs((share[m] ?? 0) - (DEFAULT_MODE_SHARE[i] ?? 0)) > 1e-9);
  const rule = !sameRule(ruleOf(phase), SEED_RULE);
  return features || modes || rule || (phase.faults?.length ?? 0) > 0;
}

/** The phase's labelling rule: its `rule` with missing parts from the seed rule. */
export function ruleOf(phase: Pick<ScenarioPhase, 'rule'>): LabelRule {
  return { high: phase.rule?.high ?? SEED_RULE.high, medium: phase.rule?.medium ?? SEED_RULE.medium };
}

function describeIds(ids: readonly string[]): string {
  return ids.length <= 6 ? ids.join(', ') : `${ids.slice(0, 3).join(', ')}, …, ${ids[ids.length - 1]}`;
}
