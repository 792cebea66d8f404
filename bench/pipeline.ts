import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { benchAccounts, type Accounts } from './pipeline/accounts.ts';
import { spawnRole, type Pauses, type Role } from './pipeline/ipc.ts';
import type { PublisherCounts, PublisherInit, PublisherRun } from './pipeline/publisher-role.ts';
import { loadAverage, pct, procUsage, round, type Percentiles } from './pipeline/stats.ts';
import type { SubscriberInit } from './pipeline/subscriber-role.ts';

/**
 * `npm run bench -- pipeline`: the transport path end to end, every part in its
 * own process on loopback (issue 12). Per broker — the project's aedes broker
 * (`startBroker`) and Mosquitto (`scripts/services/mosquitto.sh`, started on
 * BENCH_MOSQUITTO_PORT, default 21884, and stopped again):
 *
 * - baseline: 20 device clients publish telemetry as fast as the broker takes
 *   it, a subscriber that does nothing receives it, QoS 0 and QoS 1: the ceiling;
 * - pipeline (QoS 1): the same publishers plus labels 1 s after each reading,
 *   the edge worker (`createEdgeWorker`, as `npm run edge`), and a sink counting
 *   predictions by machineId + seq. The sustained rate is the highest paced
 *   rate tried whose backlog (telemetry acknowledged by the broker − predictions
 *   received) does not grow over BENCH_SUSTAIN_SECONDS (default 30), on a ramp from
 *   BENCH_START_RATE (400/s) by BENCH_RAMP_FACTOR (1.5) while it holds, up to the goal (0.6 x the
 *   no-op QoS 1 rate); the first step that does not hold ends it; then the
 *   telemetry-timestamp → prediction-receipt latency at 50 % and 90 % of it
 *   (BENCH_SUSTAINED_RATE=R skips the ramp and takes R as the sustained rate, for A/B runs of the
 *   latency rows; BENCH_EDGE_NODE_OPTIONS sets NODE_OPTIONS of the edge's process only); the edge's
 *   process runs its role built into one module on plain node, as the service images run the edge
 *   (scripts/build.mjs); BENCH_EDGE_RUNTIME=tsx runs it under `node --import tsx` instead;
 * - loss accounting for every row: predictions missing and duplicated, labels
 *   published vs joined vs evicted by the edge.
 *
 * Bridge (when BENCH_KAFKA_BROKERS or KAFKA_BROKERS is set, SASL user
 * BENCH_KAFKA_USER default admin, see scripts/services/kafka.sh): one MQTT →
 * Kafka bridge on the aedes broker, publishers at full speed; a Kafka consumer
 * counts every record and checks per-machine order.
 *
 * Prints a table on stderr, returns one JSON object (printed by bench/run.ts)
 * and writes it to bench/results/pipeline.json. Figures, never assertions.
 */

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const exec = promisify(execFile);

const MACHINES = 20;
const SEED = 12;
const LABEL_DELAY_MS = 1000;
const env = process.env;
const num = (name: string, dflt: number): number => (env[name] ? Number(env[name]) : dflt);
const BASELINE_SECONDS = num('BENCH_BASELINE_SECONDS', 10);
const START_RATE = num('BENCH_START_RATE', 400);
const RAMP_FACTOR = num('BENCH_RAMP_FACTOR', 1.5);
const SUSTAIN_SECONDS = num('BENCH_SUSTAIN_SECONDS', 30);
const LATENCY_SECONDS = num('BENCH_LATENCY_SECONDS', 15);
const BRIDGE_SECONDS = num('BENCH_BRIDGE_SECONDS', 15);
const MOSQUITTO_PORT = num('BENCH_MOSQUITTO_PORT', 21884);
const BROKERS = (env.BENCH_BROKERS ?? 'aedes,mosquitto').split(',').filter(Boolean);
/** A sustained rate given instead of searched: no ramp, only the latency rows at 50 % and 90 % of it (A/B runs). */
const GIVEN_RATE = env.BENCH_SUSTAINED_RATE ? Number(env.BENCH_SUSTAINED_RATE) : undefined;
if (GIVEN_RATE !== undefined && !(Number.isInteger(GIVEN_RATE) && GIVEN_RATE > 0))
  throw new Error(
    `BENCH_SUSTAINED_RATE="${String(env.BENCH_SUSTAINED_RATE)}" is invalid: expected a positive integer (msg/s)`,
  );
