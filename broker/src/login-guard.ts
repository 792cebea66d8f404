import { AttemptLimiter } from '../../common/security/attempt-limiter.ts';
import { FairGate, GateFullError } from '../../common/security/fair-gate.ts';
import type { Principal } from './acl.ts';

/**
 * What stands between a CONNECT and scrypt (see `hooks.ts` for the order):
 *
 * 1. **Failed-login limits** per client address and per username, within a
 *    sliding window. An attempt reserves its slot *before* its password is
 *    checked, so parallel guesses count at once: of 60 simultaneous wrong
 *    passwords for one user, at most `maxFailuresPerUsername` reach scrypt.
 *    A refused attempt gets CONNACK 3 (server unavailable: "try later";
 *    clients treat 4 and 5 as final).
 * 2. **A bound on concurrent password checks** (`maxConcurrent`, scrypt runs on
 *    libuv's 4 threads anyway) with a bounded wait queue (`maxQueued`) served
 *    round-robin by client address: a flood from one address waits behind
 *    itself, not in front of everyone else. Beyond the queue: CONNACK 3.
 *
 * Logins still in the credential store's success cache skip both (no scrypt).
 */

export interface LoginGuardOptions {
  /** Password checks running at once. */
  maxConcurrent: number;
  /** Password checks waiting at once; beyond, logins are refused with CONNACK 3. */
  maxQueued: number;
  /** Window of the failure counts, ms. */
  windowMs: number;
  /** Failed (or in-flight) logins per client address within the window. */
  maxFailuresPerAddress: number;
  /** Failed (or in-flight) logins per username within the window. */
  maxFailuresPerUsername: number;
  /** Addresses and usernames tracked at most (least recently used forgotten first). */
  maxTrackedKeys?: number;
  now?: () => number;
}

export const DEFAULT_LOGIN_GUARD: LoginGuardOptions = {
  maxConcurrent: 4,
  maxQueued: 256,
  windowMs: 60_000,
  maxFailuresPerAddress: 30,
  maxFailuresPerUsername: 10,
  maxTrackedKeys: 50_000,
};

export type LoginCheck =
  | { outcome: 'accepted'; principal: Principal }
  | { outcome: 'rejected' }
  | { outcome: 'rate_limited'; limitedBy: 'address' | 'username'; retryAfterS: number }
  | { outcome: 'overloaded' };

export class LoginGuard {
  readonly gate: FairGate;
  readonly limiter: AttemptLimiter;
  private readonly options: LoginGuardOptions;

  constructor(options: Partial<LoginGuardOptions> = {}) {
    this.options = { ...DEFAULT_LOGIN_GUARD, ...options };
    this.gate = new FairGate({
      maxConcurrent: this.options.maxConcurrent,
      maxQueued: this.options.maxQueued,
    });
    this.limiter = new AttemptLimiter({
      windowMs: this.options.windowMs,
      maxKeys: this.options.maxTrackedKeys ?? 50_000,
      ...(this.options.now === undefined ? {} : { now: this.options.now }),
    });
  }

  /**
   * Reserves an attempt for `address` and `username`, waits for a check slot
   * and runs `verify` (the scrypt check). Errors of `verify` propagate.
   */
  async check(
    address: string,
    username: string,
    verify: () => Promise<Principal | undefined>,
  ): Promise<LoginCheck> {
    const addressKey = `addr\u0000${address}`;
    const userKey = `user\u0000${username}`;
    const reservation = this.limiter.reserve([
      { key: addressKey, max: this.options.maxFailuresPerAddress },
      { key: userKey, max: this.options.maxFailuresPerUsername },
    ]);
    if (!reservation.ok) {
      return {
        outcome: 'rate_limited',
        limitedBy: reservation.key === addressKey ? 'address' : 'username',
        retryAfterS: reservation.retryAfterS,
      };
    }
    let principal: Principal | undefined;
    try {
      principal = await this.gate.run(address, verify);
    } catch (err) {
      reservation.cancel();
      if (err instanceof GateFullError) return { outcome: 'overloaded' };
      throw err;
    }
    if (principal === undefined) {
      reservation.fail();
      return { outcome: 'rejected' };
    }
    reservation.succeed();
    return { outcome: 'accepted', principal };
  }
}
