import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import type { MqttClient } from 'mqtt';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type RunningBroker } from '../../broker/src/broker.ts';
import { CredentialStore } from '../../broker/src/credentials.ts';
import { KafkaBridge } from '../../broker/src/kafka-bridge.ts';
import { InProcessBus } from '../../common/bus/in-process.ts';
import type { DeadLetterRecord } from '../../common/deadletter.ts';
import { FeatureDriftDetector } from '../../common/drift/feature-drift.ts';
import { describeError } from '../../common/errors.ts';
import { silentLogger } from '../../common/logging/logger.ts';
import { loadArtifact, saveArtifact } from '../../common/model/artifact.ts';
import { trainClassifier } from '../../common/model/classifier.ts';
import { loadTf, type Tf } from '../../common/model/tf.ts';
import { connectMqtt } from '../../common/mqtt/connect.ts';
import { TOPICS, type Prediction, type Telemetry } from '../../common/schema/telemetry.ts';
import { KafkaIngest } from '../../edge-inference/src/kafka-ingest.ts';
import type { DriftPort } from '../../edge-inference/src/ports.ts';
import { makeTelemetry, ruleLabel } from '../../edge-inference/src/testing/fakes.ts';
import { createEdgeWorker, type EdgeWorker } from '../../edge-inference/src/worker.ts';
import { defaultScenario, machineIdsOf } from '../../common/scenario/scenario.ts';
import { startSimulator, type SimulatorCredentials } from '../../simulator/src/publisher.ts';
import { kafkaAuth } from './helpers/kafka-auth.ts';

/**
 * The scale-out path end to end: the aedes broker in-process, the MQTT → Kafka
 * bridge, edge workers as one consumer group on a real Kafka (KAFKA_BROKERS,
 * default 127.0.0.1:9092: `scripts/services/kafka.sh start`), the simulator
 * publishing 8 machines × 300 samples with delayed labels.
 *
 * Membership: A alone → A + B (B joins mid-stream) → A alone (B stops
 * mid-stream). Every (machineId, seq) gets exactly one prediction across all
 * three phases; while A and B are both members each machine is served by one of
 * them; a machine's predictions come in seq order; the machines that move
 * A → B → A start a fresh drift window on each new owner (never a window mixing
 * rows from before the move).
 */

const BROKERS = (process.env.KAFKA_BROKERS ?? `127.0.0.1:${process.env.KAFKA_PORT || '9092'}`)
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);
const RUN = `scaleout-${Date.now().toString(36)}-${process.pid}-`;
const MACHINES = 8;
// 750 per machine at 40 Hz: a 19 s stream, long enough that a join and a leave (each a Kafka rebalance,
// seconds on a loaded machine) both happen mid-stream.
const PER_MACHINE = 750;
const TOTAL = MACHINES * PER_MACHINE;
const PARTITIONS = 6;
const WINDOW = 25;
const EDGE = { username: 'edge', password: 'pw-edge' };
const BRIDGE = { username: 'bridge', password: 'pw-bridge' };
const OBSERVER = { username: 'observer', password: 'pw-observer' };

const scenario = defaultScenario({ machines: MACHINES, seed: 7 });
const machineIds = machineIdsOf(scenario);
const simCredentials: SimulatorCredentials = {
  devices: Object.fromEntries(machineIds.map((id) => [id, `pw-${id}`])),
  inspection: { username: 'inspector', password: 'pw-inspector' },
};

let tmp: string;
let tf: Tf;
let artifactDir: string;
let broker: RunningBroker;
let observer: MqttClient;
let bridge: KafkaBridge | undefined;

interface Served {
  worker: string;
  phase: string;
  machineId: string;
  seq: number;
}
interface WindowSeen {
  worker: string;
  groupKey: string;
  windowIndex: number;
  fromSeq: number;
  toSeq: number;
}
const served: Served[] = [];
const windows: WindowSeen[] = [];
const observed: Prediction[] = [];
const telemetrySeen: Telemetry[] = [];
const deadLetters: DeadLetterRecord[] = [];
let phase = 'A-alone';

interface Edge {
  name: string;
  worker: EdgeWorker;
  ingest: KafkaIngest;
  bus: InProcessBus;
}
const edges: Edge[] = [];

