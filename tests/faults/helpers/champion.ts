import { DEFAULT_SCENARIO_FILE, runBootstrapTraining } from '../../../common/model/bootstrap.ts';

/**
 * The fault suites' champion: the bootstrap model on the stationary scenario, small (4,000 samples,
 * 8 epochs, seed 1) so each suite trains it in seconds. Written to `out`.
 */
export async function trainSmallChampion(out: string): Promise<void> {
  await runBootstrapTraining({
    out,
    scenarioFile: DEFAULT_SCENARIO_FILE,
    samples: 4_000,
    epochs: 8,
    seed: 1,
    holdout: 1_000,
    force: true,
  });
}
