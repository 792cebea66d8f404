import os from 'node:os';
import {
  int,
  num,
  oneOf,
  optionalStr,
  optionalUrl,
  str,
  type ConfigOf,
  type Field,
} from '../../common/config/env.ts';
import {
  DEFAULT_DRIFT_CONFIG,
  MAX_WINDOW_SIZE,
  MIN_WINDOW_SIZE,
  resolveDriftConfig,
  type FeatureDriftConfig,
} from '../../common/drift/feature-drift.ts';
import type { DriftScale } from '../../common/drift/multiscale-drift.ts';
import { ConfigError } from '../../common/errors.ts';
import { DEFAULT_BATCH_MAX_WAIT_MS } from './batcher.ts';
import { DEFAULT_ACCURACY_CONFIG, type AccuracyMonitorConfig } from '../../common/drift/accuracy-monitor.ts';
import { DEFAULT_EPISODE_TTL_SAMPLES } from '../../common/drift/episode.ts';
import { CORRECTIONS } from '../../common/drift/multiple-testing.ts';
import { DEFAULT_REGISTRY_DIR } from '../../common/registry/directory.ts';
import { keysDirField, verifyKeysField } from '../../common/model/signature.ts';
import { DEFAULT_MODEL_NAME } from '../../common/model/types.ts';
import { DEFAULT_CONCEPT_REREQUESTS } from './concept-retry.ts';

/**
 * Default stable MQTT client id: one per host (a pod name in Kubernetes), so the broker keeps this worker's
 * session.
 */
export const DEFAULT_EDGE_CLIENT_ID = `driftline-edge-${
  os
    .hostname()
    .replace(/[^A-Za-z0-9_.-]/g, '-')
    .slice(0, 40) || 'local'
}`;

/** `DRIFT_SCALES`: `WINDOW/HOP[/SHARE]` items separated by commas. */
const SCALES_PATTERN = /^[\d./,\s]+$/;
/** One `DRIFT_SCALES` item: `WINDOW/HOP` or `WINDOW/HOP/SHARE` (integers, and a share like 1, 0.5 or .5). */
function isScaleItem(item: string): boolean {
  const parts = item.trim().split('/');
  return (
    (parts.length === 2 || parts.length === 3) &&
    parts.slice(0, 2).every((p) => /^\d+$/.test(p)) &&
    (parts[2] === undefined || /^\d*\.?\d+$/.test(parts[2]))
  );
}

/** Scales as `DRIFT_SCALES` writes them (`400/50,2000/250`; shares only when they are not equal). */
export function formatScales(scales: readonly DriftScale[]): string {
  const equal = scales.every((s) => Math.abs(s.share - 1 / scales.length) < 1e-12);
  return scales.map((s) => `${s.windowSize}/${s.hop}${equal ? '' : `/${s.share}`}`).join(',');
}

