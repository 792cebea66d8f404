import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../common/config/env.ts';
import { ConfigError } from '../../../common/errors.ts';
import {
  hashDashboardPassword,
  LoginLimiter,
  parseUsers,
  safeEqual,
  SessionStore,
  UserDirectory,
} from '../../../dashboard/src/auth.ts';
import { dashboardConfigSpec, loadDashboardUsers } from '../../../dashboard/src/config.ts';
import { runHashPasswordCli } from '../../../dashboard/src/hash-password.ts';
import { TEST_SCRYPT } from '../../helpers/dashboard/stack.ts';

/**
 * Dashboard logins: hashed users, sessions, the failed-login limiter, the users config and the hash-password
 * helper.
 */

describe('users and passwords', () => {
  it('stores a salted scrypt hash, never the password, and verifies it', async () => {
    const u = await hashDashboardPassword('alice', 'operator', 'correct horse', TEST_SCRYPT);
    expect(Object.keys(u).sort()).toEqual(['hash', 'role', 'salt', 'scrypt', 'username']);
    expect(JSON.stringify(u)).not.toContain('correct horse');
    const again = await hashDashboardPassword('alice', 'operator', 'correct horse', TEST_SCRYPT);
    expect(again.salt).not.toBe(u.salt);
    const dir = new UserDirectory([u]);
    expect((await dir.verify('alice', 'correct horse'))?.role).toBe('operator');
    expect(await dir.verify('alice', 'wrong')).toBeUndefined();
    expect(await dir.verify('mallory', 'correct horse')).toBeUndefined();
  });

  it('uses the default cost when none is recorded (the format of the users file)', async () => {
    const u = await hashDashboardPassword('bob', 'viewer', 'pw');
    expect(u.scrypt).toBeUndefined();
    expect((await new UserDirectory([u]).verify('bob', 'pw'))?.username).toBe('bob');
  });

  it('parses a users list and names the problem when it is invalid', async () => {
    const u = await hashDashboardPassword('alice', 'viewer', 'pw', TEST_SCRYPT);
    expect(parseUsers(JSON.stringify([u]), 'x')).toEqual([u]);
    expect(parseUsers(JSON.stringify({ users: [u] }), 'x')).toEqual([u]);
    expect(() => parseUsers('{', 'DASHBOARD_USERS')).toThrow(/DASHBOARD_USERS is not valid JSON/);
    expect(() => parseUsers(JSON.stringify([{ ...u, role: 'admin' }]), 'f.json')).toThrow(
      /f.json is invalid at 0.role/,
    );
    expect(() => parseUsers(JSON.stringify([{ ...u, password: 'plain' }]), 'f.json')).toThrow(ConfigError);
    expect(() => parseUsers(JSON.stringify([u, u]), 'f.json')).toThrow(/twice/);
  });
});

describe('SessionStore', () => {
  it('creates random tokens, finds sessions by token, expires idle and old sessions', () => {
    let t = 0;
    const s = new SessionStore({ idleTtlMs: 1000, absoluteTtlMs: 5000, now: () => t });
    const a = s.create({ username: 'alice', role: 'viewer' });
    const b = s.create({ username: 'alice', role: 'viewer' });
    expect(a.token).not.toBe(b.token);
    expect(a.token.length).toBeGreaterThanOrEqual(43);
    expect(a.session.csrfToken).not.toBe(b.session.csrfToken);
    expect(s.get(a.token)?.username).toBe('alice');
    expect(s.get('forged')).toBeUndefined();
    expect(s.get(undefined)).toBeUndefined();
    for (t = 900; t <= 4900; t += 900) expect(s.get(a.token)).toBeDefined(); // kept alive
    expect(s.get(b.token)).toBeUndefined(); // idle too long
    t = 5100;
    expect(s.get(a.token)).toBeUndefined(); // absolute limit
    const d = s.create({ username: 'dave', role: 'viewer' });
    const e = s.create({ username: 'erin', role: 'viewer' });
    t = 5500;
    s.touch(d.session.id); // an open event stream keeps it alive
    t = 6400;
    expect(s.sweep()).toEqual([e.session.id]);
    expect(s.get(d.token)?.username).toBe('dave');
    const c = s.create({ username: 'carol', role: 'operator' });
    expect(s.destroy(c.token)?.username).toBe('carol');
    expect(s.get(c.token)).toBeUndefined();
  });

  it('compares secrets in constant time without throwing on length differences', () => {
    expect(safeEqual('abc', 'abc')).toBe(true);
    expect(safeEqual('abc', 'abd')).toBe(false);
    expect(safeEqual('abc', 'abcd')).toBe(false);
  });
});

