import { createServer, type AddressInfo } from 'node:net';
import { Aedes, type AuthenticateError } from 'aedes';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../common/logging/logger.ts';
import { FEATURES } from '../../../common/schema/features.ts';
import { parseTopic, validateMessage, type Label, type Telemetry } from '../../../common/schema/telemetry.ts';
import { generateStream } from '../../../common/scenario/generator.ts';
import {
  startSimulator,
  type PhaseInfo,
  type SimulatorCredentials,
} from '../../../simulator/src/publisher.ts';
import { parseScenario } from '../../../common/scenario/scenario.ts';

/**
 * The simulator against a real MQTT broker: a plain aedes broker on a loopback
 * port (independent of the secured broker in broker/src) that checks every
 * username/password pair, lets a device publish only its own telemetry and the
 * inspection client only labels, and records who published what.
 */

const credentials: SimulatorCredentials = {
  devices: { 'm-000': 'pw-0', 'm-001': 'pw-1', 'm-002': 'pw-2', 'm-003': 'pw-3', 'm-004': 'pw-4' },
  inspection: { username: 'inspector', password: 'insp-pw' },
};
const users: Record<string, string> = { ...credentials.devices, inspector: 'insp-pw', observer: 'obs-pw' };

interface Received {
  topic: string;
  payload: string;
  /** Arrival time, epoch ms. */
  at: number;
}

let url = '';
let closeBroker: () => Promise<void> = async () => undefined;
const publishers: { clientId: string; username: string | undefined; topic: string }[] = [];

