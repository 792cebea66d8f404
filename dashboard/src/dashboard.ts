import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { BUS_TOPICS, type EventBus } from '../../common/bus/types.ts';
import { describeError } from '../../common/errors.ts';
import {
  modelRolledBackSchema,
  type ModelMetrics,
  type ModelRolledBack,
} from '../../common/events/schemas.ts';
import { silentLogger, type Logger } from '../../common/logging/logger.ts';
import { DEFAULT_MODEL_NAME } from '../../common/model/types.ts';
import type { ModelRegistry, ModelVersion } from '../../common/registry/types.ts';
import { loadAssets } from './assets.ts';
import {
  LoginLimiter,
  SessionStore,
  UserDirectory,
  type DashboardUser,
  type LoginLimiterOptions,
  type Session,
} from './auth.ts';
import { startBusSource, type BusSource } from './bus-source.ts';
import { createRequestHandler, HttpError, type RollbackResult } from './http.ts';
import { startMqttSource } from './mqtt-source.ts';
import { startRegistrySource } from './registry-source.ts';
import { EventStreamHub } from './sse.ts';
import { DashboardStore } from './state.ts';

/** Model the dashboard follows when none is given. */

/** Options of {@link startDashboard}. */
export interface DashboardOptions {
  /** Interface the HTTP server binds to. Default `127.0.0.1`; `0.0.0.0` exposes it. */
  host?: string;
  /** HTTP port; 0 picks a free one (read it from the returned `url`). */
  port: number;
  /**
   * Broker URL (`mqtt://`, `mqtts://`, `ws://`, `wss://`); the dashboard subscribes to `factory/#` and
   * `driftline/#`.
   */
  mqttUrl: string;
  /** Broker user of the dashboard service account (role `dashboard`: subscribe only). */
  mqttUsername?: string;
  /** Password of that account. */
  mqttPassword?: string;
  /** PEM CA certificate to trust for `mqtts://` / `wss://`. */
  mqttCa?: string | Buffer;
  /**
   * Event bus: retrain requests and model events are read (group `dashboard`); rollbacks publish
   * `model-rolled-back`.
   */
  bus: EventBus;
  /** Model registry: champion, versions and alias history are shown; the rollback action moves the alias. */
  registry: ModelRegistry;
  /** Registered model to follow. Default `driftline-efficiency`. */
  modelName?: string;
  /** Who may log in: hashed entries (see `npm run dashboard -- hash-password`). At least one. */
  users: readonly DashboardUser[];
  /** Logger for logins, rollbacks and backend problems. Default: silent. */
  logger?: Logger;
  /** A machine with no message for this long is flagged stale, ms. Default 10 000. */
  staleAfterMs?: number;
  /** A feature with the same value in this many consecutive messages is flagged stuck. Default 20. */
  stuckAfter?: number;
  /** Rejected messages from a machine within this window flag it faulty, ms. Default 60 000. */
  faultWindowMs?: number;
  /** How often changes are pushed to the browsers, ms (the browser also coalesces per frame). Default 100. */
  updateIntervalMs?: number;
  /** How often the registry is read (besides after every model event and rollback), ms. Default 5000. */
  registryPollMs?: number;
  /** Add `Secure` to the session cookie: set it when the dashboard is served over HTTPS. Default false. */
  secureCookies?: boolean;
  /** A session ends after this long without a request, ms. Default 8 h. */
  sessionIdleTtlMs?: number;
  /** Failed-login limits. Default 5 per address and username, 20 per address, per 5 minutes. */
  loginLimit?: LoginLimiterOptions;
  /** MQTT reconnect delay, ms. Default 1000. */
  mqttReconnectPeriodMs?: number;
}

