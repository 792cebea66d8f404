/**
 * The `driftline` command. `npm start` runs `driftline start`:
 *
 *   npm start -- [--scenario-file F] [--rate MSGS_PER_SEC|max] [--machines N]
 *                [--exit-after-phases] [--state-dir DIR] [--no-dashboard] [--label-delay-ms N]
 *
 * `--rate` is the telemetry rate across all machines (the simulator's own
 * `npm run simulate -- --rate` is per machine). With `--exit-after-phases` the
 * run stops after the scenario's last phase and prints its summary as one JSON
 * line on stdout (logs go to stderr then).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { applyVaultEnv } from '../common/config/vault.ts';
import { ConfigError } from '../common/errors.ts';
import { createLogger, type Logger } from '../common/logging/logger.ts';
import { runMain } from '../common/main.ts';
import { onShutdown } from '../common/util/shutdown.ts';
import { VERSION } from '../common/version.ts';
import { loggerTransportsFromEnv } from './lib/log-transports.ts';
import { startSystem } from './lib/start.ts';

const USAGE = `usage: npm start -- [--scenario-file F] [--rate MSGS_PER_SEC|max] [--machines N] [--exit-after-phases] [--state-dir DIR] [--no-dashboard] [--label-delay-ms N]`;

function positive(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0)
    throw new ConfigError(`--${name}=${JSON.stringify(raw)} is invalid: expected a positive number`);
  return n;
}

/** `parseArgs`, whose errors (an unknown flag, a value that starts with a dash) are one-line ConfigErrors. */
function parseArgsOrExplain<const T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (err) {
    if (err instanceof TypeError && typeof (err as { code?: unknown }).code === 'string')
      throw new ConfigError(`${err.message.replace(/\s*\n\s*/g, ' ')}\n${USAGE}`);
    throw err;
  }
}

runMain(async () => {
  const [command = 'start', ...rest] = process.argv.slice(2);
  if (command !== 'start') throw new ConfigError(`unknown command ${JSON.stringify(command)}\n${USAGE}`);
  const { values } = parseArgsOrExplain({
    args: rest,
    options: {
      'scenario-file': { type: 'string' },
      rate: { type: 'string' },
      machines: { type: 'string' },
      'exit-after-phases': { type: 'boolean', default: false },
      'state-dir': { type: 'string' },
      'no-dashboard': { type: 'boolean', default: false },
      'label-delay-ms': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const exitAfterPhases = values['exit-after-phases'];
  if (exitAfterPhases && !values['scenario-file'])
    throw new ConfigError(
      '--exit-after-phases needs --scenario-file (the default profile has no last phase)',
    );
  const rate = values.rate === 'max' ? 'max' : positive('rate', values.rate);
  const machines = positive('machines', values.machines);
  const labelDelayMs = values['label-delay-ms'] === undefined ? undefined : Number(values['label-delay-ms']);
  if (labelDelayMs !== undefined && !(Number.isInteger(labelDelayMs) && labelDelayMs >= 0))
    throw new ConfigError(`--label-delay-ms must be a whole number >= 0`);

  await applyVaultEnv();
  // With --exit-after-phases stdout carries only the summary line.
  const stream = exitAfterPhases ? process.stderr : process.stdout;
  const extra = await loggerTransportsFromEnv(process.env);
  const loggers = new Map<string, Logger>();
  const loggerFor = (service: string): Logger => {
    let l = loggers.get(service);
    if (!l) {
      l = createLogger({ service, version: VERSION, stream, transports: extra.forService(service) });
      loggers.set(service, l);
    }
    return l;
  };
  const log = loggerFor('driftline');
  log.info(`Driftline ${VERSION} starting`, {
    version: VERSION,
    scenario: values['scenario-file'] ?? null,
    rate: rate ?? null,
  });

  const system = await startSystem({
    ...(values['scenario-file'] ? { scenarioFile: values['scenario-file'] } : {}),
    ...(rate !== undefined ? { totalRate: rate } : {}),
    ...(machines !== undefined ? { machines: Math.round(machines) } : {}),
    exitAfterPhases,
    ...(values['state-dir'] ? { stateDir: values['state-dir'] } : {}),
    dashboard: !values['no-dashboard'],
    ...(labelDelayMs !== undefined ? { labelDelayMs } : {}),
    loggerFor,
  });
  log.info(
    `running: MQTT ${system.mqttUrl}${system.dashboardUrl ? `, dashboard ${system.dashboardUrl}` : ''} ` +
      `— Ctrl+C stops everything cleanly`,
  );

  const shutdown = async (): Promise<void> => {
    await system.stop();
    await extra.close();
  };
  onShutdown(log, shutdown, 60_000);
  if (system.finished) {
    const summary = await system.finished;
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    await shutdown();
    process.exit(0);
  }
});
