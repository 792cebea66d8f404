import type { EventEmitter } from 'node:events';
import { Aedes, type AedesOptions } from 'aedes';
import type { Registry } from 'prom-client';
import { describeError } from '../../common/errors.ts';
import { startOpsServer, type OpsServer } from '../../common/http/ops-server.ts';
import type { Logger } from '../../common/logging/logger.ts';
import { DEFAULT_ACL_POLICY, isSysTopic, type AclPolicy } from './acl.ts';
import type { CredentialStore } from './credentials.ts';
import { createAuthHooks } from './hooks.ts';
import { listenTcp, listenTls, listenWebSocket, type ConnectionHandler, type Listener } from './listeners.ts';
import { createBrokerMetrics } from './metrics.ts';

/** The mqtts listener. */
export interface BrokerTlsOptions {
  /** mqtts port; 0 picks a free one. */
  port: number;
  /** Server private key, PEM contents (not a path). */
  key: string | Buffer;
  /** Server certificate chain, PEM contents (not a path). */
  cert: string | Buffer;
}

export interface BrokerOptions {
  /** Interface every listener and the ops server bind to. Default `127.0.0.1`; `0.0.0.0` exposes the broker. */
  host?: string;
  /** MQTT over TCP (mqtt://) port; 0 picks a free one. */
  port: number;
  /** MQTT over WebSocket (ws://, for the dashboard) port; 0 picks a free one; null disables the listener. */
  wsPort: number | null;
  /** MQTT over TLS (mqtts://); absent or null disables it. */
  tls?: BrokerTlsOptions | null;
  /** Users, roles and password hashes; every client must log in. */
  credentials: CredentialStore;
  /** Receives start/stop, refused logins and ACL denials (warn). */
  logger: Logger;
  /** The broker's metrics are registered here (a fresh registry per broker). */
  registry: Registry;
  /** Port of the `/healthz`, `/readyz`, `/metrics` server; 0 picks a free one; null or absent: no ops server. */
  httpPort?: number | null;
  /** ACL knobs; default {@link DEFAULT_ACL_POLICY}. */
  acl?: AclPolicy;
  /** An aedes persistence (e.g. aedes-persistence-redis); default aedes' in-memory one. */
  persistence?: AedesOptions['persistence'];
}

export interface RunningBroker {
  /** The aedes instance, for in-process publishing and events. */
  readonly aedes: Aedes;
  /** e.g. `mqtt://127.0.0.1:1883` */
  readonly mqttUrl: string;
  /** e.g. `ws://127.0.0.1:8083/mqtt` (any path is accepted), or null when disabled. */
  readonly wsUrl: string | null;
  /** e.g. `mqtts://127.0.0.1:8883`, or null when TLS is off. */
  readonly mqttsUrl: string | null;
  readonly port: number;
  readonly wsPort: number | null;
  readonly tlsPort: number | null;
  /** The ops server's port, or null when it is disabled. */
  readonly httpPort: number | null;
  /** Stops accepting, disconnects every client, closes aedes and the ops server. Idempotent. */
  close(): Promise<void>;
}

/** The host part of a URL for clients of a listener bound to `host`. */
export function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}

async function bind(
  name: string,
  host: string,
  port: number,
  start: () => Promise<Listener>,
): Promise<Listener> {
  try {
    return await start();
  } catch (err) {
    throw new Error(`${name} listener cannot bind ${urlHost(host)}:${port}: ${describeError(err)}`, {
      cause: err,
    });
  }
}

/**
 * Starts the secured broker: aedes with authentication and the ACL, listeners on
 * TCP, WebSocket and (optionally) TLS, metrics, and the ops server. With the
 * default in-memory persistence, QoS 1 messages for clean:false sessions are kept
 * while the client is away, for the life of the process.
 */
