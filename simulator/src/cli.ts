import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { loadConfig, summarizeConfig, type Field } from '../../common/config/env.ts';
import { ConfigError, ValidationError } from '../../common/errors.ts';
import { createServiceLogger as createLogger } from '../../common/logging/service-logger.ts';
import { runMain } from '../../common/main.ts';
import { Counter, Gauge, Registry } from 'prom-client';
import { startOpsServer, type OpsServer } from '../../common/http/ops-server.ts';
import { onShutdown } from '../../common/util/shutdown.ts';
import { VERSION } from '../../common/version.ts';
import { simulatorConfigSpec, type SimulatorConfig } from './config.ts';
import { loadCredentialsFile } from './credentials.ts';
import { generateStream } from '../../common/scenario/generator.ts';
import { writeJsonl } from './jsonl.ts';
import { startSimulator, type RunningSimulator } from './publisher.ts';
import {
  defaultScenario,
  loadScenarioFile,
  machineIdsOf,
  type Scenario,
} from '../../common/scenario/scenario.ts';

export const USAGE = `usage: npm run simulate -- [options]

  --scenario-file F      play this drift scenario (default: the default profile forever)
  --rate R|max           telemetry messages per second per machine (default 2), or max
  --out FILE|-           write the stream as JSON lines to FILE (- for stdout) instead of publishing
  --max-samples N        stop after N samples
  --mqtt-url URL         broker (default mqtt://127.0.0.1:1883)
  --label-delay-ms N     delay before each label is published (default 2000)
  --credentials-file F   JSON file with device and inspection passwords
  --machines N           machines without a scenario file (default 4)
  --profile P            seed or realistic, without a scenario file (default seed)
  --seed N               seed without a scenario file (default 1)
  -h, --help             this text

Every option also reads an environment variable: ${Object.values(simulatorConfigSpec)
  .map((f) => f.env)
  .join(', ')}.`;

/** Command-line flags and the config field each one overrides. */
const FLAGS = {
  'scenario-file': 'scenarioFile',
  rate: 'rateHz',
  'mqtt-url': 'mqttUrl',
  'label-delay-ms': 'labelDelayMs',
  'credentials-file': 'credentialsFile',
  machines: 'machines',
  profile: 'profile',
  seed: 'seed',
} as const satisfies Record<string, keyof SimulatorConfig>;

export interface CliArgs {
  config: SimulatorConfig;
  /** JSON-lines output file, `-` for stdout; undefined publishes to the broker. */
  out: string | undefined;
  maxSamples: number | undefined;
  help: boolean;
}

