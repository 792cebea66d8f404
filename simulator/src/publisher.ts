import type { MqttClient } from 'mqtt';
import { ConfigError, TransportError, describeError } from '../../common/errors.ts';
import type { Logger } from '../../common/logging/logger.ts';
import { connectMqtt } from '../../common/mqtt/connect.ts';
import { TOPICS, type Label } from '../../common/schema/telemetry.ts';
import { generateStream, phaseBounds } from '../../common/scenario/generator.ts';
import type { ProfileName } from '../../common/scenario/profiles.ts';
import {
  defaultScenario,
  machineIdsOf,
  phaseChangesAnything,
  type Scenario,
} from '../../common/scenario/scenario.ts';
import { Pacer } from './scheduler.ts';
import { Fifo, RateMeter } from './stats.ts';

/**
 * Plays a scenario (or the default profile forever) to an MQTT broker: one
 * client per machine publishes its telemetry (QoS 1) at the configured rate,
 * and a separate inspection client publishes each sample's label after a delay.
 * Telemetry `ts` is the wall-clock time of publishing; everything else is the
 * generator's deterministic stream.
 */

/** Passwords for the simulator's MQTT clients (the format of the credentials file). */
export interface SimulatorCredentials {
  /** Password per machine id; each device connects with username = its machine id. */
  devices: Record<string, string>;
  /** The inspection client that publishes labels (the broker's inspection role). */
  inspection: { username: string; password: string };
}

export interface SimulatorOptions {
  /** Broker URL: `mqtt://`, `mqtts://`, `ws://` or `wss://`. */
  mqttUrl: string;
  /** The scenario to play; undefined plays the default profile forever (see `machines`, `profile`, `seed`). */
  scenario: Scenario | undefined;
  /** Telemetry messages per second per machine, or `max`: as fast as the broker acknowledges (benchmarks). */
  ratePerMachineHz: number | 'max';
  /** Delay between publishing a sample's telemetry and its label, ms. */
  labelDelayMs: number;
  /**
   * Passwords for every machine and the inspection client. Undefined connects
   * without passwords (username = machine id, resp. `inspection`), for brokers
   * that allow anonymous clients.
   */
  credentials?: SimulatorCredentials | undefined;
  /** Where progress (every `progressIntervalMs`), phase changes and problems are logged. */
  logger: Logger;
  /** Called with the statistics every `progressIntervalMs` and once when the scenario is done. */
  onProgress?(stats: SimulatorStats): void;
  /** Called when the first sample of a phase is published. */
  onPhase?(phase: PhaseInfo): void;
  /** Machines of the default profile when `scenario` is undefined. Default 4. */
  machines?: number;
  /** Profile of the default scenario when `scenario` is undefined. Default `seed`. */
  profile?: ProfileName;
  /** Seed of the default scenario when `scenario` is undefined. Default 1. */
  seed?: number;
  /** Stop generating after this many samples (the scenario's own length otherwise). */
  maxSamples?: number;
  /** Most telemetry messages awaiting the broker's acknowledgement; beyond it publishing waits. Default 1000. */
  maxInFlight?: number;
  /** How often progress is logged and `onProgress` called, ms. Default 5000. */
  progressIntervalMs?: number;
  /** Trust this CA (PEM) for `mqtts://` and `wss://`. */
  ca?: string | Buffer;
}

/** A phase as it starts playing. */
export interface PhaseInfo {
  index: number;
  name: string;
  /** First sample index of the phase. */
  start: number;
  /** One past its last sample index. */
  end: number;
  /** False for stationary phases (see `phaseChangesAnything`). */
  changesAnything: boolean;
}

export interface SimulatorStats {
  /** Telemetry messages acknowledged by the broker. */
  published: number;
  /** Labels acknowledged by the broker. */
  labelsPublished: number;
  /** Acknowledged telemetry per second per machine over the last progress window (since the start before the first). */
  perMachineRate: Record<string, number>;
  /** Name of the phase being played (the last one once done). */
  phase: string;
  /** Telemetry messages awaiting acknowledgement. */
  inFlight: number;
  /** Labels waiting for their delay. */
  pendingLabels: number;
}

export interface RunningSimulator {
  /**
   * Resolves when the scenario's last sample and its label are published and
   * acknowledged (or after `stop()`); rejects when the broker refuses a message.
   */
  done: Promise<void>;
  stats(): SimulatorStats;
  /** Stops generating, publishes the pending labels at once, waits for the acknowledgements, closes the clients. */
  stop(): Promise<void>;
}

/** How long `stop()` waits for outstanding acknowledgements before closing anyway, ms. */
const STOP_ACK_TIMEOUT_MS = 10_000;
/** Clients connected at once. */
const CONNECT_BATCH = 50;
/** Label timer period, ms. */
const LABEL_TICK_MS = 10;

interface PendingLabel {
  due: number;
  label: Label;
}

