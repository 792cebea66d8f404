import { ArtifactError, ConfigError, isRetriable } from '../errors.ts';
import { silentLogger, type Logger } from '../logging/logger.ts';
import { retry, type RetryOptions } from '../util/retry.ts';
import type { z } from 'zod';
import {
  errorFromFetchFailure,
  errorFromResponse,
  MlflowAlreadyExistsError,
  MlflowMalformedResponseError,
  MlflowNotFoundError,
  MlflowResponseTooLargeError,
  safeToResend,
} from './errors.ts';
import { responses } from './schemas.ts';
import type {
  MlflowExperiment,
  MlflowListArtifactsResponse,
  MlflowMetric,
  MlflowModelVersion,
  MlflowParam,
  MlflowRegisteredModel,
  MlflowRun,
  MlflowRunInfo,
  MlflowRunStatus,
  MlflowSearchModelVersionsResponse,
  MlflowTag,
} from './types.ts';

/**
 * A small typed client for the MLflow tracking server's REST API (2.0): the
 * experiments, runs, artifact-proxy, registered-model, model-version and alias
 * calls Driftline needs. Endpoints and payloads were checked against MLflow
 * 3.17's `mlflow/server/handlers.py` and protos, and exercised by
 * tests/external/mlflow.test.ts against a real server.
 *
 * Every call has a deadline (`AbortSignal.timeout`) and goes through
 * `common/util/retry.ts`: retriable failures (network, 5xx, 429, timeouts) are
 * retried; calls that create something (a run, a model version) are resent only
 * when the server surely did not act (429/503, connection refused), so a retry
 * never registers a version twice.
 *
 * The server is not trusted: every answer is read as a stream and the transfer
 * aborted past `maxResponseBytes` (JSON) or `maxArtifactBytes` (artifact
 * downloads), and every JSON answer is checked against its zod schema
 * (`schemas.ts`) before anything reads it.
 */

/** Options of {@link MlflowClient}. */
export interface MlflowClientOptions {
  /** Tracking server base URL (`http://127.0.0.1:5055`). Default: `MLFLOW_TRACKING_URI`. */
  trackingUri?: string;
  /** Basic-auth user. Default: `MLFLOW_TRACKING_USERNAME`. */
  username?: string;
  /** Basic-auth password. Default: `MLFLOW_TRACKING_PASSWORD`. */
  password?: string;
  /** Bearer token (wins over basic auth). Default: `MLFLOW_TRACKING_TOKEN`. */
  token?: string;
  /** The `fetch` to use (tests inject a fake). Default: the global `fetch`. */
  fetch?: typeof fetch;
  /** Deadline of one JSON API request, ms. Default 30 000. */
  timeoutMs?: number;
  /** Deadline of one artifact upload/download, ms. Default 120 000. */
  artifactTimeoutMs?: number;
  /** Largest JSON answer read, bytes; a bigger one is aborted. Default 16 MiB. */
  maxResponseBytes?: number;
  /** Largest artifact file downloaded, bytes; a bigger one is aborted. Default 256 MiB. */
  maxArtifactBytes?: number;
  /** Retry policy for retriable failures (attempts, delays). Default: 5 attempts from 200 ms. */
  retry?: Omit<RetryOptions, 'shouldRetry' | 'onRetry'>;
  /** Logs retries at warn. Default: silent. */
  logger?: Logger;
  /** Environment to read the `MLFLOW_*` defaults from. Default: `process.env`. */
  env?: NodeJS.ProcessEnv;
}

/** Query-string values: repeated keys for arrays, undefined dropped. */
type Query = Record<string, string | number | readonly string[] | undefined>;

/** How one request is sent. */
interface RequestSpec {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Path below the base URL, starting with `/api/2.0/`. */
  path: string;
  query?: Query;
  /** Sent as JSON. */
  json?: unknown;
  /** Sent as `application/octet-stream`. */
  bytes?: Uint8Array;
  /** False for calls that create something: resent only when the server surely did not act. Default true. */
  idempotent?: boolean;
  /** Deadline override, ms. */
  timeoutMs?: number;
  /** Size limit of the answer override, bytes. */
  maxBytes?: number;
}

/** Bytes of a non-2xx answer kept for the error message; the rest is not read. */
const ERROR_BODY_BYTES = 64 * 1024;

