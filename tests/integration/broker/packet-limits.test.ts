import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { MAX_PAYLOAD_BYTES } from '../../../common/schema/telemetry.ts';
import { fixedHeader, type RawMqtt } from '../../../scripts/attacks/raw-mqtt.ts';
import { sleep, startTestBroker, until, USERS, type TestBroker } from './helpers.ts';

/**
 * Issue 10: the broker buffered packets of any size before the login, let a
 * device publish 20 MiB to its own topic (acknowledged and delivered before
 * the edge's 4 KiB check) and replayed retained device messages to every new
 * subscriber. Scripts: scripts/attacks/oversized-connect.ts, device-abuse.ts.
 */

let t: TestBroker;
let edge: RawMqtt;
let dash: RawMqtt;

beforeAll(async () => {
  t = await startTestBroker({ wsPort: 0 });
  edge = await t.login(USERS.edge);
  dash = await t.login(USERS.dashboard);
  expect(await edge.subscribe([{ topic: 'factory/+/telemetry' }, { topic: 'factory/+/label' }])).toEqual([
    1, 1,
  ]);
  expect(await dash.subscribe([{ topic: 'factory/#' }])).toEqual([1]);
});

afterAll(async () => {
  await t.close();
});

const received = (c: RawMqtt): number => c.drainPublishes().length;

describe('packets before the login', () => {
  it('cuts off an unauthenticated CONNECT announcing 256 MiB at its header, then keeps serving', async () => {
    const raw = await t.open();
    await raw.sendBytes(fixedHeader(1, 0, 268_435_455));
    // Stream filler: the broker must close the socket long before 64 MiB arrive.
    let written = 0;
    const chunk = Buffer.alloc(64 * 1024, 0x41);
    while (!raw.isClosed && written < 64 * 1024 * 1024) {
      if (!(await raw.sendBytes(chunk))) break;
      written += chunk.length;
    }
    await Promise.race([raw.closed, sleep(10_000)]);
    expect(raw.isClosed).toBe(true);
    expect(written).toBeLessThan(64 * 1024 * 1024);
    expect(await t.metric('driftline_broker_packets_too_large_total', { role: 'prelogin' })).toBe(1);
    // Nobody else noticed.
    const device = await t.login(USERS.device);
    expect(await device.publish({ topic: 'factory/m1/telemetry', payload: '{"seq":1}' })).toBe('puback');
    device.destroy();
  });

  it('applies the same cap on the WebSocket listener', async () => {
    const ws = new WebSocket(t.broker.wsUrl as string, 'mqtt');
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
    const before = await t.metric('driftline_broker_packets_too_large_total', { role: 'prelogin' });
    ws.send(Buffer.concat([fixedHeader(1, 0, 268_435_455), Buffer.alloc(1000, 0x41)]));
    await Promise.race([closed, sleep(10_000)]);
    expect(ws.readyState).toBe(WebSocket.CLOSED);
    expect(await t.metric('driftline_broker_packets_too_large_total', { role: 'prelogin' })).toBe(before + 1);
  });

  it('refuses a CONNECT whose will is above the pre-login limit, accepts one below', async () => {
    const big = await t.open();
    const code = await big.connect({
      clientId: 'will-big',
      ...USERS.device,
      will: { topic: 'factory/m1/telemetry', payload: Buffer.alloc(20_000) },
    });
    expect(code).toBe('closed');
    const small = await t.open();
    expect(
      await small.connect({
        clientId: 'will-small',
        ...USERS.device,
        will: { topic: 'factory/m1/telemetry', payload: Buffer.alloc(1000) },
      }),
    ).toBe(0);
    small.destroy();
  });
});

