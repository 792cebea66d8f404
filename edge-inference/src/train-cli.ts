import { existsSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { ConfigError, ValidationError } from '../../common/errors.ts';
import { createLogger, silentLogger, type Logger } from '../../common/logging/logger.ts';
import { runMain } from '../../common/main.ts';
import { saveArtifact } from '../../common/model/artifact.ts';
import { evaluateModel, trainClassifier, DEFAULT_TRAIN_OPTIONS } from '../../common/model/classifier.ts';
import { formatMetrics } from '../../common/model/evaluation.ts';
import { loadTf } from '../../common/model/tf.ts';
import type { EvalMetrics, LabelledRow, ModelMetadata } from '../../common/model/types.ts';
import { VERSION } from '../../common/version.ts';
import { generateStream } from '../../simulator/src/generator.ts';
import { defaultScenario, loadScenarioFile, type Scenario } from '../../simulator/src/scenario.ts';

/**
 * `npm run train -- --out DIR [...]`: trains the first champion (version
 * `bootstrap`) on simulated data from the first phase of a scenario, writes it
 * as an artifact, and scores it on a held-out stream of the scenario's profile
 * at baseline, generated with a different seed.
 */

/** The scenario used when `--scenario-file` is not given (relative to the repository root). */
export const DEFAULT_SCENARIO_FILE = fileURLToPath(
  new URL('../../scenarios/stationary.json', import.meta.url),
);

/** `--help` text. */
export const TRAIN_USAGE = `usage: npm run train -- --out DIR [options]

  --out DIR              where to write the artifact (required)
  --scenario-file F      training data: the first phase of this scenario (default scenarios/stationary.json)
  --samples N            training + validation samples (default 40000; at most the first phase's)
  --epochs E             training epochs (default ${DEFAULT_TRAIN_OPTIONS.epochs})
  --seed S               training seed: split, shuffling, initialisation (default 1)
  --holdout N            held-out samples for the final score (default 20000)
  --force                replace DIR if it exists
  -h, --help             this text`;

/** Parsed command line of the trainer. */
export interface TrainCliOptions {
  out: string;
  scenarioFile: string;
  samples: number;
  epochs: number;
  seed: number;
  holdout: number;
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

const INT = /^\d+$/;

/** Parses the trainer's flags; every bad value is reported in one {@link ConfigError}. Returns undefined for --help. */
export function parseTrainArgs(argv: readonly string[]): TrainCliOptions | undefined {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: [...argv],
      options: {
        out: { type: 'string' },
        'scenario-file': { type: 'string' },
        samples: { type: 'string' },
        epochs: { type: 'string' },
        seed: { type: 'string' },
        holdout: { type: 'string' },
        force: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: false,
      strict: true,
    }).values;
  } catch (err) {
    throw new ConfigError(`${(err as Error).message} (see --help)`);
  }
  if (values.help === true) return undefined;
  const errors: string[] = [];
  const int = (flag: string, fallback: number, min: number, max: number): number => {
    const raw = values[flag];
    if (typeof raw !== 'string') return fallback;
    const n = INT.test(raw.trim()) ? Number(raw) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      errors.push(`--${flag}=${JSON.stringify(raw)} is invalid: expected an integer from ${min} to ${max}`);
      return fallback;
    }
    return n;
  };
  const options: TrainCliOptions = {
    out: typeof values.out === 'string' ? values.out : '',
    scenarioFile:
      typeof values['scenario-file'] === 'string' ? values['scenario-file'] : DEFAULT_SCENARIO_FILE,
    samples: int('samples', 40_000, 100, 5_000_000),
    epochs: int('epochs', DEFAULT_TRAIN_OPTIONS.epochs, 1, 10_000),
    seed: int('seed', 1, 0, 2 ** 32 - 1),
    holdout: int('holdout', 20_000, 1, 5_000_000),
    force: values.force === true,
  };
  if (options.out.trim() === '') errors.push('--out DIR is required');
  if (errors.length > 0) throw new ConfigError(`Invalid configuration: ${errors.join('; ')}`);
  return options;
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
 * Trains the bootstrap champion as the CLI does and writes its artifact.
 * Exported so the all-in-one `start` command can call it in-process.
 */
export async function runBootstrapTraining(
  options: TrainCliOptions,
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

async function main(): Promise<void> {
  const options = parseTrainArgs(process.argv.slice(2));
  if (!options) {
    process.stdout.write(`${TRAIN_USAGE}\n`);
    return;
  }
  // Logs go to stderr: stdout carries only the JSON result line and the readable line.
  const logger = createLogger({ service: 'train', version: VERSION, stream: process.stderr });
  const r = await runBootstrapTraining(options, logger);
  const line = {
    event: 'bootstrap_trained',
    out: r.out,
    version: r.metadata.version,
    backend: r.backend,
    trainSamples: r.metadata.training.samples,
    validationSamples: r.metadata.validation.samples,
    epochs: r.metadata.training.epochs,
    trainMs: Math.round(r.trainMs),
    generateMs: Math.round(r.generateMs),
    validation: { accuracy: r.metadata.validation.accuracy, macroF1: r.metadata.validation.macroF1 },
    holdout: {
      seed: r.holdoutSeed,
      samples: r.holdout.samples,
      accuracy: r.holdout.accuracy,
      macroF1: r.holdout.macroF1,
      perClassF1: r.holdout.perClassF1,
      logLoss: r.holdout.logLoss,
    },
  };
  process.stdout.write(`${JSON.stringify(line)}\n`);
  process.stdout.write(
    `bootstrap model written to ${r.out} (${r.backend}, ${r.metadata.training.samples} training samples, ${r.metadata.training.epochs} epochs, ${(r.trainMs / 1000).toFixed(1)} s); held-out: ${formatMetrics(r.holdout)}\n`,
  );
}

/** True when this file is the program being run (not imported by a test). */
function isEntryPoint(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(entry)).href;
  } catch {
    return false;
  }
}

if (isEntryPoint()) runMain(main);