/**
 * Reads a response body up to `limit` bytes. Past it: with `truncate`, stops
 * and keeps the first `limit` bytes; otherwise throws `tooLarge()`. Either way
 * the rest of the transfer is cancelled, never buffered.
 */
async function readCapped(
  body: ReadableStream<Uint8Array> | null,
  limit: number,
  options: { truncate: boolean; tooLarge: (seen: number) => Error },
): Promise<Uint8Array> {
  if (body === null) return new Uint8Array(0);
  const reader = body.getReader();
  const parts: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > limit) {
        await reader.cancel().catch(() => undefined);
        if (!options.truncate) throw options.tooLarge(total);
        parts.push(value.subarray(0, value.byteLength - (total - limit)));
        total = limit;
        break;
      }
      parts.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

const API = '/api/2.0/mlflow';
/** Prefix of MLflow's artifact proxy (`mlflow server --serve-artifacts`). */
export const ARTIFACT_PROXY_PREFIX = '/api/2.0/mlflow-artifacts/artifacts';

/** Encodes an artifact path segment by segment, keeping the `/` separators. */
export function encodeArtifactPath(relPath: string): string {
  return relPath
    .split('/')
    .filter((segment) => segment !== '')
    .map((segment) => {
      if (segment === '.' || segment === '..')
        throw new ArtifactError(`artifact path ${JSON.stringify(relPath)} must not contain '.' or '..'`);
      return encodeURIComponent(segment);
    })
    .join('/');
}

/**
 * The artifact-proxy path (below `/api/2.0/mlflow-artifacts/artifacts/`) of an
 * artifact URI the server hands out: `mlflow-artifacts:/1/<run>/artifacts`,
 * `mlflow-artifacts://host:port/1/<run>/artifacts`, or an
 * `http(s)://…/api/2.0/mlflow-artifacts/artifacts/…` URL. Throws `ArtifactError`
 * for any other scheme (the server does not proxy artifacts).
 */
export function proxyPathFromUri(uri: string): string {
  if (uri.startsWith('mlflow-artifacts:')) {
    let rest = uri.slice('mlflow-artifacts:'.length);
    if (rest.startsWith('//')) rest = rest.slice(2).replace(/^[^/]*/, '');
    return rest.replace(/^\/+/, '').replace(/\/+$/, '');
  }
  if (/^https?:\/\//.test(uri)) {
    const at = uri.indexOf(`${ARTIFACT_PROXY_PREFIX}/`);
    if (at !== -1) return uri.slice(at + ARTIFACT_PROXY_PREFIX.length + 1).replace(/\/+$/, '');
  }
  throw new ArtifactError(
    `artifact location ${JSON.stringify(uri)} is not served through the MLflow artifact ` +
      `proxy; run the server with --serve-artifacts (scripts/services/mlflow.sh does)`,
  );
}

function toTags(tags: Record<string, string> | undefined): MlflowTag[] | undefined {
  return tags === undefined ? undefined : Object.entries(tags).map(([key, value]) => ({ key, value }));
}

/** A typed MLflow REST client. See the module comment. */
export class MlflowClient {
  /** Base URL without a trailing slash. */
  readonly baseUrl: string;
  private readonly fetchFn: typeof fetch;
  private readonly authorization: string | undefined;
  private readonly timeoutMs: number;
  private readonly artifactTimeoutMs: number;
  private readonly maxResponseBytes: number;
  private readonly maxArtifactBytes: number;
  private readonly retryOptions: Omit<RetryOptions, 'shouldRetry' | 'onRetry'>;
  private readonly logger: Logger;

