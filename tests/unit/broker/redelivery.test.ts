import type { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { BoundedQueuePersistence, type QueuedPacket } from '../../../broker/src/persistence.ts';
import { asRedelivery, markRedeliveries } from '../../../broker/src/redelivery.ts';

/** DUP on re-deliveries to a reconnecting persistent session [MQTT-3.3.1-1]. */

const client = { id: 'edge-1' };
const packet = (brokerCounter: number): QueuedPacket => ({
  cmd: 'publish',
  topic: 'factory/m1/telemetry',
  payload: Buffer.from('{}'),
  qos: 1,
  retain: false,
  dup: false,
  brokerId: 'b1',
  brokerCounter,
});
const list = async (s: Readable): Promise<QueuedPacket[]> => {
  const out: QueuedPacket[] = [];
  for await (const p of s) out.push(p as QueuedPacket);
  return out;
};

describe('markRedeliveries', () => {
  it('replays a message sent before (it has a packet id) with DUP set, one never sent without', async () => {
    const p = markRedeliveries(new BoundedQueuePersistence({ maxQueuedPerClient: 10 }));
    await p.outgoingEnqueue({ clientId: client.id }, packet(1));
    await p.outgoingEnqueue({ clientId: client.id }, packet(2));
    await p.outgoingUpdate(client, { ...packet(1), messageId: 42 }); // what aedes records when it writes it
    const replay = await list(p.outgoingStream(client));
    expect(replay.map((q) => [q.brokerCounter, q.messageId, q.dup])).toEqual([
      [1, 42, true],
      [2, undefined, false],
    ]);
    // The stored packet is unchanged: a PUBACK still clears it.
    const cleared = await p.outgoingClearMessageId(client, { cmd: 'publish', messageId: 42 });
    expect(cleared?.dup).toBe(false);
    expect(p.queuedFor(client.id)).toBe(1);
  });

  it('leaves other packets alone (a PUBREL, a publish already marked)', () => {
    const pubrel = { cmd: 'pubrel', messageId: 3 };
    expect(asRedelivery(pubrel)).toBe(pubrel);
    const marked = { cmd: 'publish', messageId: 3, dup: true };
    expect(asRedelivery(marked)).toBe(marked);
  });
});
