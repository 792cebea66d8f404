import { z } from 'zod';
import { EFFICIENCY_CLASSES, FEATURES } from './features.ts';

/**
 * Status messages the edge worker publishes on MQTT for observers (the
 * dashboard): drift window results, drift alarms, and a periodic worker status.
 * Every observer validates them with these schemas: they cross a process boundary.
 */
export const STATUS_TOPICS = {
  /** One message per tested drift window. */
  driftWindow: 'driftline/drift/window',
  /** One message per alarm (covariate or concept). */
  alarm: 'driftline/drift/alarm',
  /** One message per adopted drift reference (`reference-updated`, issue 13). */
  referenceUpdated: 'driftline/drift/reference',
  /** One message per data-quality fault raised or cleared on one machine (issue 13). */
  dataQuality: 'driftline/drift/data-quality',
  /** Periodic worker status, `driftline/edge/<workerId>/status`. */
  edgeStatus: (workerId: string): string => `driftline/edge/${workerId}/status`,
  edgeStatusWildcard: 'driftline/edge/+/status',
} as const;

const featureName = z.enum(FEATURES);
const classMix = z.object({
  Low: z.number().min(0).max(1),
  Medium: z.number().min(0).max(1),
  High: z.number().min(0).max(1),
});
const nullableNumber = z.number().nullable();
const samplePoint = z.object({ sampleIndex: z.number(), ts: z.number(), seq: z.number().optional() });

export const featureWindowStatusSchema = z.object({
  feature: featureName,
  statistic: nullableNumber,
  pvalue: nullableNumber,
  threshold: z.number(),
  criticalStatistic: z.number().nullable(),
  drifted: z.boolean(),
  /** Length of the window this result was tested on (multi-scale detector: the scale reported). */
  windowSize: z.number().int().min(1).optional(),
});

/** Reference vs current window of one feature on shared bin edges (counts, not densities). */
export const histogramSchema = z.object({
  edges: z.array(z.number()).min(2).max(101),
  reference: z.array(z.number().min(0)),
  current: z.array(z.number().min(0)),
});
export type Histogram = z.infer<typeof histogramSchema>;

export const driftWindowMessageSchema = z.object({
  workerId: z.string().min(1).max(128),
  groupKey: z.string().min(1).max(128),
  windowIndex: z.number().int().min(1),
  publishedAt: z.number(),
  modelVersion: z.string(),
  from: samplePoint,
  to: samplePoint,
  features: z.array(featureWindowStatusSchema).max(FEATURES.length),
  rejected: z.array(featureName),
  histograms: z.partialRecord(featureName, histogramSchema).optional(),
});
export type DriftWindowMessage = z.infer<typeof driftWindowMessageSchema>;

export const driftAlarmMessageSchema = z.object({
  workerId: z.string().min(1).max(128),
  kind: z.enum(['covariate', 'concept']),
  groupKey: z.string().min(1).max(128),
  publishedAt: z.number(),
  modelVersion: z.string(),
  correlationId: z.string().min(1).max(128),
  /** Set when the alarm opened an episode and emitted a retrain request; absent when it attached to an open episode. */
  requestId: z.string().max(128).optional(),
  at: samplePoint,
  onset: samplePoint,
  features: z.array(z.object({ feature: featureName, statistic: z.number(), pvalue: z.number() })),
  liveAccuracy: nullableNumber,
});
export type DriftAlarmMessage = z.infer<typeof driftAlarmMessageSchema>;

const referenceSummary = z.object({
  samples: z.number().int().min(0),
  mean: z.number(),
  sd: z.number(),
  min: z.number(),
  p05: z.number(),
  p50: z.number(),
  p95: z.number(),
  max: z.number(),
});

/**
 * The covariate detector adopted recent rows as its reference (`reference-updated`): after a rejected
 * challenger whose champion kept its accuracy (`accepted`), or because change went on while settling
 * (`continuing`). The evidence: per feature the old and new reference and the KS test between them.
 */
export const referenceUpdatedMessageSchema = z.object({
  type: z.literal('reference-updated'),
  workerId: z.string().min(1).max(128),
  groupKey: z.string().min(1).max(128),
  publishedAt: z.number(),
  modelVersion: z.string(),
  /** The correlation id of the covariate request whose challenger was rejected. */
  correlationId: z.string().min(1).max(128),
  requestId: z.string().max(128).nullable(),
  reason: z.enum(['accepted', 'continuing']),
  championAccuracy: nullableNumber,
  at: samplePoint,
  from: samplePoint,
  to: samplePoint,
  samples: z.number().int().min(1),
  features: z.array(
    z.object({
      feature: featureName,
      statistic: z.number(),
      pvalue: z.number(),
      old: referenceSummary,
      new: referenceSummary,
    }),
  ),
});
export type ReferenceUpdatedMessage = z.infer<typeof referenceUpdatedMessageSchema>;

/**
 * A data-quality fault on one machine (`fault`: stuck values, out-of-range share, spikes, machine vs fleet),
 * or its end (`cleared`). While it lasts the machine's readings stay out of drift detection and retraining.
 */
export const dataQualityMessageSchema = z.object({
  type: z.literal('data-quality'),
  workerId: z.string().min(1).max(128),
  publishedAt: z.number(),
  state: z.enum(['fault', 'cleared']),
  machineId: z.string().min(1).max(128),
  feature: featureName,
  check: z.enum(['stuck', 'out-of-range', 'spikes', 'machine-vs-fleet']),
  at: samplePoint,
  /** cleared: the sample at which the fault was raised. */
  since: z.number().optional(),
  /** fault: what the check saw (counts, value, p-value and its threshold). */
  evidence: z.record(z.string(), z.number()).optional(),
});
export type DataQualityMessage = z.infer<typeof dataQualityMessageSchema>;

export const edgeStatusMessageSchema = z.object({
  workerId: z.string().min(1).max(128),
  publishedAt: z.number(),
  ready: z.boolean(),
  modelVersion: z.string().nullable(),
  /** tfjs backend: tensorflow (tfjs-node), wasm or cpu. */
  backend: z.string(),
  validationAccuracy: nullableNumber,
  liveAccuracy: nullableNumber,
  labelled: z.number().int().min(0),
  predictedMix: classMix,
  messagesInPerSec: z.number().min(0),
  predictionsOutPerSec: z.number().min(0),
  meanBatchSize: z.number().min(0),
  latencyMs: z.object({ p50: nullableNumber, p95: nullableNumber, p99: nullableNumber }),
  queueDepth: z.number().int().min(0),
  deadLetters: z.record(z.string(), z.number().int().min(0)),
  bus: z.string(),
  registry: z.string(),
});
export type EdgeStatusMessage = z.infer<typeof edgeStatusMessageSchema>;

export { EFFICIENCY_CLASSES };
