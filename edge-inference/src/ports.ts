import type { DeadLetterSink } from '../../common/deadletter.ts';
import type { DriftInput, DriftUpdate, FeatureDriftStatus } from '../../common/drift/feature-drift.ts';
import type { DriftAlarm } from '../../common/drift/types.ts';
import type { SettleCheck } from '../../common/drift/multiscale-drift.ts';
import type { RetrainRequest } from '../../common/events/schemas.ts';
import type { ReferenceSample } from '../../common/model/types.ts';
import type { Efficiency, Feature } from '../../common/schema/features.ts';
import type { EdgeMetrics } from './metrics.ts';

/**
 * The narrow interfaces the worker needs from the shared drift, accuracy,
 * episode and registry modules. The shared implementations satisfy them
 * structurally (`FeatureDriftDetector`, `AccuracyMonitor`, `ModelRegistry`);
 * unit tests pass fakes.
 */

/** The feature drift detector (`FeatureDriftDetector` in common/drift/feature-drift.ts). */
export interface DriftPort {
  /** Feeds one row; the result says whether a window was tested and whether it raised an alarm. */
  update(row: DriftInput, machineId: string): DriftUpdate;
  /** Compares from now on with `reference` (the new champion's training sample); clears windows and streaks. */
  reset(reference: ReferenceSample): void;
  /** Per feature, the most significant latest result over all groups (what Prometheus exports). */
  featureSummary?(): FeatureDriftStatus[];
  /**
   * Grouping (`FeatureDriftDetector.config`): with `machine`, the worker forgets the groups of machines that
   * moved away.
   */
  readonly config?: { readonly groupBy: 'all' | 'machine' };
  /**
   * The current window of one feature of a group, read-only (`FeatureDriftDetector.windowValues`): right
   * after `update` reports a tested window, the window tested (multi-scale: the window of length
   * `windowSize`, default the scale the feature's status reports). Without it drift window messages carry
   * no histograms.
   */
  windowValues?(groupKey: string, feature: Feature, windowSize?: number): ArrayLike<number> | undefined;
  /**
   * Forgets one group's window, streaks and cooldown (`FeatureDriftDetector.dropGroup`); used when a machine
   * moves to another worker.
   */
  dropGroup?(key: string): boolean;
  /**
   * The champion handles the shift that alarmed (its challenger was rejected, the champion kept its
   * accuracy): adopt recent rows as the reference (`FeatureDriftDetector.acceptShift`, multi-scale only).
   * Returns the groups that started adopting; the update that completes one reports `referenceUpdate`.
   */
  acceptShift?(options?: { groupKey?: string; since?: number }): string[];
  /** The multi-scale engine when in use (`FeatureDriftDetector.multiscale`): only it can adopt a reference. */
  readonly multiscale?: { readonly settleCheck?: SettleCheck | null } | null;
}

/**
 * Hooks the worker passes to its ingest along with the message handlers, for
 * an ingest that shares machines between several workers (the Kafka ingest,
 * `kafka-ingest.ts`): it commits its input position only after `drain()`, and
 * calls `forgetMachines` when a rebalance takes machines away.
 */
export interface IngestHooks {
  /**
   * Resolves once every message handed over so far is predicted and its
   * prediction, dead letter and labelled sample publishes have settled.
   */
  drain(): Promise<void>;
  /**
   * This worker no longer owns these machines: forget their drift windows
   * (`DRIFT_GROUP_BY=machine`; a machine that comes back starts a fresh window).
   * Returns the drift groups dropped.
   */
  forgetMachines(machineIds: readonly string[]): number;
  /** The worker's dead-letter sink: an ingest built outside the worker rejects invalid messages into it. */
  deadLetters: DeadLetterSink;
  /** The worker's metrics (`messagesIn` is counted by the ingest). */
  metrics: EdgeMetrics;
}

/**
 * The live accuracy monitor (`AccuracyMonitor` in common/drift/accuracy-monitor.ts).
 * The worker joins labels itself (it also publishes the labelled samples) and
 * feeds the monitor joined outcomes.
 */
export interface AccuracyPort {
  /** One labelled prediction; returns the concept alarm it raised, if any. */
  recordOutcome(
    correct: boolean,
    at?: { ts?: number; sampleIndex?: number; actual?: Efficiency },
  ): DriftAlarm | null;
  /** A new champion: compare with its validation accuracy from now on. */
  reset(validationAccuracy: number): void;
  /** Correct share of the labelled window, or null when empty. */
  readonly liveAccuracy: number | null;
  /** Labelled outcomes in the window (`AccuracyMonitor.snapshot()`), for the status message; 0 without it. */
  snapshot?(): { labelled: number };
}

/**
 * Turns alarms into at most one retrain request per drift episode (`DriftEpisodeManager` in
 * common/drift/episode.ts).
 */
export interface EpisodePort {
  /** The request to publish when the alarm opens an episode; null when it attaches to the open one. */
  onAlarm(alarm: DriftAlarm, sampleIndex?: number): RetrainRequest | null;
  /** A new champion is serving: the open episode is over; later alarms are against `version`. */
  championLoaded(version: string, validationAccuracy?: number | null): void;
  /**
   * The open episode, if any (an attached alarm is published with its correlation id, so observers link it to
   * the retrain).
   */
  episode?(sampleIndex?: number): { requestId: string; correlationId: string } | null;
  /** The open episode ends without a new champion: the detector adopted the shift (`referenceAdopted`). */
  referenceAdopted?(): boolean;
  /** The open episode's retrain lost: the request to publish for a training on at least `minSamples`. */
  reRequest?(sampleIndex: number, minSamples: number): RetrainRequest | null;
  /** Re-requests made in the open episode. */
  readonly reRequestCount?: number;
}

/** The champion as the registry reports it (`ModelVersion` satisfies it). */
export interface ChampionRef {
  name: string;
  /** Registry-assigned version: what predictions report. */
  version: string;
  /** Its registry-version signature as stored, when the registry reports it (a refused version is tried again when it changes). */
  versionSignature?: string;
}

/** The registry as the worker uses it (`ModelRegistry` satisfies it). */
export interface RegistryPort {
  /** What the registry is (`directory <root>`, `mlflow <uri>`), reported in the worker status. */
  readonly kind?: string;
  /** The current champion of `name`, or undefined when none is registered yet. */
  getChampion(name: string): Promise<ChampionRef | undefined>;
  /** A local directory holding the verified artifact of `name`@`version`; ArtifactError on a checksum mismatch. */
  fetchArtifact(name: string, version: string): Promise<string>;
  /** One version as registered: its registry-version signature is checked before it is loaded. */
  getVersion(name: string, version: string): Promise<{ versionSignature?: string } | undefined>;
  /** Calls `onChange` whenever the champion changes; returns a function that stops watching. */
  watchChampion?(
    name: string,
    onChange: (champion: ChampionRef | undefined) => void,
    options?: { intervalMs?: number; onError?: (err: unknown) => void; emitInitial?: boolean },
  ): () => void;
}

/** A model lifecycle event the worker reacts to. */
export interface ModelChange {
  type: 'model-promoted' | 'model-rolled-back';
  modelName: string;
  version: string;
  correlationId?: string;
}
