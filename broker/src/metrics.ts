import { Counter, Gauge, type Registry } from 'prom-client';
import type { Role } from './acl.ts';

/** Why a login was refused; the label of `driftline_broker_auth_failures_total`. */
export type AuthFailureReason =
  'anonymous' | 'unknown_user' | 'bad_password' | 'session_taken' | 'rate_limited' | 'overloaded' | 'error';

/** Why a PUBLISH the ACL allowed was still refused (and the connection closed). */
export type PublishRejectReason = 'payload_too_large' | 'retain';

/** Role label for clients without a principal (e.g. a will published after the client left). */
export type RoleLabel = Role | 'unknown';

/** The broker's Prometheus metrics. `$SYS` traffic is never counted. */
export interface BrokerMetrics {
  /** Messages received from clients, by the publisher's role. */
  readonly messagesIn: Counter<'role'>;
  /** Messages delivered to clients, by the receiver's role. */
  readonly messagesOut: Counter<'role'>;
  /** Refused logins, by reason. */
  readonly authFailures: Counter<'reason'>;
  /** Refused publishes and subscriptions. */
  readonly aclDenials: Counter<'action' | 'role'>;
  /** Connections closed for announcing a packet above their limit, by role (`prelogin` before the login). */
  readonly packetsTooLarge: Counter<'role'>;
  /** Publishes refused for their payload size or retain flag, by reason and role. */
  readonly publishRejected: Counter<'reason' | 'role'>;
  /** Messages not queued for a persistent session because its queue was full. */
  readonly queueDropped: Counter;
  /** Connections closed because their user was removed or changed. */
  readonly revokedDisconnects: Counter;
}

/** Live figures read at scrape time. */
export interface BrokerGauges {
  connectedClients(): number;
  /** Messages queued for persistent sessions, all clients. */
  queuedMessages?(): number;
  /** Password checks running and waiting. */
  authChecks?(): { running: number; waiting: number };
}

/**
 * Registers the broker metrics on `registry`. `connectedClients` is read at
 * scrape time, so the gauge can never drift from the broker's own count.
 */
export function createBrokerMetrics(registry: Registry, live: BrokerGauges): BrokerMetrics {
  new Gauge({
    name: 'driftline_broker_connected_clients',
    help: 'MQTT clients currently connected and authenticated',
    registers: [registry],
    collect() {
      this.set(live.connectedClients());
    },
  });
  new Gauge({
    name: 'driftline_broker_queued_messages',
    help: 'QoS 1/2 messages queued for persistent sessions (all clients)',
    registers: [registry],
    collect() {
      this.set(live.queuedMessages?.() ?? 0);
    },
  });
  new Gauge({
    name: 'driftline_broker_auth_checks',
    help: 'Password checks (scrypt) running and waiting for a slot',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const c = live.authChecks?.() ?? { running: 0, waiting: 0 };
      this.set({ state: 'running' }, c.running);
      this.set({ state: 'waiting' }, c.waiting);
    },
  });
  return {
    messagesIn: new Counter({
      name: 'driftline_broker_messages_in_total',
      help: 'PUBLISH packets accepted from clients ($SYS excluded), by publisher role',
      labelNames: ['role'],
      registers: [registry],
    }),
    messagesOut: new Counter({
      name: 'driftline_broker_messages_out_total',
      help: 'PUBLISH packets delivered to subscribers ($SYS excluded), by subscriber role',
      labelNames: ['role'],
      registers: [registry],
    }),
    authFailures: new Counter({
      name: 'driftline_broker_auth_failures_total',
      help: 'Refused MQTT logins, by reason',
      labelNames: ['reason'],
      registers: [registry],
    }),
    aclDenials: new Counter({
      name: 'driftline_broker_acl_denials_total',
      help: 'Publishes and subscriptions refused by the ACL',
      labelNames: ['action', 'role'],
      registers: [registry],
    }),
    packetsTooLarge: new Counter({
      name: 'driftline_broker_packets_too_large_total',
      help: 'Connections closed for announcing an MQTT packet above their limit, by role (prelogin: before the login)',
      labelNames: ['role'],
      registers: [registry],
    }),
    publishRejected: new Counter({
      name: 'driftline_broker_publish_rejected_total',
      help: 'Publishes refused (connection closed) for their payload size or retain flag',
      labelNames: ['reason', 'role'],
      registers: [registry],
    }),
    queueDropped: new Counter({
      name: 'driftline_broker_queue_dropped_total',
      help: 'Messages not queued for a persistent session because its queue was full',
      registers: [registry],
    }),
    revokedDisconnects: new Counter({
      name: 'driftline_broker_revoked_disconnects_total',
      help: 'Connections closed because their user was removed or its credentials changed',
      registers: [registry],
    }),
  };
}