beforeAll(async () => {
  const usernames = new Map<string, string | undefined>();
  const broker = await Aedes.createBroker({
    authenticate(client, username, password, done) {
      if (
        username !== undefined &&
        users[username] !== undefined &&
        users[username] === password?.toString()
      ) {
        usernames.set(client.id, username);
        done(null, true);
        return;
      }
      done(
        Object.assign(new Error('bad username or password'), { returnCode: 4 }) as AuthenticateError,
        false,
      );
    },
    authorizePublish(client, packet, callback) {
      const username = client ? usernames.get(client.id) : undefined;
      const t = parseTopic(packet.topic);
      const allowed =
        t !== undefined &&
        ((t.kind === 'telemetry' && t.machineId === username) ||
          (t.kind === 'label' && username === 'inspector'));
      if (!allowed) return callback(new Error(`${username ?? '?'} may not publish to ${packet.topic}`));
      publishers.push({ clientId: client?.id ?? '', username, topic: packet.topic });
      callback(null);
    },
  });
  const server = createServer(broker.handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`;
  closeBroker = async () => {
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
});

afterAll(async () => {
  await closeBroker();
});

/** A subscriber on every telemetry and label topic (QoS 1), recording arrival times. */
async function observe(): Promise<{ client: MqttClient; telemetry: Received[]; labels: Received[] }> {
  const client = await mqtt.connectAsync(url, {
    clientId: `observer-${Math.random().toString(36).slice(2)}`,
    username: 'observer',
    password: 'obs-pw',
    protocolVersion: 4,
    reconnectPeriod: 0,
  });
  const telemetry: Received[] = [];
  const labels: Received[] = [];
  client.on('message', (topic, payload) => {
    (topic.endsWith('/label') ? labels : telemetry).push({
      topic,
      payload: payload.toString('utf8'),
      at: Date.now(),
    });
  });
  await client.subscribeAsync(['factory/+/telemetry', 'factory/+/label'], { qos: 1 });
  return { client, telemetry, labels };
}

async function waitFor(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('simulator publishing to a broker', () => {
  it('publishes a scenario at 500 msg/s: every message valid, in per-machine order, labels after the delay', async () => {
    const scenario = parseScenario({
      seed: 3,
      machines: 5,
      phases: [
        { name: 'baseline', samples: 500 },
        {
          name: 'drift',
          samples: 500,
          features: { vibrationHz: { add: 2 } },
          rule: { high: { speedAbove: 300, errorBelow: 4 } },
        },
      ],
    });
    const expected = [...generateStream(scenario)];
    const observer = await observe();
    const phases: PhaseInfo[] = [];
    const labelDelayMs = 400;
    const started = Date.now();
    const sim = await startSimulator({
      mqttUrl: url,
      scenario,
      ratePerMachineHz: 100,
      labelDelayMs,
      credentials,
      logger: silentLogger(),
      onPhase: (p) => phases.push(p),
    });
    await sim.done;
    const finished = Date.now();
    await waitFor(
      () => observer.telemetry.length >= 1000 && observer.labels.length >= 1000,
      3000,
      'all messages at the subscriber',
    );
    const stats = sim.stats();
    await sim.stop();
    await observer.client.endAsync();

    expect(stats).toMatchObject({
      published: 1000,
      labelsPublished: 1000,
      phase: 'drift',
      inFlight: 0,
      pendingLabels: 0,
    });
    expect(Object.keys(stats.perMachineRate)).toEqual(['m-000', 'm-001', 'm-002', 'm-003', 'm-004']);
    expect(phases.map((p) => [p.name, p.start, p.end, p.changesAnything])).toEqual([
      ['baseline', 0, 500, false],
      ['drift', 500, 1000, true],
    ]);
    expect(observer.telemetry).toHaveLength(1000);
    expect(observer.labels).toHaveLength(1000);

    // Every message valid; per machine in seq order 0..199; content as generated (ts = publish time).
    const telemetryAt = new Map<string, { at: number; ts: number }>();
    const nextSeq: Record<string, number> = {};
    for (const m of observer.telemetry) {
      const r = validateMessage('telemetry', m.topic, m.payload);
      if (!r.ok) expect.fail(`${m.topic}: ${r.detail}`);
      const t: Telemetry = r.value;
      expect(t.seq).toBe(nextSeq[t.machineId] ?? 0);
      nextSeq[t.machineId] = t.seq + 1;
      const want = expected[t.seq * 5 + Number(t.machineId.slice(2))]?.telemetry as Telemetry;
      expect({ ...t, ts: 0 }).toEqual({ ...want, ts: 0 });
      expect(t.ts).toBeGreaterThanOrEqual(started);
      expect(t.ts).toBeLessThanOrEqual(m.at);
      telemetryAt.set(`${t.machineId}#${t.seq}`, { at: m.at, ts: t.ts });
    }
    expect(Object.values(nextSeq)).toEqual([200, 200, 200, 200, 200]);

    const nextLabel: Record<string, number> = {};
    for (const m of observer.labels) {
      const r = validateMessage('label', m.topic, m.payload);
      if (!r.ok) expect.fail(`${m.topic}: ${r.detail}`);
      const l: Label = r.value;
      expect(l.seq).toBe(nextLabel[l.machineId] ?? 0);
      nextLabel[l.machineId] = l.seq + 1;
      expect(l).toEqual(expected[l.seq * 5 + Number(l.machineId.slice(2))]?.label);
      const t = telemetryAt.get(`${l.machineId}#${l.seq}`);
      if (!t) return expect.fail(`label before its telemetry: ${m.payload}`);
      // Published no earlier than the delay after the telemetry. (How much later depends on the
      // machine's load: a bound on it would be a timing assertion, and speed lives in the bench.)
      expect(m.at - t.ts).toBeGreaterThanOrEqual(labelDelayMs);
    }

    // Pacing: 1000 messages at 500 msg/s never go out faster than the rate: at least 1.8 s from the
    // first to the last. (The schedule is rate × elapsed, so a stalled machine catches up in a burst;
    // `tests/unit/simulator/scheduler.test.ts` pins it. Whether a loaded machine keeps up is a speed
    // figure for the bench, not an assertion here.)
    const arrivals = observer.telemetry.map((m) => m.at);
    const span = (arrivals[arrivals.length - 1] as number) - (arrivals[0] as number);
    expect(span).toBeGreaterThan(1800);
    expect(finished - started).toBeGreaterThanOrEqual(span);

    // Each device published only its own telemetry; the inspection client published every label.
    const mine = publishers.filter((p) => p.topic.startsWith('factory/m-00'));
    expect(
      mine
        .filter((p) => p.topic.endsWith('/telemetry'))
        .every((p) => p.topic === `factory/${p.username}/telemetry` && p.clientId === p.username),
    ).toBe(true);
    expect(mine.filter((p) => p.topic.endsWith('/label')).every((p) => p.username === 'inspector')).toBe(
      true,
    );
    for (const f of FEATURES)
      expect(typeof JSON.parse(observer.telemetry[0]?.payload ?? '{}')[f]).toBe('number');
  });

  it('publishes as fast as the broker accepts with rate max', async () => {
    const scenario = parseScenario({ seed: 4, machines: 3, phases: [{ name: 'b', samples: 3000 }] });
    const observer = await observe();
    const started = performance.now();
    const sim = await startSimulator({
      mqttUrl: url,
      scenario,
      ratePerMachineHz: 'max',
      labelDelayMs: 0,
      credentials,
      logger: silentLogger(),
    });
    await sim.done;
    const seconds = (performance.now() - started) / 1000;
    await sim.stop();
    await waitFor(
      () => observer.telemetry.length >= 3000 && observer.labels.length >= 3000,
      5000,
      'all messages',
    );
    await observer.client.endAsync();
    expect(sim.stats()).toMatchObject({ published: 3000, labelsPublished: 3000 });
    // Not paced: well above the rates used here even on a loaded machine (about 3,500/s when idle).
    expect(3000 / seconds).toBeGreaterThan(500);
  });

  it('stop() flushes pending labels, waits for acknowledgements and resolves done (default profile forever)', async () => {
    const observer = await observe();
    const sim = await startSimulator({
      mqttUrl: url,
      scenario: undefined,
      machines: 2,
      ratePerMachineHz: 50,
      labelDelayMs: 60_000,
      credentials,
      logger: silentLogger(),
    });
    await waitFor(() => sim.stats().published >= 20, 3000, 'some telemetry');
    expect(sim.stats().labelsPublished).toBe(0);
    await sim.stop();
    await sim.done;
    const stats = sim.stats();
    expect(stats.labelsPublished).toBe(stats.published);
    expect(stats.pendingLabels).toBe(0);
    await waitFor(
      () => observer.labels.length === stats.published && observer.telemetry.length === stats.published,
      3000,
      'flushed labels',
    );
    await observer.client.endAsync();
    // Stopping twice is harmless.
    await sim.stop();
  });

  it('refuses to start with a wrong password, naming the machine', async () => {
    const scenario = parseScenario({ seed: 1, machines: 2, phases: [{ name: 'b', samples: 10 }] });
    const bad = { ...credentials, devices: { ...credentials.devices, 'm-001': 'wrong' } };
    await expect(
      startSimulator({
        mqttUrl: url,
        scenario,
        ratePerMachineHz: 2,
        labelDelayMs: 0,
        credentials: bad,
        logger: silentLogger(),
      }),
    ).rejects.toThrow(/m-001 could not connect to mqtt:\/\/127\.0\.0\.1:\d+/);
  });

  it('refuses credentials that miss a machine before connecting', async () => {
    const scenario = parseScenario({ seed: 1, machines: 7, phases: [{ name: 'b', samples: 10 }] });
    await expect(
      startSimulator({
        mqttUrl: url,
        scenario,
        ratePerMachineHz: 2,
        labelDelayMs: 0,
        credentials,
        logger: silentLogger(),
      }),
    ).rejects.toThrow(/no password for machines m-005, m-006/);
  });
});
