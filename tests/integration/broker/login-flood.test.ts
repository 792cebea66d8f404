import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { RawMqtt } from '../../../scripts/attacks/raw-mqtt.ts';
import { CredentialStore } from '../../../broker/src/credentials.ts';
import { startTestBroker, USERS, type TestBroker } from './helpers.ts';

/**
 * Issue 10: scrypt ran on every CONNECT without a bound (300 pending bogus
 * CONNECTs pushed a legitimate login past its 30 s timeout) and failed logins
 * were not limited. The counts come from the credential store's `hashChecks`
 * (scrypt runs); figures with the production cost: scripts/attacks/connect-flood.ts
 * and parallel-wrong-passwords.ts.
 */

let t: TestBroker | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

const CONNACK_SERVER_UNAVAILABLE = 3;
const CONNACK_BAD_CREDENTIALS = 4;

function tally(codes: Array<number | string>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of codes) out[String(c)] = (out[String(c)] ?? 0) + 1;
  return out;
}

describe('login flood', () => {
  it('logs a legitimate device in while 300 bogus CONNECTs from one address are pending; at most 30 of them reach scrypt', async () => {
    t = await startTestBroker({ scryptCost: 12 });
    const attackers: RawMqtt[] = await Promise.all(
      Array.from({ length: 300 }, () => t!.open({ localAddress: '127.0.0.2', timeoutMs: 60_000 })),
    );
    const pending = attackers.map((c, i) =>
      c.connect({
        clientId: `bogus-${i}`,
        username: `user-${randomBytes(4).toString('hex')}`,
        password: randomBytes(12).toString('hex'),
        timeoutMs: 60_000,
      }),
    );
    const device = await t.open({ localAddress: '127.0.0.1' });
    const code = await device.connect({ clientId: 'legit', ...USERS.device, timeoutMs: 25_000 });
    expect(code).toBe(0);
    const codes = tally(await Promise.all(pending));
    // 30 = BROKER_LOGIN_MAX_FAILURES_PER_ADDRESS: the rest are refused with "server unavailable", unchecked.
    expect(codes).toEqual({ [CONNACK_BAD_CREDENTIALS]: 30, [CONNACK_SERVER_UNAVAILABLE]: 270 });
    expect(t.credentials.hashChecks).toBe(31);
    expect(await t.metric('driftline_broker_auth_failures_total', { reason: 'rate_limited' })).toBe(270);
  }, 60_000);

  it('lets at most 10 of 60 parallel wrong passwords for one username reach scrypt', async () => {
    t = await startTestBroker({ loginGuard: { maxFailuresPerAddress: 1000 } });
    const before = t.credentials.hashChecks;
    const conns = await Promise.all(Array.from({ length: 60 }, () => t!.open()));
    const codes = await Promise.all(
      conns.map((c, i) =>
        c.connect({ clientId: `guess-${i}`, username: USERS.device.username, password: `wrong-${i}` }),
      ),
    );
    expect(t.credentials.hashChecks - before).toBe(10);
    expect(tally(codes)).toEqual({ [CONNACK_BAD_CREDENTIALS]: 10, [CONNACK_SERVER_UNAVAILABLE]: 50 });
    // The right password is refused too while the username is locked: the attacker cannot tell.
    const right = await t.open();
    expect(await right.connect({ clientId: 'owner', ...USERS.device })).toBe(CONNACK_SERVER_UNAVAILABLE);
  });

  it('lets 40 simultaneous identical logins of one device (cold cache) share one check: all accepted, none rate-limited', async () => {
    // A device fleet reconnecting after a broker restart, or one client retrying fast: every CONNECT
    // carries the same login. With attempts reserved per connection, the 11th would be refused
    // (per-username limit 10); identical logins wait for the one check already running instead.
    t = await startTestBroker({ credentials: CredentialStore.inMemory({ scryptCost: 10, cacheTtlMs: 0 }) });
    const before = t.credentials.hashChecks;
    const conns = await Promise.all(Array.from({ length: 40 }, () => t!.open()));
    const codes = await Promise.all(
      conns.map((c, i) => c.connect({ clientId: `storm-${i}`, ...USERS.device })),
    );
    expect(tally(codes)).toEqual({ 0: 40 });
    expect(t.credentials.hashChecks - before).toBeLessThan(40);
    expect(await t.metric('driftline_broker_auth_failures_total', { reason: 'rate_limited' })).toBe(0);
  });

  it('serves a login still in the success cache during a lockout, without scrypt', async () => {
    t = await startTestBroker({ loginGuard: { maxFailuresPerUsername: 2 } });
    const first = await t.login(USERS.device);
    first.destroy();
    for (let i = 0; i < 2; i++) {
      const c = await t.open();
      expect(await c.connect({ clientId: `x${i}`, username: USERS.device.username, password: 'nope' })).toBe(
        CONNACK_BAD_CREDENTIALS,
      );
    }
    const checks = t.credentials.hashChecks;
    await t.login(USERS.device);
    expect(t.credentials.hashChecks).toBe(checks);
  });

  it('refuses with CONNACK 3 when the password-check queue is full', async () => {
    t = await startTestBroker({
      scryptCost: 12,
      loginGuard: {
        maxConcurrent: 1,
        maxQueued: 2,
        maxFailuresPerAddress: 1000,
        maxFailuresPerUsername: 1000,
      },
    });
    const conns = await Promise.all(Array.from({ length: 10 }, () => t!.open()));
    const codes = await Promise.all(
      conns.map((c, i) =>
        c.connect({ clientId: `q${i}`, username: `u${i}`, password: 'x', timeoutMs: 30_000 }),
      ),
    );
    const byCode = tally(codes);
    expect(byCode[String(CONNACK_SERVER_UNAVAILABLE)]).toBeGreaterThanOrEqual(1);
    expect(
      (byCode[String(CONNACK_BAD_CREDENTIALS)] ?? 0) + (byCode[String(CONNACK_SERVER_UNAVAILABLE)] ?? 0),
    ).toBe(10);
    expect(await t.metric('driftline_broker_auth_failures_total', { reason: 'overloaded' })).toBe(
      byCode[String(CONNACK_SERVER_UNAVAILABLE)],
    );
  });

  it('refuses a username that cannot exist (too long) without a hash', async () => {
    t = await startTestBroker();
    const before = t.credentials.hashChecks;
    const c = await t.open();
    expect(await c.connect({ clientId: 'long', username: 'u'.repeat(5000), password: 'x' })).toBe(
      CONNACK_BAD_CREDENTIALS,
    );
    expect(t.credentials.hashChecks).toBe(before);
  });
});
