import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type * as Crypto from 'node:crypto';
import { ConfigError, ValidationError } from '../../../common/errors.ts';

// Count scrypt calls to observe the verification cache.
const scryptCalls = vi.hoisted(() => ({ n: 0 }));
vi.mock('node:crypto', async (importOriginal) => {
  const original = await importOriginal<typeof Crypto>();
  const scrypt = ((...args: Parameters<typeof original.scrypt>) => {
    scryptCalls.n++;
    return (original.scrypt as (...a: unknown[]) => void)(...args);
  }) as typeof original.scrypt;
  return { ...original, default: { ...original, scrypt }, scrypt };
});

const { CredentialStore, hashPassword, scryptParamsForCost, verifyPassword, watchCredentials } =
  await import('../../../broker/src/credentials.ts');
const { runCredentialsCli } = await import('../../../broker/src/credentials-cli.ts');

const LOW = { scryptCost: 10 };
let dir: string;
let file: string;

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'driftline-creds-'));
  file = path.join(dir, 'sub', 'credentials.json');
  scryptCalls.n = 0;
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('password hashing', () => {
  it('verifies the right password and refuses a wrong one', async () => {
    const params = scryptParamsForCost(10);
    const h = await hashPassword('s3cret', params);
    expect(h).toMatchObject({ algorithm: 'scrypt', params: { N: 1024, r: 8, p: 1, keyLength: 32 } });
    expect(await verifyPassword('s3cret', h)).toBe(true);
    expect(await verifyPassword('s3cret ', h)).toBe(false);
    expect(await verifyPassword('', h)).toBe(false);
  });

  it('salts every hash randomly', async () => {
    const params = scryptParamsForCost(10);
    const [a, b] = await Promise.all([hashPassword('same', params), hashPassword('same', params)]);
    expect(a.salt).not.toBe(b.salt);
    expect(a.hash).not.toBe(b.hash);
  });

  it('verifies with the params stored in the hash, not the current cost', async () => {
    const old = await hashPassword('pw', scryptParamsForCost(11));
    expect(old.params.N).toBe(2048);
    expect(await verifyPassword('pw', old)).toBe(true);
  });

  it('refuses a cost outside 10..20', () => {
    expect(() => scryptParamsForCost(9)).toThrow(ConfigError);
    expect(() => scryptParamsForCost(21)).toThrow(ConfigError);
  });
});

