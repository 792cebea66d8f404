import { z } from 'zod';
import { FEATURES } from '../schema/features.ts';

/**
 * Events on the bus between the edge worker and the retrainer, as zod schemas
 * and the TypeScript types derived from them:
 *
 * - `retrain-request` on `BUS_TOPICS.retrainRequests`, published by the edge
 *   worker once per drift episode (see `common/drift/episode.ts`);
 * - `model-promoted`, `model-rejected`, `model-rolled-back` on
 *   `BUS_TOPICS.modelEvents`, published by the retrainer.
 *
 * Every consumer validates what it receives with {@link parseEvent} (or the
 * narrower parsers), which never throws. Unknown extra keys are stripped.
 */

/** Epoch milliseconds (same bounds as telemetry `ts`). */
const epochMs = z.number().int().min(0).max(8.64e15);
/** A position on a sample clock (count of samples seen by one worker). */
const sampleIndex = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const probability = z.number().min(0).max(1);
/** Names, versions and ids: printable text without control characters. */
// eslint-disable-next-line no-control-regex -- the pattern exists to exclude control characters
const NO_CONTROL = /^[^\u0000-\u001f\u007f]+$/;
const label = (max: number): z.ZodString =>
  z.string().min(1).max(max).regex(NO_CONTROL, 'must not contain control characters');

export const modelNameSchema = label(128);
export const modelVersionSchema = label(128);
export const correlationIdSchema = label(128);
/** Idempotency key of a retrain request: lowercase hex digest (see `retrainRequestId` in `common/drift/episode.ts`). */
export const requestIdSchema = z
  .string()
  .regex(/^[0-9a-f]{16,128}$/, 'requestId must be 16-128 lowercase hex digits');

export const DRIFT_KINDS = ['covariate', 'concept'] as const;
export type DriftKind = (typeof DRIFT_KINDS)[number];

/** Per-feature evidence of a covariate drift alarm: the KS statistic and p-value of the alarming window. */
export const featureEvidenceSchema = z.object({
  feature: z.enum(FEATURES),
  statistic: z.number().min(0).max(1),
  pvalue: probability,
});
export type FeatureEvidence = z.infer<typeof featureEvidenceSchema>;

/**
 * Which data the retrainer should train on: everything from the drift onset
 * (the start of the first window of the alarming streak, or of the labelled
 * window for concept drift) up to the alarm. `fromTs`/`toTs` always; `fromSeq`/`toSeq`
 * when the evidence came from one machine (per-machine groups, where seq is
 * meaningful); `sampleFrom`/`sampleTo` on the worker's sample clock.
 */
export const dataWindowSchema = z
  .object({
    fromTs: epochMs,
    toTs: epochMs,
    fromSeq: z.number().int().min(0).optional(),
    toSeq: z.number().int().min(0).optional(),
    sampleFrom: sampleIndex.optional(),
    sampleTo: sampleIndex.optional(),
  })
  .refine((w) => w.fromTs <= w.toTs, {
    message: 'window.fromTs must not be after window.toTs',
    path: ['fromTs'],
  })
  .refine((w) => w.sampleFrom === undefined || w.sampleTo === undefined || w.sampleFrom <= w.sampleTo, {
    message: 'window.sampleFrom must not be after window.sampleTo',
    path: ['sampleFrom'],
  })
  .refine((w) => w.fromSeq === undefined || w.toSeq === undefined || w.fromSeq <= w.toSeq, {
    message: 'window.fromSeq must not be after window.toSeq',
    path: ['fromSeq'],
  });
export type DataWindow = z.infer<typeof dataWindowSchema>;

/** A request to retrain `modelName`, whose champion `championVersion` no longer fits the data. */
export const retrainRequestSchema = z
  .object({
    type: z.literal('retrain-request'),
    /** Idempotency key: the same drift episode always yields the same id; the retrainer drops repeats. */
    requestId: requestIdSchema,
    /** Carried into every log line and model event caused by this request. */
    correlationId: correlationIdSchema,
    modelName: modelNameSchema,
    championVersion: modelVersionSchema,
    kind: z.enum(DRIFT_KINDS),
    requestedAt: epochMs,
    /** Sample clock of the worker when the alarm fired. */
    sampleIndex: sampleIndex.optional(),
    /** Drifted features, most significant first; empty for concept drift. */
    features: z.array(featureEvidenceSchema).max(FEATURES.length),
    window: dataWindowSchema,
    /** Accuracy on the last labelled window, or null when no labels have arrived yet. */
    liveAccuracy: probability.nullable(),
    /** The champion's validation accuracy (from its artifact metadata), or null when unknown. */
    validationAccuracy: probability.nullable(),
    /** Detector group the alarm came from: `all` or a machine id. */
    groupKey: label(128),
    /**
     * Two-stage concept retraining (`retrainer/src/stages.ts`): absent, the retrainer decides (a concept
     * request runs stage 1 on few labels, then stage 2); 2, a single training on at least `minSamples`
     * (the retrainer's stage-2 follow-up, or the edge's re-request after a rejection).
     */
    stage: z.literal(2).optional(),
    /** Fewest post-drift samples to train on (a re-request after a rejected concept retrain asks for more). */
    minSamples: z.number().int().min(1).max(10_000_000).optional(),
  })
  .refine((r) => r.kind === 'concept' || r.features.length > 0, {
    message: 'a covariate retrain request names at least one feature',
    path: ['features'],
  })
  .refine((r) => new Set(r.features.map((f) => f.feature)).size === r.features.length, {
    message: 'features must not repeat',
    path: ['features'],
  });
