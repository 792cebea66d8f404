import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { replayScenario, type ReplayResult } from '../../bin/lib/replay.ts';
import { loadTf, type Tf } from '../../common/model/tf.ts';
import { DEFAULT_SCENARIO_FILE, runBootstrapTraining } from '../../common/model/bootstrap.ts';
import { parseScenario } from '../../common/scenario/scenario.ts';

/**
 * The closed loop end to end, in process, on the sample clock: a seeded
 * concept-drift scenario runs through the classifier, the accuracy monitor, the
 * episode manager, the retrainer (real tfjs training, warm-started), the
 * promotion gate, the directory registry and the hot swap.
 */
const scenario = parseScenario({
  seed: 5,
  machines: 4,
  profile: 'seed',
  phases: [
    { name: 'baseline', samples: 6000 },
    {
      name: 'new-spec',
      samples: 16000,
      rule: { high: { speedAbove: 350, errorBelow: 3 }, medium: { speedAbove: 150, errorBelow: 6 } },
    },
  ],
});

let dir: string;
let tf: Tf;
let withLoop: ReplayResult;
let withoutLoop: ReplayResult;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'driftline-loop-'));
  tf = (await loadTf()).tf;
  const champion = path.join(dir, 'champion');
  // A smaller bootstrap than `npm start`'s 40,000 samples: the loop behaves as with 20,000 (the same
  // alarm delay and healing, well inside the bounds below) and the test runs faster.
  await runBootstrapTraining({
    out: champion,
    scenarioFile: DEFAULT_SCENARIO_FILE,
    samples: 8_000,
    epochs: 20,
    seed: 1,
    holdout: 2_000,
    force: true,
  });
  const common = { scenario, championDir: champion, tf, labelDelaySamples: 50, retrainLatencySamples: 1_000 };
  withoutLoop = await replayScenario({ ...common, retrain: false });
  withLoop = await replayScenario({ ...common, retrain: true });
}, 120_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('self-healing loop (in process, sample clock)', () => {
  it('raises a concept alarm soon after the rule changes, and none before', () => {
    expect(withLoop.falseAlarms).toBe(0);
    const first = withLoop.alarms[0];
    expect(first?.kind).toBe('concept');
    expect((first?.at ?? 0) - 6000).toBeGreaterThanOrEqual(0);
    expect((first?.at ?? Infinity) - 6000).toBeLessThan(1500);
  });

  it('retrains once per episode, in two stages: stage 1 promoted and serving, stage 2 judged against it', () => {
    expect(withLoop.retrains.map((r) => [r.stage, r.minSamples])).toEqual([
      [1, 600],
      [2, 2_000],
    ]);
    const [one, two] = withLoop.retrains;
    expect(one?.promoted).toBe(true);
    expect(one?.challenger?.accuracy ?? 0).toBeGreaterThan(one?.champion?.accuracy ?? 1);
    expect(one?.swappedAt).toBeGreaterThan(6000);
    // Stage 2 waited for more data and was scored against the stage-1 champion (v2) on its own holdout:
    // promoted only if better.
    expect(two?.trainedOn?.samples ?? 0).toBeGreaterThanOrEqual(2_000);
    expect(two?.requestedAt).toBe(one?.trainedAt);
    if (two?.promoted) expect(two.challenger?.accuracy ?? 0).toBeGreaterThan(two.champion?.accuracy ?? 1);
    expect(withLoop.championVersions.map((v) => v.version)).toEqual(
      two?.promoted ? ['1', '2', '3'] : ['1', '2'],
    );
  });

  it('recovers accuracy: healed within 10,000 samples, better than without retraining', () => {
    const healed = withLoop.healing.find((h) => h.name === 'new-spec');
    const unhealed = withoutLoop.healing.find((h) => h.name === 'new-spec');
    expect(healed?.samplesToHeal).not.toBeNull();
    expect(healed?.samplesToHeal ?? Infinity).toBeLessThanOrEqual(10_000);
    expect(unhealed?.samplesToHeal).toBeNull();
    expect((healed?.accuracy ?? 0) - (unhealed?.accuracy ?? 1)).toBeGreaterThan(0.05);
  });
});