/** Node and V8 flags for the edge's process only (`NODE_OPTIONS` there), e.g. a smaller young generation. */
const EDGE_NODE_OPTIONS = env.BENCH_EDGE_NODE_OPTIONS;
/** How the edge's process runs its code: `built` (a bundle on plain node, as deployed) or `tsx`. */
const EDGE_RUNTIME = env.BENCH_EDGE_RUNTIME ?? 'built';
if (EDGE_RUNTIME !== 'built' && EDGE_RUNTIME !== 'tsx')
  throw new Error(`BENCH_EDGE_RUNTIME="${EDGE_RUNTIME}" is invalid: expected built or tsx`);
const PASSWORD_PREFIX = env.MOSQUITTO_DEV_PASSWORD ?? 'driftline-dev';

const machineIds = Array.from({ length: MACHINES }, (_, i) => `m-${String(i).padStart(3, '0')}`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const log = (line: string): void => void process.stderr.write(`  pipeline: ${line}\n`);

interface SubscriberCounts {
  telemetry: number;
  label: number;
  prediction: number;
  messages: number;
  unique: number;
  duplicates: number;
  invalid: number;
}
interface SinkWindow extends SubscriberCounts {
  latencyMs: Percentiles;
  latencySamples: number;
  latencyPartsMs: LatencyParts;
}
/** The end-to-end latency split at the prediction's `predictedAt` (bench/pipeline/subscriber-role.ts). */
interface LatencyParts {
  /** Reading published → prediction made: publisher, broker, edge intake, batch wait, model. */
  toPredicted: Percentiles;
  /** Prediction made → received by the sink: the edge's publish, the broker, the sink. */
  delivery: Percentiles;
}
interface EdgeStats {
  predictions: number;
  batches: number;
  queued: number;
  labelJoin: { hits: number; misses: number; evictions: number; pending: number; earlyJoined?: number };
  deadLetters: number;
  /** Broker connections the edge lost (intake and publisher). */
  disconnects: number;
  backend: string;
}

let runTag = 0;
const tag = (): string => `${process.pid}-${++runTag}`;

async function publisher(url: string, accounts: Accounts, qos: 0 | 1, labels: boolean): Promise<Role> {
  const role = await spawnRole('publisher-role', `publisher-q${qos}`);
  const init: PublisherInit = {
    url,
    machineIds,
    devices: accounts.devices,
    inspection: accounts.inspection,
    qos,
    labels,
    labelDelayMs: LABEL_DELAY_MS,
    seed: SEED,
    tag: tag(),
    maxInFlight: 1000,
  };
  await role.request('start', init);
  return role;
}

async function subscriber(
  url: string,
  account: { username: string; password: string },
  init: Pick<SubscriberInit, 'qos' | 'topics' | 'mode'>,
): Promise<Role> {
  const role = await spawnRole('subscriber-role', `${init.mode}-q${init.qos}`);
  await role.request('start', {
    url,
    username: account.username,
    password: account.password,
    clientId: `bench-${init.mode}-${tag()}`,
    clean: true,
    ...init,
  } satisfies SubscriberInit);
  return role;
}

async function until(cond: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) return false;
    await sleep(250);
  }
  return true;
}

/** CPU share (1.0 = one core) and RSS of `pid` between two readings. */
function cpuBetween(
  a: { cpuSeconds: number } | undefined,
  b: { cpuSeconds: number; rssMb: number } | undefined,
  seconds: number,
): { cpu: number | null; rssMb: number | null } {
  if (!a || !b) return { cpu: null, rssMb: null };
  return { cpu: round((b.cpuSeconds - a.cpuSeconds) / seconds, 2), rssMb: b.rssMb };
}

// ---- baseline ------------------------------------------------------------------

async function baseline(
  url: string,
  accounts: Accounts,
  qos: 0 | 1,
  brokerPid: number | undefined,
): Promise<Record<string, unknown>> {
  const sub = await subscriber(url, accounts.dashboard, {
    qos,
    topics: ['factory/+/telemetry'],
    mode: 'noop',
  });
  const pub = await publisher(url, accounts, qos, false);
  try {
    const running = pub.request<PublisherRun>('run', { rate: 'max', seconds: BASELINE_SECONDS }, 180_000);
    // Skip the first two seconds (connections warming up), measure the rest of the window at the subscriber.
    await sleep(2000);
    const c0 = await sub.request<SubscriberCounts>('counts');
    const b0 = brokerPid === undefined ? undefined : procUsage(brokerPid);
    const t0 = Date.now();
    await sleep((BASELINE_SECONDS - 3) * 1000);
    const c1 = await sub.request<SubscriberCounts>('counts');
    const b1 = brokerPid === undefined ? undefined : procUsage(brokerPid);
    const seconds = (Date.now() - t0) / 1000;
    const r = await running;
    await until(async () => (await sub.request<SubscriberCounts>('counts')).telemetry >= r.acked, 10_000);
    const end = await sub.request<SubscriberCounts>('counts');
    const rate = Math.round((c1.telemetry - c0.telemetry) / seconds);
    log(`${url} baseline QoS ${qos}: ${rate} msg/s (sent ${r.sent}, received ${end.telemetry})`);
    return {
      qos,
      msgPerSec: rate,
      sent: r.sent,
      received: end.telemetry,
      missing: r.sent - end.telemetry,
      broker: cpuBetween(b0, b1, seconds),
    };
  } finally {
    await pub.request('stop').catch(() => undefined);
    await sub.request('stop').catch(() => undefined);
    await Promise.all([pub.close(), sub.close()]);
  }
}