describe('LoginLimiter', () => {
  it('refuses after maxFailures for one address and username, until the window passes', () => {
    let t = 0;
    const l = new LoginLimiter({ maxFailures: 3, maxFailuresPerAddress: 10, windowMs: 60_000, now: () => t });
    for (let i = 0; i < 3; i++) {
      expect(l.retryAfter('1.2.3.4', 'alice')).toBe(0);
      l.fail('1.2.3.4', 'alice');
      t += 1000;
    }
    expect(l.retryAfter('1.2.3.4', 'alice')).toBe(57);
    expect(l.retryAfter('5.6.7.8', 'alice')).toBe(0); // another address
    expect(l.retryAfter('1.2.3.4', 'bob')).toBe(0); // another user
    t = 60_001;
    expect(l.retryAfter('1.2.3.4', 'alice')).toBe(0);
  });

  it('limits one address spraying many usernames', () => {
    const l = new LoginLimiter({
      maxFailures: 100,
      maxFailuresPerAddress: 4,
      windowMs: 60_000,
      now: () => 0,
    });
    for (let i = 0; i < 4; i++) l.fail('1.2.3.4', `user${i}`);
    expect(l.retryAfter('1.2.3.4', 'someone-else')).toBeGreaterThan(0);
  });

  it("forgets a username's failures after a successful login", () => {
    const l = new LoginLimiter({ maxFailures: 2, now: () => 0 });
    l.fail('a', 'alice');
    l.succeed('a', 'alice');
    l.fail('a', 'alice');
    expect(l.retryAfter('a', 'alice')).toBe(0);
  });
});

describe('dashboard configuration', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'dashboard-config-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('has the documented defaults and readable one-line errors', () => {
    const c = loadConfig(dashboardConfigSpec, {});
    expect(c).toMatchObject({
      host: '127.0.0.1',
      port: 8080,
      mqttUsername: 'dashboard',
      staleAfterMs: 10_000,
      modelName: 'driftline-efficiency',
    });
    expect(() => loadConfig(dashboardConfigSpec, { DASHBOARD_PORT: 'eighty' })).toThrow(
      /^Invalid configuration: DASHBOARD_PORT="eighty" is invalid: expected an integer from 0 to 65535$/,
    );
    expect(dashboardConfigSpec.mqttPassword.secret).toBe(true);
    expect(dashboardConfigSpec.users.secret).toBe(true);
  });

  it('reads users from the file and the environment, and refuses none or duplicates', async () => {
    const a = await hashDashboardPassword('alice', 'operator', 'pw', TEST_SCRYPT);
    const b = await hashDashboardPassword('bob', 'viewer', 'pw', TEST_SCRYPT);
    const file = path.join(dir, 'users.json');
    await writeFile(file, JSON.stringify({ users: [a] }));
    const users = await loadDashboardUsers({ usersFile: file, users: JSON.stringify([b]) });
    expect(users.map((u) => u.username)).toEqual(['alice', 'bob']);
    await expect(loadDashboardUsers({ usersFile: undefined, users: undefined })).rejects.toThrow(
      /no dashboard users: set DASHBOARD_USERS_FILE or DASHBOARD_USERS/,
    );
    await expect(
      loadDashboardUsers({ usersFile: path.join(dir, 'missing.json'), users: undefined }),
    ).rejects.toThrow(/DASHBOARD_USERS_FILE=".*missing.json" cannot be read/);
    await expect(loadDashboardUsers({ usersFile: file, users: JSON.stringify([a]) })).rejects.toThrow(
      /in both/,
    );
  });

  it('hash-password prints an entry and adds it to a users file (mode 0600), replacing a user of the same name', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const file = path.join(dir, 'users.json');
    const io = (password: string) => ({
      out: (l: string) => out.push(l),
      err: (l: string) => err.push(l),
      readPassword: async () => password,
    });
    expect(
      await runHashPasswordCli(['--username', 'alice', '--role', 'operator', '--file', file], io('s3cret')),
    ).toBe(0);
    const entry = JSON.parse(out[0] as string) as {
      username: string;
      role: string;
      salt: string;
      hash: string;
    };
    expect(entry).toMatchObject({ username: 'alice', role: 'operator' });
    expect(out[0]).not.toContain('s3cret');
    expect(await runHashPasswordCli(['--username', 'alice', '--file', file], io('other'))).toBe(0);
    const users = parseUsers(await readFile(file, 'utf8'), file);
    expect(users.map((u) => [u.username, u.role])).toEqual([['alice', 'viewer']]);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(err.join('\n')).toMatch(/added operator "alice"[\s\S]*replaced viewer "alice"/);
    expect((await new UserDirectory(users).verify('alice', 'other'))?.role).toBe('viewer');
  });

  it('hash-password refuses bad arguments and empty passwords', async () => {
    const err: string[] = [];
    const io = { out: () => undefined, err: (l: string) => err.push(l), readPassword: async () => '' };
    expect(await runHashPasswordCli([], io)).toBe(2);
    expect(await runHashPasswordCli(['--username', 'a', '--role', 'admin'], io)).toBe(2);
    expect(await runHashPasswordCli(['--username', 'a'], io)).toBe(2);
    expect(await runHashPasswordCli(['--bogus'], io)).toBe(2);
    expect(err.join('\n')).toMatch(
      /--username NAME is required[\s\S]*--role must be viewer or operator[\s\S]*empty password refused/,
    );
  });
});
