import net from 'node:net';
import mqtt, { type MqttClient } from 'mqtt';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { connectMqtt } from '../../../common/mqtt/connect.ts';
import { silentLogger } from '../../../common/logging/logger.ts';
import { startBroker, type RunningBroker } from '../../../broker/src/broker.ts';
import { CredentialStore } from '../../../broker/src/credentials.ts';

/**
 * The secured broker end to end: aedes in-process on loopback ports chosen by
 * the OS, mqtt.js clients over TCP, WebSocket and TLS.
 */

const USERS = {
  dev1: { username: 'dev-m1', password: 'pw-dev-m1', role: 'device', machineId: 'm1' },
  dev2: { username: 'dev-m2', password: 'pw-dev-m2', role: 'device', machineId: 'm2' },
  edge: { username: 'edge', password: 'pw-edge', role: 'edge' },
  dash: { username: 'dash', password: 'pw-dash', role: 'dashboard' },
  admin: { username: 'admin', password: 'pw-admin', role: 'admin' },
} as const;
type User = { username: string; password: string };

// Self-signed EC P-256 test certificate for localhost/127.0.0.1, valid 2020-2120. Test use only.
const TEST_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg7FVwpRGAAFhm2u++
BsrgB9B7N3oDpLDT68z25rNzlCqhRANCAARJt6E+WJ6WxEIJmdjQ5HFW1nVSEm5t
YeDbClcKZtzmQF4DaR6t5LmQPq+mzXiCHobvR1X6SEp9RkaBY7Q0FAJN
-----END PRIVATE KEY-----
`;
const TEST_CERT = `-----BEGIN CERTIFICATE-----
MIIBZzCCAQ6gAwIBAgICEAAwCgYIKoZIzj0EAwIwFDESMBAGA1UEAwwJbG9jYWxo
b3N0MCAXDTIwMDEwMTAwMDAwMFoYDzIxMjAwMTAxMDAwMDAwWjAUMRIwEAYDVQQD
DAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAARJt6E+WJ6WxEIJ
mdjQ5HFW1nVSEm5tYeDbClcKZtzmQF4DaR6t5LmQPq+mzXiCHobvR1X6SEp9RkaB
Y7Q0FAJNo04wTDAaBgNVHREEEzARgglsb2NhbGhvc3SHBH8AAAEwDwYDVR0TAQH/
BAUwAwEB/zAdBgNVHQ4EFgQUUEdbc0yGChQ4GWCocfBUSaf41zcwCgYIKoZIzj0E
AwIDRwAwRAIgUQG6ncIbu6TYEVr4zWcadc7hZIdjey9EpuJjdUTTryUCICugVhy3
sfqBiyoGJw0GTjU7NgMn8pPETZYSpaDhDehP
-----END CERTIFICATE-----
`;

let broker: RunningBroker;
let registry: Registry;
const clients: MqttClient[] = [];
let seq = 0;

async function newCredentials(): Promise<CredentialStore> {
  const store = CredentialStore.inMemory({ scryptCost: 10 });
  for (const u of Object.values(USERS)) await store.add({ ...u, password: u.password }, { persist: false });
  return store;
}

async function login(
  user: User,
  opts: { url?: string; clientId?: string; clean?: boolean; password?: string; ca?: string } = {},
): Promise<MqttClient> {
  const client = await connectMqtt({
    url: opts.url ?? broker.mqttUrl,
    clientId: opts.clientId ?? `t-${user.username}-${++seq}`,
    username: user.username,
    password: opts.password ?? user.password,
    reconnectPeriodMs: 0,
    connectTimeoutMs: 3000,
    ...(opts.clean === undefined ? {} : { clean: opts.clean }),
    ...(opts.ca === undefined ? {} : { ca: opts.ca }),
  });
  clients.push(client);
  return client;
}

/** Collects messages by topic. */
function inbox(client: MqttClient): { topic: string; payload: string }[] {
  const got: { topic: string; payload: string }[] = [];
  client.on('message', (topic, payload) => got.push({ topic, payload: payload.toString() }));
  return got;
}

async function until(check: () => boolean, what: string, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Resolves when the broker drops the client's connection; rejects after `ms`. */
function closed(client: MqttClient, ms = 3000): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!client.connected) return resolve();
    const timer = setTimeout(() => reject(new Error('the broker did not close the connection')), ms);
    client.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

async function metric(name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  const values = (m?.values ?? []) as { value: number; labels: Record<string, string | number> }[];
  return values
    .filter((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val))
    .reduce((a, v) => a + v.value, 0);
}

beforeAll(async () => {
  registry = new Registry();
  broker = await startBroker({
    host: '127.0.0.1',
    port: 0,
    wsPort: 0,
    httpPort: 0,
    credentials: await newCredentials(),
    logger: silentLogger(),
    registry,
  });
});

afterAll(async () => {
  for (const c of clients) c.end(true);
  await broker.close();
});

describe('secured broker', () => {
  it('listens on free loopback ports and reports its URLs', () => {
    expect(broker.port).toBeGreaterThan(0);
    expect(broker.mqttUrl).toBe(`mqtt://127.0.0.1:${broker.port}`);
    expect(broker.wsUrl).toBe(`ws://127.0.0.1:${broker.wsPort}/mqtt`);
    expect(broker.httpPort).toBeGreaterThan(0);
    expect(broker.mqttsUrl).toBeNull();
  });

  it('delivers device telemetry to an edge subscriber', async () => {
    const inBefore = await metric('driftline_broker_messages_in_total', { role: 'device' });
    const outBefore = await metric('driftline_broker_messages_out_total', { role: 'edge' });
    const edge = await login(USERS.edge);
    const got = inbox(edge);
    await edge.subscribeAsync('factory/+/telemetry', { qos: 1 });
    const d1 = await login(USERS.dev1);
    const d2 = await login(USERS.dev2);
    await d1.publishAsync('factory/m1/telemetry', '{"seq":1}', { qos: 1 });
    await d2.publishAsync('factory/m2/telemetry', '{"seq":2}', { qos: 0 });
    await until(() => got.length === 2, 'two telemetry messages');
    expect(got).toEqual(
      expect.arrayContaining([
        { topic: 'factory/m1/telemetry', payload: '{"seq":1}' },
        { topic: 'factory/m2/telemetry', payload: '{"seq":2}' },
      ]),
    );
    expect(await metric('driftline_broker_messages_in_total', { role: 'device' })).toBe(inBefore + 2);
    expect(await metric('driftline_broker_messages_out_total', { role: 'edge' })).toBe(outBefore + 2);
  });

  it('refuses a wrong password with CONNACK 4 (bad user name or password)', async () => {
    const before = await metric('driftline_broker_auth_failures_total', { reason: 'bad_password' });
    const err = await login(USERS.dev1, { password: 'wrong' }).then(
      () => undefined,
      (e: unknown) => e as Error & { code?: number },
    );
    expect(err?.message).toMatch(/Bad username or password/);
    expect(err?.code).toBe(4);
    expect(await metric('driftline_broker_auth_failures_total', { reason: 'bad_password' })).toBe(before + 1);
  });

  it('refuses an unknown user with the same CONNACK 4', async () => {
    const err = await login({ ...USERS.edge, username: 'ghost' }).then(
      () => undefined,
      (e: unknown) => e as Error & { code?: number },
    );
    expect(err?.code).toBe(4);
    expect(
      await metric('driftline_broker_auth_failures_total', { reason: 'unknown_user' }),
    ).toBeGreaterThanOrEqual(1);
  });

  it('refuses anonymous clients with CONNACK 5 (not authorized)', async () => {
    const err = await connectMqtt({
      url: broker.mqttUrl,
      clientId: `anon-${++seq}`,
      reconnectPeriodMs: 0,
    }).then(
      (c) => {
        c.end(true);
        return undefined;
      },
      (e: unknown) => e as Error & { code?: number },
    );
    expect(err?.message).toMatch(/Not authorized/);
    expect(err?.code).toBe(5);
    expect(
      await metric('driftline_broker_auth_failures_total', { reason: 'anonymous' }),
    ).toBeGreaterThanOrEqual(1);
  });

  it("closes a device that publishes to another machine's topic; nothing is delivered", async () => {
    const denied = await metric('driftline_broker_acl_denials_total', { action: 'publish', role: 'device' });
    const edge = await login(USERS.edge);
    const got = inbox(edge);
    await edge.subscribeAsync('factory/+/telemetry', { qos: 1 });
    const spoofer = await login(USERS.dev1);
    const gone = closed(spoofer);
    spoofer.publish('factory/m2/telemetry', 'spoofed', { qos: 1 });
    await gone; // the broker closes the connection; no PUBACK is ever sent
    expect(spoofer.connected).toBe(false);
    // A legitimate message published afterwards arrives; the spoofed one never did.
    const d2 = await login(USERS.dev2);
    await d2.publishAsync('factory/m2/telemetry', 'genuine', { qos: 1 });
    await until(() => got.some((m) => m.payload === 'genuine'), 'the genuine message');
    expect(got.map((m) => m.payload)).toEqual(['genuine']);
    expect(await metric('driftline_broker_acl_denials_total', { action: 'publish', role: 'device' })).toBe(
      denied + 1,
    );
  });

  it('closes a QoS 0 publisher to a forbidden topic too', async () => {
    const qa = await login(USERS.dash);
    const gone = closed(qa);
    qa.publish('factory/m1/label', 'x', { qos: 0 });
    await gone;
    expect(
      await metric('driftline_broker_acl_denials_total', { action: 'publish', role: 'dashboard' }),
    ).toBeGreaterThanOrEqual(1);
  });

  it('drops a will message on a forbidden topic when it fires, and delivers an allowed one', async () => {
    const denied = await metric('driftline_broker_acl_denials_total', { action: 'publish', role: 'device' });
    const edge = await login(USERS.edge);
    const got = inbox(edge);
    await edge.subscribeAsync('factory/+/telemetry', { qos: 1 });
    const withWill = (will: string, topic: string): Promise<MqttClient> =>
      new Promise((resolve, reject) => {
        const c = mqtt.connect(broker.mqttUrl, {
          clientId: `will-${++seq}`,
          username: USERS.dev1.username,
          password: USERS.dev1.password,
          reconnectPeriod: 0,
          protocolVersion: 4,
          will: { topic, payload: Buffer.from(will), qos: 1, retain: false },
        });
        c.once('connect', () => resolve(c));
        c.once('error', reject);
      });
    const bad = await withWill('forbidden-will', 'factory/m2/telemetry');
    const good = await withWill('own-will', 'factory/m1/telemetry');
    // Drop the sockets without DISCONNECT so the wills fire.
    bad.stream.destroy();
    good.stream.destroy();
    await until(() => got.some((m) => m.payload === 'own-will'), 'the allowed will');
    await vi.waitFor(
      async () =>
        expect(
          await metric('driftline_broker_acl_denials_total', { action: 'publish', role: 'device' }),
        ).toBe(denied + 1),
      { timeout: 3000 },
    );
    expect(got.map((m) => m.payload)).toEqual(['own-will']);
    bad.end(true);
    good.end(true);
  });

  it('lets nobody publish to $SYS, not even admin', async () => {
    const watcher = await login(USERS.admin);
    const got = inbox(watcher);
    await watcher.subscribeAsync('$SYS/#', { qos: 0 });
    for (const user of [USERS.admin, USERS.dev1, USERS.edge]) {
      const c = await login(user);
      const gone = closed(c);
      c.publish('$SYS/fake/heartbeat', 'forged', { qos: 1 });
      await gone;
    }
    // aedes' own $SYS traffic (e.g. new/clients) still flows to the watcher; the forged one never does.
    await until(() => got.length > 0, 'some $SYS message');
    expect(got.filter((m) => m.payload === 'forged')).toEqual([]);
    expect(
      await metric('driftline_broker_acl_denials_total', { action: 'publish', role: 'admin' }),
    ).toBeGreaterThanOrEqual(1);
  });

  it('refuses a forbidden subscription with SUBACK 0x80 and keeps the connection', async () => {
    const before = await metric('driftline_broker_acl_denials_total', {
      action: 'subscribe',
      role: 'device',
    });
    const d1 = await login(USERS.dev1);
    // mqtt.js reports a refused subscription as an error carrying the SUBACK packet.
    const suback = await new Promise<{ granted: unknown } | undefined>((resolve) => {
      d1.subscribe(['factory/+/telemetry', 'factory/m1/#'], { qos: 1 }, (err) =>
        resolve((err as { packet?: { granted: unknown } } | null)?.packet),
      );
    });
    expect(suback?.granted).toEqual([128, 1]);
    expect(d1.connected).toBe(true);
    expect(await metric('driftline_broker_acl_denials_total', { action: 'subscribe', role: 'device' })).toBe(
      before + 1,
    );
  });

  it('keeps QoS 1 messages for a clean:false subscriber while it is away', async () => {
    const clientId = `edge-worker-${++seq}`;
    const first = await login(USERS.edge, { clientId, clean: false });
    await first.subscribeAsync('factory/+/telemetry', { qos: 1 });
    await first.endAsync();

    const d1 = await login(USERS.dev1);
    for (let i = 1; i <= 3; i++) await d1.publishAsync('factory/m1/telemetry', `while-away-${i}`, { qos: 1 });

    const client = await connectMqtt({
      url: broker.mqttUrl,
      clientId,
      username: USERS.edge.username,
      password: USERS.edge.password,
      clean: false,
      reconnectPeriodMs: 0,
    });
    clients.push(client);
    const got = inbox(client); // no new SUBSCRIBE: the session kept the subscription
    await until(() => got.length === 3, 'three queued messages');
    expect(got.map((m) => m.payload)).toEqual(['while-away-1', 'while-away-2', 'while-away-3']);
  });

  it("refuses another user taking over a session's client id", async () => {
    const clientId = `edge-session-${++seq}`;
    const owner = await login(USERS.edge, { clientId, clean: false });
    await owner.subscribeAsync('factory/+/telemetry', { qos: 1 });
    await owner.endAsync();
    const err = await login(USERS.dev1, { clientId, clean: false }).then(
      () => undefined,
      (e: unknown) => e as Error & { code?: number },
    );
    expect(err?.code).toBe(2); // identifier rejected
    const d1 = await login(USERS.dev1);
    await d1.publishAsync('factory/m1/telemetry', 'kept', { qos: 1 });
    const back = await connectMqtt({
      url: broker.mqttUrl,
      clientId,
      username: 'edge',
      password: USERS.edge.password,
      clean: false,
      reconnectPeriodMs: 0,
    });
    clients.push(back);
    const got = inbox(back);
    await until(() => got.length === 1, 'the message queued for the real owner');
    expect(got[0]?.payload).toBe('kept');
  });

  it('serves MQTT over WebSocket', async () => {
    expect(broker.wsUrl).not.toBeNull();
    const dash = await login(USERS.dash, { url: broker.wsUrl as string });
    const got = inbox(dash);
    await dash.subscribeAsync('factory/#', { qos: 0 });
    const wsDevice = await login(USERS.dev2, { url: broker.wsUrl as string });
    await wsDevice.publishAsync('factory/m2/telemetry', 'over-ws', { qos: 1 });
    await until(() => got.some((m) => m.payload === 'over-ws'), 'the WebSocket message');
    expect(got.find((m) => m.payload === 'over-ws')?.topic).toBe('factory/m2/telemetry');
  });

  it('exposes /healthz and /metrics with the broker counters', async () => {
    const base = `http://127.0.0.1:${broker.httpPort}`;
    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok', service: 'broker' });
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    const connected = Number(/^driftline_broker_connected_clients (\d+)$/m.exec(text)?.[1]);
    expect(connected).toBe(broker.aedes.connectedClients);
    expect(connected).toBeGreaterThan(0);
    expect(text).toMatch(/^driftline_broker_messages_in_total\{role="device"\} [1-9]\d*$/m);
    expect(text).toMatch(/^driftline_broker_messages_out_total\{role="edge"\} [1-9]\d*$/m);
    expect(text).toMatch(/^driftline_broker_auth_failures_total\{reason="bad_password"\} [1-9]\d*$/m);
    expect(text).toMatch(/^driftline_broker_acl_denials_total\{action="publish",role="device"\} [1-9]\d*$/m);
    expect(text).toMatch(
      /^driftline_broker_acl_denials_total\{action="subscribe",role="device"\} [1-9]\d*$/m,
    );
    // The admin watcher received $SYS messages above, but $SYS traffic is never counted.
    expect(text).not.toMatch(/^driftline_broker_messages_(in|out)_total\{role="admin"\}/m);
  });
});