// ---- pipeline ------------------------------------------------------------------

interface Snapshot {
  at: number;
  pub: PublisherCounts;
  sink: SubscriberCounts;
  edge: EdgeStats;
  edgeUsage: ReturnType<typeof procUsage>;
  brokerUsage: ReturnType<typeof procUsage>;
}

interface Pipeline {
  pub: Role;
  sink: Role;
  edge: Role;
  brokerPid: number | undefined;
  brokerRole?: Role;
  backend: string;
}

async function snapshot(p: Pipeline): Promise<Snapshot> {
  const [pub, sink, edge] = await Promise.all([
    p.pub.request<PublisherCounts>('counts'),
    p.sink.request<SubscriberCounts>('counts'),
    p.edge.request<EdgeStats>('stats'),
  ]);
  return {
    at: Date.now(),
    pub,
    sink,
    edge,
    edgeUsage: procUsage(p.edge.pid),
    brokerUsage: p.brokerPid === undefined ? undefined : procUsage(p.brokerPid),
  };
}

/** Waits until every acknowledged reading has its prediction and every label is published (or 60 s). */
async function drain(p: Pipeline): Promise<boolean> {
  return until(async () => {
    const s = await snapshot(p);
    return (
      s.sink.unique >= s.pub.acked &&
      s.pub.inFlight === 0 &&
      s.pub.labelsWaiting === 0 &&
      s.pub.labelsInFlight === 0 &&
      s.edge.queued === 0
    );
  }, 60_000);
}

/** What happened to every message between two drained snapshots. */
function losses(a: Snapshot, b: Snapshot): Record<string, number> {
  const telemetry = b.pub.acked - a.pub.acked;
  const predicted = b.sink.unique - a.sink.unique;
  const labels = b.pub.labelsAcked - a.pub.labelsAcked;
  const joined = b.edge.labelJoin.hits - a.edge.labelJoin.hits;
  const evicted = b.edge.labelJoin.evictions - a.edge.labelJoin.evictions;
  return {
    telemetry,
    predictions: predicted,
    predictionsMissing: telemetry - predicted,
    predictedTwice: b.sink.duplicates - a.sink.duplicates,
    labelsPublished: labels,
    labelsJoined: joined,
    labelsEvicted: evicted,
    labelsMissed: b.edge.labelJoin.misses - a.edge.labelJoin.misses,
    // Of the joined: labels that overtook their reading at the edge and waited for it.
    labelsBeforeReading: (b.edge.labelJoin.earlyJoined ?? 0) - (a.edge.labelJoin.earlyJoined ?? 0),
    labelsUnexplained: labels - joined - evicted,
    deadLetters: b.edge.deadLetters - a.edge.deadLetters,
    edgeDisconnects: b.edge.disconnects - a.edge.disconnects,
  };
}

interface Segment {
  rate: number | 'max';
  seconds: number;
  /** Telemetry acknowledged per second over the measured part. */
  inPerSec: number;
  /** Predictions received per second over the measured part. */
  outPerSec: number;
  /** Predictions the edge made per second over the measured part (its own count; the sink receives them later). */
  edgePredictedPerSec: number;
  /** Backlog (acknowledged − predicted) at the start and end of the measured part, and its growth per second. */
  backlogStart: number;
  backlogEnd: number;
  backlogGrowthPerSec: number;
  /** Paced messages the publishers could not send in time (the broker pushed back). */
  behind: number;
  edge: { cpu: number | null; rssMb: number | null };
  broker: { cpu: number | null; rssMb: number | null };
  /**
   * Predictions per CPU-second of the edge worker: what one core would do. On a shared, loaded machine the
   * worker gets a fraction of a core, so this is the figure that compares runs.
   */
  edgePerCpuSecond: number | null;
  /** Predictions per model call over the measured part (the micro-batch size the worker got). */
  edgeMeanBatch: number | null;
  latencyMs?: Percentiles;
  latencyPartsMs?: LatencyParts;
  /** Per role (edge, broker, sink, publisher), GC pauses and event-loop delay over the measured seconds of a latency row. */
  pauses?: Record<string, Pauses>;
  losses: Record<string, number>;
}

