import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { Registry } from 'prom-client';
import { startBroker, type RunningBroker } from '../../broker/src/broker.ts';
import { brokerConfigSpec, limitsFromConfig, loginGuardFromConfig } from '../../broker/src/config.ts';
import { CredentialStore, generatePassword } from '../../broker/src/credentials.ts';
import { createBusFromEnv } from './bus.ts';
import type { EventBus } from '../../common/bus/types.ts';
import { loadConfig } from '../../common/config/env.ts';
import { ConfigError, describeError } from '../../common/errors.ts';
import type { PhaseSpan } from '../../common/eval/healing.ts';
import type { Logger } from '../../common/logging/logger.ts';
import { loadArtifact } from '../../common/model/artifact.ts';
import { resolveSigner, resolveTrust } from '../../common/model/signature.ts';
import { loadTf } from '../../common/model/tf.ts';
import { createRegistry } from '../../common/registry/factory.ts';
import type { ModelRegistry } from '../../common/registry/types.ts';
import { openFileSampleStore } from '../../common/samples/file-store.ts';
import type { LabelledSampleStore } from '../../common/samples/types.ts';
import { hashDashboardPassword, type DashboardUser } from '../../dashboard/src/auth.ts';
import { dashboardConfigSpec, loadDashboardUsers } from '../../dashboard/src/config.ts';
import { startDashboard, type RunningDashboard } from '../../dashboard/src/dashboard.ts';
import { accuracyConfigOf, driftConfigOf, edgeConfigSpec } from '../../edge-inference/src/config.ts';
import { createEdgeWorker, type EdgeWorker } from '../../edge-inference/src/worker.ts';
import type { LabelJoinStats } from '../../edge-inference/src/label-join.ts';
import { retrainerConfigSpec } from '../../retrainer/src/config.ts';
import { RetrainerMetrics } from '../../retrainer/src/metrics.ts';
import { mlflowTrackingFor } from '../../retrainer/src/mlflow-tracking.ts';
import { createRetrainer, type Retrainer } from '../../retrainer/src/service.ts';
import { simulatorConfigSpec } from '../../simulator/src/config.ts';
import { phaseBounds } from '../../common/scenario/generator.ts';
import {
  startSimulator,
  type RunningSimulator,
  type SimulatorCredentials,
} from '../../simulator/src/publisher.ts';
import {
  defaultScenario,
  loadScenarioFile,
  machineIdsOf,
  phaseChangesAnything,
  type Scenario,
} from '../../common/scenario/scenario.ts';
import { announceDashboard } from './announce.ts';
import { DEFAULT_BOOTSTRAP_DIR, ensureChampion } from '../../common/registry/bootstrap.ts';
import { LiveObserver, type ObserverJoinStats } from './observer.ts';

/**
 * `npm start` / `make start`: the whole loop in one process on embedded
 * defaults — broker (aedes), simulator, edge worker, retrainer and dashboard,
 * the in-process bus, the directory registry and the file sample store.
 * Setting MQTT_URL, KAFKA_BROKERS, MLFLOW_TRACKING_URI or ELASTICSEARCH_URL
 * swaps the corresponding embedded default for the real system.
 */

export interface StartOptions {
  /** Scenario the simulator plays; undefined plays the default profile forever. */
  scenarioFile?: string;
  /** Telemetry messages per second across all machines; undefined: SIMULATOR_RATE_HZ per machine. */
  totalRate?: number | 'max';
  /** Machines of the default profile (without a scenario). */
  machines?: number;
  /** Stop after the scenario's last phase and print the summary. */
  exitAfterPhases: boolean;
  /** Root of the run's state (registry, samples, retrainer ledger). */
  stateDir?: string;
  /** Start the dashboard. Default true. */
  dashboard: boolean;
  /** Labels published this long after their telemetry, ms; default SIMULATOR_LABEL_DELAY_MS. */
  labelDelayMs?: number;
  /** Loggers per service. */
  loggerFor: (service: string) => Logger;
  /**
   * Where secrets meant for the person at the terminal go (the generated
   * dashboard password): never a logger, whose lines may be shipped to
   * Elasticsearch. Default: stderr.
   */
  terminal?: (text: string) => void;
  env?: NodeJS.ProcessEnv;
}

