import type http from 'node:http';
import type { Registry } from 'prom-client';
import { z } from 'zod';
import { describeError } from '../../common/errors.ts';
import {
  startOpsServer,
  readBody,
  sendJson,
  type OpsServer,
  type Route,
} from '../../common/http/ops-server.ts';
import { silentLogger, type Logger } from '../../common/logging/logger.ts';
import type { FeatureRow } from '../../common/model/types.ts';
import { FEATURES, OPERATION_MODES, VALID_LIMITS, type Feature } from '../../common/schema/features.ts';
import { machineIdSchema, type RejectReason } from '../../common/schema/telemetry.ts';
import type { ModelHolder } from './model-holder.ts';

/**
 * The worker's HTTP side: `POST /predict` plus the shared `/healthz`,
 * `/readyz` and `/metrics`.
 *
 * `POST /predict` takes one row or an array of rows. A row is the nine
 * features and `operationMode`, with optional `machineId` (echoed back) and
 * `seq`/`ts` (accepted and ignored, so a telemetry message can be posted as is).
 * Answers: 200 with the predictions; 400 naming the reason, the field and the
 * row index of the first bad row; 413 when the body or the row count is too
 * large; 503 when no model is loaded yet.
 */

/** Default maximum rows per request. */
export const DEFAULT_MAX_ROWS = 1000;
/** Default maximum body size, bytes. */
export const DEFAULT_MAX_BODY_BYTES = 1_048_576;

const OPTIONAL_FIELDS = ['machineId', 'seq', 'ts'] as const;
const REQUIRED_FIELDS = ['operationMode', ...FEATURES] as const;
const ALLOWED = new Set<string>([...REQUIRED_FIELDS, ...OPTIONAL_FIELDS]);

const rowSchema = z.object({
  machineId: machineIdSchema.optional(),
  seq: z.number().int().min(0).optional(),
  ts: z.number().int().min(0).optional(),
  operationMode: z.enum(OPERATION_MODES),
  ...(Object.fromEntries(
    FEATURES.map((f) => [f, z.number().min(VALID_LIMITS[f][0]).max(VALID_LIMITS[f][1])]),
  ) as Record<Feature, z.ZodNumber>),
});

/** One row accepted by `/predict`. */
export type PredictRow = FeatureRow & { machineId?: string };

/** Why a row was refused. */
export interface RowError {
  reason: RejectReason | 'empty';
  /** The offending field, when there is one. */
  field?: string;
  detail: string;
}

/** Validates one `/predict` row; never throws. */
export function validatePredictRow(
  input: unknown,
): { ok: true; row: PredictRow } | { ok: false; error: RowError } {
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    return { ok: false, error: { reason: 'not_object', detail: 'a row must be a JSON object' } };
  const obj = input as Record<string, unknown>;
  for (const key of REQUIRED_FIELDS) {
    if (!(key in obj))
      return { ok: false, error: { reason: 'missing_field', field: key, detail: `missing field ${key}` } };
  }
  const unknown = Object.keys(obj).find((k) => !ALLOWED.has(k));
  if (unknown !== undefined) {
    return {
      ok: false,
      error: {
        reason: 'unknown_fields',
        field: unknown,
        detail:
          `unknown field ${JSON.stringify(unknown)}; allowed: ` +
          `${[...REQUIRED_FIELDS, ...OPTIONAL_FIELDS].join(', ')}`,
      },
    };
  }
  for (const [key, v] of Object.entries(obj)) {
    if (typeof v === 'number' && !Number.isFinite(v))
      return {
        ok: false,
        error: { reason: 'non_finite', field: key, detail: `${key} must be a finite number` },
      };
  }
  const parsed = rowSchema.safeParse(obj);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.join('.') || undefined;
    const reason: RejectReason =
      issue?.code === 'invalid_type'
        ? 'invalid_type'
        : issue?.code === 'too_small' || issue?.code === 'too_big'
          ? 'out_of_range'
          : 'invalid_value';
    return {
      ok: false,
      error: {
        reason,
        ...(field ? { field } : {}),
        detail: `${field ?? 'row'}: ${issue?.message ?? 'invalid'}`,
      },
    };
  }
  const { seq: _seq, ts: _ts, ...row } = parsed.data;
  return { ok: true, row: row as PredictRow };
}

