import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../common/errors.ts';
import { generateStream } from '../../common/scenario/generator.ts';
import { loadScenarioFile, parseScenario } from '../../common/scenario/scenario.ts';
import { telemetrySchema } from '../../common/schema/telemetry.ts';
import { FUZZ_RUNS, FUZZ_SEED } from './runs.ts';

/**
 * Bad scenario files (issue 10, "Bad input"), FUZZ_RUNS generated: the bundled scenarios with one value
 * anywhere in them replaced, deleted or duplicated, arbitrary JSON, and raw text. Promised, and asserted:
 * each is either refused with a ValidationError naming the problem (never another exception), or accepted
 * — and then it generates valid telemetry. The bundled scenarios parse after all of it.
 */
const DIR = path.resolve('scenarios');
const bundled = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .map((f) => JSON.parse(readFileSync(path.join(DIR, f), 'utf8')) as unknown);

/** Every path (as keys) to a value inside `v`. */
function paths(v: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  if (v === null || typeof v !== 'object') return [prefix];
  const entries = Array.isArray(v) ? v.map((x, i) => [i, x] as const) : Object.entries(v);
  return [prefix, ...entries.flatMap(([k, x]) => paths(x, [...prefix, k]))];
}

function mutate(root: unknown, at: (string | number)[], how: number, value: unknown): unknown {
  if (at.length === 0) return value;
  const copy = structuredClone(root) as Record<string | number, unknown>;
  let parent: Record<string | number, unknown> = copy;
  for (const k of at.slice(0, -1)) parent = parent[k] as Record<string | number, unknown>;
  const last = at.at(-1) as string | number;
  if (how === 0 && !Array.isArray(parent)) delete parent[last];
  else if (how === 1 && Array.isArray(parent)) parent.push(structuredClone(parent[last as number]));
  else parent[last] = value;
  return copy;
}

const weird = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(
    -1,
    0,
    1e308,
    -1e308,
    1.5,
    Number.MAX_SAFE_INTEGER,
    '',
    'x'.repeat(1000),
    null,
    true,
    [],
    {},
  ),
);

const mutated: fc.Arbitrary<unknown> = fc
  .tuple(fc.nat({ max: bundled.length - 1 }), fc.nat(), fc.nat({ max: 3 }), weird)
  .map(([b, p, how, value]) => {
    const doc = bundled[b];
    const all = paths(doc);
    return mutate(doc, all[p % all.length] ?? [], how, value);
  });

function check(scenarioOrError: () => unknown): void {
  let scenario;
  try {
    scenario = scenarioOrError();
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as Error).message.length).toBeGreaterThan(0);
    return;
  }
  // Accepted: the first samples it generates are valid telemetry.
  let n = 0;
  for (const s of generateStream(scenario as Parameters<typeof generateStream>[0])) {
    expect(telemetrySchema.safeParse(s.telemetry).success).toBe(true);
    if (++n >= 5) break;
  }
}

describe(`bad scenario files (${FUZZ_RUNS} generated)`, () => {
  it('refuses each with a ValidationError, or accepts one that generates valid telemetry', () => {
    fc.assert(
      fc.property(fc.oneof(mutated, mutated, fc.jsonValue({ maxDepth: 3 })), (doc) => {
        check(() => parseScenario(doc));
      }),
      { numRuns: FUZZ_RUNS, seed: FUZZ_SEED },
    );
    for (const doc of bundled) expect(() => parseScenario(doc)).not.toThrow();
  });

  it('refuses raw text that is not a scenario with a ValidationError when read from a file', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'driftline-fuzz-scenario-'));
    try {
      const file = path.join(dir, 'scenario.json');
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            fc.string({ unit: 'binary', maxLength: 300 }),
            mutated.map((d) => JSON.stringify(d)),
            mutated.map((d) => JSON.stringify(d).slice(0, -1)),
          ),
          async (text) => {
            await writeFile(file, text);
            let parsed: unknown;
            try {
              parsed = await loadScenarioFile(file);
            } catch (err) {
              expect(err).toBeInstanceOf(ValidationError);
              return;
            }
            check(() => parsed);
          },
        ),
        { numRuns: Math.max(10, Math.floor(FUZZ_RUNS / 10)), seed: FUZZ_SEED },
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
