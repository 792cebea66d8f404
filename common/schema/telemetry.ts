import { z } from 'zod';
import { EFFICIENCY_CLASSES, FEATURES, OPERATION_MODES, VALID_LIMITS, type Feature } from './features.ts';

/**
 * The telemetry contract shared by every service: topics, payload schemas, the
 * TypeScript types derived from them, and one validator that turns any MQTT
 * message into either a typed value or a rejection with a reason.
 */

/** Payloads larger than this are rejected unread (`payload_too_large`). */
export const MAX_PAYLOAD_BYTES = 4096;
/** Unknown extra fields are tolerated up to this many serialized bytes, then rejected (`unknown_fields`). */
export const MAX_EXTRA_FIELDS_BYTES = 512;

/**
 * Machine ids: 1–64 characters, no MQTT level separator or wildcard, no control
 * characters. Anything else (including `<`, `>` and quotes) is allowed, so every
 * consumer must treat ids as untrusted text.
 */
// eslint-disable-next-line no-control-regex -- control characters are exactly what the pattern excludes
export const MACHINE_ID_PATTERN = /^[^/+#\u0000-\u001f\u007f]{1,64}$/;

export const machineIdSchema = z
  .string()
  .regex(MACHINE_ID_PATTERN, 'machineId must be 1-64 characters without / + # or control characters');

export const TOPICS = {
  telemetry: (machineId: string): string => `factory/${machineId}/telemetry`,
  label: (machineId: string): string => `factory/${machineId}/label`,
  prediction: (machineId: string): string => `factory/${machineId}/prediction`,
  deadLetter: 'driftline/dead-letter',
  telemetryWildcard: 'factory/+/telemetry',
  labelWildcard: 'factory/+/label',
  predictionWildcard: 'factory/+/prediction',
} as const;

const featureShape = Object.fromEntries(
  FEATURES.map((f) => [f, z.number().min(VALID_LIMITS[f][0]).max(VALID_LIMITS[f][1])]),
) as Record<Feature, z.ZodNumber>;

export const telemetrySchema = z.object({
  machineId: machineIdSchema,
  seq: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  ts: z.number().int().min(0).max(8.64e15),
  operationMode: z.enum(OPERATION_MODES),
  ...featureShape,
});
export type Telemetry = z.infer<typeof telemetrySchema>;

export const labelSchema = z.object({
  machineId: machineIdSchema,
  seq: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  efficiency: z.enum(EFFICIENCY_CLASSES),
});
export type Label = z.infer<typeof labelSchema>;

const probability = z.number().min(0).max(1);
export const predictionSchema = z.object({
  machineId: machineIdSchema,
  seq: z.number().int().min(0),
  ts: z.number().int().min(0),
  predictedAt: z.number().int().min(0),
  efficiency: z.enum(EFFICIENCY_CLASSES),
  probabilities: z.object({ Low: probability, Medium: probability, High: probability }),
  modelVersion: z.string().min(1),
  latencyMs: z.number().min(0),
  /**
   * Present (true) when the telemetry came as a redelivery (MQTT DUP: the edge worker that took it before died
   * or lost its connection before acknowledging it): the same machineId + seq may have been predicted already.
   */
  redelivered: z.boolean().optional(),
});
export type Prediction = z.infer<typeof predictionSchema>;

/** Why a message was rejected; each reason has its own counter. */
export const REJECT_REASONS = [
  'payload_too_large',
  'not_json',
  'not_object',
  'missing_field',
  'invalid_type',
  'non_finite',
  'out_of_range',
  'invalid_value',
  'unknown_fields',
  'machine_id_mismatch',
  'invalid_topic',
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

export type Validated<T> = { ok: true; value: T } | { ok: false; reason: RejectReason; detail: string };

type Kind = 'telemetry' | 'label';
const SCHEMAS = { telemetry: telemetrySchema, label: labelSchema } as const;
const isSeq = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 0;
const isMachineId = (v: unknown): boolean => typeof v === 'string' && MACHINE_ID_PATTERN.test(v);
const isOneOf =
  (values: readonly string[]) =>
  (v: unknown): boolean =>
    typeof v === 'string' && values.includes(v);
const isOperationMode = isOneOf(OPERATION_MODES);
const isEfficiency = isOneOf(EFFICIENCY_CLASSES);

/** True only for objects the schema accepts unchanged (a subset check: false means "ask zod"). */
const FAST_CHECKS: Record<Kind, (o: Record<string, unknown>) => boolean> = {
  telemetry: (o) => {
    if (!isMachineId(o.machineId) || !isSeq(o.seq) || !isOperationMode(o.operationMode)) return false;
    const ts = o.ts;
    if (!Number.isSafeInteger(ts) || (ts as number) < 0 || (ts as number) > 8.64e15) return false;
    for (const f of FEATURES) {
      const v = o[f];
      const [lo, hi] = VALID_LIMITS[f];
      if (typeof v !== 'number' || !(v >= lo && v <= hi)) return false;
    }
    return true;
  },
  label: (o) => isMachineId(o.machineId) && isSeq(o.seq) && isEfficiency(o.efficiency),
};

/** The fields of each schema, computed once (`schema.keyof()` builds a new zod enum on every call). */
const KNOWN_FIELDS: Record<Kind, readonly string[]> = {
  telemetry: telemetrySchema.keyof().options,
  label: labelSchema.keyof().options,
};

/** Splits `factory/<machineId>/<kind>`; returns undefined for any other topic. */
export function parseTopic(topic: string): { machineId: string; kind: string } | undefined {
  const parts = topic.split('/');
  if (parts.length !== 3 || parts[0] !== 'factory') return undefined;
  const [, machineId, kind] = parts as [string, string, string];
  if (!MACHINE_ID_PATTERN.test(machineId)) return undefined;
  return { machineId, kind };
}

/**
 * Validates an object (already parsed JSON) against the telemetry or label
 * schema. Never throws: returns the typed value or a reason and a readable detail.
 * JSON cannot carry NaN or Infinity, but objects from other sources can, so they
 * are rejected as `non_finite`.
 */
export function validateObject<K extends Kind>(
  kind: K,
  input: unknown,
): Validated<z.infer<(typeof SCHEMAS)[K]>> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return { ok: false, reason: 'not_object', detail: `${kind} payload must be a JSON object` };
  }
  const schema = SCHEMAS[kind];
  const obj = input as Record<string, unknown>;
  const known = KNOWN_FIELDS[kind];
  let extras: Record<string, unknown> | undefined;
  for (const key in obj) {
    if (!Object.hasOwn(obj, key) || known.includes(key)) continue;
    extras ??= {};
    extras[key] = obj[key];
  }
  for (const key of known) {
    if (!(key in obj)) return { ok: false, reason: 'missing_field', detail: `missing field ${key}` };
    const v = obj[key];
    if (typeof v === 'number' && !Number.isFinite(v))
      return { ok: false, reason: 'non_finite', detail: `${key} must be a finite number, got ${v}` };
  }
  if (extras !== undefined) {
    const extraKeys = Object.keys(extras);
    const size = Buffer.byteLength(JSON.stringify(extras));
    if (size > MAX_EXTRA_FIELDS_BYTES) {
      return {
        ok: false,
        reason: 'unknown_fields',
        detail:
          `unknown fields ${extraKeys.slice(0, 5).join(', ')} ` +
          `take ${size} bytes (limit ${MAX_EXTRA_FIELDS_BYTES})`,
      };
    }
  }
  const known_ = Object.fromEntries(known.map((k) => [k, obj[k]]));
  // The common case — a valid message — is checked by hand; anything it does not accept goes to zod, which
  // decides and explains. FAST_CHECKS accept only what the schema accepts (tests/unit/common/schema).
  if (FAST_CHECKS[kind](known_)) return { ok: true, value: known_ as z.infer<(typeof SCHEMAS)[K]> };
  const parsed = schema.safeParse(known_);
  if (parsed.success) return { ok: true, value: parsed.data as z.infer<(typeof SCHEMAS)[K]> };
  const issue = parsed.error.issues[0];
  const path = issue?.path.join('.') || kind;
  const reason: RejectReason =
    issue?.code === 'invalid_type'
      ? 'invalid_type'
      : issue?.code === 'too_small' || issue?.code === 'too_big'
        ? 'out_of_range'
        : 'invalid_value';
  return { ok: false, reason, detail: `${path}: ${issue?.message ?? 'invalid'}` };
}

