import type { RegisterInfo } from './types.ts';

/**
 * Tag keys the registries reserve (prefix `driftline.`), the same in the
 * directory registry's version.json and in MLflow model-version tags, so a
 * dashboard reads both alike.
 */
export const TAG = {
  correlationId: 'driftline.correlation_id',
  requestId: 'driftline.request_id',
  source: 'driftline.source',
} as const;

/** Prefix of every registry-owned tag; callers' tags with it are dropped at registration. */
export const RESERVED_PREFIX = 'driftline.';

/** The tags recorded at registration: the caller's tags plus correlation id, request id and source. */
export function registrationTags(info: RegisterInfo): Record<string, string> {
  const tags: Record<string, string> = {};
  for (const [key, value] of Object.entries(info.tags ?? {})) {
    if (key.startsWith(RESERVED_PREFIX)) continue;
    tags[key] = value;
  }
  tags[TAG.correlationId] = info.correlationId;
  if (info.requestId !== undefined) tags[TAG.requestId] = info.requestId;
  if (info.source !== undefined) tags[TAG.source] = info.source;
  return tags;
}

/** Drops non-finite metric values (JSON and MLflow cannot carry NaN/Infinity). */
export function finiteMetrics(metrics: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, value] of Object.entries(metrics)) if (Number.isFinite(value)) out[key] = value;
  return out;
}