/** One paced (or max) run: `warmup` s, then `seconds` measured; then drained and accounted. */
async function segment(
  p: Pipeline,
  rate: number | 'max',
  seconds: number,
  warmup = 3,
  latency = false,
): Promise<Segment> {
  const before = await snapshot(p);
  const running = p.pub.request<PublisherRun>('run', { rate, seconds: warmup + seconds }, 300_000);
  await sleep(warmup * 1000);
  const gcRoles = [p.edge, ...(p.brokerRole ? [p.brokerRole] : []), p.sink, p.pub];
  if (latency) await Promise.all([p.sink.request('reset'), ...gcRoles.map((r) => r.request('pauses'))]);
  const s0 = await snapshot(p);
  await sleep(seconds * 1000);
  const s1 = await snapshot(p);
  const win = latency ? await p.sink.request<SinkWindow>('window') : undefined;
  const gc = latency
    ? Object.fromEntries(
        await Promise.all(gcRoles.map(async (r) => [r.name, await r.request<Pauses>('pauses')] as const)),
      )
    : undefined;
  const r = await running;
  const drained = await drain(p);
  const after = await snapshot(p);
  const dt = (s1.at - s0.at) / 1000;
  const backlog = (s: Snapshot): number => s.pub.acked - s.sink.unique;
  const seg: Segment = {
    rate,
    seconds: round(dt, 1),
    inPerSec: Math.round((s1.pub.acked - s0.pub.acked) / dt),
    outPerSec: Math.round((s1.sink.unique - s0.sink.unique) / dt),
    edgePredictedPerSec: Math.round((s1.edge.predictions - s0.edge.predictions) / dt),
    backlogStart: backlog(s0),
    backlogEnd: backlog(s1),
    backlogGrowthPerSec: Math.round((backlog(s1) - backlog(s0)) / dt),
    behind: r.behind,
    edge: cpuBetween(s0.edgeUsage, s1.edgeUsage, dt),
    broker: cpuBetween(s0.brokerUsage, s1.brokerUsage, dt),
    edgePerCpuSecond: null,
    edgeMeanBatch:
      s1.edge.batches > s0.edge.batches
        ? round((s1.edge.predictions - s0.edge.predictions) / (s1.edge.batches - s0.edge.batches), 1)
        : null,
    ...(win ? { latencyMs: win.latencyMs, latencyPartsMs: win.latencyPartsMs } : {}),
    ...(gc ? { pauses: gc } : {}),
    losses: { ...losses(before, after), drained: drained ? 1 : 0 },
  };
  if (seg.edge.cpu) seg.edgePerCpuSecond = Math.round(seg.outPerSec / seg.edge.cpu);
  log(
    `  rate ${rate}: in ${seg.inPerSec}/s predicted ${seg.edgePredictedPerSec}/s out ${seg.outPerSec}/s backlog ${seg.backlogStart}→${seg.backlogEnd}` +
      ` behind ${seg.behind} edge cpu ${seg.edge.cpu} (${seg.edgePerCpuSecond}/cpu-s, batch ${seg.edgeMeanBatch})` +
      ` rss ${seg.edge.rssMb} MB broker cpu ${seg.broker.cpu}` +
      (seg.latencyMs
        ? ` p50/p95/p99 ${seg.latencyMs.p50}/${seg.latencyMs.p95}/${seg.latencyMs.p99} ms` +
          (seg.latencyPartsMs
            ? ` (to predicted ${pct(seg.latencyPartsMs.toPredicted)}, delivery ${pct(seg.latencyPartsMs.delivery)})`
            : '')
        : '') +
      (gc
        ? ` gc ${Object.entries(gc)
            .map(
              ([n, g]) =>
                `${n} ${g.minor.count}/${g.minor.totalMs}/${g.minor.maxMs} ${g.major.count}/${g.major.totalMs}/${g.major.maxMs} loop ${g.loopDelay.p50}/${g.loopDelay.p99}/${g.loopDelay.max}`,
            )
            .join(', ')} (gc minor, major: count/total/max ms; event-loop delay p50/p99/max ms)`
        : '') +
      ` missing ${seg.losses.predictionsMissing}${drained ? '' : ' (not drained in 60 s: not arrived yet)'}` +
      ` labels unexplained ${seg.losses.labelsUnexplained}` +
      ` (before their reading ${seg.losses.labelsBeforeReading})` +
      ` edge disconnects ${seg.losses.edgeDisconnects}`,
  );
  return seg;
}

