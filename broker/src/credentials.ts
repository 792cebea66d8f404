import {
  createHash,
  createHmac,
  randomBytes,
  scrypt as scryptCb,
  timingSafeEqual,
  type ScryptOptions,
} from 'node:crypto';
import { unwatchFile, watchFile, type Stats } from 'node:fs';
import { chmod, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { ConfigError, ValidationError } from '../../common/errors.ts';
import { MACHINE_ID_PATTERN } from '../../common/schema/telemetry.ts';
import { ROLES, type Principal, type Role } from './acl.ts';

/**
 * The broker's user database: usernames with a role (and, for devices, the one
 * machine they speak for) and a salted scrypt hash of the password. Plaintext
 * passwords are never stored. The JSON file is written atomically (temp file +
 * rename, mode 0600); users added with `persist: false` live only in memory
 * (`npm start` provisions simulated devices that way).
 */

/** 1–64 characters, no control characters, no leading or trailing white space. */
// eslint-disable-next-line no-control-regex -- the pattern exists to exclude control characters
export const USERNAME_PATTERN = /^(?!\s)[^\u0000-\u001f\u007f]{1,64}(?<!\s)$/;

/** scrypt parameters, stored next to each hash so the cost can change without invalidating old hashes. */
export interface ScryptParams {
  /** CPU/memory cost, a power of two. */
  readonly N: number;
  readonly r: number;
  readonly p: number;
  /** Derived key length in bytes. */
  readonly keyLength: number;
}

/** The stored form of one password. */
export interface PasswordHash {
  readonly algorithm: 'scrypt';
  readonly params: ScryptParams;
  /** base64 */
  readonly salt: string;
  /** base64 */
  readonly hash: string;
}

/** One user as it appears in `list()`: never the hash. */
export interface CredentialSummary {
  readonly username: string;
  readonly role: Role;
  readonly machineId?: string;
  readonly createdAt: string;
  /** False for users added in memory only (never written to the file). */
  readonly persisted: boolean;
}

interface Entry {
  readonly username: string;
  readonly role: Role;
  readonly machineId?: string;
  readonly createdAt: string;
  readonly password: PasswordHash;
  readonly persisted: boolean;
}

/** Options for {@link CredentialStore}. */
export interface CredentialStoreOptions {
  /** log2 of scrypt N for new hashes: 15 = N 32768, 32 MiB, about 50–100 ms. Tests use 10. Default 15. */
  readonly scryptCost?: number;
  /** How long a successful verification is cached, ms; 0 disables the cache. Default 60,000. */
  readonly cacheTtlMs?: number;
  /** At most this many cached verifications (oldest evicted first). Default 10,000. */
  readonly cacheMaxEntries?: number;
  /** Clock, for tests of the cache expiry. */
  readonly now?: () => number;
}

export interface AddUserInput {
  readonly username: string;
  readonly role: Role;
  /** Required for `device`, refused for every other role. */
  readonly machineId?: string;
  readonly password: string;
}

const SALT_BYTES = 16;
const KEY_LENGTH = 32;
const FILE_VERSION = 1;

// Bounds on stored params: a tampered file must not make one login allocate gigabytes.
const paramsSchema = z.object({
  N: z
    .number()
    .int()
    .min(2 ** 10)
    .max(2 ** 20)
    .refine((n) => (n & (n - 1)) === 0, 'N must be a power of two'),
  r: z.number().int().min(1).max(32),
  p: z.number().int().min(1).max(16),
  keyLength: z.number().int().min(16).max(128),
});
const base64 = z.string().regex(/^[A-Za-z0-9+/]+={0,2}$/, 'base64');
const fileSchema = z.object({
  version: z.literal(FILE_VERSION),
  users: z.array(
    z.object({
      username: z.string().regex(USERNAME_PATTERN),
      role: z.enum(ROLES),
      machineId: z.string().regex(MACHINE_ID_PATTERN).optional(),
      createdAt: z.string(),
      password: z.object({
        algorithm: z.literal('scrypt'),
        params: paramsSchema,
        salt: base64,
        hash: base64,
      }),
    }),
  ),
});
type CredentialsFile = z.infer<typeof fileSchema>;

function scrypt(password: Buffer, salt: Buffer, params: ScryptParams): Promise<Buffer> {
  const options: ScryptOptions = {
    N: params.N,
    r: params.r,
    p: params.p,
    maxmem: 256 * params.N * params.r + 1024 * 1024,
  };
  return new Promise((resolve, reject) => {
    scryptCb(password, salt, params.keyLength, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** scrypt params for a cost exponent (log2 N), r 8, p 1. */
export function scryptParamsForCost(cost: number): ScryptParams {
  if (!Number.isInteger(cost) || cost < 10 || cost > 20)
    throw new ConfigError(`scrypt cost must be an integer from 10 to 20, got ${cost}`);
  return { N: 2 ** cost, r: 8, p: 1, keyLength: KEY_LENGTH };
}

/** Hashes `password` with a fresh random salt. */
export async function hashPassword(password: string | Buffer, params: ScryptParams): Promise<PasswordHash> {
  const salt = randomBytes(SALT_BYTES);
  const key = await scrypt(Buffer.from(password), salt, params);
  return { algorithm: 'scrypt', params, salt: salt.toString('base64'), hash: key.toString('base64') };
}

/** Recomputes the hash with the stored salt and params and compares in constant time. */
export async function verifyPassword(password: string | Buffer, stored: PasswordHash): Promise<boolean> {
  const expected = Buffer.from(stored.hash, 'base64');
  const actual = await scrypt(Buffer.from(password), Buffer.from(stored.salt, 'base64'), stored.params);
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

/** A random password for generated credentials: 24 URL-safe characters (144 bits). */
export function generatePassword(): string {
  return randomBytes(18).toString('base64url');
}

export function validateUser(input: {
  username: string;
  role: string;
  machineId?: string | undefined;
}): void {
  if (!USERNAME_PATTERN.test(input.username)) {
    throw new ValidationError(
      'invalid_username',
      `username ${JSON.stringify(input.username)} must be 1-64 characters without control characters or surrounding spaces`,
    );
  }
  if (!(ROLES as readonly string[]).includes(input.role))
    throw new ValidationError(
      'invalid_role',
      `role ${JSON.stringify(input.role)} is not one of ${ROLES.join(', ')}`,
    );
  if (input.role === 'device') {
    if (input.machineId === undefined)
      throw new ValidationError('missing_machine', 'a device needs --machine <machineId>');
    if (!MACHINE_ID_PATTERN.test(input.machineId)) {
      throw new ValidationError(
        'invalid_machine',
        `machine id ${JSON.stringify(input.machineId)} must be 1-64 characters without / + # or control characters`,
      );
    }
  } else if (input.machineId !== undefined) {
    throw new ValidationError(
      'unexpected_machine',
      `only devices are bound to a machine; role ${input.role} takes no machine id`,
    );
  }
}

type Cached = { principal: Principal; expiresAt: number };

export class CredentialStore {
  /** Where `save()` writes; undefined for a purely in-memory store. */
  readonly file: string | undefined;
  private readonly users = new Map<string, Entry>();
  private readonly params: ScryptParams;
  private readonly cacheTtlMs: number;
  private readonly cacheMaxEntries: number;
  private readonly now: () => number;
  private readonly cache = new Map<string, Cached>();
  private readonly inflight = new Map<string, Promise<Principal | undefined>>();
  /** Per-process key for cache keys, so the cache never holds a plain fast hash of a password. */
  private readonly cacheKeySecret = randomBytes(32);
  /** Hash checked for unknown usernames so they cost the same time as wrong passwords. */
  private dummyHash: Promise<PasswordHash> | undefined;
  /** The entry fingerprint each principal handed out was made from (see {@link isCurrent}). */
  private readonly issuedFrom = new WeakMap<Principal, string>();
  private readonly changeListeners = new Set<() => void>();
  /** scrypt password checks run since start (cache hits and shared checks not included). */
  hashChecks = 0;

  private constructor(file: string | undefined, options: CredentialStoreOptions) {
    this.file = file;
    this.params = scryptParamsForCost(options.scryptCost ?? 15);
    this.cacheTtlMs = options.cacheTtlMs ?? 60_000;
    this.cacheMaxEntries = options.cacheMaxEntries ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /** A store that is never written to disk. */
  static inMemory(options: CredentialStoreOptions = {}): CredentialStore {
    return new CredentialStore(undefined, options);
  }

  /**
   * Loads `file` (a missing file gives an empty store that `save()` will create).
   * Throws a {@link ConfigError} naming the file when it is unreadable or malformed.
   */
  static async open(file: string, options: CredentialStoreOptions = {}): Promise<CredentialStore> {
    const store = new CredentialStore(path.resolve(file), options);
    await store.reload();
    return store;
  }

  /** Number of users. */
  get size(): number {
    return this.users.size;
  }

  /** The cost params new hashes are made with. */
  get scryptParams(): ScryptParams {
    return this.params;
  }

  /**
   * Re-reads the file (e.g. after `npm run credentials` changed it; see {@link watchCredentials}).
   * In-memory users are kept; persisted users are replaced by the file's content.
   */
  async reload(): Promise<void> {
    if (this.file === undefined) return;
    const data = await readCredentialsFile(this.file);
    for (const [name, entry] of this.users) if (entry.persisted) this.users.delete(name);
    for (const u of data?.users ?? []) {
      const { machineId, ...rest } = u;
      this.users.set(u.username, {
        ...rest,
        ...(machineId === undefined ? {} : { machineId }),
        persisted: true,
      });
    }
    this.cache.clear();
    this.changed();
  }

  /**
   * Adds a user (hashing the password). Refuses an existing username unless
   * `replace`. `persist: false` keeps the user in memory only: `save()` skips it.
   * Nothing is written until {@link save}.
   */
  async add(
    input: AddUserInput,
    options: { replace?: boolean; persist?: boolean } = {},
  ): Promise<CredentialSummary> {
    validateUser(input);
    if (input.password.length === 0)
      throw new ValidationError('empty_password', 'password must not be empty');
    if (this.users.has(input.username) && options.replace !== true) {
      throw new ValidationError(
        'user_exists',
        `user ${JSON.stringify(input.username)} already exists (remove it first or replace it)`,
      );
    }
    const password = await hashPassword(input.password, this.params);
    const entry: Entry = {
      username: input.username,
      role: input.role,
      ...(input.machineId === undefined ? {} : { machineId: input.machineId }),
      createdAt: new Date(this.now()).toISOString(),
      password,
      persisted: options.persist ?? true,
    };
    this.users.set(entry.username, entry);
    this.forget(entry.username);
    this.changed();
    return summarize(entry);
  }

  /** Removes a user; false when there was none. Its cached logins are dropped at once. */
  remove(username: string): boolean {
    const existed = this.users.delete(username);
    this.forget(username);
    if (existed) this.changed();
    return existed;
  }

  /**
   * Calls `listener` after every change of the users: a reload of the file,
   * an add, a remove. Returns a function that unregisters it.
   */
  onChange(listener: () => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  /**
   * Whether a principal this store handed out still matches its user: the user
   * exists with the same role, machine and password hash. False after the user
   * was removed, re-added, given a new password, role or machine — the broker
   * then disconnects the clients logged in with it.
   */
  isCurrent(principal: Principal): boolean {
    const issued = this.issuedFrom.get(principal);
    const entry = this.users.get(principal.username);
    return issued !== undefined && entry !== undefined && issued === fingerprint(entry);
  }

  /**
   * The principal of a login still in the success cache, without running
   * scrypt; undefined when it is not cached (or expired). The broker serves
   * cached logins before its rate limits and concurrency bound.
   */
  cached(username: string, password: string | Buffer): Principal | undefined {
    if (this.cacheTtlMs <= 0) return undefined;
    const key = this.cacheKey(username, password);
    const hit = this.cache.get(key);
    if (hit === undefined) return undefined;
    if (hit.expiresAt > this.now()) return hit.principal;
    this.cache.delete(key);
    return undefined;
  }

  /**
   * A key naming one login (username and a keyed hash of the password, never
   * the password): equal for identical logins, so a caller can let them share
   * one check.
   */
  loginKey(username: string, password: string | Buffer): string {
    return this.cacheKey(username, password);
  }

  /** Every user, sorted by name, without hashes. */
  list(): CredentialSummary[] {
    return [...this.users.values()].map(summarize).sort((a, b) => a.username.localeCompare(b.username));
  }

  /**
   * Checks a login. Resolves to the principal on success and undefined otherwise
   * (unknown user or wrong password, indistinguishable in timing). Successful
   * checks are cached for `cacheTtlMs` keyed by username and a keyed SHA-256 of
   * the password, so a reconnect storm costs one scrypt per user, not one per connect.
   */
  async verify(username: string, password: string | Buffer): Promise<Principal | undefined> {
    const key = this.cacheKey(username, password);
    const hit = this.cache.get(key);
    if (hit !== undefined) {
      if (hit.expiresAt > this.now()) return hit.principal;
      this.cache.delete(key);
    }
    const pending = this.inflight.get(key);
    if (pending !== undefined) return pending;
    const check = this.check(username, password).finally(() => this.inflight.delete(key));
    this.inflight.set(key, check);
    const principal = await check;
    if (principal !== undefined && this.cacheTtlMs > 0 && this.users.get(username) !== undefined) {
      if (this.cache.size >= this.cacheMaxEntries) {
        const oldest = this.cache.keys().next();
        if (oldest.done !== true) this.cache.delete(oldest.value);
      }
      this.cache.set(key, { principal, expiresAt: this.now() + this.cacheTtlMs });
    }
    return principal;
  }

  /** Is the user of this name known? (For the unknown-user vs bad-password metric label; never told to clients.) */
  has(username: string): boolean {
    return this.users.has(username);
  }

  /** Writes the persisted users to the file atomically with mode 0600. */
  async save(): Promise<void> {
    if (this.file === undefined) throw new ConfigError('this credential store has no file to save to');
    const data: CredentialsFile = {
      version: FILE_VERSION,
      users: this.list()
        .filter((s) => s.persisted)
        .map((s) => {
          const e = this.users.get(s.username) as Entry;
          return {
            username: e.username,
            role: e.role,
            ...(e.machineId === undefined ? {} : { machineId: e.machineId }),
            createdAt: e.createdAt,
            password: e.password,
          };
        }),
    };
    await writeFileAtomic(this.file, `${JSON.stringify(data, null, 2)}\n`);
  }

  private changed(): void {
    for (const listener of this.changeListeners) {
      try {
        listener();
      } catch {
        // a listener's failure must not break the reload
      }
    }
  }

  private async check(username: string, password: string | Buffer): Promise<Principal | undefined> {
    this.hashChecks++;
    const entry = this.users.get(username);
    if (entry === undefined) {
      this.dummyHash ??= hashPassword('driftline-dummy', this.params);
      await verifyPassword(password, await this.dummyHash);
      return undefined;
    }
    if (!(await verifyPassword(password, entry.password))) return undefined;
    // The user may have been removed or replaced while scrypt ran.
    if (this.users.get(username) !== entry) return undefined;
    const principal: Principal = {
      username: entry.username,
      role: entry.role,
      ...(entry.machineId === undefined ? {} : { machineId: entry.machineId }),
    };
    this.issuedFrom.set(principal, fingerprint(entry));
    return principal;
  }

  private cacheKey(username: string, password: string | Buffer): string {
    const digest = createHmac('sha256', this.cacheKeySecret).update(Buffer.from(password)).digest('hex');
    return `${createHash('sha256').update(username).digest('hex')}:${digest}`;
  }

  private forget(username: string): void {
    const prefix = `${createHash('sha256').update(username).digest('hex')}:`;
    for (const key of this.cache.keys()) if (key.startsWith(prefix)) this.cache.delete(key);
  }
}

/**
 * Reloads `store` whenever its file changes (polled every `intervalMs`, which
 * also works across the CLI's rename and on container volumes). A failed reload
 * keeps the previous users. Returns a function that stops watching.
 */
export function watchCredentials(
  store: CredentialStore,
  options: { intervalMs: number; onReload: () => void; onError: (err: unknown) => void },
): () => void {
  const file = store.file;
  if (file === undefined || options.intervalMs <= 0) return () => undefined;
  let queue = Promise.resolve();
  const listener = (curr: Stats, prev: Stats): void => {
    if (curr.mtimeMs === prev.mtimeMs && curr.ino === prev.ino && curr.size === prev.size) return;
    queue = queue.then(() => store.reload().then(options.onReload, options.onError));
  };
  watchFile(file, { interval: options.intervalMs, persistent: false }, listener);
  return () => unwatchFile(file, listener);
}

/** What makes a login valid: role, machine and the password hash (a reload keeps it for unchanged users). */
function fingerprint(e: Entry): string {
  return JSON.stringify([e.role, e.machineId ?? null, e.password.salt, e.password.hash]);
}

function summarize(e: Entry): CredentialSummary {
  return {
    username: e.username,
    role: e.role,
    ...(e.machineId === undefined ? {} : { machineId: e.machineId }),
    createdAt: e.createdAt,
    persisted: e.persisted,
  };
}

async function readCredentialsFile(file: string): Promise<CredentialsFile | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ConfigError(`credentials file ${file} cannot be read: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`credentials file ${file} is not JSON: ${(err as Error).message}`);
  }
  const parsed = fileSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(
      `credentials file ${file} is invalid at ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`,
    );
  }
  for (const u of parsed.data.users) {
    try {
      validateUser(u);
    } catch (err) {
      throw new ConfigError(`credentials file ${file}: ${(err as Error).message}`);
    }
  }
  return parsed.data;
}

/** Writes `text` to a temp file (mode 0600) beside `file`, flushes it, then renames it over `file`. */
async function writeFileAtomic(file: string, text: string): Promise<void> {
  const dir = path.dirname(file);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(tmp, 'wx', 0o600);
  try {
    await handle.writeFile(text, 'utf8');
    await handle.sync();
  } catch (err) {
    await handle.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  try {
    await chmod(tmp, 0o600);
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