  constructor(options: MlflowClientOptions = {}) {
    const env = options.env ?? process.env;
    const uri = options.trackingUri ?? env.MLFLOW_TRACKING_URI;
    if (!uri)
      throw new ConfigError(
        'MLflow tracking URI is not set: pass trackingUri or set MLFLOW_TRACKING_URI (e.g. http://127.0.0.1:5055)',
      );
    let parsed: URL;
    try {
      parsed = new URL(uri);
    } catch {
      throw new ConfigError(
        `MLFLOW_TRACKING_URI=${JSON.stringify(uri)} is not a URL (expected http(s)://host:port)`,
      );
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new ConfigError(
        `MLFLOW_TRACKING_URI=${JSON.stringify(uri)}: only http(s) ` +
          `tracking servers are supported (not file stores or databricks)`,
      );
    }
    this.baseUrl = uri.replace(/\/+$/, '');
    this.fetchFn = options.fetch ?? globalThis.fetch;
    const token = options.token ?? env.MLFLOW_TRACKING_TOKEN;
    const username = options.username ?? env.MLFLOW_TRACKING_USERNAME;
    const password = options.password ?? env.MLFLOW_TRACKING_PASSWORD;
    if (token) this.authorization = `Bearer ${token}`;
    else if (username)
      this.authorization = `Basic ${Buffer.from(`${username}:${password ?? ''}`).toString('base64')}`;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.artifactTimeoutMs = options.artifactTimeoutMs ?? 120_000;
    this.maxResponseBytes = options.maxResponseBytes ?? 16 * 1024 * 1024;
    this.maxArtifactBytes = options.maxArtifactBytes ?? 256 * 1024 * 1024;
    this.retryOptions = { attempts: 5, initialDelayMs: 200, maxDelayMs: 5000, ...options.retry };
    this.logger = options.logger ?? silentLogger();
  }

  // ---- transport ---------------------------------------------------------