/**
 * Sustained: the backlog did not grow (by more than 1 % of the rate per second, and by less than 2 s of input
 * over the window: a backlog left by an earlier row, or its losses, does not count) and the publishers kept
 * pace.
 */
function sustained(s: Segment, rate: number): boolean {
  return (
    s.backlogGrowthPerSec <= rate * 0.01 && s.backlogEnd - s.backlogStart < rate * 2 && s.behind < rate * 0.5
  );
}

/** The edge, a sink and the publishers on `url`, each in its own process, with a new edge client id. */
async function openPipeline(broker: BrokerHandle, accounts: Accounts, brokerName: string): Promise<Pipeline> {
  const { url } = broker;
  const edge = await spawnRole('edge-role', `edge-${brokerName}`, {
    built: EDGE_RUNTIME === 'built',
    ...(EDGE_NODE_OPTIONS ? { env: { NODE_OPTIONS: EDGE_NODE_OPTIONS } } : {}),
  });
  const sink = await subscriber(url, accounts.dashboard, {
    qos: 1,
    topics: ['factory/+/prediction'],
    mode: 'sink',
  });
  const started = await edge.request<{ backend: string }>('start', {
    url,
    username: accounts.edge.username,
    password: accounts.edge.password,
    clientId: `bench-edge-${tag()}`,
  });
  const pub = await publisher(url, accounts, 1, true);
  return {
    pub,
    sink,
    edge,
    brokerPid: broker.pid,
    ...(broker.role ? { brokerRole: broker.role } : {}),
    backend: started.backend,
  };
}

async function closePipeline(p: Pipeline): Promise<void> {
  await p.pub.request('stop').catch(() => undefined);
  await p.edge.request('stop').catch(() => undefined);
  await p.sink.request('stop').catch(() => undefined);
  await Promise.all([p.pub.close(), p.edge.close(), p.sink.close()]);
}

/**
 * The sustained rate: a ramp from START_RATE by RAMP_FACTOR while the rate holds, up to `goal` (0.6 x the
 * no-op QoS 1 rate); the first step that does not hold ends it. Each step overloads by at most RAMP_FACTOR.
 * (Before 4 Dec 2026: a short probe at the goal filled the broker's session queue with hundreds of
 * thousands of readings and every row after it measured that backlog.)
 */
async function ramp(p: Pipeline, url: string, goal: number): Promise<{ tries: Segment[]; best?: Segment }> {
  log(
    `${url} pipeline (edge on ${p.backend}, ${EDGE_RUNTIME}): ramp from ${START_RATE}/s x${RAMP_FACTOR} up to ${goal}/s`,
  );
  const tries: Segment[] = [];
  let best: Segment | undefined;
  for (let rate = Math.min(START_RATE, goal); ;) {
    const s = await segment(p, rate, SUSTAIN_SECONDS);
    tries.push(s);
    if (!sustained(s, rate)) break;
    best = s;
    const up = Math.min(goal, Math.round((rate * RAMP_FACTOR) / 50) * 50);
    if (up <= rate) break;
    rate = up;
  }
  return best ? { tries, best } : { tries };
}

// ---- brokers ---------------------------------------------------------------------

interface BrokerHandle {
  url: string;
  pid: number | undefined;
  /** The aedes broker's role process (its GC and event-loop delay are reported); none for Mosquitto. */
  role?: Role;
  close(): Promise<void>;
}

async function startAedes(accounts: Accounts): Promise<BrokerHandle> {
  const role = await spawnRole('broker-role', 'broker-aedes');
  const { url } = await role.request<{ url: string }>('start', { accounts: accounts.all });
  return {
    url,
    pid: role.pid,
    role,
    close: async () => {
      await role.request('stop').catch(() => undefined);
      await role.close();
    },
  };
}

