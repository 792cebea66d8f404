import { Counter, Gauge, type Registry } from 'prom-client';
import type { Role } from './acl.ts';

/** Why a login was refused; the label of `driftline_broker_auth_failures_total`. */
export type AuthFailureReason = 'anonymous' | 'unknown_user' | 'bad_password' | 'session_taken' | 'error';

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
}

/**
 * Registers the broker metrics on `registry`. `connectedClients` is read at
 * scrape time, so the gauge can never drift from the broker's own count.
 */
export function createBrokerMetrics(registry: Registry, connectedClients: () => number): BrokerMetrics {
  new Gauge({
    name: 'driftline_broker_connected_clients',
    help: 'MQTT clients currently connected and authenticated',
    registers: [registry],
    collect() {
      this.set(connectedClients());
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
  };
}
