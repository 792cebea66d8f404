import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { silentLogger } from '../../common/logging/logger.ts';
import { startBroker } from '../../broker/src/broker.ts';
import { CredentialStore } from '../../broker/src/credentials.ts';
import { loadAssets } from '../../dashboard/src/assets.ts';
import {
  hashDashboardPassword,
  LoginLimiter,
  SessionStore,
  UserDirectory,
} from '../../dashboard/src/auth.ts';
import { createRequestHandler } from '../../dashboard/src/http.ts';
import { EventStreamHub } from '../../dashboard/src/sse.ts';
import { DashboardStore } from '../../dashboard/src/state.ts';
import { RawMqtt } from './raw-mqtt.ts';
import { flags, report } from './lib.ts';

/**
 * N wrong passwords for one username, all sent at once from one address,
 * against the dashboard login (`--target dashboard`, its default limiter:
 * 5 failures per address and username) or the broker (`--target broker`).
 * Counts how many of them reached the password check (scrypt), through a
 * counting wrapper around the user directory / credential store.
 *
 *   npx tsx scripts/attacks/parallel-wrong-passwords.ts [--target dashboard|broker] [--n 60]
 */

const f = flags();
const n = Number(f.n ?? 60);
const target = f.target ?? 'dashboard';

if (target === 'dashboard') {
  const users = new UserDirectory([await hashDashboardPassword('olivia', 'operator', 'right-password')]);
  let checks = 0;
  const verify = users.verify.bind(users);
  users.verify = (u, p) => {
    checks++;
    return verify(u, p);
  };
  const hub = new EventStreamHub();
  const store = new DashboardStore({ modelName: 'm' });
  const server = http.createServer(
    createRequestHandler({
      users,
      sessions: new SessionStore(),
      limiter: new LoginLimiter(),
      hub,
      assets: await loadAssets(),
      snapshot: () => store.snapshot(),
      modelName: 'm',
      rollback: () => Promise.reject(new Error('unused')),
      logger: silentLogger(),
      secureCookies: false,
    }),
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/login`;
  const statuses = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'olivia', password: `wrong-${i}` }),
      }).then((r) => r.status),
    ),
  );
  const byStatus: Record<string, number> = {};
  for (const s of statuses) byStatus[s] = (byStatus[s] ?? 0) + 1;
  report('parallel-wrong-passwords', { target, attempts: n, reachedScrypt: checks, httpStatuses: byStatus });
  hub.close();
  server.closeAllConnections();
  server.close();
} else {
  const credentials = CredentialStore.inMemory();
  await credentials.add({
    username: 'sensor-m1',
    role: 'device',
    machineId: 'm1',
    password: 'right-password',
  });
  let checks = 0;
  const verify = credentials.verify.bind(credentials);
  credentials.verify = (u, p) => {
    checks++;
    return verify(u, p);
  };
  const broker = await startBroker({
    port: 0,
    wsPort: null,
    credentials,
    logger: silentLogger(),
    registry: new Registry(),
  });
  const conns = await Promise.all(Array.from({ length: n }, () => RawMqtt.open({ port: broker.port })));
  const codes = await Promise.all(
    conns.map((c, i) =>
      c.connect({
        clientId: `guess-${i}`,
        username: 'sensor-m1',
        password: `wrong-${i}`,
        timeoutMs: 120_000,
      }),
    ),
  );
  const byCode: Record<string, number> = {};
  for (const c of codes) byCode[String(c)] = (byCode[String(c)] ?? 0) + 1;
  for (const c of conns) c.destroy();
  report('parallel-wrong-passwords', { target, attempts: n, reachedScrypt: checks, connackCodes: byCode });
  await broker.close();
}