/**
 * Validates one MQTT message of `kind` arriving on `topic`: size, JSON, schema,
 * and that the payload's `machineId` matches the topic's. Never throws.
 */
export function validateMessage<K extends Kind>(
  kind: K,
  topic: string,
  payload: Uint8Array | string,
): Validated<z.infer<(typeof SCHEMAS)[K]>> {
  const size = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.byteLength;
  if (size > MAX_PAYLOAD_BYTES)
    return {
      ok: false,
      reason: 'payload_too_large',
      detail: `payload is ${size} bytes (limit ${MAX_PAYLOAD_BYTES})`,
    };
  const t = parseTopic(topic);
  if (!t || t.kind !== kind)
    return {
      ok: false,
      reason: 'invalid_topic',
      detail: `topic ${JSON.stringify(topic)} is not factory/<machineId>/${kind}`,
    };
  let data: unknown;
  try {
    // A Buffer (what MQTT clients hand over) is decoded in place; any other Uint8Array is wrapped, not copied.
    const text =
      typeof payload === 'string'
        ? payload
        : Buffer.isBuffer(payload)
          ? payload.toString('utf8')
          : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8');
    data = JSON.parse(text);
  } catch (err) {
    return { ok: false, reason: 'not_json', detail: `payload is not JSON: ${(err as Error).message}` };
  }
  const result = validateObject(kind, data);
  if (result.ok && result.value.machineId !== t.machineId) {
    return {
      ok: false,
      reason: 'machine_id_mismatch',
      detail:
        `payload machineId ${JSON.stringify(result.value.machineId)} ` +
        `does not match topic machine ${JSON.stringify(t.machineId)}`,
    };
  }
  return result;
}
