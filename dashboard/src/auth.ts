import {
  createHash,
  randomBytes,
  scrypt as scryptCb,
  timingSafeEqual,
  type ScryptOptions,
} from 'node:crypto';
import { z } from 'zod';
import { ConfigError } from '../../common/errors.ts';
import { AttemptLimiter, type AttemptRule } from '../../common/security/attempt-limiter.ts';
import type { DashboardRole } from './shared/view.ts';

/**
 * Dashboard logins: users with a role and a salted scrypt hash (never a
 * plaintext password), server-side sessions behind a random HttpOnly cookie,
 * a CSRF token per session, and a limiter on failed logins.
 */

export const DASHBOARD_ROLES = ['viewer', 'operator'] as const satisfies readonly DashboardRole[];

/** scrypt cost of new hashes: N = 2^15, r 8, p 1 (≈ 50–100 ms, 32 MiB). */
export const DEFAULT_SCRYPT = { N: 32768, r: 8, p: 1 } as const;
const KEY_LENGTH = 32;
const SALT_BYTES = 16;

/** One dashboard user as stored in `DASHBOARD_USERS` or the users file. */
export interface DashboardUser {
  username: string;
  role: DashboardRole;
  /** base64 */
  salt: string;
  /** base64 scrypt key of the password. */
  hash: string;
  /** Cost parameters when not {@link DEFAULT_SCRYPT}. */
  scrypt?: { N: number; r: number; p: number };
}

const base64 = z.string().regex(/^[A-Za-z0-9+/]+={0,2}$/, 'must be base64');
export const dashboardUserSchema = z.strictObject({
  username: z
    .string()
    .min(1)
    .max(64)
    // eslint-disable-next-line no-control-regex -- the pattern exists to exclude control characters
    .regex(/^[^\u0000-\u001f\u007f]+$/, 'must not contain control characters'),
  role: z.enum(DASHBOARD_ROLES),
  salt: base64.min(16),
  hash: base64.min(16),
  scrypt: z
    .strictObject({
      N: z
        .number()
        .int()
        .min(1024)
        .max(2 ** 20)
        .refine((n) => (n & (n - 1)) === 0, 'N must be a power of two'),
      r: z.number().int().min(1).max(32),
      p: z.number().int().min(1).max(16),
    })
    .optional(),
});

/**
 * Parses a users list: a JSON array of users or `{"users": [...]}`. Throws a
 * {@link ConfigError} naming `where` and the first problem.
 */
