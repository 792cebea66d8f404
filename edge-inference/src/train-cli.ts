import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { ConfigError } from '../../common/errors.ts';
import { createLogger } from '../../common/logging/logger.ts';
import { runMain } from '../../common/main.ts';
import {
  DEFAULT_SCENARIO_FILE,
  runBootstrapTraining,
  type BootstrapTrainingOptions,
} from '../../common/model/bootstrap.ts';
import { DEFAULT_TRAIN_OPTIONS } from '../../common/model/classifier.ts';
import { formatMetrics } from '../../common/model/evaluation.ts';
import { VERSION } from '../../common/version.ts';

/**
 * `npm run train -- --out DIR [...]`: trains the first champion (version
 * `bootstrap`) on simulated data from the first phase of a scenario, writes it
 * as an artifact, and scores it on a held-out stream of the scenario's profile
 * at baseline, generated with a different seed (`common/model/bootstrap.ts`).
 */

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

const INT = /^\d+$/;

/** Parses the trainer's flags; every bad value is reported in one {@link ConfigError}. Returns undefined for --help. */
export function parseTrainArgs(argv: readonly string[]): BootstrapTrainingOptions | undefined {
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
  const options: BootstrapTrainingOptions = {
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
