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
  type AclPolicy,
  type Principal,
} from './acl.ts';
import type { CredentialStore } from './credentials.ts';
import type { AuthFailureReason, BrokerMetrics, RoleLabel } from './metrics.ts';

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
}

export interface AuthHooks extends Required<
  Pick<AedesOptions, 'authenticate' | 'authorizePublish' | 'authorizeSubscribe' | 'authorizeForward'>
> {
  /** The authenticated principal behind a client, if it logged in. */
  principalOf(client: Client | null): Principal | undefined;
  /** Call on aedes' `clientDisconnect`: releases the client id of a clean session. */
  released(client: Client): void;
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

  function refuseLogin(
    client: Client,
    username: string | undefined,
    reason: AuthFailureReason,
    done: (err: AuthenticateError) => void,
    err: AuthenticateError,
  ): void {
    metrics.authFailures.inc({ reason });
    logger.warn('MQTT login refused', {
      action: 'authenticate',
      outcome: 'failure',
      reason,
      clientId: client.id,
      username,
      remoteAddress: remoteAddress(client),
    });
    done(err);
  }

  return {
    principalOf,

    authenticate(client, username, password, done) {
      if (username === undefined || username === '') {
        refuseLogin(
          client,
          undefined,
          'anonymous',
          (e) => done(e, false),
          authError('anonymous login is not allowed', CONNACK_NOT_AUTHORIZED),
        );
        return;
      }
      if (password === undefined || password.length === 0) {
        refuseLogin(
          client,
          username,
          credentials.has(username) ? 'bad_password' : 'unknown_user',
          (e) => done(e, false),
          authError('bad user name or password', CONNACK_BAD_CREDENTIALS),
        );
        return;
      }
      credentials.verify(username, password).then(
        (principal) => {
          if (principal === undefined) {
            const reason = credentials.has(username) ? 'bad_password' : 'unknown_user';
            refuseLogin(
              client,
              username,
              reason,
              (e) => done(e, false),
              authError('bad user name or password', CONNACK_BAD_CREDENTIALS),
            );
            return;
          }
          const owner = owners.get(client.id);
          if (owner !== undefined && owner.username !== principal.username) {
            refuseLogin(
              client,
              username,
              'session_taken',
              (e) => done(e, false),
              authError(`client id ${client.id} belongs to another user`, CONNACK_IDENTIFIER_REJECTED),
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
        },
        (err: unknown) => {
          logger.error('credential check failed', { clientId: client.id, username, err: describeError(err) });
          refuseLogin(
            client,
            username,
            'error',
            (e) => done(e, false),
            authError('server unavailable', CONNACK_SERVER_UNAVAILABLE),
          );
        },
      );
    },

    authorizePublish(client: Client | null, packet: PublishPacket, done) {
      const principal = principalOf(client);
      const decision =
        principal === undefined
          ? { allowed: false as const, reason: 'no authenticated client' }
          : canPublish(principal, packet.topic, policy);
      if (decision.allowed) {
        done(null);
        return;
      }
      metrics.aclDenials.inc({ action: 'publish', role: roleOf(client) });
      logger.warn('publish denied', {
        action: 'authorize_publish',
        outcome: 'failure',
        reason: decision.reason,
        clientId: client?.id,
        username: principal?.username,
        topic: packet.topic,
        qos: packet.qos,
      });
      // aedes closes the connection on an error: MQTT 3.1.1 has no negative PUBACK ([MQTT-3.3.5-2]).
      done(new Error(`not authorized to publish to ${packet.topic}`));
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
        !rulesFor(principal, policy).subscribe.some((f) => filterCovers(f, packet.topic))
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
  };
}
