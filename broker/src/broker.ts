import type { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { Aedes, type AedesOptions, type Client } from 'aedes';
import type { Registry } from 'prom-client';
import { describeError } from '../../common/errors.ts';
import { startOpsServer, type OpsServer } from '../../common/http/ops-server.ts';
import type { Logger } from '../../common/logging/logger.ts';
import '../../common/mqtt/packet-numbers.ts';
import { MAX_PAYLOAD_BYTES } from '../../common/schema/telemetry.ts';
import { DEFAULT_ACL_POLICY, isSysTopic, type AclPolicy, type Role } from './acl.ts';
import type { CredentialStore } from './credentials.ts';
import { createAuthHooks } from './hooks.ts';
import { listenTcp, listenTls, listenWebSocket, type ConnectionHandler, type Listener } from './listeners.ts';
import { LoginGuard, type LoginGuardOptions } from './login-guard.ts';
import { createBrokerMetrics } from './metrics.ts';
import { guardPacketSize } from './packet-guard.ts';
import { BoundedQueuePersistence } from './persistence.ts';
import { markRedeliveries } from './redelivery.ts';

/** The mqtts listener. */
export interface BrokerTlsOptions {
  /** mqtts port; 0 picks a free one. */
  port: number;
  /** Server private key, PEM contents (not a path). */
  key: string | Buffer;
  /** Server certificate chain, PEM contents (not a path). */
  cert: string | Buffer;
}

/** Size and queue limits of the broker (see broker/README.md, "Limits"). */
export interface BrokerLimits {
  /**
   * Largest MQTT packet (header included) a client may send before its login
   * succeeded — the CONNECT with its will. Checked as the header announces the
   * length; a bigger packet closes the connection before it is buffered.
   */
  maxPacketBytesPreLogin: number;
  /** Largest packet per role after the login, same check. */
  maxPacketBytes: Record<Role, number>;
  /** Largest PUBLISH payload per role; a bigger one is refused and the connection closed. */
  maxPayloadBytes: Partial<Record<Role, number>>;
  /** QoS 1/2 messages queued per persistent session (default in-memory persistence only), 1–65,535. */
  maxQueuedPerClient: number;
  /** Roles that may publish retained messages; others are refused and disconnected. */
  retainRoles: readonly Role[];
}

/** Packet limit of the service roles (edge, bridge, dashboard, retrainer, admin). */
const SERVICE_PACKET_BYTES = 256 * 1024;
/** Packet limit of field clients (devices, inspection stations): a telemetry payload plus topic and header. */
const DEVICE_PACKET_BYTES = 8 * 1024;

export const DEFAULT_BROKER_LIMITS: BrokerLimits = {
  maxPacketBytesPreLogin: 8 * 1024,
  maxPacketBytes: {
    device: DEVICE_PACKET_BYTES,
    inspection: DEVICE_PACKET_BYTES,
    edge: SERVICE_PACKET_BYTES,
    bridge: SERVICE_PACKET_BYTES,
    dashboard: SERVICE_PACKET_BYTES,
    retrainer: SERVICE_PACKET_BYTES,
    admin: SERVICE_PACKET_BYTES,
  },
  // The edge refuses larger telemetry and labels anyway (common/schema/telemetry.ts); refusing them here
  // keeps them from reaching the edge, the bridge and the dashboard at all.
  maxPayloadBytes: { device: MAX_PAYLOAD_BYTES, inspection: MAX_PAYLOAD_BYTES },
  maxQueuedPerClient: 10_000,
  retainRoles: ['admin'],
};

/** Default limits with the per-device and per-service packet sizes set (the shape of the broker's config). */
export function brokerLimits(o: {
  preLogin?: number;
  device?: number;
  service?: number;
  maxQueuedPerClient?: number;
}): BrokerLimits {
  const d = DEFAULT_BROKER_LIMITS;
  const device = o.device ?? DEVICE_PACKET_BYTES;
  const service = o.service ?? SERVICE_PACKET_BYTES;
  return {
    ...d,
    maxPacketBytesPreLogin: o.preLogin ?? d.maxPacketBytesPreLogin,
    maxPacketBytes: {
      device,
      inspection: device,
      edge: service,
      bridge: service,
      dashboard: service,
      retrainer: service,
      admin: service,
    },
    maxQueuedPerClient: o.maxQueuedPerClient ?? d.maxQueuedPerClient,
  };
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
  /**
   * An aedes persistence (e.g. aedes-persistence-redis); default aedes' in-memory one with
   * the outgoing queue of each persistent session bounded by `limits.maxQueuedPerClient`.
   */
  persistence?: AedesOptions['persistence'];
  /** Packet, payload and queue limits; default {@link DEFAULT_BROKER_LIMITS}. */
  limits?: Partial<BrokerLimits>;
  /** Failed-login limits and the bound on concurrent password checks; default `DEFAULT_LOGIN_GUARD`. */
  loginGuard?: Partial<LoginGuardOptions>;
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
  const limits: BrokerLimits = { ...DEFAULT_BROKER_LIMITS, ...options.limits };
  const current: { aedes?: Aedes } = {};
  const loginGuard = new LoginGuard(options.loginGuard ?? {});
  const bounded =
    options.persistence === undefined
      ? new BoundedQueuePersistence({
          maxQueuedPerClient: limits.maxQueuedPerClient,
          onDrop: (clientId, packet, first) => {
            metrics.queueDropped.inc();
            if (first)
              // Not queued means: sent once to a connected client (no redelivery if its connection drops
              // before it acknowledges), dropped for an offline one. Each is counted in queueDropped.
              logger.warn(
                'outgoing queue full: new messages for this session are not queued until it drains',
                {
                  clientId,
                  limit: limits.maxQueuedPerClient,
                  topic: packet.topic,
                  connected:
                    (current.aedes as { clients?: Record<string, unknown> } | undefined)?.clients?.[
                      clientId
                    ] !== undefined,
                },
              );
          },
          onRecover: (clientId, dropped) =>
            logger.warn('outgoing queue has room again', {
              clientId,
              notQueued: dropped,
              limit: limits.maxQueuedPerClient,
            }),
        })
      : undefined;
  const metrics = createBrokerMetrics(options.registry, {
    connectedClients: () => current.aedes?.connectedClients ?? 0,
    queuedMessages: () => bounded?.queuedMessages ?? 0,
    authChecks: () => ({ running: loginGuard.gate.active, waiting: loginGuard.gate.waiting }),
  });
  const hooks = createAuthHooks({
    credentials: options.credentials,
    logger,
    metrics,
    policy: options.acl ?? DEFAULT_ACL_POLICY,
    loginGuard,
    maxPayloadBytes: limits.maxPayloadBytes,
    retainRoles: limits.retainRoles,
  });

  const aedes = await Aedes.createBroker({
    authenticate: hooks.authenticate,
    authorizePublish: hooks.authorizePublish,
    authorizeSubscribe: hooks.authorizeSubscribe,
    authorizeForward: hooks.authorizeForward,
    // Re-deliveries to a reconnecting persistent session carry DUP (aedes never sets it).
    persistence: markRedeliveries(options.persistence ?? bounded),
  });
  current.aedes = aedes;
  // A removed user, or one whose password, role or machine changed, is disconnected at once.
  const stopWatchingUsers = options.credentials.onChange(() => {
    // aedes keeps its connected clients in `clients` (by id); its typings do not declare it.
    const clients = (aedes as unknown as { clients: Record<string, Client> }).clients;
    hooks.revokeStale(Object.values(clients));
  });

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
    const conn: { client?: Client } = {};
    guardPacketSize(
      stream,
      () => {
        const principal = hooks.principalOf(conn.client ?? null);
        if (principal === undefined) return limits.maxPacketBytesPreLogin;
        // A role missing from a partial `limits.maxPacketBytes` keeps the pre-login limit, never none.
        return limits.maxPacketBytes[principal.role] ?? limits.maxPacketBytesPreLogin;
      },
      (violation) => {
        const principal = hooks.principalOf(conn.client ?? null);
        metrics.packetsTooLarge.inc({ role: principal?.role ?? 'prelogin' });
        logger.warn('packet too large: connection closed', {
          action: 'packet_limit',
          outcome: 'failure',
          ...violation,
          clientId: conn.client?.id ?? undefined,
          username: principal?.username,
          remoteAddress: (stream as Partial<Socket>).remoteAddress ?? req?.socket.remoteAddress,
        });
      },
    );
    conn.client = aedes.handle(stream, req);
  };
  const listeners: Listener[] = [];
  let ops: OpsServer | undefined;
  const closeAll = async (): Promise<void> => {
    stopWatchingUsers();
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