  private url(path: string, query?: Query): string {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value === undefined) continue;
      if (Array.isArray(value)) for (const v of value as readonly string[]) params.append(key, v);
      else params.append(key, String(value));
    }
    const qs = params.toString();
    return `${this.baseUrl}${path}${qs ? `?${qs}` : ''}`;
  }

  /** One attempt: the response body on 2xx, a typed error otherwise. */
  private async once(spec: RequestSpec): Promise<Uint8Array> {
    const endpoint = `${spec.method} ${spec.path}`;
    const timeoutMs = spec.timeoutMs ?? this.timeoutMs;
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.authorization) headers.authorization = this.authorization;
    let body: Uint8Array<ArrayBuffer> | string | undefined;
    if (spec.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(spec.json);
    } else if (spec.bytes !== undefined) {
      headers['content-type'] = 'application/octet-stream';
      // A copy backed by a plain ArrayBuffer (what `BodyInit` accepts).
      body = new Uint8Array(spec.bytes);
    }
    let response: Response;
    let payload: Uint8Array;
    const limit = spec.maxBytes ?? this.maxResponseBytes;
    const abort = new AbortController();
    try {
      response = await this.fetchFn(this.url(spec.path, spec.query), {
        method: spec.method,
        headers,
        ...(body !== undefined ? { body } : {}),
        signal: AbortSignal.any([AbortSignal.timeout(timeoutMs), abort.signal]),
      });
      const declared = Number(response.headers.get('content-length') ?? NaN);
      if (response.ok && Number.isFinite(declared) && declared > limit) {
        abort.abort();
        throw new MlflowResponseTooLargeError(endpoint, limit, 0);
      }
      payload = await readCapped(response.body, response.ok ? limit : ERROR_BODY_BYTES, {
        truncate: !response.ok,
        tooLarge: (seen) => new MlflowResponseTooLargeError(endpoint, limit, seen),
      });
    } catch (err) {
      abort.abort();
      throw errorFromFetchFailure(err, endpoint, this.baseUrl, timeoutMs);
    }
    if (!response.ok)
      throw errorFromResponse(response.status, Buffer.from(payload).toString('utf8'), endpoint);
    return payload;
  }

  /** Sends with retries; returns the raw body. */
  private async send(spec: RequestSpec): Promise<Uint8Array> {
    const idempotent = spec.idempotent ?? true;
    return retry(() => this.once(spec), {
      ...this.retryOptions,
      shouldRetry: idempotent ? isRetriable : safeToResend,
      onRetry: (err, attempt, delayMs) =>
        this.logger.warn('MLflow request failed; retrying', {
          endpoint: `${spec.method} ${spec.path}`,
          attempt,
          delayMs,
          err: String(err),
        }),
    });
  }

  /**
   * Sends with retries; parses the JSON answer (`{}` for an empty body) and
   * checks it against `schema`. Not JSON: a retriable transport error (a
   * proxy's page); JSON of the wrong shape: {@link MlflowMalformedResponseError}.
   */
  private async request<S extends z.ZodType>(spec: RequestSpec, schema: S): Promise<z.infer<S>> {
    const endpoint = `${spec.method} ${spec.path}`;
    const payload = await this.send(spec);
    let json: unknown = {};
    if (payload.byteLength > 0) {
      const text = Buffer.from(payload).toString('utf8');
      try {
        json = JSON.parse(text);
      } catch {
        throw errorFromResponse(502, `non-JSON answer: ${text.slice(0, 200)}`, endpoint);
      }
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success)
      throw new MlflowMalformedResponseError(
        endpoint,
        parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`),
      );
    return parsed.data;
  }

  // ---- experiments -------------------------------------------------------

  /** `GET /api/2.0/mlflow/experiments/get-by-name`; undefined when it does not exist. */
  async getExperimentByName(name: string): Promise<MlflowExperiment | undefined> {
    try {
      const res = await this.request(
        {
          method: 'GET',
          path: `${API}/experiments/get-by-name`,
          query: { experiment_name: name },
        },
        responses.experiment,
      );
      return res.experiment;
    } catch (err) {
      if (err instanceof MlflowNotFoundError) return undefined;
      throw err;
    }
  }

  /**
   * `POST /api/2.0/mlflow/experiments/create`; returns the new experiment id. Throws
   * `MlflowAlreadyExistsError` when taken.
   */
  async createExperiment(
    name: string,
    options: { artifactLocation?: string; tags?: Record<string, string> } = {},
  ): Promise<string> {
    const res = await this.request(
      {
        method: 'POST',
        path: `${API}/experiments/create`,
        json: { name, artifact_location: options.artifactLocation, tags: toTags(options.tags) },
      },
      responses.experimentId,
    );
    return res.experiment_id;
  }

  /** The id of experiment `name`, created when missing (safe against a concurrent creator). */
  async getOrCreateExperiment(name: string): Promise<string> {
    const existing = await this.getExperimentByName(name);
    if (existing) return existing.experiment_id;
    try {
      return await this.createExperiment(name);
    } catch (err) {
      if (!(err instanceof MlflowAlreadyExistsError)) throw err;
      const raced = await this.getExperimentByName(name);
      if (!raced) throw err;
      return raced.experiment_id;
    }
  }

  // ---- runs --------------------------------------------------------------

  /** `POST /api/2.0/mlflow/runs/create`. */
  async createRun(options: {
    experimentId: string;
    runName?: string;
    startTime?: number;
    tags?: Record<string, string>;
  }): Promise<MlflowRun> {
    const res = await this.request(
      {
        method: 'POST',
        path: `${API}/runs/create`,
        json: {
          experiment_id: options.experimentId,
          run_name: options.runName,
          start_time: options.startTime ?? Date.now(),
          tags: toTags(options.tags),
        },
        idempotent: false,
      },
      responses.run,
    );
    return res.run;
  }

  /** `POST /api/2.0/mlflow/runs/update`: status (terminate with FINISHED/FAILED/KILLED), end time, name. */
  async updateRun(options: {
    runId: string;
    status?: MlflowRunStatus;
    endTime?: number;
    runName?: string;
  }): Promise<MlflowRunInfo> {
    const res = await this.request(
      {
        method: 'POST',
        path: `${API}/runs/update`,
        json: {
          run_id: options.runId,
          status: options.status,
          end_time: options.endTime,
          run_name: options.runName,
        },
      },
      responses.runInfo,
    );
    return res.run_info;
  }

  /**
   * `POST /api/2.0/mlflow/runs/log-batch`. Server limits per call: 1000 metrics,
   * 100 params, 100 tags (see `MlflowRegistry.logMetrics`, which chunks).
   */
  async logBatch(
    runId: string,
    batch: { metrics?: MlflowMetric[]; params?: MlflowParam[]; tags?: MlflowTag[] },
  ): Promise<void> {
    await this.request(
      {
        method: 'POST',
        path: `${API}/runs/log-batch`,
        json: {
          run_id: runId,
          metrics: batch.metrics ?? [],
          params: batch.params ?? [],
          tags: batch.tags ?? [],
        },
      },
      responses.empty,
    );
  }

  /** `POST /api/2.0/mlflow/runs/set-tag`. */
  async setTag(runId: string, key: string, value: string): Promise<void> {
    await this.request(
      { method: 'POST', path: `${API}/runs/set-tag`, json: { run_id: runId, key, value } },
      responses.empty,
    );
  }

  /** `GET /api/2.0/mlflow/runs/get`. Throws `MlflowNotFoundError` for an unknown run. */
  async getRun(runId: string): Promise<MlflowRun> {
    const res = await this.request(
      {
        method: 'GET',
        path: `${API}/runs/get`,
        query: { run_id: runId },
      },
      responses.run,
    );
    return res.run;
  }

  /** `GET /api/2.0/mlflow/metrics/get-history`: every logged value of one metric (all steps, all pages). */
  async getMetricHistory(runId: string, metricKey: string): Promise<MlflowMetric[]> {
    const out: MlflowMetric[] = [];
    let pageToken: string | undefined;
    do {
      const page = await this.request(
        {
          method: 'GET',
          path: `${API}/metrics/get-history`,
          query: { run_id: runId, metric_key: metricKey, page_token: pageToken },
        },
        responses.metricHistory,
      );
      out.push(...(page.metrics ?? []));
      pageToken = page.next_page_token || undefined;
    } while (pageToken);
    return out;
  }

  // ---- artifacts ---------------------------------------------------------

  /** `GET /api/2.0/mlflow/artifacts/list`: a run's artifacts below `path` (paths relative to the run root). */
  async listArtifacts(
    runId: string,
    path?: string,
    pageToken?: string,
  ): Promise<MlflowListArtifactsResponse> {
    return this.request(
      {
        method: 'GET',
        path: `${API}/artifacts/list`,
        query: { run_id: runId, path, page_token: pageToken },
      },
      responses.artifactList,
    );
  }

  /** `PUT /api/2.0/mlflow-artifacts/artifacts/<proxyPath>`: uploads one file through the artifact proxy. */
  async uploadArtifact(proxyPath: string, bytes: Uint8Array): Promise<void> {
    await this.send({
      method: 'PUT',
      path: `${ARTIFACT_PROXY_PREFIX}/${encodeArtifactPath(proxyPath)}`,
      bytes,
      timeoutMs: this.artifactTimeoutMs,
    });
  }

  /**
   * `GET /api/2.0/mlflow-artifacts/artifacts/<proxyPath>`: downloads one file through the artifact
   * proxy, at most `maxArtifactBytes` (a bigger answer is aborted: `MlflowResponseTooLargeError`).
   */
  async downloadArtifact(proxyPath: string): Promise<Uint8Array> {
    return this.send({
      method: 'GET',
      path: `${ARTIFACT_PROXY_PREFIX}/${encodeArtifactPath(proxyPath)}`,
      timeoutMs: this.artifactTimeoutMs,
      maxBytes: this.maxArtifactBytes,
    });
  }

  // ---- registered models -------------------------------------------------

  /** `POST /api/2.0/mlflow/registered-models/create`. Throws `MlflowAlreadyExistsError` when taken. */
  async createRegisteredModel(
    name: string,
    options: { tags?: Record<string, string>; description?: string } = {},
  ): Promise<MlflowRegisteredModel> {
    const res = await this.request(
      {
        method: 'POST',
        path: `${API}/registered-models/create`,
        json: { name, tags: toTags(options.tags), description: options.description },
      },
      responses.registeredModel,
    );
    return res.registered_model;
  }

  /** `GET /api/2.0/mlflow/registered-models/get` (with its tags and aliases). Throws `MlflowNotFoundError`. */
  async getRegisteredModel(name: string): Promise<MlflowRegisteredModel> {
    const res = await this.request(
      {
        method: 'GET',
        path: `${API}/registered-models/get`,
        query: { name },
      },
      responses.registeredModel,
    );
    return res.registered_model;
  }

  /** `POST /api/2.0/mlflow/registered-models/set-tag`. */
  async setRegisteredModelTag(name: string, key: string, value: string): Promise<void> {
    await this.request(
      {
        method: 'POST',
        path: `${API}/registered-models/set-tag`,
        json: { name, key, value },
      },
      responses.empty,
    );
  }

  /** `DELETE /api/2.0/mlflow/registered-models/delete-tag`. */
  async deleteRegisteredModelTag(name: string, key: string): Promise<void> {
    await this.request(
      {
        method: 'DELETE',
        path: `${API}/registered-models/delete-tag`,
        json: { name, key },
      },
      responses.empty,
    );
  }

  // ---- model versions ----------------------------------------------------

  /**
   * `POST /api/2.0/mlflow/model-versions/create`: `source` is `runs:/<run_id>/<path>` or an
   * `mlflow-artifacts:` URI.
   */
  async createModelVersion(options: {
    name: string;
    source: string;
    runId?: string;
    tags?: Record<string, string>;
    description?: string;
  }): Promise<MlflowModelVersion> {
    const res = await this.request(
      {
        method: 'POST',
        path: `${API}/model-versions/create`,
        json: {
          name: options.name,
          source: options.source,
          run_id: options.runId,
          tags: toTags(options.tags),
          description: options.description,
        },
        idempotent: false,
      },
      responses.modelVersion,
    );
    return res.model_version;
  }

  /** `GET /api/2.0/mlflow/model-versions/get`. Throws `MlflowNotFoundError`. */
  async getModelVersion(name: string, version: string): Promise<MlflowModelVersion> {
    const res = await this.request(
      {
        method: 'GET',
        path: `${API}/model-versions/get`,
        query: { name, version },
      },
      responses.modelVersion,
    );
    return res.model_version;
  }

  /** `GET /api/2.0/mlflow/model-versions/search`: one page. `filter` e.g. `name='driftline-efficiency'`. */
  async searchModelVersions(
    options: { filter?: string; maxResults?: number; orderBy?: string[]; pageToken?: string } = {},
  ): Promise<MlflowSearchModelVersionsResponse> {
    return this.request(
      {
        method: 'GET',
        path: `${API}/model-versions/search`,
        query: {
          filter: options.filter,
          max_results: options.maxResults,
          order_by: options.orderBy,
          page_token: options.pageToken,
        },
      },
      responses.modelVersionSearch,
    );
  }

  /** Every page of {@link searchModelVersions}. */
  async searchAllModelVersions(filter: string): Promise<MlflowModelVersion[]> {
    const out: MlflowModelVersion[] = [];
    let pageToken: string | undefined;
    do {
      const page = await this.searchModelVersions({
        filter,
        maxResults: 1000,
        ...(pageToken ? { pageToken } : {}),
      });
      out.push(...(page.model_versions ?? []));
      pageToken = page.next_page_token || undefined;
    } while (pageToken);
    return out;
  }

  /** `POST /api/2.0/mlflow/model-versions/set-tag`. */
  async setModelVersionTag(name: string, version: string, key: string, value: string): Promise<void> {
    await this.request(
      {
        method: 'POST',
        path: `${API}/model-versions/set-tag`,
        json: { name, version, key, value },
      },
      responses.empty,
    );
  }

  /** `DELETE /api/2.0/mlflow/model-versions/delete-tag`. */
  async deleteModelVersionTag(name: string, version: string, key: string): Promise<void> {
    await this.request(
      {
        method: 'DELETE',
        path: `${API}/model-versions/delete-tag`,
        json: { name, version, key },
      },
      responses.empty,
    );
  }

  // ---- aliases -----------------------------------------------------------

  /** `POST /api/2.0/mlflow/registered-models/alias`: points `alias` at `version` (moves it if set). */
  async setAlias(name: string, alias: string, version: string): Promise<void> {
    await this.request(
      {
        method: 'POST',
        path: `${API}/registered-models/alias`,
        json: { name, alias, version },
      },
      responses.empty,
    );
  }

  /** `DELETE /api/2.0/mlflow/registered-models/alias`. */
  async deleteAlias(name: string, alias: string): Promise<void> {
    await this.request(
      { method: 'DELETE', path: `${API}/registered-models/alias`, json: { name, alias } },
      responses.empty,
    );
  }

  /**
   * `GET /api/2.0/mlflow/registered-models/alias`: the version `alias` points at.
   * MLflow answers an unknown alias with `INVALID_PARAMETER_VALUE` and an unknown
   * model with `RESOURCE_DOES_NOT_EXIST`; both come back as undefined here.
   */
  async getModelVersionByAlias(name: string, alias: string): Promise<MlflowModelVersion | undefined> {
    try {
      const res = await this.request(
        {
          method: 'GET',
          path: `${API}/registered-models/alias`,
          query: { name, alias },
        },
        responses.modelVersion,
      );
      return res.model_version;
    } catch (err) {
      if (err instanceof MlflowNotFoundError) return undefined;
      if (
        err instanceof Error &&
        'errorCode' in err &&
        err.errorCode === 'INVALID_PARAMETER_VALUE' &&
        /alias .* not found/i.test(err.message)
      )
        return undefined;
      throw err;
    }
  }
}