export interface RunningSystem {
  readonly dashboardUrl: string | undefined;
  readonly mqttUrl: string;
  /** Resolves after the last phase (with `exitAfterPhases`) with the run's summary. */
  readonly finished: Promise<Record<string, unknown>> | undefined;
  stop(): Promise<void>;
}

interface Accounts {
  devices: Record<string, string>;
  inspection: { username: string; password: string };
  edge: { username: string; password?: string };
  dashboard: { username: string; password?: string };
}

/**
 * Scrypt cost of the random service passwords provisioned in memory for the embedded broker (24 random bytes
 * need no slow hash).
 */
const EMBEDDED_SCRYPT_COST = 12;

async function provisionEmbedded(store: CredentialStore, machineIds: readonly string[]): Promise<Accounts> {
  const devices: Record<string, string> = {};
  for (const id of machineIds) {
    devices[id] = generatePassword();
    await store.add(
      { username: id, role: 'device', machineId: id, password: devices[id] },
      { persist: false },
    );
  }
  const inspection = { username: 'inspection', password: generatePassword() };
  const edge = { username: 'edge', password: generatePassword() };
  const dashboard = { username: 'dashboard', password: generatePassword() };
  await store.add(
    { username: inspection.username, role: 'inspection', password: inspection.password },
    { persist: false },
  );
  await store.add({ username: edge.username, role: 'edge', password: edge.password }, { persist: false });
  await store.add(
    { username: dashboard.username, role: 'dashboard', password: dashboard.password },
    { persist: false },
  );
  return { devices, inspection, edge, dashboard };
}

async function externalAccounts(
  credentialsFile: string | undefined,
  edge: Accounts['edge'],
  dashboard: Accounts['dashboard'],
): Promise<Accounts> {
  if (credentialsFile === undefined) {
    throw new ConfigError(
      'Invalid configuration: MQTT_URL points at an external broker, so ' +
        'SIMULATOR_CREDENTIALS_FILE must give the device and inspection passwords',
    );
  }
  let parsed: { devices?: Record<string, string>; inspection?: { username: string; password: string } };
  try {
    parsed = JSON.parse(await readFile(credentialsFile, 'utf8')) as typeof parsed;
  } catch (err) {
    throw new ConfigError(
      `SIMULATOR_CREDENTIALS_FILE=${JSON.stringify(credentialsFile)} cannot be read: ${describeError(err)}`,
    );
  }
  if (!parsed.devices || !parsed.inspection)
    throw new ConfigError(
      `SIMULATOR_CREDENTIALS_FILE=${JSON.stringify(credentialsFile)} needs "devices" and "inspection"`,
    );
  return { devices: parsed.devices, inspection: parsed.inspection, edge, dashboard };
}

