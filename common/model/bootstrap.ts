import { existsSync } from 'node:fs';
import path from 'node:path';
import { ConfigError, ValidationError } from '../errors.ts';
import { projectPath } from '../paths.ts';
import { silentLogger, type Logger } from '../logging/logger.ts';
import { generateStream } from '../scenario/generator.ts';
import { defaultScenario, loadScenarioFile, type Scenario } from '../scenario/scenario.ts';
import { VERSION } from '../version.ts';
import { saveArtifact } from './artifact.ts';
import { evaluateModel, trainClassifier } from './classifier.ts';
import { loadTf } from './tf.ts';
import type { EvalMetrics, LabelledRow, ModelMetadata } from './types.ts';

/**
 * The bootstrap champion: the first model, trained on simulated data from the
 * first phase of a scenario (by default the stationary one), written as an
 * artifact and scored on a held-out stream of the scenario's profile at
 * baseline, generated with a different seed. `npm run train`
 * (`edge-inference/src/train-cli.ts`) and the all-in-one runner
 * (`common/registry/bootstrap.ts`) both train it with this module.
 */

/** The scenario used when `--scenario-file` is not given (relative to the repository root). */
export const DEFAULT_SCENARIO_FILE = projectPath('scenarios', 'stationary.json');

/** What {@link runBootstrapTraining} trains from and where it writes (the flags of `npm run train`). */
export interface BootstrapTrainingOptions {
  /** Artifact directory to write. */
  out: string;
  /** Training data: the first phase of this scenario. */
  scenarioFile: string;
  /** Training + validation samples (at most the first phase's). */
  samples: number;
  epochs: number;
  /** Training seed: split, shuffling, initialisation. */
  seed: number;
  /** Held-out samples for the final score. */
  holdout: number;
  /** Replace `out` if it exists. */
  force: boolean;
}

/** What {@link runBootstrapTraining} reports. */
export interface BootstrapResult {
  out: string;
  metadata: ModelMetadata;
  backend: string;
  /** Held-out quality. */
  holdout: EvalMetrics;
  holdoutSeed: number;
  generateMs: number;
  trainMs: number;
}

/** Takes up to `limit` labelled rows from the first phase of `scenario`. */
export function firstPhaseRows(scenario: Scenario, limit: number): LabelledRow[] {
  const rows: LabelledRow[] = [];
  if (limit <= 0) return rows;
  for (const s of generateStream(scenario)) {
    if (s.phaseIndex !== 0) break;
    rows.push({ row: s.telemetry, label: s.label.efficiency });
    if (rows.length >= limit) break;
  }
  return rows;
}

/** A seed for the held-out stream that differs from the training scenario's. */
export function holdoutSeedFor(seed: number): number {
  const s = (seed + 1_000_003) % 2 ** 31;
  return s === seed ? s + 1 : s;
}

/**
 * Trains the bootstrap champion and writes its artifact (version `bootstrap`).
 * Throws `ConfigError` for a bad scenario file or an existing `out` without `force`.
 */
export async function runBootstrapTraining(
  options: BootstrapTrainingOptions,
  logger: Logger = silentLogger(),
): Promise<BootstrapResult> {
  let scenario: Scenario;
  try {
    scenario = await loadScenarioFile(options.scenarioFile);
  } catch (err) {
    // A bad scenario file is a configuration mistake: one readable line, exit 2.
    if (err instanceof ValidationError) throw new ConfigError(err.message);
    throw err;
  }
  const out = path.resolve(options.out);
  // Fail before spending the training time.
  if (!options.force && existsSync(out))
    throw new ConfigError(`${out} already exists (pass --force to replace it)`);
  const { tf, backend } = await loadTf(logger);
  const first = scenario.phases[0];
  let started = performance.now();
  const data = firstPhaseRows(scenario, options.samples);
  if (first && data.length < options.samples)
    logger.warn(`the first phase (${first.name}) has only ${data.length} samples; training on those`, {
      requested: options.samples,
    });
  const holdoutSeed = holdoutSeedFor(scenario.seed);
  const holdoutScenario = defaultScenario({
    machines: scenario.machines,
    profile: scenario.profile,
    seed: holdoutSeed,
  });
  const holdoutRows = firstPhaseRows(holdoutScenario, options.holdout);
  const generateMs = performance.now() - started;
  logger.info('training bootstrap model', {
    scenario: options.scenarioFile,
    phase: first?.name,
    samples: data.length,
    epochs: options.epochs,
    seed: options.seed,
    backend,
  });

  started = performance.now();
  const trained = await trainClassifier(tf, data, {
    epochs: options.epochs,
    seed: options.seed,
    onEpoch: (epoch, log) => {
      logger.debug(`epoch ${epoch}/${options.epochs}`, {
        epoch,
        loss: log.loss,
        valAccuracy: log.valAccuracy,
        valMacroF1: log.valMacroF1,
      });
    },
  });
  const trainMs = performance.now() - started;
  try {
    const holdout = evaluateModel(tf, trained.model, trained.scaler, holdoutRows);
    const metadata = await saveArtifact(
      out,
      trained,
      {
        version: 'bootstrap',
        source: {
          kind: 'bootstrap',
          scenarioFile: options.scenarioFile,
          scenarioSeed: scenario.seed,
          profile: scenario.profile,
          phase: first?.name,
          samples: data.length,
          holdout: {
            seed: holdoutSeed,
            samples: holdoutRows.length,
            accuracy: holdout.accuracy,
            macroF1: holdout.macroF1,
          },
          trainMs: Math.round(trainMs),
          driftlineVersion: VERSION,
        },
      },
      { overwrite: options.force },
    );
    return { out, metadata, backend, holdout, holdoutSeed, generateMs, trainMs };
  } finally {
    trained.model.dispose();
  }
}