describe('CredentialStore', () => {
  it('returns the principal for a right password and undefined otherwise', async () => {
    const store = CredentialStore.inMemory(LOW);
    await store.add({ username: 'dev-m1', role: 'device', machineId: 'm1', password: 'pw-m1' });
    await store.add({ username: 'edge', role: 'edge', password: 'pw-edge' });
    expect(await store.verify('dev-m1', 'pw-m1')).toEqual({
      username: 'dev-m1',
      role: 'device',
      machineId: 'm1',
    });
    expect(await store.verify('edge', Buffer.from('pw-edge'))).toEqual({ username: 'edge', role: 'edge' });
    expect(await store.verify('dev-m1', 'pw-edge')).toBeUndefined();
    expect(await store.verify('nobody', 'pw-m1')).toBeUndefined();
  });

  it('spends a scrypt on unknown users too (no timing shortcut)', async () => {
    const store = CredentialStore.inMemory(LOW);
    await store.add({ username: 'a', role: 'admin', password: 'x' });
    scryptCalls.n = 0;
    await store.verify('ghost', 'x');
    expect(scryptCalls.n).toBeGreaterThanOrEqual(1);
  });

  it('validates users: devices need a machine, others refuse one, roles are fixed', async () => {
    const store = CredentialStore.inMemory(LOW);
    await expect(store.add({ username: 'd', role: 'device', password: 'p' })).rejects.toThrow(/--machine/);
    await expect(
      store.add({ username: 'd', role: 'device', machineId: 'a/b', password: 'p' }),
    ).rejects.toThrow(ValidationError);
    await expect(store.add({ username: 'e', role: 'edge', machineId: 'm1', password: 'p' })).rejects.toThrow(
      /takes no machine id/,
    );
    await expect(store.add({ username: 'x', role: 'root' as never, password: 'p' })).rejects.toThrow(
      /role "root"/,
    );
    await expect(store.add({ username: ' x', role: 'edge', password: 'p' })).rejects.toThrow(/username/);
    await expect(store.add({ username: 'x', role: 'edge', password: '' })).rejects.toThrow(/empty/);
  });

  it('refuses a duplicate username unless replacing, and a replaced password stops working', async () => {
    const store = CredentialStore.inMemory(LOW);
    await store.add({ username: 'edge', role: 'edge', password: 'old' });
    await expect(store.add({ username: 'edge', role: 'edge', password: 'new' })).rejects.toThrow(
      /already exists/,
    );
    expect(await store.verify('edge', 'old')).toBeDefined();
    await store.add({ username: 'edge', role: 'edge', password: 'new' }, { replace: true });
    expect(await store.verify('edge', 'old')).toBeUndefined();
    expect(await store.verify('edge', 'new')).toBeDefined();
  });

  it('caches successful verifications for the TTL, per password', async () => {
    let now = 1_000_000;
    const store = CredentialStore.inMemory({ ...LOW, cacheTtlMs: 5_000, now: () => now });
    await store.add({ username: 'edge', role: 'edge', password: 'pw' });
    scryptCalls.n = 0;
    expect(await store.verify('edge', 'pw')).toBeDefined();
    expect(scryptCalls.n).toBe(1);
    for (let i = 0; i < 20; i++) expect(await store.verify('edge', 'pw')).toBeDefined();
    expect(scryptCalls.n).toBe(1);
    // A wrong password is never served from the cache.
    expect(await store.verify('edge', 'wrong')).toBeUndefined();
    expect(scryptCalls.n).toBe(2);
    now += 5_001;
    expect(await store.verify('edge', 'pw')).toBeDefined();
    expect(scryptCalls.n).toBe(3);
  });

  it('coalesces concurrent checks of the same login', async () => {
    const store = CredentialStore.inMemory(LOW);
    await store.add({ username: 'edge', role: 'edge', password: 'pw' });
    scryptCalls.n = 0;
    const results = await Promise.all(Array.from({ length: 10 }, () => store.verify('edge', 'pw')));
    expect(results.every((r) => r?.role === 'edge')).toBe(true);
    expect(scryptCalls.n).toBe(1);
  });

  it('drops cached logins when the user is removed', async () => {
    const store = CredentialStore.inMemory(LOW);
    await store.add({ username: 'edge', role: 'edge', password: 'pw' });
    expect(await store.verify('edge', 'pw')).toBeDefined();
    expect(store.remove('edge')).toBe(true);
    expect(await store.verify('edge', 'pw')).toBeUndefined();
    expect(store.remove('edge')).toBe(false);
  });

  it('does not cache with a TTL of 0', async () => {
    const store = CredentialStore.inMemory({ ...LOW, cacheTtlMs: 0 });
    await store.add({ username: 'edge', role: 'edge', password: 'pw' });
    scryptCalls.n = 0;
    await store.verify('edge', 'pw');
    await store.verify('edge', 'pw');
    expect(scryptCalls.n).toBe(2);
  });

  it('round-trips through the file: mode 0600, hashes only, no temp files left', async () => {
    const store = await CredentialStore.open(file, LOW);
    expect(store.size).toBe(0);
    await store.add({ username: 'dev-m1', role: 'device', machineId: 'm1', password: 'plain-text-pw-1' });
    await store.add({ username: 'dash', role: 'dashboard', password: 'plain-text-pw-2' });
    await store.save();

    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const text = await readFile(file, 'utf8');
    expect(text).not.toContain('plain-text-pw');
    const json = JSON.parse(text) as {
      version: number;
      users: { username: string; password: { salt: string; hash: string; params: { N: number } } }[];
    };
    expect(json.version).toBe(1);
    expect(json.users.map((u) => u.username)).toEqual(['dash', 'dev-m1']);
    expect(json.users[0]?.password.params.N).toBe(1024);
    expect(await readdir(path.dirname(file))).toEqual(['credentials.json']);

    const again = await CredentialStore.open(file, LOW);
    expect(again.list().map((u) => [u.username, u.role, u.machineId])).toEqual([
      ['dash', 'dashboard', undefined],
      ['dev-m1', 'device', 'm1'],
    ]);
    expect(await again.verify('dev-m1', 'plain-text-pw-1')).toEqual({
      username: 'dev-m1',
      role: 'device',
      machineId: 'm1',
    });
    expect(await again.verify('dev-m1', 'plain-text-pw-2')).toBeUndefined();
  });

  it('keeps in-memory users out of the file and across reloads', async () => {
    const store = await CredentialStore.open(file, LOW);
    await store.add({ username: 'edge', role: 'edge', password: 'saved' });
    await store.add(
      { username: 'sim-m1', role: 'device', machineId: 'm1', password: 'ephemeral' },
      { persist: false },
    );
    await store.save();
    expect(await readFile(file, 'utf8')).not.toContain('sim-m1');

    const other = await CredentialStore.open(file, LOW);
    await other.add({ username: 'qa', role: 'inspection', password: 'qa' });
    await other.save();
    await store.reload();
    expect(store.list().map((u) => [u.username, u.persisted])).toEqual([
      ['edge', true],
      ['qa', true],
      ['sim-m1', false],
    ]);
    expect(await store.verify('sim-m1', 'ephemeral')).toBeDefined();
  });

  it('refuses a malformed or tampered file with one readable ConfigError', async () => {
    const store = await CredentialStore.open(file, LOW);
    await store.add({ username: 'edge', role: 'edge', password: 'pw' });
    await store.save();
    const json = JSON.parse(await readFile(file, 'utf8')) as {
      users: { password: { params: { N: number } } }[];
    };
    (json.users[0] as { password: { params: { N: number } } }).password.params.N = 2 ** 30;
    await writeFile(file, JSON.stringify(json));
    await expect(CredentialStore.open(file, LOW)).rejects.toThrow(/invalid at users\.0\.password\.params\.N/);
    await writeFile(file, '{not json');
    await expect(CredentialStore.open(file, LOW)).rejects.toThrow(ConfigError);
  });

  it('watches its file and reloads when another process saves it', async () => {
    const store = await CredentialStore.open(file, LOW);
    let reloads = 0;
    const stop = watchCredentials(store, {
      intervalMs: 20,
      onReload: () => reloads++,
      onError: () => undefined,
    });
    try {
      const cli = await CredentialStore.open(file, LOW);
      await cli.add({ username: 'late', role: 'dashboard', password: 'pw' });
      await cli.save();
      await vi.waitFor(() => expect(reloads).toBeGreaterThanOrEqual(1), { timeout: 2000, interval: 20 });
      expect(await store.verify('late', 'pw')).toEqual({ username: 'late', role: 'dashboard' });
    } finally {
      stop();
    }
  });

  it('an in-memory store has nothing to save to', async () => {
    await expect(CredentialStore.inMemory(LOW).save()).rejects.toThrow(ConfigError);
  });
});