export type RetrainRequest = z.infer<typeof retrainRequestSchema>;

/** Evaluation summary carried by model events (a subset of `EvalMetrics`). */
export const modelMetricsSchema = z.object({
  samples: z.number().int().min(0),
  accuracy: probability,
  macroF1: probability,
  logLoss: z.number().min(0).optional(),
});
export type ModelMetrics = z.infer<typeof modelMetricsSchema>;

const modelEventBase = {
  /** Two-stage concept retraining: the stage this outcome ended (1: early model on few labels, 2: the follow-up). */
  stage: z.union([z.literal(1), z.literal(2)]).optional(),
  /** Set on a stage-1 outcome: the stage-2 request the retrainer queued after it (same correlation id). */
  followUpRequestId: requestIdSchema.optional(),
  /** Post-drift samples the challenger was trained, validated and held out on (absent: no training). */
  trainedSamples: z.number().int().min(0).optional(),
  modelName: modelNameSchema,
  correlationId: correlationIdSchema,
  /** The retrain request that caused it; null for operator actions and the bootstrap model. */
  requestId: requestIdSchema.nullable(),
  /** Human-readable why, e.g. `candidate macro-F1 0.97 >= champion 0.91 on the drift window`. */
  reason: z.string().min(1).max(1000),
  at: epochMs,
};

/** A candidate became champion. */
export const modelPromotedSchema = z.object({
  type: z.literal('model-promoted'),
  ...modelEventBase,
  version: modelVersionSchema,
  /** The champion it replaced; null for the first champion. */
  previousVersion: modelVersionSchema.nullable(),
  /** The new champion's metrics on the evaluation set. */
  metrics: modelMetricsSchema,
  /** The replaced champion's metrics on the same evaluation set, when it was evaluated. */
  previousMetrics: modelMetricsSchema.optional(),
});

/** A candidate was trained but did not beat the champion; the champion stays. */
export const modelRejectedSchema = z.object({
  type: z.literal('model-rejected'),
  ...modelEventBase,
  /** The rejected candidate's version (registered or provisional). */
  version: modelVersionSchema,
  championVersion: modelVersionSchema,
  metrics: modelMetricsSchema,
  championMetrics: modelMetricsSchema.optional(),
});

/** A promoted champion was replaced by an earlier version (failed canary, operator). */
export const modelRolledBackSchema = z.object({
  type: z.literal('model-rolled-back'),
  ...modelEventBase,
  /** The version now serving again. */
  version: modelVersionSchema,
  /** The version that was rolled back. */
  fromVersion: modelVersionSchema,
  metrics: modelMetricsSchema.optional(),
});

export const modelEventSchema = z.discriminatedUnion('type', [
  modelPromotedSchema,
  modelRejectedSchema,
  modelRolledBackSchema,
]);
export type ModelPromoted = z.infer<typeof modelPromotedSchema>;
export type ModelRejected = z.infer<typeof modelRejectedSchema>;
export type ModelRolledBack = z.infer<typeof modelRolledBackSchema>;
export type ModelEvent = z.infer<typeof modelEventSchema>;

export const MODEL_EVENT_TYPES = ['model-promoted', 'model-rejected', 'model-rolled-back'] as const;
export const EVENT_TYPES = ['retrain-request', ...MODEL_EVENT_TYPES] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** Every event on the Driftline bus topics above. */
export type DriftlineEvent = RetrainRequest | ModelEvent;

export type ParsedEvent<T> = { ok: true; value: T } | { ok: false; reason: string };

function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((i) => `${i.path.length > 0 ? i.path.join('.') : '(root)'}: ${i.message}`)
    .join('; ');
}

function safe<T>(schema: z.ZodType<T>, value: unknown): ParsedEvent<T> {
  try {
    const r = schema.safeParse(value);
    return r.success ? { ok: true, value: r.data } : { ok: false, reason: describeIssues(r.error) };
  } catch (err) {
    // A hostile object (throwing getter, revoked proxy) must not take the consumer down.
    return { ok: false, reason: `unreadable event: ${err instanceof Error ? err.message : String(err)}` };
  }
}

function typeOf(value: unknown): unknown {
  try {
    return (value as { type?: unknown }).type;
  } catch {
    return undefined;
  }
}

/** Validates a retrain request. Never throws. */
export function parseRetrainRequest(value: unknown): ParsedEvent<RetrainRequest> {
  return safe(retrainRequestSchema, value);
}

/** Validates a model event (promoted, rejected, rolled back). Never throws. */
export function parseModelEvent(value: unknown): ParsedEvent<ModelEvent> {
  return safe(modelEventSchema, value);
}

/**
 * Validates any Driftline bus event, dispatching on `type`. Never throws:
 * returns the typed event or a readable reason (unknown type, first issues).
 */
export function parseEvent(value: unknown): ParsedEvent<DriftlineEvent> {
  try {
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      return { ok: false, reason: 'event must be a JSON object' };
  } catch (err) {
    return { ok: false, reason: `unreadable event: ${err instanceof Error ? err.message : String(err)}` };
  }
  const type = typeOf(value);
  if (type === 'retrain-request') return parseRetrainRequest(value);
  if (typeof type === 'string' && (MODEL_EVENT_TYPES as readonly string[]).includes(type))
    return parseModelEvent(value);
  return {
    ok: false,
    reason: `unknown event type ${typeof type === 'string' ? JSON.stringify(type.slice(0, 64)) : typeof type}`,
  };
}
