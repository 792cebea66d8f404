import { fixedHeader, RawMqtt } from './raw-mqtt.ts';
import { flags, report, sleep, startBrokerProcess } from './lib.ts';

/**
 * One unauthenticated socket announces a CONNECT of 268,435,455 bytes (the
 * MQTT maximum, 256 MiB) and streams filler as fast as the broker takes it.
 * Measures the broker's RSS before, at its peak and after, and how many bytes
 * the broker accepted before closing the connection (if it did).
 *
 *   npx tsx scripts/attacks/oversized-connect.ts [--mib 200] [--env BROKER_MAX_PACKET_BYTES_PRELOGIN=…]
 */

const f = flags();
const mib = Number(f.mib ?? 200);
const extraEnv = Object.fromEntries(
  (f.env ?? '')
    .split(',')
    .filter(Boolean)
    .map((kv) => kv.split('=') as [string, string]),
);

const broker = await startBrokerProcess({ users: [], env: extraEnv });
try {
  await sleep(1500);
  const before = await broker.rssMiB();
  let peak = before;
  const sampler = setInterval(() => {
    broker
      .rssMiB()
      .then((r) => (peak = Math.max(peak, r)))
      .catch(() => undefined);
  }, 100);

  const raw = await RawMqtt.open({ port: broker.port });
  const header = fixedHeader(1, 0, 268_435_455);
  let sent = 0;
  let refused = !(await raw.sendBytes(header));
  const chunk = Buffer.alloc(64 * 1024, 0x41);
  const started = Date.now();
  while (sent < mib * 1024 * 1024 && !raw.isClosed && !refused) {
    refused = !(await raw.sendBytes(chunk));
    if (!refused) sent += chunk.length;
  }
  // A failed write (EPIPE/ECONNRESET) or a close means the broker hung up.
  const closedBy = raw.isClosed || refused ? 'broker' : 'attacker';
  await sleep(1500);
  const duringPeak = peak;
  raw.destroy();
  await sleep(1500);
  clearInterval(sampler);
  const after = await broker.rssMiB();
  report('oversized-connect', {
    announcedBytes: 268_435_455,
    bytesWritten: sent,
    connectionClosedBy: closedBy,
    seconds: (Date.now() - started) / 1000,
    rssBeforeMiB: Math.round(before),
    rssPeakMiB: Math.round(duringPeak),
    rssAfterMiB: Math.round(after),
    brokerAlive: broker.alive(),
  });
} finally {
  await broker.stop();
}
