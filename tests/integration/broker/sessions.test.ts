import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CredentialStore, watchCredentials } from '../../../broker/src/credentials.ts';
import { sleep, startTestBroker, until, USERS, type TestBroker } from './helpers.ts';

/**
 * Issue 10: a stalled persistent subscriber (the bridge while Kafka is down)
 * made aedes' in-memory persistence queue without bound, and users removed
 * from the credentials file stayed connected. Scripts:
 * scripts/attacks/stalled-subscriber.ts, revoked-user.ts.
 */

let t: TestBroker | undefined;
let dir: string | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

describe('outgoing queue of a persistent session', () => {
  it('keeps at most maxQueuedPerClient messages for an offline subscriber, counts the drops, replays the rest', async () => {
    t = await startTestBroker({ limits: { maxQueuedPerClient: 50 } });
    const bridge = await t.login(USERS.bridge, { clientId: 'bridge-1', clean: false });
    expect(await bridge.subscribe([{ topic: 'factory/+/telemetry', qos: 1 }])).toEqual([1]);
    await bridge.disconnect();

    const device = await t.login(USERS.device);
    for (let seq = 0; seq < 200; seq++)
      expect(
        await device.publish({
          topic: 'factory/m1/telemetry',
          payload: JSON.stringify({ machineId: 'm1', seq }),
        }),
      ).toBe('puback');
    expect(await t.metric('driftline_broker_queue_dropped_total')).toBe(150);
    expect(await t.metric('driftline_broker_queued_messages')).toBe(50);

    const back = await t.login(USERS.bridge, { clientId: 'bridge-1', clean: false });
    const seqs: number[] = [];
    await until(() => {
      for (const p of back.drainPublishes()) {
        seqs.push((JSON.parse(p.payload.toString()) as { seq: number }).seq);
        if (p.messageId !== undefined) back.send({ cmd: 'puback', messageId: p.messageId });
      }
      return seqs.length >= 50;
    }, '50 queued messages');
    // The oldest 50 were kept; newer ones were dropped at the full queue.
    expect(seqs).toEqual(Array.from({ length: 50 }, (_, i) => i));
    await until(async () => (await t!.metric('driftline_broker_queued_messages')) === 0, 'an empty queue');
    // With room again, new messages are queued and delivered as usual.
    expect(
      await device.publish({ topic: 'factory/m1/telemetry', payload: '{"machineId":"m1","seq":200}' }),
    ).toBe('puback');
    await until(() => back.drainPublishes().length === 1, 'the next message');
  });

  it('bounds a connected subscriber that stops acknowledging too', async () => {
    t = await startTestBroker({ limits: { maxQueuedPerClient: 20 } });
    const stalled = await t.login(USERS.bridge, { clientId: 'bridge-stalled', clean: false });
    await stalled.subscribe([{ topic: 'factory/+/telemetry', qos: 1 }]);
    const device = await t.login(USERS.device);
    for (let seq = 0; seq < 100; seq++)
      await device.publish({ topic: 'factory/m1/telemetry', payload: JSON.stringify({ seq }) });
    await sleep(200);
    // Delivered once each (no PUBACK from the bridge), but only 20 kept for redelivery.
    expect(stalled.drainPublishes()).toHaveLength(100);
    expect(await t.metric('driftline_broker_queued_messages')).toBe(20);
    expect(await t.metric('driftline_broker_queue_dropped_total')).toBe(80);
    expect(stalled.isClosed).toBe(false);
  });
});

describe('revoked users', () => {
  it('disconnects a user removed from the store, and one whose password changed; keeps the others', async () => {
    t = await startTestBroker();
    const removed = await t.login(USERS.device);
    const changed = await t.login(USERS.edge);
    const kept = await t.login(USERS.device2);
    t.credentials.remove(USERS.device.username);
    await removed.closed;
    await t.credentials.add({ ...USERS.edge, password: 'a-new-password' }, { replace: true, persist: false });
    await changed.closed;
    expect(kept.isClosed).toBe(false);
    expect(await kept.publish({ topic: 'factory/m2/telemetry', payload: '{}' })).toBe('puback');
    expect(await t.metric('driftline_broker_revoked_disconnects_total')).toBe(2);
    // And the removed user cannot come back.
    const again = await t.open();
    expect(await again.connect({ clientId: 'again', ...USERS.device })).toBe(4);
  });

  it('disconnects users removed from the credentials file when the broker reloads it', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'broker-revoke-'));
    const file = path.join(dir, 'credentials.json');
    const writer = await CredentialStore.open(file, { scryptCost: 10 });
    for (const u of [USERS.device, USERS.device2]) await writer.add(u);
    await writer.save();
    const credentials = await CredentialStore.open(file, { scryptCost: 10 });
    t = await startTestBroker({ credentials, users: [] });
    const unwatch = watchCredentials(credentials, {
      intervalMs: 100,
      onReload: () => undefined,
      onError: () => undefined,
    });
    try {
      const goner = await t.login(USERS.device);
      const stays = await t.login(USERS.device2);
      // What `npm run credentials -- remove sensor-m1` does: rewrite the file.
      writer.remove(USERS.device.username);
      await writer.save();
      await Promise.race([goner.closed, sleep(10_000)]);
      expect(goner.isClosed).toBe(true);
      // The reload re-created every entry; an unchanged user is not disconnected.
      expect(stays.isClosed).toBe(false);
      expect(await stays.publish({ topic: 'factory/m2/telemetry', payload: '{}' })).toBe('puback');
    } finally {
      unwatch();
    }
  });
});