async function startMosquitto(): Promise<BrokerHandle> {
  const script = path.join(root, 'scripts/services/mosquitto.sh');
  const menv = {
    ...process.env,
    MOSQUITTO_PORT: String(MOSQUITTO_PORT),
    MOSQUITTO_DEVICES: String(MACHINES),
    // An overloaded step can queue more than the default 100,000 for the edge's session; past the limit Mosquitto
    // drops QoS 1 messages, which would show as predictions missing (the aedes broker role has no such limit
    // for a connected session).
    MOSQUITTO_MAX_QUEUED: env.BENCH_MOSQUITTO_MAX_QUEUED ?? '2000000',
    // The edge holds a reading's PUBACK until its prediction is acknowledged, so Mosquitto's in-flight window
    // divided by the batch latency bounds the edge's rate (100 / ~30 ms ≈ 3,300 msg/s with the default).
    MOSQUITTO_MAX_INFLIGHT: env.BENCH_MOSQUITTO_MAX_INFLIGHT ?? '1000',
  };
  await exec(script, ['start'], { env: menv });
  const pidText = await readFile(path.join(root, '.services/mosquitto/mosquitto.pid'), 'utf8').catch(
    () => '',
  );
  const pid = Number(pidText.trim()) || undefined;
  return {
    url: `mqtt://127.0.0.1:${MOSQUITTO_PORT}`,
    pid,
    close: async () => {
      await exec(script, ['stop'], { env: menv }).catch(() => undefined);
    },
  };
}

async function mosquittoVersion(): Promise<string | null> {
  try {
    const r = await exec('mosquitto', ['-h']).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }));
    return r.stdout.split('\n')[0]?.trim() ?? null;
  } catch {
    return null;
  }
}

// ---- bridge ------------------------------------------------------------------------

async function bridgeBench(accounts: Accounts): Promise<Record<string, unknown>> {
  const brokersRaw = env.BENCH_KAFKA_BROKERS ?? env.KAFKA_BROKERS;
  if (!brokersRaw) return { skipped: 'set BENCH_KAFKA_BROKERS (scripts/services/kafka.sh start)' };
  const { localKafkaPassword } = await import('../common/bus/kafka-security.ts');
  const user = env.BENCH_KAFKA_USER ?? 'admin';
  const kafka = {
    brokers: brokersRaw.split(',').map((s) => s.trim()),
    sasl: {
      mechanism: 'scram-sha-512' as const,
      username: user,
      password: env.BENCH_KAFKA_PASSWORD ?? localKafkaPassword(user),
    },
  };
  const topicPrefix = `bench-${Date.now()}.`;
  const broker = await startAedes(accounts);
  const bridge = await spawnRole('bridge-role', 'bridge');
  const counter = await spawnRole('kafka-counter-role', 'kafka-counter');
  let pub: Role | undefined;
  try {
    const { topic } = await bridge.request<{ topic: string }>('start', {
      mqtt: { url: broker.url, clientId: `bench-bridge-${tag()}`, ...accounts.bridge },
      kafka: { ...kafka, clientId: 'bench-bridge', topicPrefix },
      partitions: 12,
    });
    await counter.request('start', { kafka: { ...kafka, clientId: 'bench-counter' }, topic });
    pub = await publisher(broker.url, accounts, 1, true);
    type BridgeStats = { forwarded: { telemetry: number; label: number }; retries: number };
    const fwd = async (): Promise<number> => {
      const s = await bridge.request<BridgeStats>('stats');
      return s.forwarded.telemetry + s.forwarded.label;
    };
    const running = pub.request<PublisherRun>('run', { rate: 'max', seconds: BRIDGE_SECONDS }, 600_000);
    await sleep(2000);
    const f0 = await fwd();
    const u0 = procUsage(bridge.pid);
    const t0 = Date.now();
    await sleep((BRIDGE_SECONDS - 3) * 1000);
    const f1 = await fwd();
    const u1 = procUsage(bridge.pid);
    const seconds = (Date.now() - t0) / 1000;
    const r = await running;
    const published = r.acked + r.labelsAcked;
    const drained = await until(async () => (await fwd()) >= published, 120_000);
    type CounterCounts = {
      records: number;
      unique: number;
      duplicates: number;
      outOfOrder: number;
      invalid: number;
    };
    await until(async () => (await counter.request<CounterCounts>('counts')).unique >= published, 60_000);
    const c = await counter.request<CounterCounts>('counts');
    const stats = await bridge.request<BridgeStats>('stats');
    const rate = Math.round((f1 - f0) / seconds);
    log(
      `bridge: ${rate} msg/s into Kafka; published ${published}, in Kafka ${c.unique} unique, ${c.outOfOrder} out of order`,
    );
    return {
      msgPerSec: rate,
      published,
      forwarded: stats.forwarded.telemetry + stats.forwarded.label,
      inKafka: c.unique,
      missing: published - c.unique,
      duplicates: c.duplicates,
      outOfOrder: c.outOfOrder,
      retries: stats.retries,
      drained,
      bridge: cpuBetween(u0, u1, seconds),
    };
  } finally {
    await pub?.request('stop').catch(() => undefined);
    await bridge.request('stop').catch(() => undefined);
    await counter.request('stop').catch(() => undefined);
    await Promise.all([pub?.close(), bridge.close(), counter.close()]);
    await broker.close();
  }
}

