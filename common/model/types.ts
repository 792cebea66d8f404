import type { Efficiency, Feature, OperationMode } from '../schema/features.ts';

/**
 * Contracts of the efficiency classifier and its artifact, shared by the
 * bootstrap trainer, the edge worker and the retrainer.
 */

/** The registered model name every service uses unless `MODEL_NAME` names another. */
export const DEFAULT_MODEL_NAME = 'driftline-efficiency';

/** One model input: the nine features plus the operation mode (a Telemetry record satisfies it). */
export type FeatureRow = { operationMode: OperationMode } & Record<Feature, number>;

/** A labelled training example. */
export interface LabelledRow {
  row: FeatureRow;
  label: Efficiency;
  /** Loss weight of this row in training (multiplies the class weight); default 1. Ignored in evaluation. */
  weight?: number;
}

/** Classification quality on one data set. */
export interface EvalMetrics {
  samples: number;
  accuracy: number;
  macroF1: number;
  perClassRecall: Record<Efficiency, number>;
  perClassF1: Record<Efficiency, number>;
  logLoss: number;
  /** confusion[actual][predicted], in EFFICIENCY_CLASSES order. */
  confusion: number[][];
}

/** Per-feature standardisation stored inside the artifact: the model and its scaler never travel apart. */
export interface Scaler {
  mean: number[];
  std: number[];
}

/** metadata.json of a model artifact directory. */
export interface ModelMetadata {
  format: 'driftline-model/1';
  /** Registered model name, e.g. `driftline-efficiency`. */
  name: string;
  /** Version assigned by the registry (or `bootstrap` before registration). */
  version: string;
  createdAt: string;
  /** Which tfjs backend trained it. */
  trainedWith: string;
  features: readonly Feature[];
  modes: readonly OperationMode[];
  classes: readonly Efficiency[];
  scaler: Scaler;
  /** Quality on the validation set at training time; live accuracy is compared with this. */
  validation: EvalMetrics;
  training: {
    samples: number;
    epochs: number;
    seed: number;
    /** Free-form provenance: scenario file, sample window, correlation id… */
    source: Record<string, unknown>;
  };
  /** sha256 and size of every other file in the artifact (model.json, weights.bin, reference.json). */
  files: Record<string, { sha256: string; bytes: number }>;
  /** Ed25519 signature over the rest of this metadata (`common/model/signature.ts`); absent: unsigned. */
  signature?: { algorithm: 'ed25519'; keyId: string; value: string };
}

/** reference.json: the champion's training-data sample per feature, used by the drift detector. */
export interface ReferenceSample {
  size: number;
  features: Record<Feature, number[]>;
  /** Class shares of the training labels. */
  classShares: Record<Efficiency, number>;
}

/** One prediction. */
export interface ClassProbabilities {
  efficiency: Efficiency;
  probabilities: Record<Efficiency, number>;
}

/** A model ready to predict. */
export interface LoadedModel {
  readonly metadata: ModelMetadata;
  readonly reference: ReferenceSample;
  /** Directory it was loaded from. */
  readonly dir: string;
  /** Predicts a batch in one call (one tensor op); order preserved. */
  predict(rows: readonly FeatureRow[]): ClassProbabilities[];
  /** Frees tensors; the model must not be used afterwards. */
  dispose(): void;
}
