import type {
  AedesOptions,
  AedesPublishPacket,
  AuthenticateError,
  Client,
  PublishPacket,
  Subscription,
} from 'aedes';
import { describeError } from '../../common/errors.ts';
import type { Logger } from '../../common/logging/logger.ts';
import {
  canPublish,
  canSubscribe,
  filterCovers,
  isSysTopic,
  rulesFor,
  type AclDecision,
  type AclPolicy,
  type Principal,
  type Role,
} from './acl.ts';
import { USERNAME_PATTERN, type CredentialStore } from './credentials.ts';
import { LoginGuard, type LoginCheck } from './login-guard.ts';
import type { AuthFailureReason, BrokerMetrics, PublishRejectReason, RoleLabel } from './metrics.ts';

/** Topics whose ACL decision is remembered per principal (the map starts over beyond). */
const ACL_CACHE_TOPICS = 1024;

/**
 * The aedes hooks that enforce authentication and the ACL, log every refusal
 * (warn: client id, username, topic) and count it. The decisions themselves
 * live in `acl.ts` and `credentials.ts`.
 */

export interface AuthHooksOptions {
  readonly credentials: CredentialStore;
  readonly logger: Logger;
  readonly metrics: BrokerMetrics;
  readonly policy: AclPolicy;
  /** Failed-login limits and the bound on concurrent password checks; default limits when absent. */
  readonly loginGuard?: LoginGuard;
  /** Largest PUBLISH payload per role, bytes; roles not listed are limited by their packet size only. */
  readonly maxPayloadBytes?: Partial<Record<Role, number>>;
  /** Roles that may publish retained messages. Default: `admin` only. */
  readonly retainRoles?: readonly Role[];
}

export interface AuthHooks extends Required<
  Pick<AedesOptions, 'authenticate' | 'authorizePublish' | 'authorizeSubscribe' | 'authorizeForward'>
> {
  /** The authenticated principal behind a client, if it logged in. */
  principalOf(client: Client | null): Principal | undefined;
  /** Call on aedes' `clientDisconnect`: releases the client id of a clean session. */
  released(client: Client): void;
  /**
   * Closes every connected client whose user was removed or whose role,
   * machine or password changed (call after the credentials changed).
   * Returns how many were closed.
   */
  revokeStale(clients: Iterable<Client>): number;
}

/** CONNACK return codes of MQTT 3.1.1 (aedes' own enum is an ambient const enum). */
const CONNACK_BAD_CREDENTIALS = 4;
const CONNACK_NOT_AUTHORIZED = 5;
const CONNACK_IDENTIFIER_REJECTED = 2;
const CONNACK_SERVER_UNAVAILABLE = 3;

function authError(message: string, returnCode: 2 | 3 | 4 | 5): AuthenticateError {
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError;
}

/** The peer address of a client (TCP/TLS socket or the HTTP request behind a WebSocket). */
export function remoteAddress(client: Client): string | undefined {
  const conn = client.conn as { remoteAddress?: string };
  return conn.remoteAddress ?? client.req?.socket.remoteAddress;
}