describe('credentials CLI', () => {
  function io(stdin = ''): { out: string[]; err: string[]; run: (...argv: string[]) => Promise<number> } {
    const out: string[] = [];
    const err: string[] = [];
    const env = { BROKER_CREDENTIALS_FILE: file, BROKER_SCRYPT_COST: '10' };
    return {
      out,
      err,
      run: (...argv) =>
        runCredentialsCli(argv, {
          stdout: (t) => out.push(t),
          stderr: (t) => err.push(t),
          readStdin: async () => stdin,
          env,
        }),
    };
  }

  it('adds, lists without secrets, and removes users', async () => {
    const a = io();
    expect(
      await a.run('add', 'dev-m1', '--role', 'device', '--machine', 'm1', '--password', 'hunter2-plain'),
    ).toBe(0);
    expect(await a.run('add', 'dash', '--role', 'dashboard', '--password', 'dash-plain')).toBe(0);
    expect((await stat(file)).mode & 0o777).toBe(0o600);

    const l = io();
    expect(await l.run('list')).toBe(0);
    const listing = l.out.join('');
    expect(listing).toMatch(/^USERNAME\s+ROLE\s+MACHINE\s+CREATED\n/);
    expect(listing).toMatch(/dev-m1\s+device\s+m1\s+\d{4}-/);
    expect(listing).toMatch(/dash\s+dashboard\s+-\s+/);
    const stored = JSON.parse(await readFile(file, 'utf8')) as {
      users: { password: { salt: string; hash: string } }[];
    };
    for (const u of stored.users) {
      expect(listing).not.toContain(u.password.hash);
      expect(listing).not.toContain(u.password.salt);
    }
    expect(listing).not.toContain('hunter2-plain');
    expect(listing).not.toMatch(/scrypt|salt|hash/i);

    const j = io();
    expect(await j.run('list', '--json')).toBe(0);
    const users = JSON.parse(j.out.join('')) as Record<string, unknown>[];
    expect(users.map((u) => Object.keys(u).sort())).toEqual([
      ['createdAt', 'role', 'username'],
      ['createdAt', 'machineId', 'role', 'username'],
    ]);

    const r = io();
    expect(await r.run('remove', 'dash')).toBe(0);
    expect(await r.run('remove', 'dash')).toBe(1);
    expect(r.err.join('')).toContain('no user "dash"');
    const after = await CredentialStore.open(file, LOW);
    expect(after.list().map((u) => u.username)).toEqual(['dev-m1']);
    expect(await after.verify('dev-m1', 'hunter2-plain')).toBeDefined();
  });

  it('generates a password, prints it once on stdout, and it works', async () => {
    const a = io();
    expect(await a.run('add', 'edge', '--role', 'edge')).toBe(0);
    const password = a.out.join('').trim();
    expect(password).toMatch(/^[A-Za-z0-9_-]{24}$/);
    expect(a.err.join('')).toContain('shown only this once');
    expect(await readFile(file, 'utf8')).not.toContain(password);
    expect(await (await CredentialStore.open(file, LOW)).verify('edge', password)).toEqual({
      username: 'edge',
      role: 'edge',
    });
  });

  it('reads the password from stdin', async () => {
    const a = io('from-stdin-pw\n');
    expect(await a.run('add', 'qa', '--role', 'inspection', '--password-stdin')).toBe(0);
    expect(a.out.join('')).toBe('');
    expect(await (await CredentialStore.open(file, LOW)).verify('qa', 'from-stdin-pw')).toBeDefined();
  });

  it('refuses bad input with a message and a non-zero exit code', async () => {
    const a = io();
    expect(await a.run('add', 'd1', '--role', 'device')).toBe(1);
    expect(a.err.join('')).toContain('--machine');
    expect(await a.run('add', 'x', '--role', 'root')).toBe(2);
    expect(await a.run('frobnicate')).toBe(2);
    expect(await a.run()).toBe(2);
    expect(await a.run('add', 'x', '--role', 'edge', '--password', 'a', '--password-stdin')).toBe(2);
    expect(await a.run('add', 'x', '--role', 'edge', '--bogus')).toBe(2);
    expect(a.err.join('')).toContain('Usage:');
    expect(await a.run('add', 'e', '--role', 'edge', '--password', 'p')).toBe(0);
    expect(await a.run('add', 'e', '--role', 'edge', '--password', 'q')).toBe(1);
    expect(await a.run('add', 'e', '--role', 'edge', '--password', 'q', '--replace')).toBe(0);
  });
});
