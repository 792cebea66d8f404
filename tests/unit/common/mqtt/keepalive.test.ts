import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { Aedes } from 'aedes';
import mqtt, { type MqttClient } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { describe, expect, it, type TestContext } from 'vitest';
import { connectMqtt } from '../../../../common/mqtt/connect.ts';

/**
 * A receiver that calls `handleMessage` back late (backpressure) while the broker has sent it a burst:
 * mqtt.js handles the PINGRESP only after every PUBLISH in front of it. Keepalive 1 s, 2,000 messages at
 * ≥ 2 ms each: the burst takes ≥ 4 s, the PINGRESP is due 0.5 s after the PINGREQ.
 */

const MESSAGES = 2000;

/**
 * What one test opened, closed when it finishes. The tests run concurrently (each mostly waits on timers:
 * the burst, the keepalive), so each has its own scope and its own broker.
 */
class Scope {
  readonly servers: Server[] = [];
  readonly clients: MqttClient[] = [];
  readonly brokers: Aedes[] = [];
  constructor(ctx: TestContext) {
    ctx.onTestFinished(() => this.close());
  }
  async close(): Promise<void> {
    for (const c of this.clients.splice(0)) await c.endAsync(true);
    for (const s of this.servers.splice(0)) await new Promise<void>((resolve) => s.close(() => resolve()));
    for (const b of this.brokers.splice(0)) await new Promise<void>((resolve) => b.close(() => resolve()));
  }

  async listen(server: Server): Promise<string> {
    this.servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  async aedes(): Promise<string> {
    const broker = await Aedes.createBroker();
    this.brokers.push(broker);
    return this.listen(createServer(broker.handle));
  }
}

interface Watch {
  handled: number;
  pings: number;
  errors: string[];
  closes: number;
}

/** A slow receiver subscribed at QoS 1; then a burst of MESSAGES published to it. */
async function slowReceiver(scope: Scope, client: MqttClient, url: string): Promise<Watch> {
  scope.clients.push(client);
  const w: Watch = { handled: 0, pings: 0, errors: [], closes: 0 };
  client.handleMessage = (_packet, callback) => {
    w.handled++;
    setTimeout(() => callback(), 2);
  };
  client.on('packetsend', (p) => void (p.cmd === 'pingreq' && w.pings++));
  client.on('error', (e) => w.errors.push(e.message));
  client.on('close', () => w.closes++);
  if (!client.connected) await new Promise((resolve) => client.once('connect', resolve));
  await client.subscribeAsync('burst', { qos: 1 });
  const pub = await mqtt.connectAsync(url, { clientId: 'burst-publisher', log: () => undefined });
  scope.clients.push(pub);
  await Promise.all(
    Array.from({ length: MESSAGES }, (_, i) => pub.publishAsync('burst', `m${i}`, { qos: 1 })),
  );
  return w;
}

async function until(ok: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!ok() && Date.now() < end) await new Promise((resolve) => setTimeout(resolve, 50));
}

describe.concurrent('keepAliveWhileReceiving (installed by connectMqtt)', () => {
  it('plain mqtt.js: the PINGRESP queued behind the burst times the connection out', async (ctx) => {
    const scope = new Scope(ctx);
    const url = await scope.aedes();
    const client = mqtt.connect(url, {
      clientId: 'plain',
      clean: false,
      keepalive: 1,
      reconnectPeriod: 0,
      log: () => undefined,
    });
    const w = await slowReceiver(scope, client, url);
    await until(() => w.closes > 0, 20_000);
    // If this starts failing, mqtt.js handles keepalive differently now: re-check keepalive.ts.
    expect(w.errors).toContain('Keepalive timeout');
    expect(w.handled).toBeLessThan(MESSAGES);
  });

  it('connectMqtt: the receiver stays connected through the burst and still sends PINGREQs', async (ctx) => {
    const scope = new Scope(ctx);
    const url = await scope.aedes();
    const client = await connectMqtt({
      url,
      clientId: 'kept',
      clean: false,
      keepaliveS: 1,
      reconnectPeriodMs: 0,
    });
    const w = await slowReceiver(scope, client, url);
    await until(() => w.handled >= MESSAGES || w.closes > 0, 30_000);
    expect(w.errors).toEqual([]);
    expect(w.closes).toBe(0);
    expect(w.handled).toBe(MESSAGES);
    expect(w.pings).toBeGreaterThanOrEqual(2); // ≥ 4 s of burst at keepalive 1 s: one PINGREQ a second
  });

  it('connectMqtt: a broker that answers nothing after CONNACK still times out', async (ctx) => {
    const scope = new Scope(ctx);
    const sockets: Socket[] = [];
    const url = await scope.listen(
      createServer((socket) => {
        sockets.push(socket);
        const parser = mqttPacket.parser({ protocolVersion: 4 });
        parser.on('packet', (p) => {
          if (p.cmd === 'connect')
            socket.write(mqttPacket.generate({ cmd: 'connack', returnCode: 0, sessionPresent: false }));
        });
        socket.on('data', (d) => parser.parse(d));
        socket.on('error', () => undefined);
      }),
    );
    const client = await connectMqtt({ url, clientId: 'mute', keepaliveS: 1, reconnectPeriodMs: 0 });
    scope.clients.push(client);
    const errors: string[] = [];
    client.on('error', (e) => errors.push(e.message));
    const t0 = Date.now();
    await new Promise<void>((resolve) => client.once('close', () => resolve()));
    expect(errors).toContain('Keepalive timeout');
    expect(Date.now() - t0).toBeLessThan(10_000);
    for (const s of sockets) s.destroy();
  });
});