export function createAuthHooks(options: AuthHooksOptions): AuthHooks {
  const { credentials, logger, metrics, policy } = options;
  const guard = options.loginGuard ?? new LoginGuard();
  /** Checks running now, by login (see `loginKey`): identical logins wait for one check. */
  const loginsInFlight = new Map<string, Promise<LoginCheck>>();
  const retainRoles = new Set<Role>(options.retainRoles ?? ['admin']);
  const maxPayloadBytes = options.maxPayloadBytes ?? {};
  const principals = new WeakMap<Client, Principal>();
  /**
   * Which user owns each client id: the live connection's, and for clean:false
   * sessions the stored session's. Another user may not take the id over: that
   * would kick the owner off and inherit (or wipe) its queued messages.
   */
  const owners = new Map<string, { username: string; client: Client; persistent: boolean }>();

  const principalOf = (client: Client | null): Principal | undefined =>
    client === null ? undefined : principals.get(client);
  const roleOf = (client: Client | null): RoleLabel => principalOf(client)?.role ?? 'unknown';
  // ACL decisions per principal and topic: a device publishes to one topic, a subscriber receives a few dozen,
  // so the filters are matched once per topic, not once per message. A principal is replaced on every login.
  const publishDecisions = new WeakMap<Principal, Map<string, AclDecision>>();
  const readDecisions = new WeakMap<Principal, Map<string, boolean>>();
  const cached = <V>(
    cache: WeakMap<Principal, Map<string, V>>,
    p: Principal,
    topic: string,
    f: () => V,
  ): V => {
    let m = cache.get(p);
    if (m === undefined) {
      m = new Map();
      cache.set(p, m);
    }
    let v = m.get(topic);
    if (v === undefined) {
      v = f();
      if (m.size >= ACL_CACHE_TOPICS) m.clear();
      m.set(topic, v);
    }
    return v;
  };

  function refuseLogin(
    client: Client,
    username: string | undefined,
    reason: AuthFailureReason,
    done: (err: AuthenticateError) => void,
    err: AuthenticateError,
    extra: Record<string, unknown> = {},
  ): void {
    metrics.authFailures.inc({ reason });
    logger.warn('MQTT login refused', {
      action: 'authenticate',
      outcome: 'failure',
      reason,
      clientId: client.id,
      username,
      remoteAddress: remoteAddress(client),
      ...extra,
    });
    done(err);
  }

  /** An ACL denial of a publish: logged, counted, connection closed. */
  function denyPublish(
    client: Client | null,
    packet: PublishPacket,
    reason: string,
    done: (err: Error) => void,
  ): void {
    metrics.aclDenials.inc({ action: 'publish', role: roleOf(client) });
    logger.warn('publish denied', {
      action: 'authorize_publish',
      outcome: 'failure',
      reason,
      clientId: client?.id,
      username: principalOf(client)?.username,
      topic: packet.topic,
      qos: packet.qos,
    });
    // aedes closes the connection on an error: MQTT 3.1.1 has no negative PUBACK ([MQTT-3.3.5-2]).
    done(new Error(`not authorized to publish to ${packet.topic}`));
  }

  /** Refuses a publish the ACL allowed (size, retain): logged, counted, connection closed. */
  function rejectPublish(
    client: Client | null,
    packet: PublishPacket,
    reason: PublishRejectReason,
    detail: string,
    done: (err: Error) => void,
  ): void {
    const principal = principalOf(client);
    metrics.publishRejected.inc({ reason, role: roleOf(client) });
    logger.warn('publish refused', {
      action: 'authorize_publish',
      outcome: 'failure',
      reason,
      detail,
      clientId: client?.id,
      username: principal?.username,
      topic: packet.topic,
      qos: packet.qos,
    });
    done(new Error(`publish to ${packet.topic} refused: ${detail}`));
  }

  return {
    principalOf,

    authenticate(client, username, password, done) {
      const refuse = (
        name: string | undefined,
        reason: AuthFailureReason,
        message: string,
        code: 2 | 3 | 4 | 5,
        extra: Record<string, unknown> = {},
      ): void => refuseLogin(client, name, reason, (e) => done(e, false), authError(message, code), extra);
      if (username === undefined || username === '') {
        refuse(undefined, 'anonymous', 'anonymous login is not allowed', CONNACK_NOT_AUTHORIZED);
        return;
      }
      if (!USERNAME_PATTERN.test(username)) {
        // No user of that name can exist: refused without a hash and without a limiter entry.
        refuse(username.slice(0, 64), 'unknown_user', 'bad user name or password', CONNACK_BAD_CREDENTIALS);
        return;
      }
      if (password === undefined || password.length === 0) {
        refuse(
          username,
          credentials.has(username) ? 'bad_password' : 'unknown_user',
          'bad user name or password',
          CONNACK_BAD_CREDENTIALS,
        );
        return;
      }
      const accept = (principal: Principal): void => {
        const owner = owners.get(client.id);
        if (owner !== undefined && owner.username !== principal.username) {
          refuse(
            username,
            'session_taken',
            `client id ${client.id} belongs to another user`,
            CONNACK_IDENTIFIER_REJECTED,
          );
          return;
        }
        principals.set(client, principal);
        owners.set(client.id, { username: principal.username, client, persistent: !client.clean });
        logger.debug('MQTT login accepted', {
          action: 'authenticate',
          outcome: 'success',
          clientId: client.id,
          username,
          role: principal.role,
        });
        done(null, true);
      };
      // A login in the success cache costs no scrypt: served before the limits.
      const cached = credentials.cached(username, password);
      if (cached !== undefined) {
        accept(cached);
        return;
      }
      // The same login already being checked (a reconnect storm of one device) shares that
      // check: no rate-limit slot and no scrypt of its own.
      const key = credentials.loginKey(username, password);
      let check = loginsInFlight.get(key);
      if (check === undefined) {
        check = guard
          .check(remoteAddress(client) ?? 'unknown', username, () => credentials.verify(username, password))
          .finally(() => loginsInFlight.delete(key));
        loginsInFlight.set(key, check);
      }
      check.then(
        (result) => {
          switch (result.outcome) {
            case 'accepted':
              accept(result.principal);
              return;
            case 'rejected':
              refuse(
                username,
                credentials.has(username) ? 'bad_password' : 'unknown_user',
                'bad user name or password',
                CONNACK_BAD_CREDENTIALS,
              );
              return;
            case 'rate_limited':
              refuse(
                username,
                'rate_limited',
                'too many failed logins; try later',
                CONNACK_SERVER_UNAVAILABLE,
                {
                  limitedBy: result.limitedBy,
                  retryAfterS: result.retryAfterS,
                },
              );
              return;
            case 'overloaded':
              refuse(
                username,
                'overloaded',
                'too many logins pending; try later',
                CONNACK_SERVER_UNAVAILABLE,
              );
              return;
          }
        },
        (err: unknown) => {
          logger.error('credential check failed', {
            clientId: client.id,
            username,
            err: describeError(err),
          });
          refuse(username, 'error', 'server unavailable', CONNACK_SERVER_UNAVAILABLE);
        },
      );
    },

    authorizePublish(client: Client | null, packet: PublishPacket, done) {
      const principal = principalOf(client);
      if (principal === undefined) {
        denyPublish(client, packet, 'no authenticated client', done);
        return;
      }
      const decision = cached(publishDecisions, principal, packet.topic, () =>
        canPublish(principal, packet.topic, policy),
      );
      if (decision.allowed) {
        // MQTT 3.1.1 has no negative PUBACK: like an ACL denial, these close the connection.
        if (packet.retain && !retainRoles.has(principal.role)) {
          rejectPublish(
            client,
            packet,
            'retain',
            `role ${principal.role} may not publish retained messages`,
            done,
          );
          return;
        }
        const max = maxPayloadBytes[principal.role];
        const size = packet.payload.length;
        if (max !== undefined && size > max) {
          rejectPublish(client, packet, 'payload_too_large', `payload is ${size} bytes (limit ${max})`, done);
          return;
        }
        done(null);
        return;
      }
      denyPublish(client, packet, decision.reason, done);
    },

    authorizeSubscribe(client: Client, subscription: Subscription, done) {
      const principal = principalOf(client);
      const decision =
        principal === undefined
          ? { allowed: false as const, reason: 'no authenticated client' }
          : canSubscribe(principal, subscription.topic, policy);
      if (decision.allowed) {
        done(null, subscription);
        return;
      }
      metrics.aclDenials.inc({ action: 'subscribe', role: roleOf(client) });
      logger.warn('subscribe denied', {
        action: 'authorize_subscribe',
        outcome: 'failure',
        reason: decision.reason,
        clientId: client.id,
        username: principal?.username,
        topic: subscription.topic,
      });
      // A null subscription is refused with SUBACK return code 0x80; the connection stays open.
      done(null, null);
    },

    authorizeForward(client: Client, packet: AedesPublishPacket) {
      const principal = principalOf(client);
      // Defence in depth: never deliver what the receiver could not subscribe to
      // (e.g. messages queued for a session before its user's role changed).
      const sys = isSysTopic(packet.topic);
      if (
        principal === undefined ||
        !cached(readDecisions, principal, packet.topic, () =>
          rulesFor(principal, policy).subscribe.some((f) => filterCovers(f, packet.topic)),
        )
      ) {
        logger.debug('delivery dropped: receiver may not read this topic', {
          clientId: client.id,
          username: principal?.username,
          topic: packet.topic,
        });
        return null;
      }
      if (!sys) metrics.messagesOut.inc({ role: principal.role });
      return packet;
    },

    released(client: Client) {
      const owner = owners.get(client.id);
      if (owner !== undefined && owner.client === client && !owner.persistent) owners.delete(client.id);
    },

    revokeStale(clients: Iterable<Client>): number {
      let closed = 0;
      for (const client of clients) {
        const principal = principals.get(client);
        if (principal === undefined || credentials.isCurrent(principal)) continue;
        principals.delete(client);
        metrics.revokedDisconnects.inc();
        logger.warn('credentials revoked: disconnecting', {
          action: 'revoke',
          clientId: client.id,
          username: principal.username,
          role: principal.role,
        });
        client.close();
        closed++;
      }
      return closed;
    },
  };
}