export function parseUsers(text: string, where: string): DashboardUser[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${where} is not valid JSON: ${(err as Error).message}`);
  }
  const list: unknown = Array.isArray(json)
    ? json
    : typeof json === 'object' && json !== null
      ? (json as { users?: unknown }).users
      : undefined;
  if (!Array.isArray(list))
    throw new ConfigError(
      `${where} must be a JSON array of users or {"users": [...]} (see npm run dashboard -- hash-password)`,
    );
  const users: DashboardUser[] = [];
  list.forEach((entry, i) => {
    const r = dashboardUserSchema.safeParse(entry);
    if (!r.success) {
      const issue = r.error.issues[0];
      const at = [i, ...(issue?.path ?? [])].join('.');
      throw new ConfigError(
        `${where} is invalid at ${at}: ${issue?.message ?? 'unexpected shape'} (expected ` +
          `{"username","role":"viewer"|"operator","salt","hash"}, see npm run dashboard -- hash-password)`,
      );
    }
    users.push(r.data);
  });
  const seen = new Set<string>();
  for (const u of users) {
    if (seen.has(u.username))
      throw new ConfigError(`${where} lists user ${JSON.stringify(u.username)} twice`);
    seen.add(u.username);
  }
  return users;
}

function scrypt(
  password: Buffer,
  salt: Buffer,
  keyLength: number,
  params: { N: number; r: number; p: number },
): Promise<Buffer> {
  const options: ScryptOptions = {
    N: params.N,
    r: params.r,
    p: params.p,
    maxmem: 256 * params.N * params.r + 1024 * 1024,
  };
  return new Promise((resolve, reject) =>
    scryptCb(password, salt, keyLength, options, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

/** Hashes a password for a users file entry (fresh random salt). */
export async function hashDashboardPassword(
  username: string,
  role: DashboardRole,
  password: string,
  params: { N: number; r: number; p: number } = DEFAULT_SCRYPT,
): Promise<DashboardUser> {
  if (password.length === 0) throw new ConfigError('password must not be empty');
  const salt = randomBytes(SALT_BYTES);
  const key = await scrypt(Buffer.from(password, 'utf8'), salt, KEY_LENGTH, params);
  const user: DashboardUser = { username, role, salt: salt.toString('base64'), hash: key.toString('base64') };
  if (params.N !== DEFAULT_SCRYPT.N || params.r !== DEFAULT_SCRYPT.r || params.p !== DEFAULT_SCRYPT.p)
    user.scrypt = { ...params };
  return dashboardUserSchema.parse(user);
}

/** Checks logins against a fixed list of users, in constant time for unknown users too. */
export class UserDirectory {
  private readonly users: Map<string, DashboardUser>;
  private dummy: Promise<DashboardUser> | undefined;

  constructor(users: readonly DashboardUser[]) {
    this.users = new Map(users.map((u) => [u.username, u]));
  }

  get size(): number {
    return this.users.size;
  }

  /** The user when the password is right, undefined otherwise (unknown user or wrong password alike). */
  async verify(username: string, password: string): Promise<DashboardUser | undefined> {
    const user = this.users.get(username);
    // Unknown users cost a hash too, so timing does not tell which usernames exist.
    // The dummy uses the cost of the configured users, so both paths take the same time.
    const params = this.users.values().next().value?.scrypt ?? DEFAULT_SCRYPT;
    const stored =
      user ?? (await (this.dummy ??= hashDashboardPassword('dummy', 'viewer', 'dummy-password', params)));
    const expected = Buffer.from(stored.hash, 'base64');
    const actual = await scrypt(
      Buffer.from(password, 'utf8'),
      Buffer.from(stored.salt, 'base64'),
      expected.length,
      stored.scrypt ?? DEFAULT_SCRYPT,
    );
    const ok = actual.length === expected.length && timingSafeEqual(actual, expected);
    return ok && user !== undefined ? user : undefined;
  }
}

/** A logged-in browser. */
export interface Session {
  username: string;
  role: DashboardRole;
  /** Sent back by the page in `X-CSRF-Token` on every state-changing request. */
  csrfToken: string;
  createdAt: number;
  lastSeen: number;
  /** Hash of the cookie token (the map key); identifies the session's streams. */
  id: string;
}

export interface SessionStoreOptions {
  /** A session ends after this long without a request, ms. Default 8 h. */
  idleTtlMs?: number;
  /** A session ends this long after login regardless, ms. Default 24 h. */
  absoluteTtlMs?: number;
  /** Most sessions at once; the oldest is dropped beyond. Default 10 000. */
  maxSessions?: number;
  now?: () => number;
}

function digest(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/**
 * Server-side sessions. The cookie carries 256 random bits; the store keeps
 * only their SHA-256, so a heap dump does not hand out live cookies.
 */
export class SessionStore {
  private readonly sessions = new Map<string, Session>();
  private readonly idleTtlMs: number;
  private readonly absoluteTtlMs: number;
  private readonly maxSessions: number;
  private readonly now: () => number;

  constructor(options: SessionStoreOptions = {}) {
    this.idleTtlMs = options.idleTtlMs ?? 8 * 3600_000;
    this.absoluteTtlMs = options.absoluteTtlMs ?? 24 * 3600_000;
    this.maxSessions = options.maxSessions ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  get idleTtl(): number {
    return this.idleTtlMs;
  }

  /** Creates a session; returns the cookie token (shown to the browser only). */
  create(user: Pick<DashboardUser, 'username' | 'role'>): { token: string; session: Session } {
    this.sweep();
    if (this.sessions.size >= this.maxSessions) {
      const oldest = this.sessions.keys().next();
      if (oldest.done !== true) this.sessions.delete(oldest.value);
    }
    const token = randomBytes(32).toString('base64url');
    const t = this.now();
    const id = digest(token);
    const session: Session = {
      username: user.username,
      role: user.role,
      csrfToken: randomBytes(32).toString('base64url'),
      createdAt: t,
      lastSeen: t,
      id,
    };
    this.sessions.set(id, session);
    return { token, session };
  }

  /** The live session of a cookie token (and marks it used), or undefined. */
  get(token: string | undefined): Session | undefined {
    if (token === undefined || token.length === 0 || token.length > 128) return undefined;
    const id = digest(token);
    const s = this.sessions.get(id);
    if (s === undefined) return undefined;
    const t = this.now();
    if (t - s.lastSeen > this.idleTtlMs || t - s.createdAt > this.absoluteTtlMs) {
      this.sessions.delete(id);
      return undefined;
    }
    s.lastSeen = t;
    return s;
  }

  /** Ends a session; returns it when it existed. */
  destroy(token: string | undefined): Session | undefined {
    // eslint-disable-next-line security/detect-possible-timing-attacks -- compares with undefined (is a cookie present), not with a secret; the token itself is only looked up by its digest.
    if (token === undefined) return undefined;
    const id = digest(token);
    const s = this.sessions.get(id);
    this.sessions.delete(id);
    return s;
  }

  /** Marks a session (by id) as in use: an open event stream counts as activity. */
  touch(id: string): void {
    const s = this.sessions.get(id);
    if (s !== undefined) s.lastSeen = Math.max(s.lastSeen, this.now());
  }

  /** Drops expired sessions; returns their ids (their event streams should end too). */
  sweep(): string[] {
    const t = this.now();
    const gone: string[] = [];
    for (const [id, s] of this.sessions) {
      if (t - s.lastSeen > this.idleTtlMs || t - s.createdAt > this.absoluteTtlMs) {
        this.sessions.delete(id);
        gone.push(id);
      }
    }
    return gone;
  }

  get size(): number {
    return this.sessions.size;
  }
}

/** Compares two secrets in constant time. */
export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export interface LoginLimiterOptions {
  /** Failed logins per (client address, username) within `windowMs` before refusing. Default 5. */
  maxFailures?: number;
  /** Failed logins per client address (any username) within `windowMs` before refusing. Default 20. */
  maxFailuresPerAddress?: number;
  /** Window, ms. Default 5 minutes. */
  windowMs?: number;
  /** Addresses and address+username pairs tracked at most; least recently used forgotten first. Default 50,000. */
  maxKeys?: number;
  now?: () => number;
}

/** A login attempt holding its slot in the limiter: settle it once with the outcome. */
export interface LoginAttempt {
  readonly ok: true;
  fail(): void;
  succeed(): void;
  /** The check errored: counts nothing. */
  cancel(): void;
}

/**
 * Limits failed logins per client address and username (guessing one
 * password) and per address (spraying many usernames). An attempt
 * {@link reserve}s its slot before the password is checked and counts as a
 * failure until it settles, so parallel guesses are limited like sequential
 * ones: a refused attempt does not run scrypt. A success clears that
 * username's failures from that address. Memory is bounded per key
 * (least recently used forgotten first), never by clearing everything.
 */
export class LoginLimiter {
  private readonly limiter: AttemptLimiter;
  private readonly maxFailures: number;
  private readonly maxPerAddress: number;

  constructor(options: LoginLimiterOptions = {}) {
    this.maxFailures = options.maxFailures ?? 5;
    this.maxPerAddress = options.maxFailuresPerAddress ?? 20;
    this.limiter = new AttemptLimiter({
      windowMs: options.windowMs ?? 300_000,
      maxKeys: options.maxKeys ?? 50_000,
      ...(options.now === undefined ? {} : { now: options.now }),
    });
  }

  private rules(address: string, username: string): AttemptRule[] {
    return [
      { key: `u\u0000${address}\u0000${username}`, max: this.maxFailures },
      { key: `a\u0000${address}`, max: this.maxPerAddress },
    ];
  }

  /** Keys tracked (for tests). */
  get size(): number {
    return this.limiter.size;
  }

  /** Takes a slot before checking a password, or says how many seconds to wait. */
  reserve(address: string, username: string): LoginAttempt | { ok: false; retryAfterS: number } {
    const rules = this.rules(address, username);
    const r = this.limiter.reserve(rules);
    if (!r.ok) return { ok: false, retryAfterS: r.retryAfterS };
    return {
      ok: true,
      fail: () => r.fail(),
      succeed: () => r.succeed([(rules[0] as AttemptRule).key]),
      cancel: () => r.cancel(),
    };
  }

  /** Seconds until another attempt is allowed, or 0 when allowed now. Reserves nothing. */
  retryAfter(address: string, username: string): number {
    return this.limiter.retryAfter(this.rules(address, username));
  }

  /** Records a failed login (outside a reservation). */
  fail(address: string, username: string): void {
    this.limiter.fail(this.rules(address, username));
  }

  /** Forgets this username's failures from this address. */
  succeed(address: string, username: string): void {
    this.limiter.clear((this.rules(address, username)[0] as AttemptRule).key);
  }
}