/** A running dashboard. */
export interface RunningDashboard {
  /** e.g. `http://127.0.0.1:8080` */
  readonly url: string;
  readonly port: number;
  /** Resolves once the MQTT subscription was granted for the first time (the dashboard serves before that). */
  readonly ready: Promise<void>;
  /** The in-memory state (tests and the all-in-one process may read it). */
  readonly store: DashboardStore;
  /**
   * Stops serving, ends every stream, disconnects from the broker and the bus. Leaves `bus` and `registry`
   * open (the caller owns them).
   */
  close(): Promise<void>;
}

function eventMetrics(v: ModelVersion): ModelMetrics | undefined {
  const { accuracy, macroF1, samples, logLoss } = v.metrics;
  if (
    accuracy === undefined ||
    macroF1 === undefined ||
    accuracy < 0 ||
    accuracy > 1 ||
    macroF1 < 0 ||
    macroF1 > 1
  )
    return undefined;
  const m: ModelMetrics = {
    samples: samples !== undefined && Number.isInteger(samples) && samples >= 0 ? samples : 0,
    accuracy,
    macroF1,
  };
  if (logLoss !== undefined && logLoss >= 0) m.logLoss = logLoss;
  return m;
}

/**
 * Starts the dashboard: an HTTP server (login, the page, `GET /api/events`
 * Server-Sent Events, operator rollback) fed by the broker (as the `dashboard`
 * service account), the event bus and the model registry. Serves at once;
 * the backends connect (and reconnect) in the background and their state is
 * shown on the page.
 */
