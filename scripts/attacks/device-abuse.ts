import { Registry } from 'prom-client';
import { silentLogger } from '../../common/logging/logger.ts';
import { startBroker } from '../../broker/src/broker.ts';
import { CredentialStore } from '../../broker/src/credentials.ts';
import { RawMqtt } from './raw-mqtt.ts';
import { flags, report, sleep } from './lib.ts';

/**
 * What a logged-in device can make the broker do on its own topic:
 *
 * - `--case payload`: publish a 20 MiB payload (QoS 1) to `factory/<own>/telemetry`.
 *   Reports whether the broker acknowledged it and how many bytes reached the
 *   edge and the dashboard subscribers.
 * - `--case retain`: publish a retained message to its own topic, then count
 *   what a subscriber connecting afterwards is replayed.
 *
 *   npx tsx scripts/attacks/device-abuse.ts --case payload|retain [--mib 20]
 */

const f = flags();
const which = f.case ?? 'payload';
const mib = Number(f.mib ?? 20);

const users = {
  device: { username: 'sensor-m1', password: 'pw-device', role: 'device' as const, machineId: 'm1' },
  edge: { username: 'edge', password: 'pw-edge', role: 'edge' as const },
  dashboard: { username: 'dash', password: 'pw-dash', role: 'dashboard' as const },
};
const credentials = CredentialStore.inMemory({ scryptCost: 10 });
for (const u of Object.values(users)) await credentials.add(u, { persist: false });
const broker = await startBroker({
  port: 0,
  wsPort: null,
  credentials,
  logger: silentLogger(),
  registry: new Registry(),
});

async function client(u: (typeof users)[keyof typeof users], id: string): Promise<RawMqtt> {
  const c = await RawMqtt.open({ port: broker.port, timeoutMs: 60_000 });
  const code = await c.connect({ clientId: id, username: u.username, password: u.password });
  if (code !== 0) throw new Error(`${u.username} login: ${String(code)}`);
  return c;
}

try {
  if (which === 'payload') {
    const edge = await client(users.edge, 'edge-1');
    const dash = await client(users.dashboard, 'dash-1');
    await edge.subscribe([{ topic: 'factory/+/telemetry' }]);
    await dash.subscribe([{ topic: 'factory/#' }]);
    const device = await client(users.device, 'sensor-m1');
    const payload = Buffer.alloc(mib * 1024 * 1024, 0x7b);
    const ack = await device.publish({ topic: 'factory/m1/telemetry', payload, qos: 1, timeoutMs: 60_000 });
    await sleep(2000);
    const bytes = (c: RawMqtt): number => c.drainPublishes().reduce((s, p) => s + p.payload.length, 0);
    report('device-oversized-payload', {
      payloadBytes: payload.length,
      publisherGot: ack,
      deviceConnectionClosed: device.isClosed,
      bytesDeliveredToEdge: bytes(edge),
      bytesDeliveredToDashboard: bytes(dash),
    });
    for (const c of [edge, dash, device]) c.destroy();
  } else {
    const device = await client(users.device, 'sensor-m1');
    const ack = await device.publish({
      topic: 'factory/m1/telemetry',
      payload: JSON.stringify({ machineId: 'm1', seq: 1, poisoned: true }),
      qos: 1,
      retain: true,
    });
    await sleep(300);
    const late = await client(users.edge, 'edge-late');
    await late.subscribe([{ topic: 'factory/+/telemetry' }]);
    await sleep(1000);
    const replayed = late.drainPublishes().filter((p) => p.retain);
    report('device-retained', {
      publisherGot: ack,
      deviceConnectionClosed: device.isClosed,
      retainedReplayedToNewSubscriber: replayed.length,
    });
    for (const c of [late, device]) c.destroy();
  }
} finally {
  await broker.close();
}
