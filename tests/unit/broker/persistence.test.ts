import { execFile } from 'node:child_process';
import type { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { BoundedQueuePersistence, type QueuedPacket } from '../../../broker/src/persistence.ts';

/** The broker's persistence: aedes-persistence with a bounded, indexed outgoing queue per client. */

const client = { id: 'bridge-1' };
let counter = 0;
const packet = (over: Partial<QueuedPacket> = {}): QueuedPacket => ({
  cmd: 'publish',
  topic: 'factory/m1/telemetry',
  payload: Buffer.from('{}'),
  qos: 1,
  retain: false,
  brokerId: 'b1',
  brokerCounter: ++counter,
  ...over,
});
const list = async (s: Readable): Promise<QueuedPacket[]> => {
  const out: QueuedPacket[] = [];
  for await (const p of s) out.push(p as QueuedPacket);
  return out;
};

describe('BoundedQueuePersistence', () => {
  it('passes aedes-persistence’s own conformance suite (50 tests)', async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', '--test', 'tests/unit/broker/helpers/aedes-persistence-abstract.ts'],
      { timeout: 60_000 },
    );
    expect(stdout).toMatch(/# pass 50/);
    expect(stdout).toMatch(/# fail 0/);
  }, 90_000);

  it('queues at most maxQueuedPerClient messages per client, counts and reports the drops', async () => {
    const drops: Array<[string, boolean]> = [];
    const recovered: Array<[string, number]> = [];
    const p = new BoundedQueuePersistence({
      maxQueuedPerClient: 5,
      onDrop: (id, _pkt, first) => drops.push([id, first]),
      onRecover: (id, n) => recovered.push([id, n]),
    });
    for (let i = 0; i < 20; i++)
      await p.outgoingEnqueueCombi([{ clientId: client.id }, { clientId: 'other' }], packet());
    expect(p.queuedFor(client.id)).toBe(5);
    expect(p.queuedFor('other')).toBe(5);
    expect(p.queuedMessages).toBe(10);
    expect(p.dropped).toBe(30);
    expect(drops.filter(([, first]) => first)).toEqual([
      [client.id, true],
      ['other', true],
    ]);
    // The oldest five are the ones kept (new messages are dropped, like Mosquitto's max_queued_messages).
    const kept = await list(p.outgoingStream(client));
    expect(kept.map((k) => k.brokerCounter)).toEqual(
      kept.map((k) => k.brokerCounter).sort((a, b) => a! - b!),
    );
    await p.outgoingUpdate(client, { ...(kept[0] as QueuedPacket), messageId: 7 });
    expect((await p.outgoingClearMessageId(client, { cmd: 'puback', messageId: 7 }))?.brokerCounter).toBe(
      kept[0]?.brokerCounter,
    );
    expect(recovered).toEqual([[client.id, 15]]);
    expect(p.queuedFor(client.id)).toBe(4);
  });

  it('tolerates an update for a message it dropped (aedes would otherwise close the client)', async () => {
    const p = new BoundedQueuePersistence({ maxQueuedPerClient: 1 });
    const kept = packet();
    const dropped = packet();
    await p.outgoingEnqueue({ clientId: client.id }, kept);
    await p.outgoingEnqueue({ clientId: client.id }, dropped);
    await expect(p.outgoingUpdate(client, { ...dropped, messageId: 3 })).resolves.toBeUndefined();
    expect(await p.outgoingClearMessageId(client, { cmd: 'puback', messageId: 3 })).toBeUndefined();
    expect(p.queuedFor(client.id)).toBe(1);
  });

  it('clears by packet id among thousands in flight, and forgets an emptied client', async () => {
    const p = new BoundedQueuePersistence({ maxQueuedPerClient: 65_535 });
    const n = 20_000;
    const sent: QueuedPacket[] = [];
    for (let i = 0; i < n; i++) {
      const pk = packet();
      await p.outgoingEnqueue({ clientId: client.id }, pk);
      const withId = { ...pk, messageId: (i % 65_535) + 1 };
      await p.outgoingUpdate(client, withId);
      sent.push(withId);
    }
    // Acknowledge in reverse order: the linear scan of aedes-persistence would be O(n²) here.
    for (let i = n - 1; i >= 0; i--) {
      const got = await p.outgoingClearMessageId(client, { cmd: 'puback', messageId: sent[i]?.messageId });
      expect(got?.brokerCounter).toBe(sent[i]?.brokerCounter);
    }
    expect(p.queuedFor(client.id)).toBe(0);
    expect(p.queuedMessages).toBe(0);
    expect(await list(p.outgoingStream(client))).toEqual([]);
  });

  it('discards a session’s queue oldest-first by the unsent packets (clean-session reconnect)', async () => {
    const p = new BoundedQueuePersistence({ maxQueuedPerClient: 10 });
    for (let i = 0; i < 3; i++) await p.outgoingEnqueue({ clientId: client.id }, packet());
    for (const q of await list(p.outgoingStream(client))) await p.outgoingClearMessageId(client, q);
    expect(p.queuedFor(client.id)).toBe(0);
  });

  it('refuses a bound outside the packet-id space', () => {
    expect(() => new BoundedQueuePersistence({ maxQueuedPerClient: 0 })).toThrow(RangeError);
    expect(() => new BoundedQueuePersistence({ maxQueuedPerClient: 65_536 })).toThrow(RangeError);
  });
});