export async function startSimulator(options: SimulatorOptions): Promise<RunningSimulator> {
  const { logger } = options;
  const rate = options.ratePerMachineHz;
  if (rate !== 'max' && !(Number.isFinite(rate) && rate > 0))
    throw new ConfigError(`ratePerMachineHz must be a positive number or 'max', got ${rate}`);
  if (!(Number.isFinite(options.labelDelayMs) && options.labelDelayMs >= 0))
    throw new ConfigError(`labelDelayMs must be a number >= 0, got ${options.labelDelayMs}`);
  const scenario =
    options.scenario ??
    defaultScenario({
      machines: options.machines ?? 4,
      profile: options.profile ?? 'seed',
      seed: options.seed ?? 1,
    });
  const ids = machineIdsOf(scenario);
  const credentials = options.credentials;
  if (credentials) {
    const missing = ids.filter((id) => typeof credentials.devices[id] !== 'string');
    if (missing.length > 0)
      throw new ConfigError(
        `credentials: no password for machine${missing.length > 1 ? 's' : ''} ` +
          `${missing.slice(0, 10).join(', ')}${missing.length > 10 ? ', …' : ''}`,
      );
  }

  const clients = await connectAll(options, ids);
  let inspection: MqttClient;
  const inspectionUser = credentials?.inspection.username ?? 'inspection';
  try {
    inspection = await connectClient(
      options,
      `${inspectionUser}-sim-${process.pid}`,
      inspectionUser,
      credentials?.inspection.password,
    );
    watch(inspection, inspectionUser, logger);
  } catch (err) {
    await Promise.all(clients.map((c) => c.endAsync(true)));
    throw err;
  }

  const bounds = phaseBounds(scenario);
  const maxSamples = options.maxSamples ?? Number.POSITIVE_INFINITY;
  const maxInFlight = options.maxInFlight ?? 1000;
  const stream = generateStream(scenario);
  const meter = new RateMeter(ids);
  const labels = new Fifo<PendingLabel>();
  let generated = 0;
  let finished = false;
  let stopping = false;
  let inFlight = 0;
  let labelsInFlight = 0;
  let published = 0;
  let labelsPublished = 0;
  let phaseIndex = -1;
  let idleWaiters: (() => void)[] = [];

  let resolveDone!: () => void;
  let rejectDone!: (err: unknown) => void;
  let settled = false;
  const done = new Promise<void>((resolve, reject) => {
    resolveDone = () => {
      if (settled) return;
      settled = true;
      resolve();
    };
    rejectDone = (err) => {
      if (settled) return;
      settled = true;
      reject(err);
    };
  });
  done.catch(() => undefined); // the caller may never await it

  const stats = (): SimulatorStats => ({
    published,
    labelsPublished,
    perMachineRate: meter.byMachineId(),
    phase: bounds[Math.max(0, phaseIndex)]?.name ?? '',
    inFlight,
    pendingLabels: labels.length,
  });

  const fail = (what: string, err: Error): void => {
    if (stopping) return;
    const error = new TransportError(`${what}: ${describeError(err)}`, { cause: err });
    logger.error('publish failed', { err: error });
    rejectDone(error);
  };

  const settle = (): void => {
    if (inFlight === 0 && labelsInFlight === 0) {
      const waiters = idleWaiters;
      idleWaiters = [];
      for (const w of waiters) w();
      if (finished && !stopping && labels.length === 0 && !settled) {
        clearInterval(labelTimer);
        clearInterval(progressTimer);
        meter.roll();
        const s = stats();
        logger.info('scenario complete', {
          published: s.published,
          labelsPublished: s.labelsPublished,
          phase: s.phase,
        });
        options.onProgress?.(s);
        resolveDone();
      }
    }
  };

  const publishLabel = (label: Label): void => {
    labelsInFlight++;
    inspection.publish(TOPICS.label(label.machineId), JSON.stringify(label), { qos: 1 }, (err) => {
      labelsInFlight--;
      if (err) fail(`label ${label.machineId}#${label.seq}`, err);
      else labelsPublished++;
      settle();
    });
  };

  const enterPhase = (index: number): void => {
    phaseIndex = index;
    const b = bounds[index];
    const phase = scenario.phases[index];
    if (!b || !phase) return;
    const info: PhaseInfo = {
      index,
      name: b.name,
      start: b.start,
      end: b.end,
      changesAnything: phaseChangesAnything(phase),
    };
    logger.info('phase started', {
      phase: info.name,
      phaseIndex: index,
      samples: b.end - b.start,
      changesAnything: info.changesAnything,
    });
    options.onPhase?.(info);
  };

  const send = (max: number): number => {
    let n = 0;
    while (n < max && !finished && inFlight < maxInFlight) {
      const next = generated < maxSamples ? stream.next() : undefined;
      if (!next || next.done) {
        finished = true;
        pacer.stop();
        settle();
        break;
      }
      const sample = next.value;
      generated++;
      if (sample.phaseIndex !== phaseIndex) enterPhase(sample.phaseIndex);
      const machine = sample.index % ids.length;
      const client = clients[machine] as MqttClient;
      const { telemetry } = sample;
      const now = Date.now();
      telemetry.ts = now;
      inFlight++;
      client.publish(TOPICS.telemetry(telemetry.machineId), JSON.stringify(telemetry), { qos: 1 }, (err) => {
        inFlight--;
        if (err) fail(`telemetry ${telemetry.machineId}#${telemetry.seq}`, err);
        else {
          published++;
          meter.add(machine);
        }
        pacer.wake();
        settle();
      });
      labels.push({ due: now + options.labelDelayMs, label: sample.label });
      n++;
    }
    return n;
  };

  const flushLabels = (all: boolean): void => {
    const now = Date.now();
    for (let next = labels.peek(); next && (all || next.due <= now); next = labels.peek()) {
      labels.shift();
      publishLabel(next.label);
    }
    if (finished) settle();
  };

  const pacer = new Pacer({ ratePerSecond: rate === 'max' ? 'max' : rate * ids.length }, send);
  const labelTimer = setInterval(() => flushLabels(false), LABEL_TICK_MS);
  const progressTimer = setInterval(() => {
    meter.roll();
    const s = stats();
    logger.info('publishing', {
      phase: s.phase,
      published: s.published,
      labelsPublished: s.labelsPublished,
      inFlight: s.inFlight,
      ...summarizeRates(s.perMachineRate),
    });
    options.onProgress?.(s);
  }, options.progressIntervalMs ?? 5000);

  logger.info('simulator started', {
    machines: ids.length,
    ratePerMachineHz: rate,
    labelDelayMs: options.labelDelayMs,
    phases: bounds.map((b) => b.name),
    samples: Math.min(maxSamples, bounds[bounds.length - 1]?.end ?? 0),
  });
  pacer.start();

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      stopping = true;
      finished = true;
      pacer.stop();
      clearInterval(progressTimer);
      flushLabels(true);
      clearInterval(labelTimer);
      const idle = new Promise<boolean>((resolve) => {
        if (inFlight === 0 && labelsInFlight === 0) return resolve(true);
        idleWaiters.push(() => resolve(true));
        setTimeout(() => resolve(false), STOP_ACK_TIMEOUT_MS).unref();
      });
      if (!(await idle)) logger.warn('stopping without all acknowledgements', { inFlight, labelsInFlight });
      await Promise.all([...clients, inspection].map((c) => c.endAsync(inFlight + labelsInFlight > 0)));
      logger.info('simulator stopped', { published, labelsPublished });
      resolveDone();
    })());

  return { done, stats, stop };
}

