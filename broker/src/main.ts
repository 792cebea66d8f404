import { stat } from 'node:fs/promises';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { loadConfig, summarizeConfig } from '../../common/config/env.ts';
import { describeError } from '../../common/errors.ts';
import { createServiceLogger as createLogger } from '../../common/logging/service-logger.ts';
import { runMain } from '../../common/main.ts';
import { onShutdown } from '../../common/util/shutdown.ts';
import { VERSION } from '../../common/version.ts';
import { startBroker } from './broker.ts';
import { brokerConfigSpec, limitsFromConfig, loadTls, loginGuardFromConfig } from './config.ts';
import { CredentialStore, watchCredentials } from './credentials.ts';

/** `npm run broker`: the secured MQTT broker as its own process. Changes to the credentials file are picked up without a restart. */
runMain(async () => {
  const config = loadConfig(brokerConfigSpec);
  const logger = createLogger({ service: 'broker', version: VERSION });
  logger.info('starting broker', { version: VERSION, config: summarizeConfig(brokerConfigSpec, config) });

  const tls = await loadTls(config);
  const credentials = await CredentialStore.open(config.credentialsFile, {
    scryptCost: config.scryptCost,
    cacheTtlMs: config.authCacheTtlMs,
  });
  if (credentials.size === 0) {
    logger.warn(
      'no users: every login will be refused; add some with `npm run credentials -- add <username> --role <role>`',
      { file: credentials.file },
    );
  } else {
    const mode = await stat(config.credentialsFile).then(
      (s) => s.mode & 0o777,
      () => undefined,
    );
    if (mode !== undefined && (mode & 0o077) !== 0) {
      logger.warn('credentials file is readable by other users; run chmod 600 on it', {
        file: credentials.file,
        mode: mode.toString(8),
      });
    }
  }

  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const broker = await startBroker({
    host: config.host,
    port: config.port,
    wsPort: config.wsPort,
    tls: tls ?? null,
    credentials,
    logger,
    registry,
    httpPort: config.httpPort,
    acl: { devicesMaySubscribeOwn: config.deviceSubscribeOwn },
    limits: limitsFromConfig(config),
    loginGuard: loginGuardFromConfig(config),
  });
  logger.info('broker ready', {
    users: credentials.size,
    mqttUrl: broker.mqttUrl,
    wsUrl: broker.wsUrl,
    mqttsUrl: broker.mqttsUrl,
    httpPort: broker.httpPort,
  });

  const unwatch = watchCredentials(credentials, {
    intervalMs: config.credentialsReloadMs,
    onReload: () => logger.info('credentials reloaded', { users: credentials.size }),
    onError: (err) =>
      logger.error('credentials reload failed; keeping the previous users', { err: describeError(err) }),
  });
  onShutdown(logger, async () => {
    unwatch();
    await broker.close();
  });
});
