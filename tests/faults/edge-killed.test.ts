import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CredentialStore } from '../../broker/src/credentials.ts';
import { silentLogger } from '../../common/logging/logger.ts';
import { createSigner, generateSigningKey } from '../../common/model/signature.ts';
import { DEFAULT_MODEL_NAME } from '../../common/model/types.ts';
import { connectMqtt } from '../../common/mqtt/connect.ts';
import { ensureChampion } from '../../common/registry/bootstrap.ts';
import { DirectoryRegistry } from '../../common/registry/directory.ts';
import { generateStream } from '../../common/scenario/generator.ts';
import { defaultScenario } from '../../common/scenario/scenario.ts';
import { STATUS_TOPICS } from '../../common/schema/status.ts';
import { TOPICS, type Prediction, type Telemetry } from '../../common/schema/telemetry.ts';
import { metricValue, startService, type ServiceProcess } from './helpers/processes.ts';
import { settled, waitFor } from './helpers/services.ts';
import { trainSmallChampion } from './helpers/champion.ts';

/**
 * Fault: the edge worker — `npm run edge` (edge-inference/src/main.ts) as its own OS process — is killed with
 * SIGKILL while batches are in flight, and started again with the same client id (a supervisor's restart),
 * while 10 devices publish telemetry at QoS 1 with sequence numbers.
 *
 * Promise: no loss beyond what QoS 1 allows, i.e. none: every (machineId, seq) a device published is predicted
 * at least once — the worker acknowledges a message only once its prediction is published and acknowledged by
 * the broker, so what the killed worker had queued, was predicting or publishing is redelivered to the restarted
 * one. Duplicates are recognised: a reading predicted twice (published, not yet acknowledged at the kill) is
 * predicted again only from a redelivery, and that prediction carries `redelivered: true` (the broker sets DUP
 * on it). No false drift alarm from the restart: the data is stationary, the restarted worker starts fresh drift
 * windows against the champion's reference, and no alarm (covariate, concept or data-quality) is raised.
 *
 * Broker: the project's own (broker/src/main.ts, aedes with its bounded in-memory persistence), in its own
 * process on a free port — what the pipeline runs on, in the cluster too; it keeps the edge's persistent
 * session across the edge's death (only the edge is killed), and it needs nothing installed. Mosquitto (the
 * broker-restart test's) would also do; the edge's promise does not depend on the broker.
 *
 * The kill lands inside a burst: the edge batches 256 messages or 1 s (EDGE_BATCH_SIZE, EDGE_BATCH_MAX_WAIT_MS);
 * the test polls its /metrics and, once 64 or more messages wait in its queue (taken, not yet predicted), kills
 * it the moment the sink sees the first prediction of the next batch: the rest of that batch is being
 * published and acknowledged, the next one is queued.
 */
const RUN = `${Date.now().toString(36)}-${process.pid}`;
const DEVICES = 10;
const PER_DEVICE = 300;
const ROUND_MS = 10;
const KILL_AT_QUEUED = 64;
const IDS = Array.from({ length: DEVICES }, (_, i) => `m-${String(i).padStart(3, '0')}`);
const EDGE_CLIENT_ID = `edge-killed-${RUN}`;
const pw = (u: string): string => `pw-${u}-${RUN}`;

let tmp: string;
let broker: ServiceProcess | undefined;
let mqttUrl: string;
let edgeEnv: Record<string, string>;
const edges: ServiceProcess[] = [];
const clients: MqttClient[] = [];

beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'driftline-fault-edge-'));
  const credentialsFile = path.join(tmp, 'credentials.json');
  const store = await CredentialStore.open(credentialsFile, { scryptCost: 10 });
  await store.add({ username: 'edge', role: 'edge', password: pw('edge') });
  await store.add({ username: 'sink', role: 'dashboard', password: pw('sink') });
  for (const id of IDS) await store.add({ username: id, role: 'device', machineId: id, password: pw(id) });
  await store.save();
  broker = startService('broker/src/main.ts', {
    BROKER_PORT: '0',
    BROKER_WS_PORT: 'off',
    BROKER_HTTP_PORT: '0',
    BROKER_SCRYPT_COST: '10',
    BROKER_CREDENTIALS_FILE: credentialsFile,
  });
  const ready = await broker.line(/^broker ready$/, 60_000);
  mqttUrl = (ready as { driftline: { mqttUrl: string } }).driftline.mqttUrl;

  // A signed champion in a directory registry: the bootstrap model, trained on the stationary scenario.
  const bootstrapDir = path.join(tmp, 'bootstrap');
  await trainSmallChampion(bootstrapDir);
  const signer = createSigner(generateSigningKey());
  const registryDir = path.join(tmp, 'registry');
  await ensureChampion(
    new DirectoryRegistry({ root: registryDir }),
    DEFAULT_MODEL_NAME,
    bootstrapDir,
    silentLogger(),
    signer,
  );
  edgeEnv = {
    MQTT_URL: mqttUrl,
    EDGE_MQTT_USERNAME: 'edge',
    EDGE_MQTT_PASSWORD: pw('edge'),
    EDGE_CLIENT_ID,
    EDGE_HTTP_PORT: '0',
    EDGE_BATCH_SIZE: '256',
    EDGE_BATCH_MAX_WAIT_MS: '1000',
    EDGE_CHAMPION_POLL_MS: '0',
    REGISTRY_DIR: registryDir,
    MODEL_VERIFY_KEYS: signer.publicKey,
    MODEL_KEYS_DIR: path.join(tmp, 'keys'),
  };
}, 300_000);