// ---- table ---------------------------------------------------------------------------

type Row = Record<string, unknown>;

function table(result: Record<string, unknown>): string {
  const lines = [
    '| broker | row | msg/s | ratio to no-op QoS 1 | p50 / p95 / p99 ms | edge CPU / RSS MB / msg per CPU-s | missing / twice | labels published / joined / evicted / unexplained |',
    '|---|---|---|---|---|---|---|---|',
  ];
  const brokers = result.brokers as Record<string, Row>;
  for (const [name, b] of Object.entries(brokers)) {
    if (b.error) {
      lines.push(`| ${name} | error: ${String(b.error)} | | | | | | |`);
      continue;
    }
    const base = b.baseline as Record<string, Row>;
    const q1 = (base.qos1?.msgPerSec as number | undefined) ?? null;
    for (const q of ['qos0', 'qos1']) {
      const r = base[q];
      if (!r) continue;
      lines.push(
        `| ${name} | no-op subscriber ${q.toUpperCase()} | ${String(r.msgPerSec)} | | | | ${String(r.missing)} / – | |`,
      );
    }
    const p = b.pipeline as Row;
    const lossCells = (s: Segment): string[] => [
      // Not drained within 60 s of the step's end: "missing" is what had not arrived yet, not what was lost.
      s.losses.drained === 0
        ? `${s.losses.predictionsMissing} not arrived (not drained in 60 s) / ${s.losses.predictedTwice}`
        : `${s.losses.predictionsMissing} / ${s.losses.predictedTwice}`,
      `${s.losses.labelsPublished} / ${s.losses.labelsJoined}` +
        (s.losses.labelsBeforeReading ? ` (${s.losses.labelsBeforeReading} before their reading)` : '') +
        ` / ${s.losses.labelsEvicted} / ` +
        (s.losses.drained === 0 ? 'not accounted (not drained)' : `${s.losses.labelsUnexplained}`),
    ];
    const rows: [string, Segment | null][] = [
      ...((p.tries as Segment[]).map((s) => [`edge QoS 1 at ${String(s.rate)}`, s]) as [string, Segment][]),
      ['edge QoS 1 at 50 % (restarted broker, new edge)', p.at50 as Segment | null],
      ['edge QoS 1 at 90 % (same)', p.at90 as Segment | null],
    ];
    for (const [name0, s] of rows) {
      if (!s) continue;
      const lost = s.losses.edgeDisconnects ?? 0;
      const label = lost > 0 ? `${name0}, ${lost} edge disconnects` : name0;
      const lat = s.latencyMs ? `${s.latencyMs.p50} / ${s.latencyMs.p95} / ${s.latencyMs.p99}` : '';
      const ratio = q1 ? round(s.outPerSec / q1, 2) : '';
      lines.push(
        `| ${name} | ${label} | ${s.outPerSec} | ${ratio} | ${lat} | ${s.edge.cpu ?? ''} / ${s.edge.rssMb ?? ''} / ${s.edgePerCpuSecond ?? ''} | ${lossCells(s).join(' | ')} |`,
      );
    }
    lines.push(
      `| ${name} | **sustained**${p.sustainedRateGiven === true ? ' (given, not measured)' : ''} (backend ${String(p.backend)}) | **${String(p.sustainedRate)}** | **${String(b.ratio)}** | | | | |`,
    );
  }
  const br = result.bridge as Row;
  if (br.skipped) lines.push(`| aedes | bridge MQTT→Kafka | skipped: ${String(br.skipped)} | | | | | |`);
  else if (br.error) lines.push(`| aedes | bridge MQTT→Kafka | error: ${String(br.error)} | | | | | |`);
  else
    lines.push(
      `| aedes | bridge MQTT→Kafka (1 instance) | ${String(br.msgPerSec)} | | | ${(br.bridge as Row).cpu as number} / ${(br.bridge as Row).rssMb as number} (bridge) | ${String(br.missing)} / ${String(br.duplicates)} (order violations ${String(br.outOfOrder)}) | |`,
    );
  return lines.join('\n');
}

// ---- run -------------------------------------------------------------------------------

