import { randomBytes } from 'node:crypto';
import { RawMqtt } from './raw-mqtt.ts';
import { flags, report, sleep, startBrokerProcess } from './lib.ts';

/**
 * N bogus CONNECTs (random usernames and passwords, each on its own socket,
 * from one attacker address) are sent at once, each costing the broker a
 * scrypt; then a legitimate device logs in from another address. Measures the
 * legitimate login's time to CONNACK (deadline 30 s, mqtt.js' default connect
 * timeout) and the CONNACK codes the bogus ones got.
 *
 *   npx tsx scripts/attacks/connect-flood.ts [--n 300] [--from 127.0.0.2] [--baseline]
 *
 * `--baseline` measures the same login with no flood.
 */

const f = flags();
const n = f.baseline === 'true' ? 0 : Number(f.n ?? 300);
const from = f.from ?? '127.0.0.2';
const legit = {
  username: 'sensor-m1',
  password: 'legit-password-1',
  role: 'device' as const,
  machineId: 'm1',
};

const broker = await startBrokerProcess({ users: [legit] });
try {
  await sleep(1000);
  const bogus = await Promise.all(
    Array.from({ length: n }, () =>
      RawMqtt.open({ port: broker.port, localAddress: from, timeoutMs: 120_000 }),
    ),
  );
  const outcomes = bogus.map((c, i) =>
    c.connect({
      clientId: `bogus-${i}`,
      username: `user-${randomBytes(4).toString('hex')}`,
      password: randomBytes(12).toString('hex'),
      timeoutMs: 120_000,
    }),
  );
  await sleep(300); // every bogus CONNECT is on the wire
  const t0 = performance.now();
  const me = await RawMqtt.open({ port: broker.port, localAddress: '127.0.0.1' });
  const code = await me.connect({ clientId: 'legit', ...legit, timeoutMs: 30_000 });
  const ms = Math.round(performance.now() - t0);
  me.destroy();
  const settled = await Promise.all(outcomes);
  const codes: Record<string, number> = {};
  for (const c of settled) codes[String(c)] = (codes[String(c)] ?? 0) + 1;
  for (const c of bogus) c.destroy();
  report('connect-flood', {
    bogusConnects: n,
    attackerAddress: from,
    legitConnack: code,
    legitLoginMs: code === 'timeout' ? '>30000' : ms,
    bogusConnackCodes: codes,
    brokerAlive: broker.alive(),
  });
} finally {
  await broker.stop();
}
