import { EventEmitter } from 'node:events';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { Aedes } from 'aedes';
import mqtt, { type IPublishPacket, type MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { PubackGate, type HeldPuback } from '../../../../common/mqtt/puback-gate.ts';

/** What the gate touches of an mqtt.js client, and mqtt.js' QoS 1 path (handlers/publish.js) around it. */
class FakeClient extends EventEmitter {
  connected = true;
  readonly written: { cmd: string; messageId?: number }[] = [];
  _sendPacket(packet: { cmd: string; messageId?: number }, cb?: () => void): void {
    this.written.push(packet);
    cb?.();
  }
  /** As mqtt.js does for a QoS 1 message: handleMessage, then the PUBACK when it calls back without error. */
  receive(packet: IPublishPacket, handle: (p: IPublishPacket, cb: (err?: Error) => void) => void): void {
    handle(packet, (err) => {
      if (!err) this._sendPacket({ cmd: 'puback', messageId: packet.messageId });
    });
  }
  pubacks(): (number | undefined)[] {
    return this.written.filter((p) => p.cmd === 'puback').map((p) => p.messageId);
  }
}

const publish = (messageId: number, over: Partial<IPublishPacket> = {}): IPublishPacket => ({
  cmd: 'publish',
  topic: 't',
  payload: Buffer.from('x'),
  qos: 1,
  dup: false,
  retain: false,
  messageId,
  ...over,
});

function setup(): {
  client: FakeClient;
  gate: PubackGate;
  take: (p: IPublishPacket) => HeldPuback | undefined;
} {
  const client = new FakeClient();
  const gate = new PubackGate(client as unknown as MqttClient);
  const take = (p: IPublishPacket): HeldPuback | undefined => {
    let held: HeldPuback | undefined;
    client.receive(p, (packet, cb) => {
      held = gate.hold(packet);
      gate.handBack(held, cb);
    });
    return held;
  };
  return { client, gate, take };
}

describe('PubackGate', () => {
  it('writes a PUBACK only when the message is released, in release order', () => {
    const { client, gate, take } = setup();
    const a = take(publish(1));
    const b = take(publish(2));
    expect(client.pubacks()).toEqual([]);
    expect(gate.size).toBe(2);
    b?.release();
    a?.release();
    a?.release(); // idempotent
    expect(client.pubacks()).toEqual([2, 1]);
    expect(gate.size).toBe(0);
  });

  it('writes at once when the message was released before it was handed back', () => {
    const { client, gate } = setup();
    client.receive(publish(7), (packet, cb) => {
      const held = gate.hold(packet);
      held?.release();
      expect(client.pubacks()).toEqual([]); // mqtt.js has not asked yet
      gate.handBack(held, cb);
    });
    expect(client.pubacks()).toEqual([7]);
  });

  it('never acknowledges on a later connection what an earlier one held', () => {
    const { client, gate, take } = setup();
    const old = take(publish(5));
    client.connected = false;
    client.emit('close');
    expect(gate.size).toBe(0);
    client.connected = true;
    // The broker redelivers it (DUP) with the same packet id on the new connection.
    const again = take(publish(5, { dup: true }));
    old?.release();
    expect(client.pubacks()).toEqual([]);
    expect(again?.redelivered).toBe(true);
    expect(old?.redelivered).toBe(false);
    again?.release();
    expect(client.pubacks()).toEqual([5]);
  });

  it('drops a PUBACK asked for after its connection closed (mqtt.js would queue it for the next one)', () => {
    const { client, gate } = setup();
    let later: (() => void) | undefined;
    client.receive(publish(3), (packet, cb) => {
      const held = gate.hold(packet);
      held?.release();
      later = () => gate.handBack(held, cb);
    });
    client.connected = false;
    client.emit('close');
    client.connected = true;
    later?.();
    expect(client.pubacks()).toEqual([]);
  });

  it('does not write while disconnected (before the close event)', () => {
    const { client, take } = setup();
    const held = take(publish(4));
    client.connected = false;
    held?.release();
    expect(client.pubacks()).toEqual([]);
  });

  it('passes QoS 0 messages and every other packet through', () => {
    const { client, gate } = setup();
    expect(gate.hold(publish(0, { qos: 0, messageId: undefined }))).toBeUndefined();
    expect(gate.size).toBe(0);
    // A PUBACK of a message not held (taken before the gate, another QoS) is written as mqtt.js asks.
    gate.handBack(undefined, () => client._sendPacket({ cmd: 'puback', messageId: 9 }));
    client._sendPacket({ cmd: 'pingreq' });
    expect(client.written.map((p) => p.cmd)).toEqual(['puback', 'pingreq']);
  });

  it('refuses a client without mqtt.js 5 internals', () => {
    expect(() => new PubackGate(new EventEmitter() as unknown as MqttClient)).toThrow(/_sendPacket/);
  });
});

describe('PubackGate with mqtt.js and a real broker', () => {
  let server: Server | undefined;
  let broker: Aedes | undefined;
  const clients: MqttClient[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.endAsync(true);
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    await new Promise<void>((resolve) => (broker ? broker.close(() => resolve()) : resolve()));
  });

  async function connect(clientId: string, onClient?: (c: MqttClient) => void): Promise<MqttClient> {
    const port = (server?.address() as AddressInfo).port;
    const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId, clean: false, reconnectPeriod: 0 });
    onClient?.(c);
    clients.push(c);
    await new Promise<void>((resolve, reject) => {
      c.once('connect', () => resolve());
      c.once('error', reject);
    });
    return c;
  }

  it('holds the PUBACK until release; an unreleased message comes back with DUP set on the next connection', async () => {
    broker = await Aedes.createBroker();
    server = createServer(broker.handle);
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
    const seen: { payload: string; held: HeldPuback | undefined }[] = [];
    const install = (c: MqttClient): void => {
      const gate = new PubackGate(c);
      c.handleMessage = (packet, cb) => {
        const held = gate.hold(packet);
        seen.push({ payload: packet.payload.toString(), held });
        gate.handBack(held, cb);
      };
    };
    const receiver = await connect('gate-receiver', install);
    await receiver.subscribeAsync('gate/t', { qos: 1 });
    const sender = await connect('gate-sender');
    await sender.publishAsync('gate/t', 'a', { qos: 1 });
    await sender.publishAsync('gate/t', 'b', { qos: 1 });
    await waitUntil(() => seen.length === 2);
    seen[0]?.held?.release(); // 'a' is safe; 'b' is not when the receiver dies
    await new Promise((r) => setTimeout(r, 100));
    receiver.end(true);
    seen.length = 0;
    await connect('gate-receiver', install);
    await waitUntil(() => seen.length >= 1);
    await new Promise((r) => setTimeout(r, 100));
    expect(seen.map((s) => s.payload)).toEqual(['b']);
  });
});

async function waitUntil(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