async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; ${diagnostics()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function diagnostics(): string {
  const ingests = edges.map(
    (e) =>
      `${e.name}: partitions [${e.ingest.assignedPartitions().join(',')}] ` +
      `${JSON.stringify(e.ingest.stats())} predictions ${e.worker.stats().predictions}`,
  );
  return (
    `telemetry seen ${telemetrySeen.length}, bridge ${JSON.stringify(bridge?.stats())}, ` +
    `${ingests.join('; ')}, observed ${observed.length}, dead letters ${deadLetters.length}`
  );
}

async function requireKafka(): Promise<void> {
  const kafka = new Kafka({
    clientId: 'scale-out-check',
    brokers: BROKERS,
    ...kafkaAuth(),
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3000,
    retry: { retries: 1 },
  });
  const admin = kafka.admin();
  try {
    await admin.connect();
    await admin.describeCluster();
  } catch (err) {
    throw new Error(
      `Kafka is not reachable at ${BROKERS.join(',')} (KAFKA_BROKERS): start ` +
        `it with \`scripts/services/kafka.sh start\` (${describeError(err)})`,
    );
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

async function startEdge(name: string): Promise<Edge> {
  const model = await loadArtifact(artifactDir, tf);
  const ingest = new KafkaIngest({
    kafka: {
      brokers: BROKERS,
      ...kafkaAuth(),
      clientId: `${RUN}${name}`,
      topicPrefix: RUN,
      logger: silentLogger(),
    },
    mqtt: { url: broker.mqttUrl, clientId: `${RUN}edge-${name}`, ...EDGE, reconnectPeriodMs: 100 },
    sessionTimeoutMs: 10_000,
    heartbeatIntervalMs: 300,
    maxWaitTimeMs: 100,
    maxBytesPerPartition: 64 * 1024,
  });
  // Which worker published which prediction, and in which membership phase.
  const publish = ingest.publishPrediction.bind(ingest);
  ingest.publishPrediction = (p) => {
    served.push({ worker: name, phase, machineId: p.machineId, seq: p.seq });
    return publish(p);
  };
  // The real detector, recording every tested window (per machine: groupBy machine).
  const detector = new FeatureDriftDetector(model.reference, {
    detector: 'windows', // tumbling windows of WINDOW rows: what the assertions below count
    groupBy: 'machine',
    windowSize: WINDOW,
    hop: WINDOW,
  });
  const drift: DriftPort = {
    config: detector.config,
    update(row, machineId) {
      const u = detector.update(row, machineId);
      if (u.tested)
        windows.push({
          worker: name,
          groupKey: u.window.groupKey,
          windowIndex: u.window.windowIndex,
          fromSeq: u.window.from.seq ?? -1,
          toSeq: u.window.to.seq ?? -1,
        });
      return u;
    },
    reset: (reference) => detector.reset(reference),
    dropGroup: (key) => detector.dropGroup(key),
    featureSummary: () => detector.featureSummary(),
  };
  const bus = new InProcessBus();
  const worker = createEdgeWorker({
    bus,
    logger: silentLogger(),
    ingest,
    initialModel: model,
    initialModelVersion: '1',
    drift,
    http: false,
    statusIntervalMs: 0,
    batchSize: 32,
    batchMaxWaitMs: 5,
    workerId: name,
    busGroup: `${RUN}${name}`,
  });
  await worker.start();
  const edge = { name, worker, ingest, bus };
  edges.push(edge);
  return edge;
}

async function stopEdge(edge: Edge): Promise<void> {
  await edge.worker.stop();
  await edge.bus.close();
  edges.splice(edges.indexOf(edge), 1);
}

beforeAll(async () => {
  await requireKafka();
  tmp = await mkdtemp(path.join(os.tmpdir(), 'driftline-scale-out-'));
  ({ tf } = await loadTf());
  const data = Array.from({ length: 1200 }, (_, i) => {
    const row = makeTelemetry('train', i);
    return { row, label: ruleLabel(row) };
  });
  const trained = await trainClassifier(tf, data, { epochs: 2, referenceSize: 500, seed: 3 });
  artifactDir = path.join(tmp, 'artifact');
  await saveArtifact(artifactDir, trained, { version: '1', source: { test: 'scale-out' } });
  trained.model.dispose();

  const credentials = CredentialStore.inMemory({ scryptCost: 10 });
  await credentials.add({ ...EDGE, role: 'edge' }, { persist: false });
  await credentials.add({ ...BRIDGE, role: 'bridge' }, { persist: false });
  await credentials.add({ ...OBSERVER, role: 'dashboard' }, { persist: false });
  await credentials.add({ ...simCredentials.inspection, role: 'inspection' }, { persist: false });
  for (const id of machineIds)
    await credentials.add(
      { username: id, password: `pw-${id}`, role: 'device', machineId: id },
      { persist: false },
    );
  broker = await startBroker({
    host: '127.0.0.1',
    port: 0,
    wsPort: null,
    credentials,
    logger: silentLogger(),
    registry: new Registry(),
    httpPort: null,
  });

  observer = await connectMqtt({
    url: broker.mqttUrl,
    clientId: `${RUN}observer`,
    ...OBSERVER,
    reconnectPeriodMs: 0,
  });
  observer.on('message', (topic, payload) => {
    const value = JSON.parse(payload.toString('utf8')) as unknown;
    if (topic === TOPICS.deadLetter) deadLetters.push(value as DeadLetterRecord);
    else if (topic.endsWith('/prediction')) observed.push(value as Prediction);
    else if (topic.endsWith('/telemetry')) telemetrySeen.push(value as Telemetry);
  });
  await observer.subscribeAsync({
    [TOPICS.predictionWildcard]: { qos: 1 },
    [TOPICS.telemetryWildcard]: { qos: 1 },
    [TOPICS.deadLetter]: { qos: 1 },
  });

  bridge = new KafkaBridge({
    mqtt: { url: broker.mqttUrl, clientId: `${RUN}bridge`, ...BRIDGE, reconnectPeriodMs: 100 },
    kafka: {
      brokers: BROKERS,
      ...kafkaAuth(),
      clientId: `${RUN}bridge`,
      topicPrefix: RUN,
      logger: silentLogger(),
    },
    partitions: PARTITIONS,
    retentionMs: 3_600_000,
  });
  await bridge.start();
}, 60_000);

afterAll(async () => {
  for (const e of [...edges]) await stopEdge(e).catch(() => undefined);
  await bridge?.close();
  await observer?.endAsync(true);
  await broker?.close();
  if (tmp) await rm(tmp, { recursive: true, force: true });
  // Best effort: drop this run's topic.
  const admin = new Kafka({
    clientId: `${RUN}cleanup`,
    brokers: BROKERS,
    ...kafkaAuth(),
    logLevel: logLevel.NOTHING,
    retry: { retries: 0 },
  }).admin();
  try {
    await admin.connect();
    await admin.deleteTopics({ topics: [`${RUN}driftline.telemetry`], timeout: 5000 });
  } catch {
    // left for retention
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}, 60_000);

describe('scale-out: edge workers as one Kafka consumer group behind the MQTT bridge', () => {
  it('two edge workers split the machines with no duplicate and no missing prediction, through a join and a leave', async () => {
    const started = Date.now();
    const a = await startEdge('A');
    await waitFor(
      () => a.ingest.assignedPartitions().length === PARTITIONS,
      30_000,
      'A to own every partition',
    );

    const sim = await startSimulator({
      mqttUrl: broker.mqttUrl,
      scenario,
      ratePerMachineHz: 40,
      labelDelayMs: 100,
      credentials: simCredentials,
      maxSamples: TOTAL,
      logger: silentLogger(),
    });

    // Phase 2: B joins mid-stream; A gives up half of the partitions.
    await waitFor(() => observed.length >= TOTAL * 0.25, 60_000, 'a quarter of the predictions (A alone)');
    phase = 'rebalancing-join';
    const aJoined = a.ingest.nextJoin();
    const b = await startEdge('B');
    await aJoined;
    await waitFor(
      () =>
        b.ingest.assignedPartitions().length > 0 &&
        a.ingest.assignedPartitions().length + b.ingest.assignedPartitions().length === PARTITIONS,
      30_000,
      'A and B to split the partitions',
    );
    phase = 'A+B';
    const joinedAt = observed.length;
    const bOwned = b.ingest.assignedPartitions();

    // Phase 3: B stops mid-stream; A takes its partitions over from B's commits.
    await waitFor(
      () => observed.length >= Math.min(TOTAL * 0.85, joinedAt + TOTAL * 0.2),
      60_000,
      'predictions while A and B share the machines',
    );
    phase = 'rebalancing-leave';
    const aRejoined = a.ingest.nextJoin();
    await stopEdge(b);
    await aRejoined;
    phase = 'A-again';
    expect(a.ingest.assignedPartitions()).toHaveLength(PARTITIONS);

    await sim.done;
    await sim.stop();
    await waitFor(() => telemetrySeen.length >= TOTAL, 30_000, 'the observer to see all telemetry');
    await waitFor(
      () => observed.length >= TOTAL,
      60_000,
      `all ${TOTAL} predictions (have ${observed.length})`,
    );
    // Anything late (a duplicate) would arrive now.
    await new Promise((r) => setTimeout(r, 500));
    const elapsed = Date.now() - started;

    // ── exactly one prediction per (machineId, seq) published by the devices ──
    const expected = new Set(telemetrySeen.map((t) => `${t.machineId}#${t.seq}`));
    expect(expected.size).toBe(TOTAL);
    const counts = new Map<string, number>();
    for (const p of observed)
      counts.set(`${p.machineId}#${p.seq}`, (counts.get(`${p.machineId}#${p.seq}`) ?? 0) + 1);
    const missing = [...expected].filter((k) => !counts.has(k));
    const duplicates = [...counts].filter(([, n]) => n > 1).map(([k]) => k);
    expect(missing, 'missing predictions').toEqual([]);
    expect(duplicates, 'duplicate predictions (graceful join/leave commits before handing over)').toEqual([]);
    expect(observed).toHaveLength(TOTAL);
    expect(served).toHaveLength(TOTAL);
    expect(deadLetters).toEqual([]);

    // ── per machine, predictions in seq order (across owners too) ──
    for (const id of machineIds) {
      const seqs = observed.filter((p) => p.machineId === id).map((p) => p.seq);
      expect(seqs, `order of ${id}`).toEqual([...seqs].sort((x, y) => x - y));
    }

    // ── while A and B were both members: every machine served by exactly one of them, both busy ──
    const stable = served.filter((s) => s.phase === 'A+B');
    expect(
      stable.length,
      `predictions while A and B were both members (the split was done at prediction ${joinedAt} of ${TOTAL})`,
    ).toBeGreaterThan(0);
    const ownerOf = new Map<string, Set<string>>();
    for (const s of stable) ownerOf.set(s.machineId, (ownerOf.get(s.machineId) ?? new Set()).add(s.worker));
    for (const [id, owners] of ownerOf)
      expect([...owners], `owners of ${id} while membership was stable`).toHaveLength(1);
    const bMachines = [...ownerOf].filter(([, o]) => o.has('B')).map(([id]) => id);
    const aMachines = [...ownerOf].filter(([, o]) => o.has('A')).map(([id]) => id);
    expect(bMachines.length, `B owned partitions ${bOwned.join(',')}`).toBeGreaterThan(0);
    expect(aMachines.length).toBeGreaterThan(0);
    // After B left, A served its machines.
    const after = served.filter((s) => s.phase === 'A-again');
    for (const id of bMachines)
      if (after.some((s) => s.machineId === id))
        expect(after.filter((s) => s.machineId === id).every((s) => s.worker === 'A')).toBe(true);
    expect(
      bMachines.some((id) => after.some((s) => s.machineId === id)),
      "A took over at least one of B's machines mid-stream",
    ).toBe(true);

    // ── drift windows of moved machines restart on each new owner, never mixing rows across a move ──
    // Every window is WINDOW consecutive seqs of one machine (no stale rows of an earlier ownership, no gap).
    for (const w of windows)
      expect(
        w.toSeq - w.fromSeq,
        `window ${w.worker}/${w.groupKey}#${w.windowIndex} ${w.fromSeq}..${w.toSeq}`,
      ).toBe(WINDOW - 1);
    for (const id of bMachines) {
      // Stints: maximal runs of predictions of this machine by one worker, in order.
      const byMachine = served.filter((s) => s.machineId === id);
      const stints: { worker: string; firstSeq: number; lastSeq: number }[] = [];
      for (const s of byMachine) {
        const cur = stints[stints.length - 1];
        if (cur && cur.worker === s.worker) cur.lastSeq = s.seq;
        else stints.push({ worker: s.worker, firstSeq: s.seq, lastSeq: s.seq });
      }
      for (const stint of stints) {
        const ws = windows.filter(
          (w) =>
            w.worker === stint.worker &&
            w.groupKey === id &&
            w.fromSeq >= stint.firstSeq &&
            w.toSeq <= stint.lastSeq,
        );
        const first = ws[0];
        if (!first) continue; // a stint shorter than a window tests none
        // A fresh window on the new owner: counted from 1 again, starting at its first seq of the stint.
        if (stint !== stints[0]) {
          expect(first.windowIndex, `${id}: first window of ${stint.worker} from seq ${stint.firstSeq}`).toBe(
            1,
          );
          expect(first.fromSeq).toBe(stint.firstSeq);
        }
      }
      // The machine moved A → B → A when it was seen in all three phases.
      expect(stints.map((s) => s.worker).join('→'), `${id} owners over time`).toMatch(/^(A→)?B(→A)?$/);
    }
    // At least one machine moved A → B → A and tested a fresh window on A after coming back.
    const movedBack = bMachines.filter((id) => {
      const seqsOnAAfter = after.filter((s) => s.machineId === id).map((s) => s.seq);
      return (
        seqsOnAAfter.length >= WINDOW &&
        windows.some(
          (w) =>
            w.worker === 'A' &&
            w.groupKey === id &&
            w.windowIndex === 1 &&
            w.fromSeq === Math.min(...seqsOnAAfter),
        )
      );
    });
    expect(movedBack.length, 'a machine whose window restarted on A after B left').toBeGreaterThan(0);

    const rebalances = a.ingest.stats().rebalances;
    expect(rebalances).toBeGreaterThanOrEqual(2);
    expect(a.ingest.stats().machinesForgotten).toBeGreaterThan(0);
    expect(bridge?.stats().forwarded.telemetry).toBe(TOTAL);
    console.info(
      `scale-out: ${TOTAL} predictions, ${rebalances} rebalances ` +
        `on A, B served ${bMachines.length} machines, ${elapsed} ms`,
    );
  }, 150_000);
});
