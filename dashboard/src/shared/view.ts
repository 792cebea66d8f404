import type { AliasChange, ModelVersion } from '../../../common/registry/types.ts';
import type { DriftKind, FeatureEvidence, ModelMetrics } from '../../../common/events/schemas.ts';
import type { Efficiency, Feature } from '../../../common/schema/features.ts';
import type { EdgeStatusMessage, Histogram } from '../../../common/schema/status.ts';

/**
 * What the dashboard server sends to the browser over Server-Sent Events: one
 * `snapshot` event when a stream opens (and again after every reconnect), then
 * `update` events carrying only the sections that changed. Every update is
 * idempotent (sections and machines are replaced whole; throughput points carry
 * their time), so an update that overlaps a snapshot does no harm.
 *
 * Shared by the server (`dashboard/src/state.ts`) and the browser client
 * (`dashboard/src/client/`); this module holds types only.
 */

/** Dashboard roles: viewers watch, operators may also roll the champion back. */
export type DashboardRole = 'viewer' | 'operator';

export type ConnectionState = 'connecting' | 'connected' | 'reconnecting' | 'error' | 'closed';

/** One backend the dashboard server talks to. */
export interface ConnectionView {
  state: ConnectionState;
  /** Where (broker URL, bus kind, registry kind). */
  target: string;
  /** The last problem, or '' when fine. */
  detail: string;
  /** Epoch ms of the last state change. */
  since: number;
}

export interface ConnectionsView {
  mqtt: ConnectionView;
  bus: ConnectionView;
  registry: ConnectionView & { lastRefresh: number | null };
}

export interface PredictionView {
  efficiency: Efficiency;
  /** Low, Medium, High. */
  probabilities: [number, number, number];
  modelVersion: string;
  latencyMs: number;
  predictedAt: number;
}

/** One machine of the fleet. Ids come from devices: untrusted text. */
export interface MachineView {
  id: string;
  /** Epoch ms (server clock) of the first and the latest message from it. */
  firstSeen: number;
  lastSeen: number;
  seq: number | null;
  /** Telemetry `ts` of the latest reading. */
  ts: number | null;
  mode: string | null;
  /** Latest reading in FEATURES order; null until a valid reading arrived. */
  features: number[] | null;
  prediction: PredictionView | null;
  /** Latest delayed label. */
  label: Efficiency | null;
  /** Telemetry messages per second over the last 10 s. */
  ratePerSec: number;
  /** No message for `staleAfterMs`. */
  stale: boolean;
  /** Why the machine looks faulty (stuck sensor, recent rejections); empty when healthy. */
  faults: string[];
  /** Rejected messages attributed to it since the dashboard started. */
  rejected: number;
}

export interface DeadLetterView {
  at: number;
  source: string;
  reason: string;
  detail: string;
  topic: string;
  machineId: string | null;
  payloadBytes: number;
  /** At most 160 characters of the payload, as text. */
  payloadPreview: string;
}

export interface DeadLettersView {
  /** Dead-letter records seen on `driftline/dead-letter` since the dashboard started. */
  total: number;
  byReason: Record<string, number>;
  /** Totals by reason reported by the edge workers (since they started), summed over workers. */
  edgeByReason: Record<string, number>;
  /** Newest first. */
  recent: DeadLetterView[];
}

/** Messages the dashboard itself refused (schema, JSON, size), never shown. */
export interface InvalidView {
  total: number;
  /** source (telemetry, prediction, drift-window, …) → reason → count. */
  bySource: Record<string, Record<string, number>>;
  /** Messages on topics the dashboard does not read. */
  ignored: number;
}

export interface FeatureStatusView {
  feature: Feature;
  statistic: number | null;
  pvalue: number | null;
  /** p-value threshold after the multiple-testing correction (drifted when pvalue <= threshold). */
  threshold: number;
  criticalStatistic: number | null;
  drifted: boolean;
}

/** Recent windows of one feature, oldest first (parallel arrays). */
export interface FeatureHistory {
  windowIndex: number[];
  statistic: (number | null)[];
  pvalue: (number | null)[];
  critical: (number | null)[];
  drifted: boolean[];
}

export interface SamplePointView {
  sampleIndex: number;
  ts: number;
  seq?: number | undefined;
}

/** The drift detector's latest results for one group (`all` or a machine id). */
export interface DriftGroupView {
  groupKey: string;
  workerId: string;
  windowIndex: number;
  publishedAt: number;
  receivedAt: number;
  modelVersion: string;
  from: SamplePointView;
  to: SamplePointView;
  features: FeatureStatusView[];
  rejected: Feature[];
  /** Reference vs current window of the latest window that carried histograms. */
  histograms: Partial<Record<Feature, Histogram>>;
  histogramsWindow: number | null;
  history: Partial<Record<Feature, FeatureHistory>>;
  /** Windows received for this group. */
  windows: number;
}

