import { RawMqtt } from './raw-mqtt.ts';
import { flags, report, sleep, startBrokerProcess } from './lib.ts';

/**
 * A persistent (clean: false) QoS 1 subscriber — the Kafka bridge while
 * Kafka is down — stops reading: it subscribes and goes away. A device then
 * publishes N telemetry messages of 1 KiB. Measures the broker's RSS growth
 * and, on reconnect, how many queued messages the subscriber is replayed.
 *
 *   npx tsx scripts/attacks/stalled-subscriber.ts [--n 100000] [--env BROKER_MAX_QUEUED_PER_CLIENT=…]
 */

const f = flags();
const n = Number(f.n ?? 100_000);
const extraEnv = Object.fromEntries(
  (f.env ?? '')
    .split(',')
    .filter(Boolean)
    .map((kv) => kv.split('=') as [string, string]),
);
const device = { username: 'sensor-m1', password: 'pw-device-1', role: 'device' as const, machineId: 'm1' };
const bridge = { username: 'bridge', password: 'pw-bridge-1', role: 'bridge' as const };

const broker = await startBrokerProcess({ users: [device, bridge], env: extraEnv, scryptCost: 10 });
try {
  const sub = await RawMqtt.open({ port: broker.port });
  if ((await sub.connect({ clientId: 'bridge-1', clean: false, ...bridge })) !== 0)
    throw new Error('bridge login');
  await sub.subscribe([{ topic: 'factory/+/telemetry', qos: 1 }]);
  await sub.disconnect();
  await sleep(1500);
  const before = await broker.rssMiB();

  const pub = await RawMqtt.open({ port: broker.port, timeoutMs: 60_000 });
  if ((await pub.connect({ clientId: 'sensor-m1', ...device })) !== 0) throw new Error('device login');
  const payload = Buffer.alloc(1024, 0x61);
  const window = 100;
  for (let i = 0; i < n; i += window) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + window); j++)
      batch.push(pub.publish({ topic: 'factory/m1/telemetry', payload, qos: 1 }));
    const acks = await Promise.all(batch);
    if (acks.some((a) => a !== 'puback'))
      throw new Error(`publish ${i}: ${acks.find((a) => a !== 'puback')}`);
  }
  await pub.disconnect();
  await sleep(2000);
  const after = await broker.rssMiB();

  const back = await RawMqtt.open({ port: broker.port, timeoutMs: 60_000 });
  await back.connect({ clientId: 'bridge-1', clean: false, ...bridge });
  let replayed = 0;
  for (let idle = 0; idle < 20;) {
    const got = back.drainPublishes();
    replayed += got.length;
    for (const p of got) if (p.messageId !== undefined) back.send({ cmd: 'puback', messageId: p.messageId });
    idle = got.length === 0 ? idle + 1 : 0;
    await sleep(100);
  }
  back.destroy();
  const metrics = await fetch(`http://127.0.0.1:${broker.httpPort}/metrics`).then((r) => r.text());
  const dropped = metrics
    .split('\n')
    .find((line) => line.startsWith('driftline_broker_queue_dropped_total'))
    ?.split(' ')
    .at(-1);
  report('stalled-subscriber', {
    published: n,
    payloadBytes: payload.length,
    rssBeforeMiB: Math.round(before),
    rssAfterMiB: Math.round(after),
    rssGrowthMiB: Math.round(after - before),
    replayedOnReconnect: replayed,
    droppedMetric: dropped === undefined ? 'n/a' : Number(dropped),
  });
} finally {
  await broker.stop();
}