afterAll(async () => {
  for (const c of clients.splice(0)) await c.endAsync(true).catch(() => undefined);
  for (const p of [...edges, ...(broker ? [broker] : [])]) {
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await p.exited;
  }
  if (tmp) await rm(tmp, { recursive: true, force: true });
}, 60_000);

/** Starts the edge worker process; resolves with its /metrics URL once it consumes. */
async function startEdge(): Promise<{ edge: ServiceProcess; metricsUrl: string }> {
  const edge = startService('edge-inference/src/main.ts', edgeEnv);
  edges.push(edge);
  const listening = await edge.line(/^edge http listening on /, 120_000);
  const port = /:(\d+)$/.exec(String(listening.message))?.[1];
  await edge.line(/^edge worker consuming/, 120_000);
  return { edge, metricsUrl: `http://127.0.0.1:${port}/metrics` };
}

async function scrape(url: string): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  return res.text();
}

/** The devices' readings: the stationary seed profile (what the champion was trained on), seq 0… per device. */
function readings(): Telemetry[][] {
  const perDevice: Telemetry[][] = IDS.map(() => []);
  const start = Date.now();
  for (const s of generateStream(
    defaultScenario({ machines: DEVICES, profile: 'seed', seed: 5, machineIds: IDS }),
    {
      startTs: start,
      intervalMs: ROUND_MS / DEVICES,
    },
  )) {
    const list = perDevice[IDS.indexOf(s.telemetry.machineId)] as Telemetry[];
    if (list.length < PER_DEVICE) list.push({ ...s.telemetry, seq: list.length });
    if (perDevice.every((l) => l.length >= PER_DEVICE)) break;
  }
  return perDevice;
}