/** Reads the environment, then lets flags override it; every bad value is reported in one {@link ConfigError}. */
export function parseCliArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): CliArgs {
  let values: Record<string, string | boolean | undefined>;
  try {
    const options = Object.fromEntries(Object.keys(FLAGS).map((k) => [k, { type: 'string' as const }]));
    values = parseArgs({
      args: [...argv],
      options: {
        ...options,
        out: { type: 'string' },
        'max-samples': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: false,
      strict: true,
    }).values;
  } catch (err) {
    throw new ConfigError(`${(err as Error).message} (see --help)`);
  }
  const errors: string[] = [];
  let config: Record<string, unknown> = {};
  try {
    config = loadConfig(simulatorConfigSpec, env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    errors.push(err.message.replace(/^Invalid configuration: /, ''));
  }
  for (const [flag, key] of Object.entries(FLAGS)) {
    const raw = values[flag];
    if (typeof raw !== 'string') continue;
    const field = simulatorConfigSpec[key] as Field<unknown>;
    const r = field.parse(raw);
    if (r.ok) config[key] = r.value;
    else
      errors.push(r.error.replace(`${field.env}=`, `--${flag}=`).replace(`${field.env} is`, `--${flag} is`));
  }
  let maxSamples: number | undefined;
  const rawMax = values['max-samples'];
  if (typeof rawMax === 'string') {
    maxSamples = /^\d+$/.test(rawMax.trim()) ? Number(rawMax) : Number.NaN;
    if (!Number.isSafeInteger(maxSamples))
      errors.push(`--max-samples=${JSON.stringify(rawMax)} is invalid: expected a whole number`);
  }
  const out = values.out;
  if (out === '') errors.push('--out needs a file name (or - for stdout)');
  if (errors.length > 0) throw new ConfigError(`Invalid configuration: ${errors.join('; ')}`);
  return {
    config: config as SimulatorConfig,
    out: typeof out === 'string' ? out : undefined,
    maxSamples,
    help: values.help === true,
  };
}

async function loadScenario(path: string): Promise<Scenario> {
  try {
    return await loadScenarioFile(path);
  } catch (err) {
    // A bad scenario file is a configuration mistake: one readable line, exit 2.
    if (err instanceof ValidationError) throw new ConfigError(err.message);
    throw err;
  }
}

async function main(): Promise<void> {
  const args = parseCliArgs(process.argv.slice(2));
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const { config, out, maxSamples } = args;
  const logger = createLogger({
    service: 'simulator',
    version: VERSION,
    ...(out === '-' ? { stream: process.stderr } : {}),
  });
  logger.info('simulator starting', {
    version: VERSION,
    config: summarizeConfig(simulatorConfigSpec, config),
    out,
    maxSamples,
  });
  const scenario = config.scenarioFile ? await loadScenario(config.scenarioFile) : undefined;

  if (out !== undefined) {
    if (!scenario && maxSamples === undefined)
      throw new ConfigError(
        '--out without a scenario file needs --max-samples (the default profile never ends)',
      );
    const played =
      scenario ?? defaultScenario({ machines: config.machines, profile: config.profile, seed: config.seed });
    const machines = machineIdsOf(played).length;
    const intervalMs = config.rateHz === 'max' ? undefined : 1000 / (config.rateHz * machines);
    const started = performance.now();
    const result = await writeJsonl(
      generateStream(played, intervalMs === undefined ? {} : { intervalMs }),
      out === '-' ? process.stdout : out,
      maxSamples === undefined ? {} : { maxSamples },
    );
    const seconds = (performance.now() - started) / 1000;
    logger.info('stream written', {
      file: out,
      samples: result.samples,
      bytes: result.bytes,
      seconds: Math.round(seconds * 1000) / 1000,
      samplesPerSecond: Math.round(result.samples / seconds),
    });
    return;
  }

  const credentials = config.credentialsFile ? await loadCredentialsFile(config.credentialsFile) : undefined;
  if (!credentials)
    logger.warn(
      'no credentials file (SIMULATOR_CREDENTIALS_FILE / --credentials-file): connecting without passwords',
    );
  const simulator = await startSimulator({
    mqttUrl: config.mqttUrl,
    scenario,
    ratePerMachineHz: config.rateHz,
    labelDelayMs: config.labelDelayMs,
    credentials,
    logger,
    machines: config.machines,
    profile: config.profile,
    seed: config.seed,
    ...(maxSamples !== undefined ? { maxSamples } : {}),
  });
  const ops = config.httpPort > 0 ? await startSimulatorOps(simulator, config) : undefined;
  onShutdown(logger, async () => {
    await simulator.stop();
    await ops?.close();
  });
  await simulator.done;
  await simulator.stop();
  await ops?.close();
}

/** /healthz, /readyz and /metrics of a publishing simulator (SIMULATOR_HTTP_PORT): probes and Prometheus. */
async function startSimulatorOps(simulator: RunningSimulator, config: SimulatorConfig): Promise<OpsServer> {
  const registry = new Registry();
  let last = { published: 0, labelsPublished: 0 };
  new Counter({
    name: 'driftline_simulator_published_total',
    help: 'Simulated readings acknowledged by the broker, by kind (telemetry, label)',
    labelNames: ['kind'] as const,
    registers: [registry],
    collect() {
      const s = simulator.stats();
      this.inc({ kind: 'telemetry' }, s.published - last.published);
      this.inc({ kind: 'label' }, s.labelsPublished - last.labelsPublished);
      last = { published: s.published, labelsPublished: s.labelsPublished };
    },
  });
  new Gauge({
    name: 'driftline_simulator_phase_info',
    help: 'The scenario phase being played (value 1, label phase)',
    labelNames: ['phase'] as const,
    registers: [registry],
    collect() {
      this.reset();
      this.set({ phase: simulator.stats().phase }, 1);
    },
  });
  return startOpsServer({
    port: config.httpPort,
    host: config.httpHost,
    registry,
    health: () => ({ service: 'simulator', ...simulator.stats() }),
    ready: () => ({ ready: true, detail: { phase: simulator.stats().phase } }),
  });
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
