import mqtt, { type MqttClient } from 'mqtt';
import { generateStream } from '../../common/scenario/generator.ts';
import { defaultScenario } from '../../common/scenario/scenario.ts';
import { selfUsage, serve } from './ipc.ts';

/**
 * The benchmark's devices: one MQTT client per machine publishes telemetry
 * (the seed profile, pre-generated and replayed with fresh `seq` and `ts`), and
 * one inspection client publishes each sample's label `labelDelayMs` after the
 * broker acknowledged the telemetry (QoS 1; after sending at QoS 0) — a label
 * never overtakes its reading. Paced at `rate` telemetry messages per second
 * across all machines in round-robin order, or `max`: as fast as the broker
 * acknowledges, at most `maxInFlight` unacknowledged telemetry messages.
 * `seq` keeps counting across runs, so one edge worker can serve several runs.
 */

export interface PublisherInit {
  url: string;
  machineIds: string[];
  devices: Record<string, string>;
  inspection: { username: string; password: string };
  qos: 0 | 1;
  labels: boolean;
  labelDelayMs: number;
  seed: number;
  /** Client id suffix (unique per run). */
  tag: string;
  /** Unacknowledged telemetry messages at most (QoS 1). */
  maxInFlight: number;
}

export interface PublisherCounts {
  sent: number;
  acked: number;
  labelsSent: number;
  labelsAcked: number;
  inFlight: number;
  labelsInFlight: number;
  labelsWaiting: number;
  /** Telemetry messages due by the pacing schedule but not sent (the broker did not take them in time). */
  behind: number;
}

export interface PublisherRun extends PublisherCounts {
  seconds: number;
  /** Telemetry acknowledged (QoS 1) or sent (QoS 0) in each second of the run. */
  perSecond: number[];
}

const noop = (): void => undefined;
/** At QoS 0 a client stops writing while this much is buffered in its socket. */
const QOS0_MAX_BUFFERED = 256 * 1024;

let init: PublisherInit;
let devices: MqttClient[] = [];
let inspection: MqttClient;
let telemetryTopics: string[] = [];
let labelTopics: string[] = [];
/** Per machine: serialized telemetry after `ts` and the label, replayed in turn. */
let pool: { tail: string; efficiency: string }[][] = [];
let seqs: number[] = [];
let index = 0;
const counts: PublisherCounts = {
  sent: 0,
  acked: 0,
  labelsSent: 0,
  labelsAcked: 0,
  inFlight: 0,
  labelsInFlight: 0,
  labelsWaiting: 0,
  behind: 0,
};
/** Labels waiting for their delay, in due order. */
const labelQueue: { due: number; machine: number; seq: number; efficiency: string }[] = [];
let labelHead = 0;
let wakeScheduled = false;
let running: { rate: number | 'max'; t0: number; sentAtStart: number; timer: NodeJS.Timeout } | undefined;
let perSecond: number[] = [];
let runStart = 0;

function connect(clientId: string, username: string, password: string): Promise<MqttClient> {
  const client = mqtt.connect(init.url, {
    clientId,
    username,
    password,
    clean: true,
    protocolVersion: 4,
    reconnectPeriod: 1000,
    connectTimeout: 10_000,
    log: noop,
  });
  return new Promise((resolve, reject) => {
    client.once('connect', () => resolve(client));
    client.once('error', (err) => {
      client.end(true);
      reject(err);
    });
  });
}

function buildPool(): void {
  const { machineIds, seed } = init;
  const perMachine = 500;
  pool = machineIds.map(() => []);
  let n = 0;
  for (const s of generateStream(defaultScenario({ machines: machineIds.length, profile: 'seed', seed }))) {
    const m = n % machineIds.length;
    const { machineId: _m, seq: _s, ts: _t, ...rest } = s.telemetry;
    pool[m]?.push({ tail: `,${JSON.stringify(rest).slice(1)}`, efficiency: s.label.efficiency });
    if (++n >= perMachine * machineIds.length) break;
  }
  seqs = machineIds.map(() => 0);
}

function recordPerSecond(): void {
  const sec = Math.floor((Date.now() - runStart) / 1000);
  perSecond[sec] = (perSecond[sec] ?? 0) + 1;
}

function queueLabel(machine: number, seq: number, efficiency: string): void {
  labelQueue.push({ due: Date.now() + init.labelDelayMs, machine, seq, efficiency });
  counts.labelsWaiting++;
}