describe('fault: edge worker killed mid-batch and restarted', () => {
  it(
    'loses nothing, marks every duplicate as redelivered, raises no drift alarm',
    { timeout: 300_000 },
    async () => {
      // The sink: every prediction by machineId + seq, and every alarm.
      const predicted = new Map<string, { n: number; redelivered: number }>();
      let predictions = 0;
      /** Set once the kill is armed; called on the next prediction the sink sees. */
      let killOnNextPrediction: (() => void) | undefined;
      let alarms = 0;
      let driftWindows = 0;
      const sink = await connectMqtt({
        url: mqttUrl,
        clientId: `sink-${RUN}`,
        username: 'sink',
        password: pw('sink'),
      });
      clients.push(sink);
      sink.on('message', (topic, payload) => {
        if (topic === STATUS_TOPICS.alarm || topic === STATUS_TOPICS.dataQuality) alarms++;
        else if (topic === STATUS_TOPICS.driftWindow) driftWindows++;
        else if (topic.endsWith('/prediction')) {
          const p = JSON.parse(payload.toString()) as Prediction;
          const key = `${p.machineId}#${p.seq}`;
          const e = predicted.get(key) ?? { n: 0, redelivered: 0 };
          e.n++;
          if (p.redelivered === true) e.redelivered++;
          predicted.set(key, e);
          predictions++;
          killOnNextPrediction?.();
        }
      });
      await sink.subscribeAsync({
        [TOPICS.predictionWildcard]: { qos: 1 },
        [STATUS_TOPICS.alarm]: { qos: 1 },
        [STATUS_TOPICS.dataQuality]: { qos: 1 },
        [STATUS_TOPICS.driftWindow]: { qos: 0 },
      });

      const first = await startEdge();
      const devices = await Promise.all(
        IDS.map(async (id) => {
          const c = await connectMqtt({
            url: mqttUrl,
            clientId: `dev-${RUN}-${id}`,
            username: id,
            password: pw(id),
          });
          clients.push(c);
          return c;
        }),
      );
      const data = readings();

      // Arm the kill once enough messages wait in the worker's queue (taken from the broker, not yet predicted).
      let armed: { queued: number; unacknowledged: number; round: number } | undefined;
      let kill: { predictedBefore: number; round: number } | undefined;
      let round = 0;
      const monitor = (async () => {
        while (!armed && round < PER_DEVICE) {
          const text = await scrape(first.metricsUrl).catch(() => '');
          const queued = metricValue(text, 'driftline_edge_queue_depth');
          if (round >= PER_DEVICE / 5 && queued >= KILL_AT_QUEUED) {
            armed = {
              queued,
              unacknowledged: metricValue(text, 'driftline_edge_unacknowledged_messages'),
              round,
            };
            killOnNextPrediction = () => {
              killOnNextPrediction = undefined;
              first.edge.child.kill('SIGKILL');
              kill = { predictedBefore: predicted.size, round };
            };
            return;
          }
          await new Promise((r) => setTimeout(r, 20));
        }
      })();
      const acks: Promise<unknown>[] = [];
      for (round = 0; round < PER_DEVICE; round++) {
        for (const [i, id] of IDS.entries())
          acks.push(
            (devices[i] as MqttClient).publishAsync(
              TOPICS.telemetry(id),
              JSON.stringify((data[i] as Telemetry[])[round]),
              { qos: 1 },
            ),
          );
        await new Promise((r) => setTimeout(r, ROUND_MS));
      }
      await monitor;
      await waitFor(() => kill !== undefined, 10_000, 'the kill').catch(() => undefined);
      expect(kill, 'the kill never found messages in flight').toBeDefined();
      expect(await first.edge.exited).toEqual({ code: null, signal: 'SIGKILL' });
      // Every publish acknowledged by the broker: the broker has all of them.
      await Promise.all(acks);

      // The restart: same client id, same persistent session.
      const second = await startEdge();
      const total = DEVICES * PER_DEVICE;
      await waitFor(() => predicted.size === total, 120_000, `${total} distinct predictions`).catch(
        () => undefined,
      );
      await settled(() => predictions, 1500, 15_000);
      const metrics = await scrape(second.metricsUrl);
      second.edge.child.kill('SIGTERM');
      expect((await second.edge.exited).code).toBe(0);

      const lost = IDS.flatMap((id) =>
        Array.from({ length: PER_DEVICE }, (_, seq) => `${id}#${seq}`).filter((k) => !predicted.has(k)),
      );
      let duplicates = 0;
      let unrecognised = 0;
      let redelivered = 0;
      for (const e of predicted.values()) {
        duplicates += e.n - 1;
        redelivered += e.redelivered;
        // Of n predictions of one reading, at most one (the first) may be unmarked.
        unrecognised += Math.max(0, e.n - 1 - e.redelivered);
      }
      const restartAlarms = metricValue(metrics, 'driftline_edge_alarms_total');
      const counts = {
        fault: 'edge-killed',
        published: total,
        killedAtRound: kill?.round,
        queuedWhenArmed: armed?.queued,
        unacknowledgedWhenArmed: armed?.unacknowledged,
        predictedBeforeKill: kill?.predictedBefore,
        predicted: predicted.size,
        lost: lost.length,
        duplicates,
        redeliveredPredictions: redelivered,
        unrecognisedDuplicates: unrecognised,
        driftWindowsTested: driftWindows,
        driftAlarms: alarms,
        restartedWorker: {
          redelivered: metricValue(metrics, 'driftline_edge_redelivered_total'),
          duplicatesDropped: metricValue(metrics, 'driftline_edge_duplicates_total'),
          alarms: restartAlarms,
          driftWindows: metricValue(metrics, 'driftline_edge_drift_windows_total'),
        },
      };
      console.log(JSON.stringify(counts));

      // The kill came while messages were in flight: queued (taken, not predicted) when it was armed.
      expect(armed?.queued).toBeGreaterThanOrEqual(KILL_AT_QUEUED);
      expect(lost.slice(0, 10)).toEqual([]);
      expect(lost).toHaveLength(0);
      expect(unrecognised).toBe(0);
      // They were unacknowledged: the broker gave them to the restarted worker again (DUP set).
      expect(redelivered).toBeGreaterThan(0);
      // The detector ran (windows tested in both lives) and raised nothing.
      expect(driftWindows).toBeGreaterThan(0);
      expect(alarms).toBe(0);
      expect(restartAlarms).toBe(0);
    },
  );
});
