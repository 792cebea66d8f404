import { BUS_TOPICS } from '../../../common/bus/types.ts';
import { parseModelEvent } from '../../../common/events/schemas.ts';
import type { Feature } from '../../../common/schema/features.ts';
import { ScriptedPipeline, promoteChallenger } from '../../helpers/dashboard/feed.ts';
import { TEST_MODEL, type DashboardStack } from '../../helpers/dashboard/stack.ts';

/**
 * Where the dashboard's end-to-end tests get their data. Today a scripted
 * pipeline publishes what the devices, the edge worker and the retrainer would
 * (schema-valid telemetry, predictions, labels, drift windows with real KS
 * results, alarms, worker status, the retrain request and `model-promoted`).
 * Once the real edge worker and retrainer run in one process, a second
 * implementation of {@link DashboardDataSource} can start them (simulator +
 * edge + retrainer on the same broker, bus and registry) and the tests stay as they are.
 */
export interface DashboardDataSource {
  /** Machines that publish (ids may contain HTML: untrusted text). */
  readonly machineIds: readonly string[];
  /** Steady, undrifted traffic from every machine until close(). */
  start(): Promise<void>;
  /** Shifts `feature` by `delta`; resolves once the drift alarm and its retrain request were published. */
  drift(feature: Feature, delta: number): Promise<{ requestId: string }>;
  /** `machineId`'s `feature` sensor gets stuck at `value` (the simulator's `stuck` fault). */
  stuckSensor(machineId: string, feature: Feature, value: number): Promise<void>;
  /** `machineId` sends `n` out-of-range readings, which the edge dead-letters. */
  badReadings(machineId: string, n: number): Promise<void>;
  /** Resolves once a challenger was trained and promoted; returns the new champion version. */
  retrain(): Promise<{ version: string }>;
  close(): Promise<void>;
}

export interface ScriptedSourceOptions {
  machineIds: readonly string[];
  /** Samples published per tick (one tick every `tickMs`). Default: one per machine. */
  samplesPerTick?: number;
  tickMs?: number;
  windowSize?: number;
}

/** The scripted implementation on a {@link DashboardStack}. */
export async function scriptedSource(
  stack: DashboardStack,
  options: ScriptedSourceOptions,
): Promise<DashboardDataSource> {
  const client = await stack.publisher();
  const champion = await stack.registry.getChampion(TEST_MODEL);
  const pipeline = new ScriptedPipeline({
    client,
    bus: stack.bus,
    machineIds: options.machineIds,
    modelName: TEST_MODEL,
    championVersion: champion?.version ?? '1',
    windowSize: options.windowSize ?? 200,
  });
  // Like the edge worker, follow promotions and rollbacks announced on the bus.
  const follow = await stack.bus.subscribe(
    BUS_TOPICS.modelEvents,
    { group: 'scripted-edge', fromBeginning: false },
    async (m) => {
      const e = parseModelEvent(m.value);
      if (e.ok && e.value.type === 'model-rolled-back') pipeline.championVersion = e.value.version;
    },
  );
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const p = queue.then(fn, fn);
    queue = p.catch(() => undefined);
    return p;
  };
  const perTick = options.samplesPerTick ?? options.machineIds.length;
  let timer: NodeJS.Timeout | undefined;
  let statusTimer: NodeJS.Timeout | undefined;
  let stopped = false;

  const waitFor = async <T>(probe: () => T | undefined, what: string, timeoutMs = 30_000): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = probe();
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new Error(`scripted source: timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  return {
    machineIds: options.machineIds,
    async start() {
      await serial(() => pipeline.publishStatus());
      await serial(() => pipeline.publishSamples(perTick));
      const loop = (): void => {
        if (stopped) return;
        void serial(() => pipeline.publishSamples(perTick)).finally(() => {
          if (!stopped) timer = setTimeout(loop, options.tickMs ?? 250);
        });
      };
      timer = setTimeout(loop, options.tickMs ?? 250);
      statusTimer = setInterval(() => void serial(() => pipeline.publishStatus()), 1000);
    },
    async drift(feature, delta) {
      pipeline.setShift(feature, delta);
      const request = await waitFor(() => pipeline.retrainRequest, 'the drift alarm');
      return { requestId: request.requestId };
    },
    async stuckSensor(machineId, feature, value) {
      pipeline.setStuck(machineId, feature, value);
    },
    async badReadings(machineId, n) {
      for (let i = 0; i < n; i++) {
        const payload = JSON.stringify({
          machineId,
          seq: 1_000_000 + i,
          ts: Date.now(),
          operationMode: 'Active',
          temperatureC: 999,
        });
        await client.publishAsync(`factory/${machineId}/telemetry`, payload, { qos: 1 });
        await pipeline.publishDeadLetter(
          machineId,
          i % 3 === 2 ? 'missing_field' : 'out_of_range',
          i % 3 === 2 ? 'missing field vibrationHz' : 'temperatureC: Too big: expected number to be <=250',
          payload,
        );
      }
    },
    async retrain() {
      const v = await serial(() =>
        promoteChallenger(pipeline, {
          registry: stack.registry,
          bus: stack.bus,
          modelName: TEST_MODEL,
          register: (metrics, info) => stack.registerVersion(metrics, { ...info, source: 'retrainer' }),
          challenger: { samples: 400, accuracy: 0.934, macroF1: 0.921 },
          champion: { samples: 400, accuracy: 0.781, macroF1: 0.744 },
        }),
      );
      await serial(() => pipeline.publishStatus());
      return { version: v.version };
    },
    async close() {
      stopped = true;
      await follow.close();
      if (timer !== undefined) clearTimeout(timer);
      if (statusTimer !== undefined) clearInterval(statusTimer);
      await queue;
    },
  };
}