describe('TLS and shutdown', () => {
  it('serves mqtts when given a key and certificate, and close() frees every port', async () => {
    const tlsBroker = await startBroker({
      port: 0,
      wsPort: null,
      tls: { port: 0, key: TEST_KEY, cert: TEST_CERT },
      credentials: await newCredentials(),
      logger: silentLogger(),
      registry: new Registry(),
    });
    expect(tlsBroker.wsUrl).toBeNull();
    expect(tlsBroker.httpPort).toBeNull();
    expect(tlsBroker.mqttsUrl).toBe(`mqtts://127.0.0.1:${tlsBroker.tlsPort}`);
    const c = await connectMqtt({
      url: tlsBroker.mqttsUrl as string,
      clientId: 'tls-edge',
      username: 'edge',
      password: USERS.edge.password,
      ca: TEST_CERT,
      reconnectPeriodMs: 0,
    });
    const got = inbox(c);
    await c.subscribeAsync('factory/+/label', { qos: 1 });
    await tlsBroker.aedes.publish(
      {
        cmd: 'publish',
        topic: 'factory/m1/label',
        payload: Buffer.from('via-tls'),
        qos: 1,
        retain: false,
        dup: false,
      },
      () => undefined,
    );
    await until(() => got.length === 1, 'the TLS delivery');
    const gone = closed(c);
    await tlsBroker.close();
    await gone; // clients are disconnected by close()
    await tlsBroker.close(); // idempotent
    for (const port of [tlsBroker.port, tlsBroker.tlsPort as number]) {
      const refused = await new Promise<boolean>((resolve) => {
        const s = net.connect(port, '127.0.0.1');
        s.once('connect', () => {
          s.destroy();
          resolve(false);
        });
        s.once('error', () => resolve(true));
      });
      expect(refused).toBe(true);
    }
    c.end(true);
  });

  it('fails with a readable error when a port is taken', async () => {
    await expect(
      startBroker({
        port: broker.port,
        wsPort: null,
        credentials: await newCredentials(),
        logger: silentLogger(),
        registry: new Registry(),
      }),
    ).rejects.toThrow(`MQTT listener cannot bind 127.0.0.1:${broker.port}`);
  });
});