export async function startBroker(options: BrokerOptions): Promise<RunningBroker> {
  const host = options.host ?? '127.0.0.1';
  const { logger } = options;
  const current: { aedes?: Aedes } = {};
  const metrics = createBrokerMetrics(options.registry, () => current.aedes?.connectedClients ?? 0);
  const hooks = createAuthHooks({
    credentials: options.credentials,
    logger,
    metrics,
    policy: options.acl ?? DEFAULT_ACL_POLICY,
  });

  const aedes = await Aedes.createBroker({
    authenticate: hooks.authenticate,
    authorizePublish: hooks.authorizePublish,
    authorizeSubscribe: hooks.authorizeSubscribe,
    authorizeForward: hooks.authorizeForward,
    ...(options.persistence === undefined ? {} : { persistence: options.persistence }),
  });
  current.aedes = aedes;

  aedes.on('publish', (packet, client) => {
    if (client === null || isSysTopic(packet.topic)) return;
    metrics.messagesIn.inc({ role: hooks.principalOf(client)?.role ?? 'unknown' });
  });
  aedes.on('clientReady', (client) => {
    const p = hooks.principalOf(client);
    logger.info('client connected', {
      clientId: client.id,
      username: p?.username,
      role: p?.role,
      clean: client.clean,
    });
  });
  aedes.on('clientDisconnect', (client) => {
    hooks.released(client);
    logger.info('client disconnected', {
      clientId: client.id,
      username: hooks.principalOf(client)?.username,
    });
  });
  aedes.on('clientError', (client, err) =>
    logger.debug('client error', { clientId: client.id, err: err.message }),
  );
  aedes.on('connectionError', (_client, err) => logger.debug('connection error', { err: err.message }));
  // aedes emits 'error' for persistence failures; without a listener the process would crash.
  (aedes as EventEmitter).on('error', (err: Error) => logger.error('broker error', { err: err.message }));

  const handle: ConnectionHandler = (stream, req) => {
    aedes.handle(stream, req);
  };
  const listeners: Listener[] = [];
  let ops: OpsServer | undefined;
  const closeAll = async (): Promise<void> => {
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    await Promise.all(listeners.map((l) => l.close()));
    await ops?.close();
  };

  try {
    const tcp = await bind('MQTT', host, options.port, () => listenTcp(handle, host, options.port));
    listeners.push(tcp);
    let ws: Listener | undefined;
    if (options.wsPort !== null) {
      const wsPort = options.wsPort;
      ws = await bind('WebSocket', host, wsPort, () => listenWebSocket(handle, host, wsPort));
      listeners.push(ws);
    }
    let tls: Listener | undefined;
    if (options.tls) {
      const t = options.tls;
      tls = await bind('MQTT TLS', host, t.port, () =>
        listenTls(handle, host, t.port, { key: t.key, cert: t.cert }),
      );
      listeners.push(tls);
    }
    if (options.httpPort !== undefined && options.httpPort !== null) {
      const httpPort = options.httpPort;
      ops = await startOpsServer({
        port: httpPort,
        host,
        registry: options.registry,
        health: () => ({ service: 'broker', connectedClients: aedes.connectedClients }),
        ready: () => ({ ready: !aedes.closed, detail: { connectedClients: aedes.connectedClients } }),
      }).catch((err: unknown) => {
        throw new Error(`ops HTTP server cannot bind ${urlHost(host)}:${httpPort}: ${describeError(err)}`, {
          cause: err,
        });
      });
    }

    const h = urlHost(host);
    let closing: Promise<void> | undefined;
    const running: RunningBroker = {
      aedes,
      mqttUrl: `mqtt://${h}:${tcp.port}`,
      wsUrl: ws ? `ws://${h}:${ws.port}/mqtt` : null,
      mqttsUrl: tls ? `mqtts://${h}:${tls.port}` : null,
      port: tcp.port,
      wsPort: ws?.port ?? null,
      tlsPort: tls?.port ?? null,
      httpPort: ops?.port ?? null,
      close() {
        closing ??= closeAll().then(() => {
          logger.info('broker stopped');
        });
        return closing;
      },
    };
    logger.info('broker listening', {
      mqttUrl: running.mqttUrl,
      wsUrl: running.wsUrl,
      mqttsUrl: running.mqttsUrl,
      httpPort: running.httpPort,
    });
    return running;
  } catch (err) {
    await closeAll().catch(() => undefined);
    throw err;
  }
}