describe('packets after the login', () => {
  it('closes a device publishing 20 MiB to its own topic: no PUBACK, nothing delivered', async () => {
    const before = await t.metric('driftline_broker_packets_too_large_total', { role: 'device' });
    const device = await t.login(USERS.device);
    const ack = await device.publish({
      topic: 'factory/m1/telemetry',
      payload: Buffer.alloc(20 * 1024 * 1024, 0x7b),
      timeoutMs: 10_000,
    });
    expect(ack).toBe('closed');
    await sleep(300);
    const big = (c: RawMqtt): number =>
      c.drainPublishes().filter((p) => p.payload.length > 1024 * 1024).length;
    expect(big(edge)).toBe(0);
    expect(big(dash)).toBe(0);
    expect(await t.metric('driftline_broker_packets_too_large_total', { role: 'device' })).toBe(before + 1);
  });

  it(`accepts a device payload of exactly ${MAX_PAYLOAD_BYTES} bytes and refuses one byte more`, async () => {
    await sleep(100);
    received(edge);
    const ok = await t.login(USERS.device);
    expect(
      await ok.publish({ topic: 'factory/m1/telemetry', payload: Buffer.alloc(MAX_PAYLOAD_BYTES, 0x20) }),
    ).toBe('puback');
    await until(
      () => edge.drainPublishes().some((p) => p.payload.length === MAX_PAYLOAD_BYTES),
      'the 4096-byte message at the edge',
    );
    const tooBig = await t.login(USERS.device);
    expect(
      await tooBig.publish({
        topic: 'factory/m1/telemetry',
        payload: Buffer.alloc(MAX_PAYLOAD_BYTES + 1, 0x20),
      }),
    ).toBe('closed');
    expect(await t.metric('driftline_broker_publish_rejected_total', { reason: 'payload_too_large' })).toBe(
      1,
    );
    // Inspection stations (labels) have the same payload limit.
    const inspection = await t.login(USERS.inspection);
    expect(
      await inspection.publish({ topic: 'factory/m1/label', payload: Buffer.alloc(MAX_PAYLOAD_BYTES + 1) }),
    ).toBe('closed');
    await sleep(200);
    expect(received(edge)).toBe(0);
    ok.destroy();
  });

  it('lets a service publish packets above the device limit (up to its own)', async () => {
    const admin = await t.login(USERS.admin);
    const watcher = await t.login(USERS.dashboard);
    await watcher.subscribe([{ topic: 'driftline/#' }]);
    const payload = Buffer.alloc(100 * 1024, 0x61);
    expect(await admin.publish({ topic: 'driftline/edge/status', payload })).toBe('puback');
    await until(
      () => watcher.drainPublishes().some((p) => p.payload.length === payload.length),
      '100 KiB delivery',
    );
    expect(await admin.publish({ topic: 'driftline/edge/status', payload: Buffer.alloc(300 * 1024) })).toBe(
      'closed',
    );
    watcher.destroy();
  });
});

describe('retained messages', () => {
  it('refuses a retained publish from a device (closed, not stored, not replayed)', async () => {
    const device = await t.login(USERS.device);
    const ack = await device.publish({
      topic: 'factory/m1/telemetry',
      payload: '{"machineId":"m1","seq":1,"poisoned":true}',
      retain: true,
    });
    expect(ack).toBe('closed');
    expect(
      await t.metric('driftline_broker_publish_rejected_total', { reason: 'retain', role: 'device' }),
    ).toBe(1);
    const late = await t.login(USERS.edge);
    await late.subscribe([{ topic: 'factory/+/telemetry' }]);
    await sleep(300);
    expect(late.drainPublishes().filter((p) => p.retain)).toEqual([]);
    late.destroy();
  });

  it('still lets an admin retain (and clear) a message', async () => {
    const admin = await t.login(USERS.admin);
    expect(await admin.publish({ topic: 'driftline/notice', payload: 'maintenance', retain: true })).toBe(
      'puback',
    );
    const watcher = await t.login(USERS.dashboard);
    await watcher.subscribe([{ topic: 'driftline/notice' }]);
    await until(() => watcher.drainPublishes().some((p) => p.retain), 'the retained notice');
    expect(await admin.publish({ topic: 'driftline/notice', payload: '', retain: true })).toBe('puback');
    watcher.destroy();
    admin.destroy();
  });
});