/** Settings of `npm run edge` (and the edge part of `npm start`). Drift defaults are the detector's own. */
export const edgeConfigSpec = {
  mqttUrl: str('MQTT_URL', {
    description: 'Broker URL (mqtt://, mqtts://, ws://, wss://)',
    default: 'mqtt://127.0.0.1:1883',
    pattern: /^(mqtts?|wss?):\/\/\S+$/,
    allowed: 'a URL starting with mqtt://, mqtts://, ws:// or wss://',
  }),
  mqttUsername: str('EDGE_MQTT_USERNAME', {
    description: 'Broker user of the edge service account (role edge)',
    default: 'edge',
  }),
  mqttPassword: optionalStr('EDGE_MQTT_PASSWORD', {
    description: 'Password of the edge service account',
    secret: true,
  }),
  mqttCaFile: optionalStr('EDGE_MQTT_CA_FILE', {
    description: 'PEM CA certificate to trust for mqtts:// or wss://',
  }),
  clientId: str('EDGE_CLIENT_ID', {
    description:
      'Stable MQTT client id (persistent session: QoS 1 messages queued ' +
      'while away are delivered on reconnect); unique per replica',
    default: DEFAULT_EDGE_CLIENT_ID,
    pattern: /^[A-Za-z0-9_.:-]{1,64}$/,
    allowed: '1-64 letters, digits, _ . : -',
  }),
  publishConnection: oneOf('EDGE_MQTT_PUBLISH_CONNECTION', ['separate', 'shared'] as const, {
    description:
      'Connection the predictions go out on with EDGE_INGEST=mqtt: separate (a second client, ' +
      '<EDGE_CLIENT_ID>-pub, so their PUBACKs never wait behind telemetry) or shared (the intake connection)',
    default: 'separate',
  }),
  ingest: oneOf('EDGE_INGEST', ['mqtt', 'kafka'] as const, {
    description:
      'Where telemetry comes from: mqtt (subscribe on the broker; one worker) or kafka (driftline.telemetry ' +
      'from npm run bridge, one consumer group: several workers share the machines; needs KAFKA_BROKERS)',
    default: 'mqtt',
  }),
  kafkaGroup: str('EDGE_KAFKA_GROUP', {
    description:
      'Consumer group of the edge workers with EDGE_INGEST=kafka ' +
      '(the same for every replica; KAFKA_TOPIC_PREFIX is prepended)',
    default: 'driftline-edge',
    pattern: /^[A-Za-z0-9._-]{1,200}$/,
    allowed: "letters, digits, '.', '_' and '-'",
  }),
  batchSize: int('EDGE_BATCH_SIZE', {
    description: 'Flush a prediction batch at this many messages',
    default: 64,
    min: 1,
    max: 4096,
  }),
  batchMaxWaitMs: int('EDGE_BATCH_MAX_WAIT_MS', {
    description:
      'Flush a batch this long after its first message, ms (shorter: lower latency, smaller batches, more CPU ' +
      'per message at moderate rates)',
    default: DEFAULT_BATCH_MAX_WAIT_MS,
    min: 0,
    max: 10_000,
  }),
  maxQueue: int('EDGE_MAX_QUEUE', {
    description:
      'Queued messages at which the intake pauses (backpressure onto the broker); 0 = 16 x EDGE_BATCH_SIZE',
    default: 0,
    min: 0,
    max: 1_000_000,
  }),
  httpHost: str('EDGE_HTTP_HOST', {
    description: 'Interface of /predict, /healthz, /readyz, /metrics',
    default: '127.0.0.1',
  }),
  httpPort: int('EDGE_HTTP_PORT', {
    description: 'Port of /predict, /healthz, /readyz, /metrics (0 picks a free port)',
    default: 9102,
    min: 0,
    max: 65535,
  }),
  predictMaxRows: int('EDGE_PREDICT_MAX_ROWS', {
    description: 'Rows per POST /predict request, at most',
    default: 1000,
    min: 1,
    max: 100_000,
  }),
  modelName: str('MODEL_NAME', {
    description: 'Registered model to serve',
    default: DEFAULT_MODEL_NAME,
    pattern: /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/,
    allowed: 'a model name (letters, digits, _ . -)',
  }),
  registryDir: str('REGISTRY_DIR', {
    description: 'Directory registry root (used when MLFLOW_TRACKING_URI is unset)',
    default: DEFAULT_REGISTRY_DIR,
  }),
  mlflowTrackingUri: optionalUrl('MLFLOW_TRACKING_URI', {
    description: 'MLflow tracking server; when set the registry is MLflow',
    protocols: ['http:', 'https:'],
  }),
  verifyKeys: verifyKeysField(),
  keysDir: keysDirField(),
  championPollMs: int('EDGE_CHAMPION_POLL_MS', {
    description:
      'Check the registry for a new champion this often, ms (covers missed bus events; 0 disables)',
    default: 10_000,
    min: 0,
    max: 3_600_000,
  }),
  driftDetector: oneOf('DRIFT_DETECTOR', ['multiscale', 'windows'] as const, {
    description:
      'Covariate drift engine: multiscale (exact KS on several sliding windows, DRIFT_SCALES, a budget of ' +
      'DRIFT_FALSE_ALARMS_PER_SAMPLE) or windows (tumbling/hopping DRIFT_WINDOW_SIZE windows, DRIFT_ALPHA, ' +
      'DRIFT_CONSECUTIVE)',
    default: DEFAULT_DRIFT_CONFIG.detector,
  }),
  driftScales: str('DRIFT_SCALES', {
    description:
      'multiscale: the windows tested, as WINDOW/HOP[/SHARE] separated by commas (shares of the budget; ' +
      'equal when left out)',
    default: formatScales(DEFAULT_DRIFT_CONFIG.scales),
    pattern: SCALES_PATTERN,
    allowed: 'WINDOW/HOP[/SHARE],… e.g. 400/50,2000/250',
  }),
  driftFalseAlarmsPerSample: num('DRIFT_FALSE_ALARMS_PER_SAMPLE', {
    description: 'multiscale: bound on the expected false alarms per sample (all scales and features)',
    default: DEFAULT_DRIFT_CONFIG.falseAlarmsPerSample,
    min: 1e-15,
    max: 0.01,
  }),
  driftAdoptionSize: int('DRIFT_ADOPTION_SIZE', {
    description:
      'multiscale: rows adopted as the new reference when the champion handles a covariate shift ' +
      '(reference-updated)',
    default: DEFAULT_DRIFT_CONFIG.adoptionSize,
    min: 100,
    max: 1_000_000,
  }),
  driftSettleSamples: int('DRIFT_SETTLE_SAMPLES', {
    description:
      'multiscale: samples after a reference update during which further change updates the reference ' +
      'instead of alarming',
    default: DEFAULT_DRIFT_CONFIG.settleSamples,
    min: 0,
  }),
  driftGroupBy: oneOf('DRIFT_GROUP_BY', ['all', 'machine'] as const, {
    description: 'One drift window for all machines, or one per machine',
    default: DEFAULT_DRIFT_CONFIG.groupBy,
  }),
  driftWindowSize: int('DRIFT_WINDOW_SIZE', {
    description: 'windows: samples per drift window',
    default: DEFAULT_DRIFT_CONFIG.windowSize,
    min: MIN_WINDOW_SIZE,
    max: MAX_WINDOW_SIZE,
  }),
  driftWindowMode: oneOf('DRIFT_WINDOW_MODE', ['tumbling', 'hopping'] as const, {
    description:
      'windows: tumbling (disjoint windows) or hopping (the last window, tested every DRIFT_HOP samples)',
    default: DEFAULT_DRIFT_CONFIG.windowMode,
  }),
  driftHop: int('DRIFT_HOP', {
    description: 'windows: samples between tests in hopping mode (at most DRIFT_WINDOW_SIZE)',
    default: DEFAULT_DRIFT_CONFIG.hop,
    min: 1,
    max: MAX_WINDOW_SIZE,
  }),
  driftAlpha: num('DRIFT_ALPHA', {
    description: 'windows: family-wise significance of one window (all features together)',
    default: DEFAULT_DRIFT_CONFIG.alpha,
    min: 1e-12,
    max: 0.5,
  }),
  driftCorrection: oneOf('DRIFT_CORRECTION', CORRECTIONS, {
    description: 'windows: how the per-feature p-values share alpha',
    default: DEFAULT_DRIFT_CONFIG.correction,
  }),
  driftConsecutive: int('DRIFT_CONSECUTIVE', {
    description: 'windows: rejecting windows in a row needed for an alarm',
    default: DEFAULT_DRIFT_CONFIG.consecutive,
    min: 1,
    max: 1000,
  }),
  driftCooldownSamples: int('DRIFT_COOLDOWN_SAMPLES', {
    description: 'Samples after an alarm during which the group raises no other alarm',
    default: DEFAULT_DRIFT_CONFIG.cooldownSamples,
    min: 0,
  }),
  accuracyWindow: int('ACCURACY_WINDOW', {
    description: 'Labelled predictions in the live-accuracy window',
    default: DEFAULT_ACCURACY_CONFIG.windowSize,
    min: 10,
    max: 1_000_000,
  }),
  accuracyMinLabels: int('ACCURACY_MIN_LABELS', {
    description: 'Labels in the window before the concept-drift test runs (at most ACCURACY_WINDOW)',
    default: DEFAULT_ACCURACY_CONFIG.minLabels,
    min: 1,
    max: 1_000_000,
  }),
  accuracyMaxDrop: num('ACCURACY_MAX_DROP', {
    description: "Tolerated drop of live accuracy below the champion's validation accuracy",
    default: DEFAULT_ACCURACY_CONFIG.maxDrop,
    min: 0,
    max: 0.99,
  }),
  accuracyAlpha: num('ACCURACY_ALPHA', {
    description: 'Significance of the one-sided binomial concept-drift test',
    default: DEFAULT_ACCURACY_CONFIG.alpha,
    min: 1e-12,
    max: 0.5,
  }),
  accuracyCooldownLabels: int('ACCURACY_COOLDOWN_LABELS', {
    description: 'Labels after a concept alarm during which no other fires',
    default: DEFAULT_ACCURACY_CONFIG.cooldownLabels,
    min: 0,
  }),
  accuracyCusum: oneOf('ACCURACY_CUSUM', ['on', 'off'] as const, {
    description:
      'Sequential label test beside the window test (Bernoulli CUSUMs, 1e-8 expected false alarms per label): ' +
      'alarms sooner and dates the change',
    default: 'on',
  }),
  dataQuality: oneOf('DATA_QUALITY', ['on', 'off'] as const, {
    description:
      'Per-machine data-quality checks (a faulty machine is named and kept out of drift and training)',
    default: 'on',
  }),
  episodeTtlSamples: int('EPISODE_TTL_SAMPLES', {
    description:
      'Samples after which an open drift episode expires, so a ' +
      'retrain that never produced a champion is asked for again',
    default: DEFAULT_EPISODE_TTL_SAMPLES,
    min: 1,
  }),
  conceptReRequests: int('CONCEPT_REREQUEST_MAX', {
    description:
      'Re-requests with twice the samples after a rejected concept retrain, per drift episode ' +
      '(instead of waiting for EPISODE_TTL_SAMPLES)',
    default: DEFAULT_CONCEPT_REREQUESTS,
    min: 0,
    max: 100,
  }),
  statusIntervalMs: int('EDGE_STATUS_INTERVAL_MS', {
    description:
      'Publish the worker status on driftline/edge/<EDGE_CLIENT_ID>/status this often, ms (0 disables)',
    default: 1000,
    min: 0,
    max: 3_600_000,
  }),
  labelJoinMaxPending: int('LABEL_JOIN_MAX_PENDING', {
    description: 'Predictions kept waiting for their delayed label; the oldest is evicted beyond it',
    default: 50_000,
    min: 1,
    max: 10_000_000,
  }),
  labelJoinMaxEarly: int('LABEL_JOIN_MAX_EARLY', {
    description:
      'Labels that arrived before their reading (MQTT and Kafka do not order the two topics), kept waiting ' +
      'for it; the oldest counts as a miss beyond it (0: a label without its reading is a miss at once)',
    default: 50_000,
    min: 0,
    max: 10_000_000,
  }),
  labelJoinEarlyMaxAgeMs: int('LABEL_JOIN_EARLY_MAX_AGE_MS', {
    description: 'A label waits this long for its reading before it counts as a miss, ms',
    default: 120_000,
    min: 1,
    max: 86_400_000,
  }),
  dedupWindow: int('EDGE_DEDUP_WINDOW', {
    description:
      'Telemetry and label keys (machineId + seq) remembered to recognise repeats ' +
      '(QoS 1 redelivery, re-sends after a broker restart); 0 disables',
    default: 100_000,
    min: 0,
    max: 10_000_000,
  }),
  outboxMaxSamples: int('EDGE_OUTBOX_MAX_SAMPLES', {
    description:
      'Labelled samples waiting for the bus (Kafka down) at most; when full the intake stops acknowledging',
    default: 10_000,
    min: 100,
    max: 10_000_000,
  }),
  stopGraceMs: int('EDGE_STOP_GRACE_MS', {
    description:
      'On stop, how long undelivered retrain requests and labelled samples are retried before they are ' +
      'counted as dropped',
    default: 10_000,
    min: 0,
    max: 3_600_000,
  }),
} satisfies Record<string, Field<unknown>>;