export async function run(): Promise<Record<string, unknown>> {
  const accounts = benchAccounts(machineIds, PASSWORD_PREFIX);
  const result: Record<string, unknown> = {
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? null,
      memoryGb: round(totalmem() / 2 ** 30, 1),
      node: process.version,
      mosquitto: await mosquittoVersion(),
      loadAtStart: loadAverage(),
    },
    settings: {
      machines: MACHINES,
      labelDelayMs: LABEL_DELAY_MS,
      baselineSeconds: BASELINE_SECONDS,
      sustainSeconds: SUSTAIN_SECONDS,
      latencySeconds: LATENCY_SECONDS,
    },
  };
  const brokers: Record<string, unknown> = {};
  for (const name of BROKERS) {
    let broker: BrokerHandle | undefined;
    try {
      broker = name === 'mosquitto' ? await startMosquitto() : await startAedes(accounts);
      log(`${name} at ${broker.url}`);
      const qos0 = await baseline(broker.url, accounts, 0, broker.pid);
      const qos1 = await baseline(broker.url, accounts, 1, broker.pid);
      const goal = Math.round(((qos1.msgPerSec as number) * 0.6) / 50) * 50;
      let p = await openPipeline(broker, accounts, name);
      const backend = p.backend;
      let found: { tries: Segment[]; best?: Segment } = { tries: [] };
      try {
        if (GIVEN_RATE === undefined) found = await ramp(p, broker.url, goal);
        else log(`sustained rate given (BENCH_SUSTAINED_RATE): ${GIVEN_RATE} msg/s, no ramp`);
      } finally {
        await closePipeline(p);
      }
      const sr = GIVEN_RATE ?? (found.best ? (found.best.rate as number) : null);
      // The latency rows run on a restarted broker and a new pipeline: what the failing ramp step left queued
      // (in the broker's session for the edge, and in the edge) would otherwise be measured as latency.
      let at50: Segment | null = null;
      let at90: Segment | null = null;
      let edgeRssMbEnd: number | null = null;
      let edgeMemoryEnd: Record<string, number> | null = null;
      let edgeMemorySettled: Record<string, number> | null = null;
      if (sr !== null) {
        await broker.close();
        broker = name === 'mosquitto' ? await startMosquitto() : await startAedes(accounts);
        p = await openPipeline(broker, accounts, name);
        try {
          log(`${broker.url} latency rows on a restarted broker and a new edge`);
          at50 = await segment(p, Math.round(sr * 0.5), LATENCY_SECONDS, 3, true);
          at90 = await segment(p, Math.round(sr * 0.9), LATENCY_SECONDS, 3, true);
          edgeRssMbEnd = procUsage(p.edge.pid)?.rssMb ?? null;
          edgeMemoryEnd = await p.edge.request<Record<string, number>>('usage');
          log(`edge memory after the latency rows: ${JSON.stringify(edgeMemoryEnd)}`);
          // What it holds live, and the RSS it keeps, once the load stops: 5 s idle, full GCs.
          edgeMemorySettled = await p.edge.request<Record<string, number>>('settledUsage', undefined, 30_000);
          log(`edge memory 5 s later, after full GCs: ${JSON.stringify(edgeMemorySettled)}`);
        } finally {
          await closePipeline(p);
        }
      }
      brokers[name] = {
        baseline: { qos0, qos1 },
        pipeline: {
          backend,
          edgeRuntime: EDGE_RUNTIME,
          sustainedRate: sr,
          sustainedRateGiven: GIVEN_RATE !== undefined,
          goal,
          tries: found.tries,
          at50,
          at90,
          edgeRssMbEnd,
          edgeMemoryEnd,
          edgeMemorySettled,
        },
        ratio: sr !== null ? round(sr / (qos1.msgPerSec as number), 2) : null,
        loadAfter: loadAverage(),
      };
    } catch (err) {
      brokers[name] = { error: (err as Error).message };
      log(`${name} failed: ${(err as Error).message}`);
    } finally {
      await broker?.close();
    }
  }
  result.brokers = brokers;
  try {
    result.bridge = await bridgeBench(accounts);
  } catch (err) {
    result.bridge = { error: (err as Error).message };
  }
  (result.machine as Row).loadAtEnd = loadAverage();
  result.at = new Date().toISOString();
  const text = table(result);
  result.table = text;
  process.stderr.write(`\n${text}\n\n`);
  await mkdir(path.join(here, 'results'), { recursive: true });
  await writeFile(path.join(here, 'results', 'pipeline.json'), `${JSON.stringify(result, null, 2)}\n`);
  return result;
}