export interface AlarmView {
  /** Unique per alarm within this dashboard process. */
  key: string;
  kind: DriftKind;
  workerId: string;
  groupKey: string;
  publishedAt: number;
  receivedAt: number;
  modelVersion: string;
  correlationId: string;
  requestId: string | null;
  at: SamplePointView;
  onset: SamplePointView;
  features: FeatureEvidence[];
  liveAccuracy: number | null;
}

export type RetrainOutcome = 'pending' | 'promoted' | 'rejected';

/** One retrain: the request (when seen) joined with the decision (when made). */
export interface RetrainView {
  /** requestId, or `corr:<correlationId>` when the decision named no request. */
  key: string;
  requestId: string | null;
  correlationId: string;
  modelName: string;
  /** Null when only the decision was seen. */
  kind: DriftKind | null;
  requestedAt: number | null;
  championVersion: string | null;
  features: FeatureEvidence[];
  liveAccuracy: number | null;
  validationAccuracy: number | null;
  groupKey: string | null;
  outcome: RetrainOutcome;
  decidedAt: number | null;
  /** The challenger's version (promoted or rejected). */
  candidateVersion: string | null;
  reason: string | null;
  candidateMetrics: ModelMetrics | null;
  championMetrics: ModelMetrics | null;
  /** The edge adopted the shift as its drift reference after this rejection (`reference-updated`). */
  referenceUpdate?: ReferenceUpdateView;
}

/** A `reference-updated` from an edge worker: the covariate detector adopted recent rows as its reference. */
export interface ReferenceUpdateView {
  workerId: string;
  groupKey: string;
  publishedAt: number;
  reason: 'accepted' | 'continuing';
  /** Sample index that completed the adoption, and the adopted rows' range. */
  at: number;
  from: number;
  to: number;
  samples: number;
  championAccuracy: number | null;
  /** The most changed features: KS between the old and the new reference, and the means. */
  features: { feature: string; statistic: number; pvalue: number; oldMean: number; newMean: number }[];
}

/** A model event as received (promoted, rejected, rolled back; reference updated by an edge worker). */
export interface ModelEventView {
  type: 'model-promoted' | 'model-rejected' | 'model-rolled-back' | 'reference-updated';
  version: string;
  /** The other version involved: previous champion, the champion that stayed, or the version rolled back. */
  otherVersion: string | null;
  reason: string;
  at: number;
  correlationId: string;
  requestId: string | null;
  metrics: ModelMetrics | null;
  otherMetrics: ModelMetrics | null;
}

export interface ModelView {
  name: string;
  champion: ModelVersion | null;
  /** Newest first. */
  versions: ModelVersion[];
  /** Alias moves, newest first. */
  history: AliasChange[];
  /** Newest first. */
  events: ModelEventView[];
}

export interface WorkerView extends EdgeStatusMessage {
  receivedAt: number;
}

/** Messages per second the dashboard received, sampled once a second. */
export interface ThroughputPoint {
  /** Epoch ms. */
  t: number;
  telemetry: number;
  predictions: number;
  labels: number;
}

export interface PipelineView {
  workers: WorkerView[];
  /** Oldest first. */
  throughput: ThroughputPoint[];
  /** Accuracy of the predictions the dashboard saw, joined with their delayed labels. */
  observedAccuracy: { accuracy: number | null; labelled: number; window: number };
}

/** The first message of every stream. */
export interface Snapshot {
  serverTime: number;
  modelName: string;
  staleAfterMs: number;
  connections: ConnectionsView;
  machines: MachineView[];
  deadLetters: DeadLettersView;
  invalid: InvalidView;
  drift: DriftGroupView[];
  alarms: AlarmView[];
  retrains: RetrainView[];
  model: ModelView;
  pipeline: PipelineView;
}

/** Changes since the previous update; absent sections did not change. */
export interface Update {
  serverTime: number;
  connections?: ConnectionsView;
  /** Changed machines, replaced whole. */
  machines?: MachineView[];
  deadLetters?: DeadLettersView;
  invalid?: InvalidView;
  /** Changed groups, replaced whole. */
  drift?: DriftGroupView[];
  /** The whole (bounded) alarm list. */
  alarms?: AlarmView[];
  /** The whole (bounded) retrain list. */
  retrains?: RetrainView[];
  model?: ModelView;
  workers?: WorkerView[];
  observedAccuracy?: PipelineView['observedAccuracy'];
  /** New throughput points (append those newer than the last one held). */
  throughput?: ThroughputPoint[];
}

/** `GET /api/session`. */
export interface SessionInfo {
  username: string;
  role: DashboardRole;
  csrfToken: string;
  modelName: string;
}