export type EdgeConfig = ConfigOf<typeof edgeConfigSpec>;

/**
 * `DRIFT_SCALES` → scales. Shares left out split what the given ones leave equally; every window, hop and the
 * shares' sum are checked by the detector (`resolveDriftConfig`), which names a bad one.
 */
export function parseScales(text: string): DriftScale[] {
  if (!SCALES_PATTERN.test(text) || !text.split(',').every(isScaleItem))
    throw new ConfigError(
      `Invalid configuration: DRIFT_SCALES=${JSON.stringify(text)} is not WINDOW/HOP[/SHARE],…`,
    );
  const items = text.split(',').map((item) => item.trim().split('/').map(Number));
  const given = items.reduce((sum, i) => sum + (i[2] ?? 0), 0);
  const open = items.filter((i) => i[2] === undefined).length;
  return items.map(([windowSize, hop, share]) => ({
    windowSize: windowSize as number,
    hop: hop as number,
    share: share ?? (1 - given) / open,
  }));
}

/** The detector parameters the config sets (the rest keep the detector's defaults). */
export function driftConfigOf(config: EdgeConfig): Partial<FeatureDriftConfig> {
  if (config.driftWindowMode === 'hopping' && config.driftHop > config.driftWindowSize) {
    throw new ConfigError(
      `Invalid configuration: DRIFT_HOP=${config.driftHop} must be at ` +
        `most DRIFT_WINDOW_SIZE=${config.driftWindowSize} in hopping mode`,
    );
  }
  const drift: Partial<FeatureDriftConfig> = {
    detector: config.driftDetector,
    scales: parseScales(config.driftScales),
    falseAlarmsPerSample: config.driftFalseAlarmsPerSample,
    adoptionSize: config.driftAdoptionSize,
    settleSamples: config.driftSettleSamples,
    groupBy: config.driftGroupBy,
    windowSize: config.driftWindowSize,
    windowMode: config.driftWindowMode,
    // hop is only read in hopping mode; keep it valid for any window size
    hop: Math.min(config.driftHop, config.driftWindowSize),
    alpha: config.driftAlpha,
    correction: config.driftCorrection,
    consecutive: config.driftConsecutive,
    cooldownSamples: config.driftCooldownSamples,
  };
  try {
    resolveDriftConfig(drift);
  } catch (err) {
    const detail = (err as Error).message;
    const names = /scale|share|falseAlarms|per-test alpha/i.test(detail)
      ? 'DRIFT_SCALES / DRIFT_FALSE_ALARMS_PER_SAMPLE'
      : 'DRIFT_*';
    throw new ConfigError(`Invalid configuration: ${names}: ${detail}`);
  }
  return drift;
}

/** The accuracy monitor parameters the config sets. */
export function accuracyConfigOf(config: EdgeConfig): Partial<AccuracyMonitorConfig> {
  if (config.accuracyMinLabels > config.accuracyWindow) {
    throw new ConfigError(
      `Invalid configuration: ACCURACY_MIN_LABELS=${config.accuracyMinLabels} ` +
        `must be at most ACCURACY_WINDOW=${config.accuracyWindow}`,
    );
  }
  return {
    windowSize: config.accuracyWindow,
    minLabels: config.accuracyMinLabels,
    maxDrop: config.accuracyMaxDrop,
    alpha: config.accuracyAlpha,
    cooldownLabels: config.accuracyCooldownLabels,
  };
}
