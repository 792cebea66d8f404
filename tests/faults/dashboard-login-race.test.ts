import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../common/logging/logger.ts';
import { loadAssets } from '../../dashboard/src/assets.ts';
import { LoginLimiter, SessionStore, UserDirectory } from '../../dashboard/src/auth.ts';
import { createRequestHandler } from '../../dashboard/src/http.ts';
import { EventStreamHub } from '../../dashboard/src/sse.ts';
import { DashboardStore } from '../../dashboard/src/state.ts';
import { testUsers } from '../helpers/dashboard/stack.ts';

/**
 * Issue 10: the dashboard's login limit (5 failures per address and username)
 * was checked before scrypt and counted after it, so 60 parallel wrong
 * passwords all reached scrypt; and past 50,000 keys the limiter cleared its
 * whole table, wiping the attacker's count with everyone else's. Script:
 * `npx tsx scripts/attacks/parallel-wrong-passwords.ts --target dashboard`.
 */

let server: http.Server | undefined;
let hub: EventStreamHub | undefined;
afterEach(async () => {
  hub?.close();
  server?.closeAllConnections();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

async function startDashboardHttp(limiter: LoginLimiter): Promise<{ url: string; checks: () => number }> {
  const users = new UserDirectory(await testUsers());
  let checks = 0;
  const verify = users.verify.bind(users);
  users.verify = (u, p) => {
    checks++;
    return verify(u, p);
  };
  hub = new EventStreamHub();
  const store = new DashboardStore({ modelName: 'm' });
  server = http.createServer(
    createRequestHandler({
      users,
      sessions: new SessionStore(),
      limiter,
      hub,
      assets: await loadAssets(),
      snapshot: () => store.snapshot(),
      modelName: 'm',
      rollback: () => Promise.reject(new Error('unused')),
      logger: silentLogger(),
      secureCookies: false,
    }),
  );
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/login`,
    checks: () => checks,
  };
}

const attempt = (url: string, username: string, password: string): Promise<number> =>
  fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
  }).then((r) => r.status);

describe('dashboard login limiter under concurrency', () => {
  it('lets 5 of 60 parallel wrong passwords reach scrypt; the other 55 get 429 at once', async () => {
    const d = await startDashboardHttp(new LoginLimiter());
    const statuses = await Promise.all(
      Array.from({ length: 60 }, (_, i) => attempt(d.url, 'olivia', `wrong-${i}`)),
    );
    expect(d.checks()).toBe(5);
    expect(statuses.filter((s) => s === 401)).toHaveLength(5);
    expect(statuses.filter((s) => s === 429)).toHaveLength(55);
  });

  it('keeps limiting an attacker while 50,000 other keys pass through (LRU, not clear-all)', async () => {
    const limiter = new LoginLimiter({ maxKeys: 50_000 });
    const d = await startDashboardHttp(limiter);
    for (let i = 0; i < 5; i++) expect(await attempt(d.url, 'olivia', `wrong-${i}`)).toBe(401);
    expect(await attempt(d.url, 'olivia', 'again')).toBe(429);
    // The attacker keeps trying while failures from 30,000 other addresses (60,000 keys: address and
    // address+user) pass through the table; its keys stay recently used, so they are never the ones evicted.
    const checksBefore = d.checks();
    for (let round = 0; round < 30; round++) {
      expect(await attempt(d.url, 'olivia', `later-${round}`)).toBe(429);
      for (let j = 0; j < 1000; j++) limiter.fail(`10.${round}.${j >> 8}.${j & 255}`, 'x');
    }
    expect(limiter.size).toBeLessThanOrEqual(50_000);
    expect(d.checks()).toBe(checksBefore);
  });

  it('still logs the right password in after others failed from elsewhere', async () => {
    const d = await startDashboardHttp(new LoginLimiter());
    await Promise.all(Array.from({ length: 10 }, (_, i) => attempt(d.url, 'victor', `wrong-${i}`)));
    // Same address (the test client), another user: the pair key is separate; the address key allows 20.
    expect(await attempt(d.url, 'olivia', 'operator-pass-1')).toBe(200);
  });
});