/** Starts every service; see the module comment. */
export async function startSystem(options: StartOptions): Promise<RunningSystem> {
  const env = options.env ?? process.env;
  const log = options.loggerFor('driftline');
  const brokerCfg = loadConfig(brokerConfigSpec, env);
  const edgeCfg = loadConfig(edgeConfigSpec, env);
  const retrainerCfg = loadConfig(retrainerConfigSpec, env);
  const dashboardCfg = loadConfig(dashboardConfigSpec, env);
  const simCfg = loadConfig(simulatorConfigSpec, env);
  const driftConfig = driftConfigOf(edgeCfg);
  const accuracyConfig = accuracyConfigOf(edgeCfg);
  const externalMqtt = env.MQTT_URL !== undefined && env.MQTT_URL !== '';

  // A scenario run gets its own state, so every run starts from the bootstrap champion.
  const stateDir = path.resolve(
    options.stateDir ??
      (options.scenarioFile
        ? path.join('.driftline', 'runs', new Date().toISOString().replace(/[:.]/g, '-'))
        : '.driftline'),
  );
  await mkdir(stateDir, { recursive: true });
  const registryDir = env.REGISTRY_DIR ? edgeCfg.registryDir : path.join(stateDir, 'registry');

  let scenario: Scenario;
  if (options.scenarioFile) {
    try {
      scenario = await loadScenarioFile(options.scenarioFile);
    } catch (err) {
      throw new ConfigError(`--scenario-file ${options.scenarioFile}: ${(err as Error).message}`);
    }
  } else {
    scenario = defaultScenario({
      machines: options.machines ?? simCfg.machines,
      profile: simCfg.profile,
      seed: simCfg.seed,
    });
  }
  const machineIds = machineIdsOf(scenario);
  let ratePerMachine: number | 'max' = simCfg.rateHz;
  if (options.totalRate !== undefined)
    ratePerMachine = options.totalRate === 'max' ? 'max' : options.totalRate / machineIds.length;

  const closers: { name: string; close: () => Promise<unknown> }[] = [];
  const stop = async (): Promise<void> => {
    for (const c of closers.reverse()) {
      try {
        await c.close();
      } catch (err) {
        log.warn(`stopping ${c.name} failed`, { err: describeError(err) });
      }
    }
    closers.length = 0;
  };

  try {
    const { tf, backend } = await loadTf(options.loggerFor('edge-inference'));
    const modelRegistry: ModelRegistry = createRegistry({
      registryDir,
      mlflowTrackingUri: edgeCfg.mlflowTrackingUri ?? '',
      logger: options.loggerFor('registry'),
    });
    closers.push({ name: 'registry', close: () => modelRegistry.close() });
    // Model signing: MODEL_SIGNING_KEY / MODEL_VERIFY_KEYS, or one key pair generated under MODEL_KEYS_DIR.
    const signer = await resolveSigner(retrainerCfg.signingKey, retrainerCfg.keysDir);
    const modelTrust = await resolveTrust(edgeCfg.verifyKeys, edgeCfg.keysDir);
    log.info(`models signed with key ${signer.keyId}; the edge accepts ${modelTrust.keyIds.join(', ')}`);
    const champion = await ensureChampion(
      modelRegistry,
      edgeCfg.modelName,
      DEFAULT_BOOTSTRAP_DIR,
      options.loggerFor('retrainer'),
      signer,
    );
    log.info(`champion: ${edgeCfg.modelName} v${champion.version} (${modelRegistry.kind})`, {
      modelVersion: champion.version,
    });

    // ---- broker --------------------------------------------------------------
    let broker: RunningBroker | undefined;
    let mqttUrl = edgeCfg.mqttUrl;
    let accounts: Accounts;
    if (externalMqtt) {
      accounts = await externalAccounts(
        simCfg.credentialsFile,
        {
          username: edgeCfg.mqttUsername,
          ...(edgeCfg.mqttPassword ? { password: edgeCfg.mqttPassword } : {}),
        },
        {
          username: dashboardCfg.mqttUsername,
          ...(dashboardCfg.mqttPassword ? { password: dashboardCfg.mqttPassword } : {}),
        },
      );
      log.info(`using the external broker at ${mqttUrl}`);
    } else {
      const credentials = CredentialStore.inMemory({ scryptCost: EMBEDDED_SCRYPT_COST });
      accounts = await provisionEmbedded(credentials, machineIds);
      const brokerLogger = options.loggerFor('broker');
      const start = (port: number, wsPort: number | null, httpPort: number | null): Promise<RunningBroker> =>
        startBroker({
          host: brokerCfg.host,
          port,
          wsPort,
          httpPort,
          credentials,
          logger: brokerLogger,
          registry: new Registry(),
          acl: { devicesMaySubscribeOwn: brokerCfg.deviceSubscribeOwn },
          limits: limitsFromConfig(brokerCfg),
          loginGuard: loginGuardFromConfig(brokerCfg),
        });
      try {
        broker = await start(brokerCfg.port, brokerCfg.wsPort, brokerCfg.httpPort);
      } catch (err) {
        log.warn(
          `broker ports ${brokerCfg.port}/${brokerCfg.wsPort ?? '-'}/${brokerCfg.httpPort ?? '-'} ` +
            `unavailable (${describeError(err)}); using free ports`,
        );
        broker = await start(0, brokerCfg.wsPort === null ? null : 0, brokerCfg.httpPort === null ? null : 0);
      }
      const b = broker;
      closers.push({ name: 'broker', close: () => b.close() });
      mqttUrl = broker.mqttUrl;
      log.info(
        `embedded MQTT broker on ${broker.mqttUrl}${broker.wsUrl ? ` and ${broker.wsUrl}` : ''}; ` +
          `${machineIds.length} device accounts provisioned in memory`,
      );
    }

    // ---- bus, sample store ----------------------------------------------------
    const bus: EventBus = await createBusFromEnv(env, options.loggerFor('bus'));
    closers.push({ name: 'bus', close: () => bus.close() });
    const store: LabelledSampleStore = await openFileSampleStore({
      dir: path.join(stateDir, 'samples'),
      maxSamples: retrainerCfg.samplesMax,
      logger: options.loggerFor('retrainer'),
    });
    closers.push({ name: 'sample store', close: () => store.close() });
    log.info(`event bus: ${bus.kind}; sample store: ${store.kind}; model registry: ${modelRegistry.kind}`);

    // ---- retrainer ------------------------------------------------------------
    const retrainerLogger = options.loggerFor('retrainer');
    const retrainer: Retrainer = createRetrainer({
      bus,
      registry: modelRegistry,
      store,
      tf,
      logger: retrainerLogger,
      tracking: mlflowTrackingFor(modelRegistry, retrainerLogger),
      signer,
      metrics: new RetrainerMetrics(new Registry()),
      config: {
        ...retrainerCfg,
        registryDir,
        samplesDir: path.join(stateDir, 'samples'),
        stateDir: path.join(stateDir, 'retrainer'),
      },
    });
    await retrainer.start();
    closers.push({ name: 'retrainer', close: () => retrainer.close() });

    // ---- edge worker ------------------------------------------------------------
    const edge: EdgeWorker = createEdgeWorker({
      bus,
      logger: options.loggerFor('edge-inference'),
      metricsRegistry: new Registry(),
      modelRegistry,
      modelName: edgeCfg.modelName,
      loader: (dir) => loadArtifact(dir, tf),
      modelTrust,
      mqtt: {
        url: mqttUrl,
        clientId: edgeCfg.clientId,
        username: accounts.edge.username,
        ...(accounts.edge.password ? { password: accounts.edge.password } : {}),
        publishConnection: edgeCfg.publishConnection,
      },
      batchSize: edgeCfg.batchSize,
      batchMaxWaitMs: edgeCfg.batchMaxWaitMs,
      championPollMs: edgeCfg.championPollMs,
      driftConfig,
      accuracyConfig,
      ...(edgeCfg.accuracyCusum === 'off' ? { accuracyCusumConfig: false as const } : {}),
      ...(edgeCfg.dataQuality === 'off' ? { dataQualityConfig: false as const } : {}),
      episodeTtlSamples: edgeCfg.episodeTtlSamples,
      conceptReRequests: edgeCfg.conceptReRequests,
      labelJoinMaxPending: edgeCfg.labelJoinMaxPending,
      labelJoinMaxEarly: edgeCfg.labelJoinMaxEarly,
      labelJoinEarlyMaxAgeMs: edgeCfg.labelJoinEarlyMaxAgeMs,
      dedupWindow: edgeCfg.dedupWindow,
      outboxMaxSamples: edgeCfg.outboxMaxSamples,
      stopGraceMs: edgeCfg.stopGraceMs,
      http: { host: edgeCfg.httpHost, port: edgeCfg.httpPort, maxRows: edgeCfg.predictMaxRows },
      busGroup: `edge-${edgeCfg.clientId}`,
      backend,
      statusIntervalMs: edgeCfg.statusIntervalMs,
    });
    try {
      await edge.start();
    } catch (err) {
      if (!/EADDRINUSE|cannot bind|listen/i.test(describeError(err))) throw err;
      throw new ConfigError(
        `edge HTTP port ${edgeCfg.httpPort} is in use: set EDGE_HTTP_PORT (0 picks a free port)`,
      );
    }
    closers.push({ name: 'edge worker', close: () => edge.stop() });
    log.info(
      `edge worker serving ${edgeCfg.modelName} v${edge.stats().modelVersion ?? '?'} on ` +
        `${backend}; POST /predict, /metrics on http://${edgeCfg.httpHost}:${edge.httpPort ?? '?'}`,
    );

    // ---- dashboard ---------------------------------------------------------------
    let dashboard: RunningDashboard | undefined;
    if (options.dashboard) {
      let users: DashboardUser[];
      let generated: string | undefined;
      if (dashboardCfg.usersFile !== undefined || dashboardCfg.users !== undefined) {
        users = await loadDashboardUsers(dashboardCfg);
      } else {
        generated = generatePassword();
        users = [await hashDashboardPassword('operator', 'operator', generated)];
      }
      const dashLogger = options.loggerFor('dashboard');
      const startDash = (port: number): Promise<RunningDashboard> =>
        startDashboard({
          host: dashboardCfg.host,
          port,
          mqttUrl: broker?.wsUrl ?? mqttUrl,
          mqttUsername: accounts.dashboard.username,
          ...(accounts.dashboard.password ? { mqttPassword: accounts.dashboard.password } : {}),
          bus,
          registry: modelRegistry,
          modelName: edgeCfg.modelName,
          users,
          logger: dashLogger,
          staleAfterMs: dashboardCfg.staleAfterMs,
          stuckAfter: dashboardCfg.stuckAfter,
          updateIntervalMs: dashboardCfg.updateIntervalMs,
          registryPollMs: dashboardCfg.registryPollMs,
        });
      try {
        dashboard = await startDash(dashboardCfg.port);
      } catch (err) {
        log.warn(
          `dashboard port ${dashboardCfg.port} unavailable (${describeError(err)}); using a free port`,
        );
        dashboard = await startDash(0);
      }
      const d = dashboard;
      closers.push({ name: 'dashboard', close: () => d.close() });
      announceDashboard({
        log,
        terminal: options.terminal ?? ((text) => process.stderr.write(text)),
        url: dashboard.url,
        generatedPassword: generated,
      });
    }

    // ---- observer (summary), simulator ---------------------------------------------------
    const bounds = phaseBounds(scenario);
    const phases: PhaseSpan[] = bounds.map((b, i) => ({
      ...b,
      changesAnything: phaseChangesAnything(scenario.phases[i] as Scenario['phases'][number]),
    }));
    let observer: LiveObserver | undefined;
    if (options.exitAfterPhases) {
      observer = new LiveObserver({
        mqttUrl,
        username: accounts.dashboard.username,
        ...(accounts.dashboard.password ? { password: accounts.dashboard.password } : {}),
        bus,
        phases,
        machineIds,
      });
      await observer.start();
      const o = observer;
      closers.push({ name: 'observer', close: () => o.close() });
    }
    const simCredentials: SimulatorCredentials = {
      devices: accounts.devices,
      inspection: accounts.inspection,
    };
    const runStarted = Date.now();
    const simulator: RunningSimulator = await startSimulator({
      mqttUrl,
      scenario,
      ratePerMachineHz: ratePerMachine,
      labelDelayMs: options.labelDelayMs ?? simCfg.labelDelayMs,
      credentials: simCredentials,
      logger: options.loggerFor('simulator'),
      onPhase: (p) => {
        observer?.phaseStarted(p.index);
        log.info(
          `phase ${p.index + 1}/${phases.length} "${p.name}" ` +
            `started${p.changesAnything ? ' (the data changes now)' : ''}`,
          { action: 'phase-started', phase: p.name },
        );
      },
    });
    closers.push({ name: 'simulator', close: () => simulator.stop() });
    log.info(
      `simulating ${machineIds.length} machines at ${ratePerMachine === 'max' ? 'max rate' : `${(ratePerMachine as number).toFixed(2)} msg/s each (${((ratePerMachine as number) * machineIds.length).toFixed(0)} msg/s in all)`}${options.scenarioFile ? `, scenario ${options.scenarioFile}` : ', default profile'}`,
    );

    const status = setInterval(() => {
      const s = edge.stats();
      log.info(
        `edge: ${s.predictions} predictions, model v${s.modelVersion ?? '?'}, live accuracy ${s.liveAccuracy === null ? 'n/a' : `${(s.liveAccuracy * 100).toFixed(1)}%`}, alarms ${s.alarms.covariate} covariate / ${s.alarms.concept} concept, retrain requests ${s.retrainRequests}, dead letters ${s.deadLetters}`,
        { action: 'status' },
      );
    }, 5000);
    status.unref();
    closers.push({ name: 'status', close: async () => clearInterval(status) });

    let finished: Promise<Record<string, unknown>> | undefined;
    if (options.exitAfterPhases && observer) {
      const o = observer;
      finished = (async () => {
        await simulator.done;
        // The last labels are already published (done waits for them); let the edge judge them and the
        // retrainer finish.
        await new Promise((r) => setTimeout(r, 1500));
        // A lagging edge is still predicting (or its predictions are still on their way to the observer): wait
        // until every published label has met its prediction, or nothing moved for 5 s.
        const labelsPublished = simulator.stats().labelsPublished;
        let progress = -1;
        let stalledSince = Date.now();
        for (;;) {
          const j = o.joinStats();
          if (j.labels >= labelsPublished && j.pendingLabels === 0) break;
          const now = Date.now();
          const moved = j.labels + j.joined + j.predictions;
          if (moved !== progress) {
            progress = moved;
            stalledSince = now;
          } else if (now - stalledSince > 5000) break;
          await new Promise((r) => setTimeout(r, 200));
        }
        for (
          let i = 0;
          i < 120 && Object.values(retrainer.status().lanes).some((l) => l.current !== undefined);
          i++
        )
          await new Promise((r) => setTimeout(r, 500));
        const s = o.summary();
        return {
          scenario: options.scenarioFile ?? null,
          machines: machineIds.length,
          messagesPerSecond:
            ratePerMachine === 'max' ? 'max' : (ratePerMachine as number) * machineIds.length,
          wallSeconds: Math.round((Date.now() - runStarted) / 100) / 10,
          backend,
          labelled: s.labelled,
          labels: labelAccounting(simulator.stats().labelsPublished, o.joinStats(), edge.stats().labelJoin),
          accuracy: s.accuracy,
          preDriftAccuracy: s.preDriftAccuracy,
          phases: s.phases.map((p) => ({
            name: p.name,
            accuracy: p.accuracy,
            labelled: p.labelled,
            changesAnything: p.changesAnything,
          })),
          samplesToHeal: Object.fromEntries(
            s.phases.filter((p) => p.changesAnything).map((p) => [p.name, p.samplesToHeal]),
          ),
          secondsToHeal: Object.fromEntries(
            s.phases.filter((p) => p.changesAnything).map((p) => [p.name, p.secondsToHeal ?? null]),
          ),
          retrains: s.retrains,
          // Alarms and adopted references in order, on the edge's sample clock (issue 13, part 3).
          driftEvents: s.driftEvents,
          edge: {
            ...edge.stats().alarms,
            ...edge.stats().adoption,
            dataQuality: { ...edge.stats().dataQuality, faults: undefined },
            retrainRequests: edge.stats().retrainRequests,
          },
          finalChampion: edge.stats().modelVersion,
        };
      })();
    }

    return { dashboardUrl: dashboard?.url, mqttUrl, finished, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * Where every published label went, in the run summary: joined with its
 * prediction by the observer (`joined` = `labelled`), or not joined because its
 * prediction was evicted from the observer's bounded buffer (or the label
 * itself, waiting for a prediction, was). `unexplained` = published − joined −
 * evicted: labels or predictions lost on the way; 0 in a sound run. `edge` is
 * the worker's own join (the labelled samples the retrainer gets); `beforeReading`
 * of its joins came before their reading and waited for it.
 */
export function labelAccounting(
  published: number,
  observer: ObserverJoinStats,
  edge: LabelJoinStats,
): Record<string, number | Record<string, number>> {
  // A label whose prediction was evicted waits for it until the end, or is evicted itself.
  const evicted = observer.evictedLabels + Math.min(observer.pendingLabels, observer.evictedPredictions);
  return {
    published,
    received: observer.labels,
    joined: observer.joined,
    beforePrediction: observer.labelsFirst,
    evicted,
    unexplained: published - observer.joined - evicted,
    edge: {
      joined: edge.hits,
      beforeReading: edge.earlyJoined,
      missed: edge.misses,
      evicted: edge.evictions,
      pending: edge.pending,
      waitingForReading: edge.early,
    },
  };
}
