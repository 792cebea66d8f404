import { readFile } from 'node:fs/promises';
import { InProcessBus } from '../../common/bus/in-process.ts';
import { loadConfig, summarizeConfig } from '../../common/config/env.ts';
import { ConfigError } from '../../common/errors.ts';
import { createServiceLogger as createLogger } from '../../common/logging/service-logger.ts';
import { runMain } from '../../common/main.ts';
import { createRegistry } from '../../common/registry/factory.ts';
import { onShutdown } from '../../common/util/shutdown.ts';
import { VERSION } from '../../common/version.ts';
import { dashboardConfigSpec, loadDashboardUsers } from './config.ts';
import { startDashboard } from './dashboard.ts';
import { readPasswordFromStdin, runHashPasswordCli } from './hash-password.ts';

/**
 * `npm run dashboard`: the dashboard as its own process, configured from the
 * environment (see `dashboardConfigSpec`). `npm run dashboard -- hash-password`
 * makes users-file entries.
 *
 * Bus: on its own the dashboard uses an in-process bus, so it sees retrain
 * requests and model events only when it runs inside the same process as the
 * edge worker and the retrainer (`npm start`); the model history still comes
 * from the registry, and alarms (with their request ids) from MQTT.
 */
if (process.argv[2] === 'hash-password') {
  process.exitCode = await runHashPasswordCli(process.argv.slice(3), {
    out: (l) => process.stdout.write(`${l}\n`),
    err: (l) => process.stderr.write(`${l}\n`),
    readPassword: () => readPasswordFromStdin(),
  });
} else if (process.argv.length > 2) {
  process.stderr.write(
    `unknown argument ${JSON.stringify(process.argv[2])}: npm run dashboard [-- ` +
      `hash-password --username NAME --role viewer|operator [--file users.json]]\n`,
  );
  process.exitCode = 2;
} else {
  runMain(async () => {
    const config = loadConfig(dashboardConfigSpec);
    const users = await loadDashboardUsers(config);
    let mqttCa: Buffer | undefined;
    if (config.mqttCaFile !== undefined) {
      try {
        mqttCa = await readFile(config.mqttCaFile);
      } catch (err) {
        throw new ConfigError(
          `DASHBOARD_MQTT_CA_FILE=${JSON.stringify(config.mqttCaFile)} cannot be read: ${(err as Error).message}`,
        );
      }
    }
    const logger = createLogger({ service: 'dashboard', version: VERSION });
    logger.info('dashboard starting', { config: summarizeConfig(dashboardConfigSpec, config) });
    const registry = createRegistry({
      registryDir: config.registryDir,
      mlflowTrackingUri: config.mlflowTrackingUri ?? '',
      logger,
    });
    const bus = new InProcessBus({ logger });
    const dashboard = await startDashboard({
      host: config.host,
      port: config.port,
      mqttUrl: config.mqttUrl,
      mqttUsername: config.mqttUsername,
      ...(config.mqttPassword !== undefined ? { mqttPassword: config.mqttPassword } : {}),
      ...(mqttCa !== undefined ? { mqttCa } : {}),
      bus,
      registry,
      modelName: config.modelName,
      users,
      logger,
      staleAfterMs: config.staleAfterMs,
      stuckAfter: config.stuckAfter,
      updateIntervalMs: config.updateIntervalMs,
      registryPollMs: config.registryPollMs,
      secureCookies: config.secureCookies,
      sessionIdleTtlMs: config.sessionTtlMs,
    });
    onShutdown(logger, async () => {
      await dashboard.close();
      await bus.close();
      await registry.close();
    });
  });
}