/** Per-machine rates as they are for a few machines, as min/mean/max for many. */
function summarizeRates(rates: Record<string, number>): Record<string, unknown> {
  const values = Object.values(rates);
  const total = Math.round(values.reduce((a, b) => a + b, 0) * 10) / 10;
  if (values.length <= 16) return { perMachineRate: rates, totalRate: total };
  return {
    perMachineRate: {
      min: Math.min(...values),
      mean: Math.round((total / values.length) * 10) / 10,
      max: Math.max(...values),
    },
    totalRate: total,
  };
}

async function connectClient(
  options: SimulatorOptions,
  clientId: string,
  username: string,
  password: string | undefined,
): Promise<MqttClient> {
  try {
    return await connectMqtt({
      url: options.mqttUrl,
      clientId,
      username,
      ...(password !== undefined ? { password } : {}),
      ...(options.ca !== undefined ? { ca: options.ca } : {}),
    });
  } catch (err) {
    throw new TransportError(`${username} could not connect to ${options.mqttUrl}: ${describeError(err)}`, {
      retriable: false,
      cause: err,
    });
  }
}

/** Connects one client per machine, a batch at a time; on any failure closes the others and throws. */
async function connectAll(options: SimulatorOptions, ids: readonly string[]): Promise<MqttClient[]> {
  const clients: MqttClient[] = [];
  try {
    for (let i = 0; i < ids.length; i += CONNECT_BATCH) {
      const batch = ids.slice(i, i + CONNECT_BATCH);
      const settled = await Promise.allSettled(
        batch.map(async (id) => {
          const client = await connectClient(options, id, id, options.credentials?.devices[id]);
          watch(client, id, options.logger);
          return client;
        }),
      );
      for (const r of settled) if (r.status === 'fulfilled') clients.push(r.value);
      const failure = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failure) throw failure.reason;
    }
  } catch (err) {
    await Promise.all(clients.map((c) => c.endAsync(true)));
    throw err;
  }
  return clients;
}

/** Logs connection trouble once per state change (mqtt.js reconnects on its own). */
function watch(client: MqttClient, name: string, logger: Logger): void {
  let online = true;
  client.on('error', (err) => logger.warn('mqtt client error', { client: name, err: describeError(err) }));
  client.on('offline', () => {
    if (online) logger.warn('mqtt client offline; reconnecting', { client: name });
    online = false;
  });
  client.on('connect', () => {
    if (!online) logger.info('mqtt client reconnected', { client: name });
    online = true;
  });
}