export async function startDashboard(options: DashboardOptions): Promise<RunningDashboard> {
  if (options.users.length === 0)
    throw new Error('startDashboard: no users: nobody could log in (see npm run dashboard -- hash-password)');
  const logger = options.logger ?? silentLogger();
  const modelName = options.modelName ?? DEFAULT_MODEL_NAME;
  const { bus, registry } = options;
  const assets = await loadAssets();

  const store = new DashboardStore({
    modelName,
    staleAfterMs: options.staleAfterMs ?? 10_000,
    ...(options.stuckAfter !== undefined ? { stuckAfter: options.stuckAfter } : {}),
    ...(options.faultWindowMs !== undefined ? { faultWindowMs: options.faultWindowMs } : {}),
    mqttUrl: options.mqttUrl,
    busKind: bus.kind,
    registryKind: registry.kind,
  });
  const hub = new EventStreamHub();
  const sessions = new SessionStore(
    options.sessionIdleTtlMs !== undefined ? { idleTtlMs: options.sessionIdleTtlMs } : {},
  );
  const limiter = new LoginLimiter(options.loginLimit ?? {});
  const users = new UserDirectory(options.users);

  const registrySource = startRegistrySource({
    registry,
    modelName,
    store,
    logger,
    intervalMs: options.registryPollMs ?? 5000,
  });

  let closed = false;
  let busSource: BusSource | undefined;
  let busRetry: NodeJS.Timeout | undefined;
  const connectBus = async (): Promise<void> => {
    try {
      const source = await startBusSource({
        bus,
        store,
        logger,
        onModelEvent: () => void registrySource.refresh(),
      });
      if (closed) await source.close();
      else busSource = source;
    } catch (err) {
      logger.warn('dashboard cannot subscribe to the bus; retrying in 5 s', {
        err: describeError(err),
        bus: bus.kind,
      });
      if (!closed) busRetry = setTimeout(() => void connectBus(), 5000);
    }
  };
  await connectBus();

  const mqttSource = startMqttSource({
    url: options.mqttUrl,
    username: options.mqttUsername,
    password: options.mqttPassword,
    ca: options.mqttCa,
    store,
    logger,
    ...(options.mqttReconnectPeriodMs !== undefined
      ? { reconnectPeriodMs: options.mqttReconnectPeriodMs }
      : {}),
  });

  let rollbackChain: Promise<unknown> = Promise.resolve();
  const rollback = (session: Session, reason: string, expectedVersion?: string): Promise<RollbackResult> => {
    const run = async (): Promise<RollbackResult> => {
      const before = await registry.getChampion(modelName);
      if (before === undefined) throw new HttpError(409, `model ${modelName} has no champion to roll back`);
      if (expectedVersion !== undefined && expectedVersion !== before.version) {
        throw new HttpError(
          409,
          `the champion is v${before.version} now, not v${expectedVersion}: reload the model view and confirm again`,
        );
      }
      const correlationId = `dashboard-rollback-${randomUUID()}`;
      const log = logger.child({ correlationId });
      const after = await registry.rollback(modelName, {
        by: `dashboard:${session.username}`,
        reason,
        correlationId,
      });
      log.warn('champion rolled back from the dashboard', {
        action: 'rollback',
        user: session.username,
        from: before.version,
        to: after.version,
        reason,
      });
      const metrics = eventMetrics(after);
      const event: ModelRolledBack = modelRolledBackSchema.parse({
        type: 'model-rolled-back',
        modelName,
        correlationId,
        requestId: null,
        reason: `${reason} (rolled back by ${session.username} from the dashboard)`.slice(0, 1000),
        at: Date.now(),
        version: after.version,
        fromVersion: before.version,
        ...(metrics !== undefined ? { metrics } : {}),
      });
      let eventPublished = true;
      try {
        await bus.publish(BUS_TOPICS.modelEvents, modelName, event);
      } catch (err) {
        eventPublished = false;
        log.error(
          'rollback done but model-rolled-back could not be published; edge workers follow on their next registry poll',
          { err: describeError(err) },
        );
      }
      void registrySource.refresh();
      return { from: before.version, to: after.version, eventPublished };
    };
    const p = rollbackChain.then(run, run);
    rollbackChain = p.catch(() => undefined);
    return p;
  };

  const handler = createRequestHandler({
    users,
    sessions,
    limiter,
    hub,
    assets,
    snapshot: () => store.snapshot(),
    modelName,
    rollback,
    logger,
    secureCookies: options.secureCookies ?? false,
  });
  const server = http.createServer(handler);
  server.headersTimeout = 20_000;
  server.requestTimeout = 0; // event streams stay open
  server.keepAliveTimeout = 5000;

  const flush = setInterval(() => {
    const u = store.takeUpdate();
    if (u !== undefined) hub.broadcast('update', u);
  }, options.updateIntervalMs ?? 100);
  const tick = setInterval(() => store.tick(), 1000);
  // A watching browser (open stream) counts as activity, up to the absolute session limit;
  // expired logins lose their streams (the page then shows the login form).
  const sweep = setInterval(() => {
    for (const id of hub.sessionIds()) sessions.touch(id);
    for (const id of sessions.sweep()) hub.closeSession(id);
  }, 60_000);
  for (const t of [flush, tick, sweep]) t.unref();

  const shutdown = async (): Promise<void> => {
    closed = true;
    clearInterval(flush);
    clearInterval(tick);
    clearInterval(sweep);
    if (busRetry !== undefined) clearTimeout(busRetry);
    hub.close();
    registrySource.close();
    await Promise.allSettled([mqttSource.close(), busSource?.close()]);
  };

  const host = options.host ?? '127.0.0.1';
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    await shutdown();
    throw new Error(`dashboard cannot listen on ${host}:${options.port}: ${describeError(err)}`, {
      cause: err,
    });
  }
  const port = (server.address() as AddressInfo).port;
  const urlHost =
    host === '0.0.0.0' || host === ''
      ? '127.0.0.1'
      : host === '::'
        ? '[::1]'
        : host.includes(':')
          ? `[${host}]`
          : host;
  const url = `http://${urlHost}:${port}`;
  logger.info(`dashboard listening on ${url}`, {
    url,
    model: modelName,
    users: users.size,
    mqtt: options.mqttUrl,
    bus: bus.kind,
    registry: registry.kind,
  });

  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    ready: mqttSource.subscribed,
    store,
    close() {
      closing ??= (async () => {
        await shutdown();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
      })();
      return closing;
    },
  };
}
