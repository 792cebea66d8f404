import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import mqttPacket from 'mqtt-packet';
import type { IPublishPacket, MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { connectMqtt } from '../../../../common/mqtt/connect.ts';

/**
 * A persistent session's queued messages come right after CONNACK (often in the same TCP segment). mqtt.js
 * handles the next parsed packet on process.nextTick, before the promise continuations of `await
 * connectMqtt(…)` run: a handler installed after it returns misses them, and mqtt.js' default handler
 * acknowledges them unread. `onClient` installs the handler before any packet.
 */

let server: Server | undefined;
const clients: MqttClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) await c.endAsync(true);
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
});

/** A fake broker: answers CONNECT with CONNACK and one queued QoS 1 PUBLISH in one write; records PUBACKs. */
async function fakeBroker(): Promise<{ url: string; pubacks: number[] }> {
  const pubacks: number[] = [];
  const sockets: Socket[] = [];
  server = createServer((socket) => {
    sockets.push(socket);
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    parser.on('packet', (p) => {
      if (p.cmd === 'connect')
        socket.write(
          Buffer.concat([
            mqttPacket.generate({ cmd: 'connack', returnCode: 0, sessionPresent: true }),
            mqttPacket.generate({
              cmd: 'publish',
              topic: 'factory/m1/telemetry',
              payload: Buffer.from('{}'),
              qos: 1,
              dup: true,
              retain: false,
              messageId: 7,
            }),
          ]),
        );
      else if (p.cmd === 'puback') pubacks.push(p.messageId ?? -1);
    });
    socket.on('data', (d) => parser.parse(d));
    socket.on('error', () => undefined);
  });
  server.on('close', () => sockets.forEach((s) => s.destroy()));
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  return { url: `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`, pubacks };
}

describe('connectMqtt onClient', () => {
  it('a handler installed after connecting misses the message sent with CONNACK, and mqtt.js acknowledges it', async () => {
    const { url, pubacks } = await fakeBroker();
    const seen: IPublishPacket[] = [];
    const c = await connectMqtt({ url, clientId: 'late', clean: false, reconnectPeriodMs: 0 });
    clients.push(c);
    c.handleMessage = (packet) => void seen.push(packet); // never calls back: would hold the PUBACK
    await new Promise((r) => setTimeout(r, 200));
    expect(seen).toEqual([]);
    expect(pubacks).toEqual([7]);
  });

  it('a handler installed by onClient sees it; nothing is acknowledged until it calls back', async () => {
    const { url, pubacks } = await fakeBroker();
    const seen: IPublishPacket[] = [];
    const c = await connectMqtt({
      url,
      clientId: 'early',
      clean: false,
      reconnectPeriodMs: 0,
      onClient: (client) => (client.handleMessage = (packet) => void seen.push(packet)),
    });
    clients.push(c);
    await new Promise((r) => setTimeout(r, 200));
    expect(seen.map((p) => [p.messageId, p.dup])).toEqual([[7, true]]);
    expect(pubacks).toEqual([]);
  });
});
