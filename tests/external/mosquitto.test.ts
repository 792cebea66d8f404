import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker } from '../../broker/src/broker.ts';
import { CredentialStore } from '../../broker/src/credentials.ts';
import { InProcessBus } from '../../common/bus/in-process.ts';
import { describeError } from '../../common/errors.ts';
import { silentLogger } from '../../common/logging/logger.ts';
import { loadArtifact, saveArtifact } from '../../common/model/artifact.ts';
import { trainClassifier } from '../../common/model/classifier.ts';
import { loadTf, type Tf } from '../../common/model/tf.ts';
import { connectMqtt } from '../../common/mqtt/connect.ts';
import { TOPICS, type Prediction } from '../../common/schema/telemetry.ts';
import { makeTelemetry, ruleLabel } from '../../edge-inference/src/testing/fakes.ts';
import { createEdgeWorker } from '../../edge-inference/src/worker.ts';
import { startSimulator, type SimulatorCredentials } from '../../simulator/src/publisher.ts';
import { defaultScenario, machineIdsOf } from '../../common/scenario/scenario.ts';

/**
 * Eclipse Mosquitto (`scripts/services/mosquitto.sh start`: 127.0.0.1:1884,
 * password file and ACL mirroring broker/src/acl.ts; every password is
 * `driftline-dev-<username>`):
 *
 * 1. the edge worker and the simulator run unchanged against it through MQTT_URL;
 * 2. what MQTT shared subscriptions do there: two `$share/<group>/factory/+/telemetry`
 *    subscribers receive disjoint sets whose union is everything, but Mosquitto
 *    distributes per message, so one machine's seqs are split across both: per-machine
 *    order and per-machine state (drift windows, the label join) would break. That is
 *    why the cluster default is the Kafka bridge keyed by machine id (edge-inference/README.md, "Scale-out");
 * 3. aedes (the in-process broker) has no shared subscriptions: `$share/…` is a plain
 *    filter there and matches no telemetry.
 */

const URL = process.env.MOSQUITTO_URL ?? `mqtt://127.0.0.1:${process.env.MOSQUITTO_PORT ?? '1884'}`;
const PREFIX = process.env.MOSQUITTO_DEV_PASSWORD ?? 'driftline-dev';
const RUN = `${Date.now().toString(36)}-${process.pid}`;
const account = (username: string): { username: string; password: string } => ({
  username,
  password: `${PREFIX}-${username}`,
});

async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const clients: MqttClient[] = [];
async function connect(user: string, clientId: string): Promise<MqttClient> {
  const c = await connectMqtt({ url: URL, clientId, ...account(user), reconnectPeriodMs: 0 });
  clients.push(c);
  return c;
}

let tf: Tf;
let tmp: string;
let artifactDir: string;

beforeAll(async () => {
  try {
    const probe = await connectMqtt({
      url: URL,
      clientId: `probe-${RUN}`,
      ...account('admin'),
      reconnectPeriodMs: 0,
      connectTimeoutMs: 3000,
    });
    await probe.endAsync(true);
  } catch (err) {
    throw new Error(
      `Mosquitto is not reachable at ${URL} as admin/${PREFIX}-admin: start it ` +
        `with \`scripts/services/mosquitto.sh start\` (${describeError(err)})`,
    );
  }
  tmp = await mkdtemp(path.join(os.tmpdir(), 'driftline-mosquitto-'));
  ({ tf } = await loadTf());
  const data = Array.from({ length: 1200 }, (_, i) => {
    const row = makeTelemetry('train', i);
    return { row, label: ruleLabel(row) };
  });
  const trained = await trainClassifier(tf, data, { epochs: 2, referenceSize: 500, seed: 3 });
  artifactDir = path.join(tmp, 'artifact');
  await saveArtifact(artifactDir, trained, { version: '1', source: { test: 'mosquitto' } });
  trained.model.dispose();
}, 60_000);

