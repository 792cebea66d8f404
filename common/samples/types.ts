import { z } from 'zod';
import {
  EFFICIENCY_CLASSES,
  FEATURES,
  OPERATION_MODES,
  VALID_LIMITS,
  type Efficiency,
  type Feature,
} from '../schema/features.ts';
import { machineIdSchema } from '../schema/telemetry.ts';
import type { FeatureRow } from '../model/types.ts';

/**
 * The durable labelled-sample store: the training data that outlives the edge.
 *
 * The edge publishes every labelled reading (telemetry joined with its
 * inspection label, and the prediction it made) on `driftline.labelled-samples`;
 * the retrainer's bus sink appends them here, and the retrainer reads a window
 * of them when a retrain request arrives. The embedded default is a local
 * append-only JSON-lines segment store (`file-store.ts`); a Kafka-backed store
 * implements the same interface later.
 */

const featureShape = Object.fromEntries(
  FEATURES.map((f) => [f, z.number().min(VALID_LIMITS[f][0]).max(VALID_LIMITS[f][1])]),
) as Record<Feature, z.ZodNumber>;

/** One model input as stored: the nine features (within the telemetry limits) and the operation mode. */
export const featureRowSchema = z.object({
  operationMode: z.enum(OPERATION_MODES),
  ...featureShape,
});

/**
 * Schema of one labelled sample. Samples cross a process boundary (bus, files
 * written by another process), so every one is validated on the way in.
 * Unknown fields are dropped.
 */
export const labelledSampleSchema = z.object({
  machineId: machineIdSchema,
  seq: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  ts: z.number().int().min(0).max(8.64e15),
  sampleIndex: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  row: featureRowSchema,
  label: z.enum(EFFICIENCY_CLASSES),
  prediction: z.enum(EFFICIENCY_CLASSES).optional(),
  modelVersion: z.string().min(1).max(200).optional(),
});

/** One labelled reading. */
export interface LabelledSample {
  /** Machine that produced the reading. */
  machineId: string;
  /** The machine's sequence number of the reading. */
  seq: number;
  /** Epoch ms of the reading (the sample clock of the simulator in replays). */
  ts: number;
  /** Global position of the sample in the stream (the evaluator's sample clock); optional. */
  sampleIndex?: number;
  /** The model input. */
  row: FeatureRow;
  /** The inspection label (ground truth). */
  label: Efficiency;
  /** What the edge predicted for it, when known. */
  prediction?: Efficiency;
  /** Version of the model that made {@link prediction}. */
  modelVersion?: string;
}

/** Selects samples. Bounds are inclusive; a sample without `sampleIndex` never matches a sample-index bound. */
export interface SampleWindowQuery {
  /** Earliest `ts` (epoch ms), inclusive. */
  fromTs?: number;
  /** Latest `ts` (epoch ms), inclusive. */
  toTs?: number;
  /** Smallest `sampleIndex`, inclusive. */
  fromSample?: number;
  /** Largest `sampleIndex`, inclusive. */
  toSample?: number;
  /** At most this many samples: the newest ones (latest in store order) win. */
  limit?: number;
  /** Only these machines. */
  machineIds?: readonly string[];
}

/** What the store holds. */
export interface SampleStoreStats {
  /** Samples retained (duplicates included). */
  samples: number;
  /** Segment files (for the file store; 1 for single-log stores). */
  segments: number;
  /** Bytes on disk. */
  bytes: number;
  /** Smallest `ts` retained; undefined when empty. */
  oldestTs?: number;
  /** Largest `ts` retained; undefined when empty. */
  newestTs?: number;
  /** Smallest `sampleIndex` retained, if any sample carries one. */
  minSampleIndex?: number;
  /** Largest `sampleIndex` retained, if any sample carries one. */
  maxSampleIndex?: number;
  /** Unparseable lines skipped while reading (a torn last line, a corrupt record). */
  skippedLines: number;
}

/** Durable storage of labelled samples. */
export interface LabelledSampleStore {
  /** A short description for logs, e.g. `file .driftline/samples`. */
  readonly kind: string;
  /**
   * Appends samples (validated; an invalid one rejects the whole batch with a
   * non-retriable `ValidationError`). Resolves when the batch is written
   * (visible to readers; durable on disk at the next sync).
   */
  append(samples: readonly LabelledSample[]): Promise<void>;
  /**
   * The samples matching `query`, oldest first in store (arrival) order.
   * Duplicates of one reading (same machine, seq and ts — at-least-once
   * delivery) are returned once.
   */
  readWindow(query?: SampleWindowQuery): Promise<LabelledSample[]>;
  stats(): Promise<SampleStoreStats>;
  /** Flushes to disk and releases files; later calls to `append` reject. */
  close(): Promise<void>;
}

/** True when `s` falls inside `q` (ignoring `limit`). */
export function matchesWindow(
  s: LabelledSample,
  q: SampleWindowQuery,
  machines?: ReadonlySet<string>,
): boolean {
  if (q.fromTs !== undefined && s.ts < q.fromTs) return false;
  if (q.toTs !== undefined && s.ts > q.toTs) return false;
  if (q.fromSample !== undefined || q.toSample !== undefined) {
    if (s.sampleIndex === undefined) return false;
    if (q.fromSample !== undefined && s.sampleIndex < q.fromSample) return false;
    if (q.toSample !== undefined && s.sampleIndex > q.toSample) return false;
  }
  if (machines && !machines.has(s.machineId)) return false;
  return true;
}

/** Identity of one reading, for de-duplicating at-least-once deliveries. */
export function sampleKey(s: Pick<LabelledSample, 'machineId' | 'seq' | 'ts'>): string {
  return `${s.machineId}\u0000${s.seq}\u0000${s.ts}`;
}