function flushLabels(all: boolean): void {
  const now = Date.now();
  while (labelHead < labelQueue.length) {
    const l = labelQueue[labelHead] as (typeof labelQueue)[number];
    if (!all && l.due > now) break;
    labelHead++;
    counts.labelsWaiting--;
    counts.labelsSent++;
    const id = init.machineIds[l.machine] as string;
    const payload = `{"machineId":"${id}","seq":${l.seq},"efficiency":"${l.efficiency}"}`;
    if (init.qos === 0) {
      inspection.publish(labelTopics[l.machine] as string, payload, { qos: 0 });
      counts.labelsAcked++;
    } else {
      counts.labelsInFlight++;
      inspection.publish(labelTopics[l.machine] as string, payload, { qos: 1 }, (err) => {
        counts.labelsInFlight--;
        if (!err) counts.labelsAcked++;
      });
    }
  }
  if (labelHead > 4096 && labelHead * 2 > labelQueue.length) {
    labelQueue.splice(0, labelHead);
    labelHead = 0;
  }
}

function publishOne(): boolean {
  const m = index % init.machineIds.length;
  const client = devices[m] as MqttClient;
  if (init.qos === 0 && client.stream.writableLength > QOS0_MAX_BUFFERED) return false;
  const entries = pool[m] as { tail: string; efficiency: string }[];
  const entry = entries[
    Math.floor(index / init.machineIds.length) % entries.length
  ] as (typeof entries)[number];
  const seq = seqs[m] as number;
  seqs[m] = seq + 1;
  index++;
  const payload = `{"machineId":"${init.machineIds[m] as string}","seq":${seq},"ts":${Date.now()}${entry.tail}`;
  counts.sent++;
  if (init.qos === 0) {
    client.publish(telemetryTopics[m] as string, payload, { qos: 0 });
    counts.acked++;
    recordPerSecond();
    if (init.labels) queueLabel(m, seq, entry.efficiency);
    return true;
  }
  counts.inFlight++;
  client.publish(telemetryTopics[m] as string, payload, { qos: 1 }, (err) => {
    counts.inFlight--;
    if (!err) {
      counts.acked++;
      recordPerSecond();
      if (init.labels) queueLabel(m, seq, entry.efficiency);
    }
    if (running?.rate === 'max' && !wakeScheduled && counts.inFlight < init.maxInFlight / 2) {
      wakeScheduled = true;
      setImmediate(() => {
        wakeScheduled = false;
        tick();
      });
    }
  });
  return true;
}

function tick(): void {
  if (init.labels) flushLabels(false);
  const r = running;
  if (!r) return;
  const due =
    r.rate === 'max'
      ? Number.POSITIVE_INFINITY
      : r.sentAtStart + Math.floor(((Date.now() - r.t0) * r.rate) / 1000);
  // Bounded work per tick, so acknowledgements and timers get their turn.
  let budget = 2000;
  while (counts.sent < due && budget-- > 0) {
    if (init.qos === 1 && counts.inFlight >= init.maxInFlight) break;
    if (!publishOne()) break;
  }
  if (r.rate !== 'max') counts.behind = Math.max(0, due - counts.sent);
}

async function until(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

serve({
  async start(raw) {
    init = raw as PublisherInit;
    buildPool();
    telemetryTopics = init.machineIds.map((id) => `factory/${id}/telemetry`);
    labelTopics = init.machineIds.map((id) => `factory/${id}/label`);
    devices = await Promise.all(
      init.machineIds.map((id) => connect(`${id}-bench-${init.tag}`, id, init.devices[id] as string)),
    );
    inspection = await connect(
      `inspection-bench-${init.tag}`,
      init.inspection.username,
      init.inspection.password,
    );
    // Labels keep flowing between runs (their delay outlives a run).
    setInterval(() => {
      if (!running && init.labels) flushLabels(false);
    }, 5).unref();
    return { machines: devices.length };
  },

  /** Publishes for `seconds`, then waits (up to 60 s) until every message and label is acknowledged. */
  async run(raw): Promise<PublisherRun> {
    const { rate, seconds } = raw as { rate: number | 'max'; seconds: number };
    const before = { ...counts };
    perSecond = [];
    runStart = Date.now();
    running = { rate, t0: Date.now(), sentAtStart: counts.sent, timer: setInterval(tick, 1) };
    tick();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    clearInterval(running.timer);
    const behind = counts.behind;
    running = undefined;
    const elapsed = (Date.now() - runStart) / 1000;
    await until(
      () => counts.inFlight === 0 && counts.labelsWaiting === 0 && counts.labelsInFlight === 0,
      60_000,
    );
    return {
      sent: counts.sent - before.sent,
      acked: counts.acked - before.acked,
      labelsSent: counts.labelsSent - before.labelsSent,
      labelsAcked: counts.labelsAcked - before.labelsAcked,
      inFlight: counts.inFlight,
      labelsInFlight: counts.labelsInFlight,
      labelsWaiting: counts.labelsWaiting,
      behind,
      seconds: elapsed,
      perSecond: perSecond.map((x) => x ?? 0),
    };
  },

  counts: () => ({ ...counts }),
  usage: () => selfUsage(),

  async stop() {
    await Promise.all([...devices, inspection].map((c) => c?.endAsync(false).catch(() => undefined)));
  },
});