afterAll(async () => {
  for (const c of clients.splice(0)) await c.endAsync(true).catch(() => undefined);
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('Mosquitto', () => {
  it('runs the edge worker and the simulator unchanged (MQTT_URL only)', async () => {
    const scenario = defaultScenario({ machines: 4, seed: 3 });
    const ids = machineIdsOf(scenario);
    const perMachine = 100;
    const credentials: SimulatorCredentials = {
      devices: Object.fromEntries(ids.map((id) => [id, account(id).password])),
      inspection: account('inspection'),
    };
    const observer = await connect('dashboard', `observer-${RUN}`);
    const predictions: Prediction[] = [];
    observer.on('message', (topic, payload) => {
      if (topic.endsWith('/prediction')) predictions.push(JSON.parse(payload.toString('utf8')) as Prediction);
    });
    await observer.subscribeAsync({ [TOPICS.predictionWildcard]: { qos: 1 } });

    const bus = new InProcessBus();
    const worker = createEdgeWorker({
      bus,
      logger: silentLogger(),
      mqtt: { url: URL, clientId: `edge-${RUN}`, ...account('edge'), reconnectPeriodMs: 100 },
      initialModel: await loadArtifact(artifactDir, tf),
      initialModelVersion: '1',
      http: false,
      statusIntervalMs: 0,
      batchSize: 32,
      batchMaxWaitMs: 5,
      labelJoinMaxPending: 10_000,
    });
    try {
      await worker.start();
      expect(worker.ready()).toBe(true);
      const sim = await startSimulator({
        mqttUrl: URL,
        scenario,
        ratePerMachineHz: 100,
        labelDelayMs: 50,
        credentials,
        maxSamples: ids.length * perMachine,
        logger: silentLogger(),
      });
      await sim.done;
      await sim.stop();
      await waitFor(
        () => predictions.length >= ids.length * perMachine,
        30_000,
        `${ids.length * perMachine} predictions (have ${predictions.length})`,
      );
      await waitFor(
        () => worker.stats().labelJoin.hits >= ids.length * perMachine,
        10_000,
        'every label joined',
      );
    } finally {
      await worker.stop();
      await bus.close();
    }
    const keys = new Set(predictions.map((p) => `${p.machineId}#${p.seq}`));
    expect(keys.size).toBe(ids.length * perMachine);
    expect(predictions).toHaveLength(ids.length * perMachine);
    for (const id of ids) {
      const seqs = predictions.filter((p) => p.machineId === id).map((p) => p.seq);
      expect(seqs).toEqual(Array.from({ length: perMachine }, (_, i) => i));
    }
    expect(worker.stats().deadLetters).toBe(0);
    expect(predictions.every((p) => p.modelVersion === '1')).toBe(true);
  }, 90_000);

  it('shared subscriptions split the stream per message: disjoint, complete, but one machine lands on both subscribers', async () => {
    const filter = `$share/edge-${RUN}/${TOPICS.telemetryWildcard}`;
    const got: { sub: string; machineId: string; seq: number }[] = [];
    for (const name of ['s1', 's2']) {
      const c = await connect('edge', `share-${name}-${RUN}`);
      c.on('message', (_topic, payload) => {
        const t = JSON.parse(payload.toString('utf8')) as { machineId: string; seq: number };
        got.push({ sub: name, machineId: t.machineId, seq: t.seq });
      });
      const grants = await c.subscribeAsync({ [filter]: { qos: 1 } });
      expect(grants[0]?.qos, `Mosquitto granted ${filter}`).toBe(1);
    }
    // Three machines publishing in turn. (Mosquitto picks the next subscriber of the group round-robin per message,
    // with no affinity: with two subscribers and an even number of machines in a strict rotation each machine
    // would happen to stick to one subscriber; any other interleaving splits them.)
    const machines = ['m-000', 'm-001', 'm-002'];
    const perMachine = 50;
    const devices = await Promise.all(machines.map((id) => connect(id, `dev-${id}-${RUN}`)));
    for (let seq = 0; seq < perMachine; seq++) {
      for (let i = 0; i < machines.length; i++) {
        await (devices[i] as MqttClient).publishAsync(
          TOPICS.telemetry(machines[i] as string),
          JSON.stringify(makeTelemetry(machines[i] as string, seq)),
          { qos: 1 },
        );
      }
    }
    await waitFor(
      () => got.length >= machines.length * perMachine,
      10_000,
      `${machines.length * perMachine} shared deliveries (have ${got.length})`,
    );
    await new Promise((r) => setTimeout(r, 300));

    // Disjoint and complete: each message went to exactly one subscriber of the group.
    const keys = got.map((g) => `${g.machineId}#${g.seq}`);
    expect(new Set(keys).size).toBe(keys.length);
    expect(keys).toHaveLength(machines.length * perMachine);
    expect(new Set(got.map((g) => g.sub))).toEqual(new Set(['s1', 's2']));
    // …but not by machine: every machine's seqs are spread over both subscribers, so neither sees a
    // machine's whole, ordered stream (the reason the cluster default is the Kafka bridge keyed by machine id).
    const split = machines.filter(
      (id) => new Set(got.filter((g) => g.machineId === id).map((g) => g.sub)).size > 1,
    );
    expect(split.length, 'machines whose messages went to both subscribers').toBeGreaterThan(0);
    const example = machines.find((id) => split.includes(id)) as string;
    const s1 = got.filter((g) => g.machineId === example && g.sub === 's1').map((g) => g.seq);
    const s2 = got.filter((g) => g.machineId === example && g.sub === 's2').map((g) => g.seq);
    expect(s1.length).toBeGreaterThan(0);
    expect(s2.length).toBeGreaterThan(0);
    console.info(
      `mosquitto $share: ${split.length}/${machines.length} machines split across ` +
        `both subscribers; ${example}: s1 got ${s1.length} seqs, s2 got ${s2.length}`,
    );
  }, 60_000);

  it('aedes has no shared subscriptions: $share/… is a plain filter that matches no telemetry', async () => {
    const credentials = CredentialStore.inMemory({ scryptCost: 10 });
    await credentials.add({ username: 'admin', password: 'pw-admin', role: 'admin' }, { persist: false });
    const aedes = await startBroker({
      host: '127.0.0.1',
      port: 0,
      wsPort: null,
      credentials,
      logger: silentLogger(),
      registry: new Registry(),
      httpPort: null,
    });
    try {
      const sub = await connectMqtt({
        url: aedes.mqttUrl,
        clientId: `aedes-share-${RUN}`,
        username: 'admin',
        password: 'pw-admin',
        reconnectPeriodMs: 0,
      });
      const plain = await connectMqtt({
        url: aedes.mqttUrl,
        clientId: `aedes-plain-${RUN}`,
        username: 'admin',
        password: 'pw-admin',
        reconnectPeriodMs: 0,
      });
      let shared = 0;
      let direct = 0;
      sub.on('message', () => shared++);
      plain.on('message', () => direct++);
      await sub.subscribeAsync({ [`$share/edge/${TOPICS.telemetryWildcard}`]: { qos: 1 } });
      await plain.subscribeAsync({ [TOPICS.telemetryWildcard]: { qos: 1 } });
      for (let seq = 0; seq < 10; seq++)
        await plain.publishAsync(TOPICS.telemetry('m-000'), JSON.stringify(makeTelemetry('m-000', seq)), {
          qos: 1,
        });
      await waitFor(() => direct >= 10, 5000, 'the plain subscriber');
      await new Promise((r) => setTimeout(r, 200));
      expect(shared).toBe(0);
      await sub.endAsync(true);
      await plain.endAsync(true);
    } finally {
      await aedes.close();
    }
  }, 30_000);
});