export interface PredictRouteOptions {
  holder: ModelHolder;
  logger?: Logger;
  /** Rows per request, at most; more gives 413. Default 1000. */
  maxRows?: number;
  /** Body size, at most, bytes; more gives 413. Default 1 MiB. */
  maxBodyBytes?: number;
}

/** The `POST /predict` route for the shared ops server. */
export function predictRoute(options: PredictRouteOptions): Route {
  const maxRows = options.maxRows ?? DEFAULT_MAX_ROWS;
  const maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const logger = options.logger ?? silentLogger();
  return async (req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<boolean> => {
    if (url.pathname !== '/predict') return false;
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      sendJson(res, 405, { error: 'use POST /predict with a JSON row or array of rows' });
      return true;
    }
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBody) {
      // The unread body is discarded, within bounds, or the connection closed (common/http/body.ts).
      sendJson(res, 413, { error: `request body over ${maxBody} bytes`, reason: 'payload_too_large' });
      return true;
    }
    let body: Buffer;
    try {
      body = await readBody(req, maxBody);
    } catch (err) {
      const status = (err as { status?: number }).status ?? 400;
      sendJson(res, status, {
        error: (err as Error).message,
        reason: status === 413 ? 'payload_too_large' : 'bad_request',
      });
      return true;
    }
    let data: unknown;
    try {
      data = JSON.parse(body.toString('utf8'));
    } catch (err) {
      sendJson(res, 400, { error: 'body is not JSON', reason: 'not_json', detail: describeError(err) });
      return true;
    }
    const many = Array.isArray(data);
    const inputs: unknown[] = many ? (data as unknown[]) : [data];
    if (inputs.length === 0) {
      sendJson(res, 400, { error: 'no rows to predict', reason: 'empty' });
      return true;
    }
    if (inputs.length > maxRows) {
      sendJson(res, 413, {
        error: `${inputs.length} rows in one request (limit ${maxRows})`,
        reason: 'too_many_rows',
      });
      return true;
    }
    const rows: PredictRow[] = [];
    for (let i = 0; i < inputs.length; i++) {
      const v = validatePredictRow(inputs[i]);
      if (!v.ok) {
        sendJson(res, 400, {
          error: `invalid row${many ? ` ${i}` : ''}: ${v.error.detail}`,
          reason: v.error.reason,
          field: v.error.field ?? null,
          ...(many ? { index: i } : {}),
        });
        return true;
      }
      rows.push(v.row);
    }
    const lease = options.holder.acquire();
    if (!lease) {
      res.setHeader('retry-after', '5');
      sendJson(res, 503, { error: 'no model loaded yet', reason: 'no_model' });
      return true;
    }
    let results;
    try {
      results = lease.model.predict(rows);
    } catch (err) {
      logger.error('predict failed', { err: describeError(err), rows: rows.length });
      sendJson(res, 500, { error: 'prediction failed', detail: describeError(err) });
      return true;
    } finally {
      lease.release();
    }
    const modelVersion = lease.version;
    const out = results.map((r, i) => ({
      ...(rows[i]?.machineId !== undefined ? { machineId: rows[i]?.machineId } : {}),
      efficiency: r.efficiency,
      probabilities: r.probabilities,
    }));
    sendJson(
      res,
      200,
      many ? { modelVersion, count: out.length, predictions: out } : { modelVersion, ...out[0] },
    );
    return true;
  };
}

export interface EdgeHttpOptions extends PredictRouteOptions {
  /** Interface; default 127.0.0.1. */
  host?: string;
  /** Port; 0 picks a free one. */
  port: number;
  registry: Registry;
  ready: () => { ready: boolean; detail?: Record<string, unknown> };
  health?: () => Record<string, unknown>;
}

export type EdgeHttp = OpsServer;

/** Starts `/predict`, `/healthz`, `/readyz` and `/metrics`. */
export function startEdgeHttp(options: EdgeHttpOptions): Promise<EdgeHttp> {
  return startOpsServer({
    port: options.port,
    host: options.host ?? '127.0.0.1',
    registry: options.registry,
    ready: options.ready,
    ...(options.health ? { health: options.health } : {}),
    routes: [predictRoute(options)],
  });
}
