import type { FeatureEvidence } from '../events/schemas.ts';

/** Where a stretch of data starts or ends, on every clock the worker has. */
export interface SamplePoint {
  /** Sample clock of the detector (0-based count of samples it has seen). */
  sampleIndex: number;
  /** Epoch ms of the sample (telemetry `ts`, or the wall clock when the sample carried none). */
  ts: number;
  /** Telemetry seq of the sample, when it had one. */
  seq?: number;
}

/**
 * An alarm raised by the feature drift detector (`covariate`) or the accuracy
 * monitor (`concept`). The episode manager turns the first alarm of an
 * episode into a retrain request and attaches the rest.
 */
export interface DriftAlarm {
  kind: 'covariate' | 'concept';
  /** `all`, or the machine id when the detector groups by machine. */
  groupKey: string;
  /** The sample (or labelled outcome) that raised it. */
  at: SamplePoint;
  /** Start of the evidence: first window of the rejecting streak, or the oldest outcome of the accuracy window. */
  onset: SamplePoint;
  /** Rejected features of the alarming window, smallest p-value first (empty for concept drift). */
  features: FeatureEvidence[];
  /** Accuracy on the labelled window when the alarm fired; null when unknown. */
  liveAccuracy: number | null;
}
