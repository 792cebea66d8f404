import type { Client } from '@elastic/elasticsearch';
import { Counter, Gauge, type Registry } from 'prom-client';
import TransportStream from 'winston-transport';
import { int, loadConfig, optionalStr, optionalUrl, str } from '../config/env.ts';
import { ConfigError } from '../errors.ts';
import {
  DEFAULT_INDEX_PREFIX,
  indexForDocument,
  indexTemplateBody,
  type TemplateOptions,
} from './elasticsearch-template.ts';
import { createLogger, toEcs } from './logger.ts';

/**
 * A winston transport that ships every log line, as the same ECS document the
 * console shows ({@link toEcs}), to Elasticsearch daily indices
 * `<prefix>-YYYY.MM.DD` (UTC date of the event) through the client's bulk helper.
 *
 * It never blocks or crashes the service:
 * - `log()` only pushes into an in-memory buffer and returns; all I/O is async.
 * - The buffer holds at most `maxBuffer` documents; beyond that the oldest are
 *   dropped and counted (`buffer_full`).
 * - A batch goes out at `flushDocs` documents or `flushMs` after the first
 *   buffered one, whichever comes first; one request at a time.
 * - Retriable failures (a whole request failing with a connection error, a
 *   timeout, 429 or 5xx; single documents answered 429/5xx in the bulk
 *   response) are retried with exponential backoff and jitter, up to
 *   `maxRetries` times per document (`retries_exhausted` after that).
 *   Documents Elasticsearch refuses (400 mapping errors, 4xx) are dropped
 *   (`rejected_by_es`).
 * - A failed product check (the server is not Elasticsearch, e.g. OpenSearch,
 *   or a proxy strips `x-elastic-product`) stops shipping for good: one error
 *   line, everything buffered and every later document counted as dropped
 *   (`product_check_failed`).
 * - Errors end up in counters ({@link ElasticsearchTransport.stats}, Prometheus
 *   metrics when a registry is given) and in a periodic warn line written by a
 *   separate console-only logger, never through the logger this transport
 *   belongs to (no recursion).
 *
 * The index template (`<prefix>-*`, ECS mappings) is installed once, before the
 * first batch; `PUT _index_template` is idempotent.
 */

/** Options of the `@elastic/elasticsearch` client. */
export type EsClientOptions = ConstructorParameters<typeof Client>[0];

/** Why documents were not shipped. */
export type DropReason =
  'buffer_full' | 'rejected_by_es' | 'retries_exhausted' | 'product_check_failed' | 'closed';

export const DROP_REASONS: readonly DropReason[] = [
  'buffer_full',
  'rejected_by_es',
  'retries_exhausted',
  'product_check_failed',
  'closed',
];

/** What {@link ElasticsearchTransport.stats} reports. */
export interface ShipperStats {
  /**
   * `running`; `backoff` after a failure until the next attempt; `stopped` after a failed product check;
   * `closing`/`closed`.
   */
  state: 'running' | 'backoff' | 'stopped' | 'closing' | 'closed';
  /** Documents waiting in the buffer (not counting the batch in flight). */
  buffered: number;
  /** Documents of the batch being sent right now. */
  inFlight: number;
  /** Documents Elasticsearch acknowledged. */
  shipped: number;
  /** Documents given up, by reason. */
  dropped: Record<DropReason, number>;
  droppedTotal: number;
  /** Bulk requests that failed as a whole (connection error, timeout, 429/5xx, refused). */
  failedBatches: number;
  /** Documents sent again after a retriable failure. */
  retried: number;
  /** True once the index template is in place. */
  templateInstalled: boolean;
  /** The last error, one line (credentials redacted by the client). */
  lastError?: string;
  /** Why shipping stopped for good. */
  stoppedReason?: string;
}

/** The console logger the transport reports through; a winston Logger fits. */
export interface ShipperReporter {
  warn(message: string, meta?: Record<string, unknown>): unknown;
  error(message: string, meta?: Record<string, unknown>): unknown;
}

/** Options of {@link ElasticsearchTransport}. */
export interface ElasticsearchTransportOptions {
  /** ECS `service.name` (and `service.version`) of the documents. */
  service: string | { name: string; version?: string };
  /** Elasticsearch URL(s); ignored when `client` is given. */
  node?: string | string[];
  /** Credentials; ignored when `client` is given. */
  auth?: { apiKey: string } | { username: string; password: string };
  /** A ready client (tests pass one with a mock connection). Not closed by {@link ElasticsearchTransport.close}. */
  client?: Client;
  /** Extra options for the client this transport creates. */
  clientOptions?: Partial<EsClientOptions>;
  /** Index prefix; documents go to `<prefix>-YYYY.MM.DD`. Default `edge-mlops`. */
  indexPrefix?: string;
  /** Send a batch once this many documents are buffered. Default 500. */
  flushDocs?: number;
  /** Send whatever is buffered this long after the first buffered document. Default 1000 ms. */
  flushMs?: number;
  /** Buffer cap in documents; the oldest are dropped beyond it. Default 10 000. */
  maxBuffer?: number;
  /** Attempts after the first for one document before `retries_exhausted`. Default 5. */
  maxRetries?: number;
  /** First backoff delay after a failure. Default 500 ms. */
  backoffBaseMs?: number;
  /** Longest backoff delay. Default 30 s. */
  backoffMaxMs?: number;
  /** Per-request timeout of the client this transport creates. Default 10 s. */
  requestTimeoutMs?: number;
  /** How long {@link ElasticsearchTransport.close} keeps trying to flush. Default 5 s. */
  closeTimeoutMs?: number;
  /**
   * Period of the warn line summarising drops and failures (only written when something went wrong). 0:
   * never. Default 60 s.
   */
  reportIntervalMs?: number;
  /** Install the index template before the first batch. Default true. */
  installTemplate?: boolean;
  /** Shards/replicas of the daily indices (template settings). */
  template?: TemplateOptions;
  /** Registers `driftline_log_shipper_*` metrics here. */
  registry?: Registry;
  /** Console-only logger for the transport's own warnings. Default: a new console logger of the same service. */
  reporter?: ShipperReporter;
  /** Winston transport options. */
  level?: string;
  silent?: boolean;
}

interface Entry {
  /** `_id` of the document: retries are idempotent, and bulk answers map back to entries. */
  readonly id: string;
  readonly index: string;
  /** The ECS document, serialized once in `log()`. */
  readonly body: string;
  attempts: number;
}

interface MetricSinks {
  shipped: Counter;
  dropped: Counter<'reason'>;
  failedBatches: Counter;
}

const MAX_TIMER_MS = 2_147_483_647;

// The client's errors are matched by name, not instanceof: the package ships
// CommonJS and ES module builds, and an error class from one is not the class
// of the other (the mock connection, for one, is CommonJS).
function errorName(err: unknown): string | undefined {
  return err instanceof Error ? err.name : undefined;
}

function statusOf(err: unknown): number | undefined {
  const status = (err as { statusCode?: unknown; meta?: { statusCode?: unknown } } | undefined)?.statusCode;
  return typeof status === 'number' ? status : undefined;
}

function describe(err: unknown): string {
  if (errorName(err) === 'ResponseError') {
    const body = (err as { body?: { error?: { type?: string; reason?: string } } }).body;
    const detail =
      body?.error?.type !== undefined
        ? `${body.error.type}: ${body.error.reason ?? ''}`
        : (err as Error).message;
    return `HTTP ${statusOf(err) ?? '?'} ${detail}`.trim();
  }
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}

function isProductCheckError(err: unknown): boolean {
  return errorName(err) === 'ProductNotSupportedError';
}

/** Connection errors, timeouts, no living node, 429 and 5xx: a later attempt may succeed. */
export function isRetriableEsError(err: unknown): boolean {
  const name = errorName(err);
  if (name === 'ResponseError') {
    const status = statusOf(err) ?? 0;
    return status === 429 || status >= 500;
  }
  return name === 'ConnectionError' || name === 'TimeoutError' || name === 'NoLivingConnectionsError';
}

/** Per-document bulk status: 429, 5xx and 0 (no answer) are worth another attempt. */
function isRetriableStatus(status: number | undefined): boolean {
  return status === undefined || status === 0 || status === 429 || status >= 500;
}

/** JSON for any log document: BigInt as text, cycles cut, never throws. */
function safeStringify(doc: Record<string, unknown>): string {
  try {
    return JSON.stringify(doc);
  } catch {
    const seen = new WeakSet<object>();
    try {
      return JSON.stringify(doc, (_key, value: unknown) => {
        if (typeof value === 'bigint') return value.toString();
        if (typeof value === 'object' && value !== null) {
          if (seen.has(value)) return '[Circular]';
          seen.add(value);
        }
        return value;
      });
    } catch (err) {
      return JSON.stringify({
        '@timestamp': doc['@timestamp'],
        'log.level': doc['log.level'],
        message: String(doc.message),
        service: doc.service,
        error: { message: `log document could not be serialized: ${describe(err)}` },
      });
    }
  }
}

export class ElasticsearchTransport extends TransportStream {
  readonly indexPrefix: string;
  private readonly service: { name: string; version?: string };
  /**
   * The client, created on first use: `@elastic/elasticsearch` (with undici and OpenTelemetry, ~400 modules)
   * is imported only by a process that ships logs, not by every service that merely could.
   */
  private client: Client | undefined;
  private clientLoading: Promise<Client> | undefined;
  private readonly clientOptions: EsClientOptions | undefined;
  private readonly ownsClient: boolean;
  private readonly nodeText: string;
  private readonly flushDocs: number;
  private readonly flushMs: number;
  private readonly maxBuffer: number;
  private readonly maxRetries: number;
  private readonly backoffBaseMs: number;
  private readonly backoffMaxMs: number;
  private readonly closeTimeoutMs: number;
  private readonly installTemplate: boolean;
  private readonly templateOptions: TemplateOptions;
  private readonly reporter: ShipperReporter;

  private buffer: Entry[] = [];
  private inFlight = 0;
  private flushing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private timerDue = Number.POSITIVE_INFINITY;
  private reportTimer: NodeJS.Timeout | undefined;
  private abortController: AbortController | undefined;
  private backoffUntil = 0;
  private consecutiveFailures = 0;
  private state: ShipperStats['state'] = 'running';
  private closing: Promise<void> | undefined;
  private templateDone = false;
  private templateInstalled = false;
  private templateAttempt: Promise<boolean> | undefined;
  private readonly idPrefix = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
  private seq = 0;

  private shipped = 0;
  private readonly dropped: Record<DropReason, number> = {
    buffer_full: 0,
    rejected_by_es: 0,
    retries_exhausted: 0,
    product_check_failed: 0,
    closed: 0,
  };
  private failedBatches = 0;
  private retried = 0;
  private lastError: string | undefined;
  private stoppedReason: string | undefined;
  private lastReport = { droppedTotal: 0, failedBatches: 0 };
  private readonly metrics: MetricSinks[] = [];

  constructor(options: ElasticsearchTransportOptions) {
    super({ level: options.level, silent: options.silent });
    this.service = typeof options.service === 'string' ? { name: options.service } : options.service;
    this.indexPrefix = options.indexPrefix ?? DEFAULT_INDEX_PREFIX;
    this.flushDocs = Math.max(1, options.flushDocs ?? 500);
    this.flushMs = Math.max(0, options.flushMs ?? 1000);
    this.maxBuffer = Math.max(1, options.maxBuffer ?? 10_000);
    this.maxRetries = Math.max(0, options.maxRetries ?? 5);
    this.backoffBaseMs = Math.max(1, options.backoffBaseMs ?? 500);
    this.backoffMaxMs = Math.max(this.backoffBaseMs, options.backoffMaxMs ?? 30_000);
    this.closeTimeoutMs = Math.max(0, options.closeTimeoutMs ?? 5000);
    this.installTemplate = options.installTemplate ?? true;
    this.templateOptions = options.template ?? {};
    this.reporter =
      options.reporter ??
      createLogger({
        service: this.service.name,
        ...(this.service.version ? { version: this.service.version } : {}),
      });

    if (options.client) {
      this.client = options.client;
      this.clientOptions = undefined;
      this.ownsClient = false;
    } else {
      if (
        options.node === undefined &&
        options.clientOptions?.node === undefined &&
        options.clientOptions?.nodes === undefined
      ) {
        throw new ConfigError('ElasticsearchTransport needs `node` (the Elasticsearch URL) or a `client`');
      }
      this.clientOptions = {
        ...(options.node !== undefined ? { node: options.node } : {}),
        ...(options.auth !== undefined ? { auth: options.auth } : {}),
        // Retries are this transport's job (with backoff, per document); the
        // client's own immediate retries would only hold the batch longer.
        maxRetries: 0,
        requestTimeout: options.requestTimeoutMs ?? 10_000,
        ...options.clientOptions,
      } as EsClientOptions;
      this.ownsClient = true;
    }
    const nodes = options.node ?? options.clientOptions?.node ?? '(client)';
    this.nodeText = (Array.isArray(nodes) ? nodes : [nodes])
      .map((n) => (typeof n === 'string' ? n.replace(/\/\/[^@/]*@/, '//***@') : '(node)'))
      .join(',');

    if (options.registry) this.registerMetrics(options.registry);
    const reportMs = options.reportIntervalMs ?? 60_000;
    if (reportMs > 0) {
      this.reportTimer = setInterval(() => this.report(), Math.min(reportMs, MAX_TIMER_MS));
      this.reportTimer.unref();
    }
    if (this.installTemplate) void this.ensureTemplate();
  }

  /** Winston entry point: converts to ECS, buffers, returns. Never throws, never waits. */
  override log(info: unknown, callback?: () => void): void {
    try {
      this.accept(info as Record<string, unknown>);
    } catch (err) {
      this.lastError = `log document dropped: ${describe(err)}`;
    }
    setImmediate(() => this.emit('logged', info));
    callback?.();
  }

  /** Counters and state; cheap, for health endpoints and tests. */
  stats(): ShipperStats {
    const droppedTotal = DROP_REASONS.reduce((sum, r) => sum + this.dropped[r], 0);
    return {
      state: this.state,
      buffered: this.buffer.length,
      inFlight: this.inFlight,
      shipped: this.shipped,
      dropped: { ...this.dropped },
      droppedTotal,
      failedBatches: this.failedBatches,
      retried: this.retried,
      templateInstalled: this.templateInstalled,
      ...(this.lastError !== undefined ? { lastError: this.lastError } : {}),
      ...(this.stoppedReason !== undefined ? { stoppedReason: this.stoppedReason } : {}),
    };
  }

  /**
   * Registers `driftline_log_shipper_shipped_total`, `..._dropped_total{reason}`,
   * `..._failed_batches_total` and the `..._buffered` gauge on `registry`
   * (starting from the counts so far). Safe to call after construction, e.g.
   * once the service has created its registry.
   */
  registerMetrics(registry: Registry): void {
    const existing = <T>(name: string): T | undefined => registry.getSingleMetric(name) as T | undefined;
    const sinks: MetricSinks = {
      shipped:
        existing<Counter>('driftline_log_shipper_shipped_total') ??
        new Counter({
          name: 'driftline_log_shipper_shipped_total',
          help: 'Log documents Elasticsearch accepted',
          registers: [registry],
        }),
      dropped:
        existing<Counter<'reason'>>('driftline_log_shipper_dropped_total') ??
        new Counter({
          name: 'driftline_log_shipper_dropped_total',
          help: 'Log documents given up, by reason',
          labelNames: ['reason'],
          registers: [registry],
        }),
      failedBatches:
        existing<Counter>('driftline_log_shipper_failed_batches_total') ??
        new Counter({
          name: 'driftline_log_shipper_failed_batches_total',
          help: 'Bulk requests to Elasticsearch that failed as a whole',
          registers: [registry],
        }),
    };
    if (existing('driftline_log_shipper_buffered') === undefined) {
      const buffered = (): number => this.buffer.length + this.inFlight;
      new Gauge({
        name: 'driftline_log_shipper_buffered',
        help: 'Log documents waiting to be shipped to Elasticsearch',
        registers: [registry],
        collect() {
          this.set(buffered());
        },
      });
    }
    sinks.shipped.inc(this.shipped);
    for (const reason of DROP_REASONS) sinks.dropped.inc({ reason }, this.dropped[reason]);
    sinks.failedBatches.inc(this.failedBatches);
    this.metrics.push(sinks);
  }

  /** Sends everything buffered now (ignoring a pending backoff); resolves when that attempt is over. Never rejects. */
  async flush(): Promise<void> {
    if (this.flushing) await this.flushing;
    if (this.buffer.length > 0) await this.runFlush(true);
  }

  /**
   * Flushes what is buffered, retrying with backoff until `timeoutMs`
   * (default `closeTimeoutMs`); what is left then is dropped (`closed`). Stops
   * the timers and closes the client it created. Idempotent; never rejects.
   */
  override close(timeoutMs: number = this.closeTimeoutMs): Promise<void> {
    this.closing ??= this.closeNow(timeoutMs);
    return this.closing;
  }

  // ---- internals -------------------------------------------------------------

  private accept(info: Record<string, unknown>): void {
    if (this.state === 'stopped') {
      this.drop('product_check_failed', 1);
      return;
    }
    if (this.state === 'closed') {
      this.drop('closed', 1);
      return;
    }
    const doc = toEcs(info, this.service);
    this.buffer.push({
      id: `${this.idPrefix}-${(this.seq++).toString(36)}`,
      index: indexForDocument(this.indexPrefix, doc),
      body: safeStringify(doc),
      attempts: 0,
    });
    this.enforceCap();
    if (this.state !== 'closing') this.schedule(this.buffer.length >= this.flushDocs ? 0 : this.flushMs);
  }

  /** A method, not a property read: the state changes across awaits, which TypeScript's narrowing does not see. */
  private isStopped(): boolean {
    return this.state === 'stopped';
  }

  private enforceCap(): void {
    const over = this.buffer.length - this.maxBuffer;
    if (over > 0) {
      this.buffer.splice(0, over);
      this.drop('buffer_full', over);
    }
  }

  private drop(reason: DropReason, count: number): void {
    if (count <= 0) return;
    this.dropped[reason] += count;
    for (const m of this.metrics) m.dropped.inc({ reason }, count);
  }

  private countShipped(count: number): void {
    if (count <= 0) return;
    this.shipped += count;
    for (const m of this.metrics) m.shipped.inc(count);
  }

  private countFailedBatch(): void {
    this.failedBatches++;
    for (const m of this.metrics) m.failedBatches.inc();
  }

  /** Arms the flush timer for `delayMs` from now (or the end of the backoff), unless it fires sooner already. */
  private schedule(delayMs: number): void {
    if (this.state === 'stopped' || this.state === 'closed') return;
    const now = Date.now();
    const due = Math.max(now + delayMs, this.backoffUntil);
    if (this.timer !== undefined && this.timerDue <= due) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerDue = due;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.timerDue = Number.POSITIVE_INFINITY;
        void this.runFlush(false);
      },
      Math.min(due - now, MAX_TIMER_MS),
    );
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerDue = Number.POSITIVE_INFINITY;
  }

  private runFlush(force: boolean): Promise<void> {
    if (this.flushing) return this.flushing;
    this.flushing = this.flushLoop(force)
      .catch((err: unknown) => {
        this.lastError = describe(err);
      })
      .finally(() => {
        this.flushing = undefined;
        if (this.buffer.length > 0 && this.state !== 'closing')
          this.schedule(this.buffer.length >= this.flushDocs ? 0 : this.flushMs);
      });
    return this.flushing;
  }

  /**
   * Sends batches of up to `flushDocs`: the first whatever its size (the timer
   * or the size trigger called), the next ones only while full batches are
   * waiting (or `force`). Stops at a failure, which set the backoff.
   */
  private async flushLoop(force: boolean): Promise<void> {
    let first = true;
    while (this.buffer.length > 0 && (first || force || this.buffer.length >= this.flushDocs)) {
      if (this.state === 'stopped' || this.state === 'closed') return;
      if (!force && Date.now() < this.backoffUntil) return;
      first = false;
      if (!(await this.ensureTemplate())) return;
      if (this.isStopped()) return;
      const batch = this.buffer.splice(0, this.flushDocs);
      if (!(await this.sendBatch(batch))) return;
    }
  }

  /** True when the template is in place or cannot be (then shipping goes on without it); false: retry later. */
  private ensureTemplate(): Promise<boolean> {
    if (!this.installTemplate || this.templateDone) return Promise.resolve(true);
    this.templateAttempt ??= this.putTemplate().finally(() => {
      this.templateAttempt = undefined;
    });
    return this.templateAttempt;
  }

  /** The client: the injected one, or this transport's own, created (and its package loaded) once. */
  private es(): Promise<Client> {
    if (this.client) return Promise.resolve(this.client);
    this.clientLoading ??= import('@elastic/elasticsearch').then(({ Client: EsClient }) => {
      this.client = new EsClient(this.clientOptions as EsClientOptions);
      return this.client;
    });
    return this.clientLoading;
  }

  private async putTemplate(): Promise<boolean> {
    try {
      await (
        await this.es()
      ).indices.putIndexTemplate(indexTemplateBody(this.indexPrefix, this.templateOptions));
      this.templateDone = true;
      this.templateInstalled = true;
      return true;
    } catch (err) {
      if (isProductCheckError(err)) {
        this.stopShipping(err, []);
        return false;
      }
      if (isRetriableEsError(err)) {
        this.noteFailure(err);
        return false;
      }
      // Refused for good (e.g. 403: the API key may write documents but not
      // manage templates): ship anyway, with dynamic mappings.
      this.templateDone = true;
      this.lastError = `index template ${this.indexPrefix} not installed: ${describe(err)}`;
      this.reporter.warn(
        `elasticsearch log shipping: could not install index template ` +
          `${this.indexPrefix} (${describe(err)}); shipping with dynamic mappings`,
        {
          action: 'log-shipping-degraded',
          node: this.nodeText,
        },
      );
      return true;
    }
  }

  /** One bulk request for `batch`. Returns false after a failure that set the backoff (or stopped shipping). */
  private async sendBatch(batch: Entry[]): Promise<boolean> {
    const byId = new Map(batch.map((e) => [e.id, e]));
    const retry: Entry[] = [];
    let rejected = 0;
    let firstRejection: string | undefined;
    const controller = new AbortController();
    this.abortController = controller;
    this.inFlight = batch.length;
    try {
      const client = await this.es();
      const result = await client.helpers.bulk<Entry>(
        {
          datasource: batch,
          onDocument: (e) => [{ index: { _index: e.index, _id: e.id } }, e.body],
          // One request per batch: no size split, no timer flush, no helper retries.
          flushBytes: Number.MAX_SAFE_INTEGER,
          flushInterval: MAX_TIMER_MS,
          concurrency: 1,
          retries: 0,
          refreshOnCompletion: false,
          onDrop: (d) => {
            const id = (d.operation as { index?: { _id?: string } }).index?._id;
            const entry = id !== undefined ? byId.get(id) : undefined;
            if (entry !== undefined && isRetriableStatus(d.status)) {
              retry.push(entry);
            } else {
              rejected++;
              firstRejection ??= `HTTP ${d.status} ${d.error?.type ?? ''}: ${d.error?.reason ?? ''}`.trim();
            }
          },
        },
        { signal: controller.signal },
      );
      this.countShipped(result.successful);
      const rejection =
        rejected > 0 ? `Elasticsearch rejected ${rejected} document(s): ${firstRejection ?? '?'}` : undefined;
      if (rejected > 0) this.drop('rejected_by_es', rejected);
      if (retry.length > 0) {
        this.requeue(retry);
        this.noteFailure(
          `Elasticsearch answered 429/5xx for ${retry.length} ` +
            `document(s)${rejection !== undefined ? `; ${rejection}` : ''}`,
        );
        return false;
      }
      if (rejection !== undefined) this.lastError = rejection;
      this.noteSuccess();
      return true;
    } catch (err) {
      if (isProductCheckError(err)) {
        this.stopShipping(err, batch);
        return false;
      }
      if (controller.signal.aborted || (err instanceof Error && err.name === 'RequestAbortedError')) {
        this.drop('closed', batch.length);
        return false;
      }
      this.countFailedBatch();
      if (isRetriableEsError(err)) {
        this.requeue(batch);
      } else {
        this.drop('rejected_by_es', batch.length);
      }
      this.noteFailure(err);
      return false;
    } finally {
      this.inFlight = 0;
      if (this.abortController === controller) this.abortController = undefined;
    }
  }

  /** Puts retriable entries back at the front (oldest first), or drops them when out of attempts. */
  private requeue(entries: Entry[]): void {
    const again: Entry[] = [];
    let exhausted = 0;
    for (const e of entries) {
      e.attempts++;
      if (e.attempts > this.maxRetries) exhausted++;
      else again.push(e);
    }
    this.drop('retries_exhausted', exhausted);
    this.retried += again.length;
    if (again.length > 0) {
      this.buffer.unshift(...again);
      this.enforceCap();
    }
  }

  private noteFailure(err: unknown): void {
    this.consecutiveFailures++;
    const ceiling = Math.min(
      this.backoffMaxMs,
      this.backoffBaseMs * 2 ** Math.min(this.consecutiveFailures - 1, 30),
    );
    const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    this.backoffUntil = Date.now() + delay;
    this.lastError = typeof err === 'string' ? err : describe(err);
    if (this.state === 'running') this.state = 'backoff';
  }

  private noteSuccess(): void {
    this.consecutiveFailures = 0;
    this.backoffUntil = 0;
    if (this.state === 'backoff') this.state = 'running';
  }

  private stopShipping(err: unknown, batch: Entry[]): void {
    if (this.state === 'stopped') {
      this.drop('product_check_failed', batch.length);
      return;
    }
    const count = batch.length + this.buffer.length;
    this.buffer = [];
    this.state = 'stopped';
    this.clearTimer();
    this.drop('product_check_failed', count);
    this.stoppedReason = `product check failed: ${describe(err)}`;
    this.lastError = this.stoppedReason;
    this.reporter.error(
      `elasticsearch log shipping stopped: ${this.nodeText} is not Elasticsearch (the product check found no "x-elastic-product: Elasticsearch" header; OpenSearch, or a proxy that strips the header?). ${count} buffered log document(s) dropped; later ones are dropped and counted; the service keeps running`,
      { action: 'log-shipping-stopped', outcome: 'failure', node: this.nodeText, dropped: count },
    );
  }

  /**
   * The periodic warn line: only when documents were dropped, batches failed, or a backoff is on since the
   * last one.
   */
  private report(): void {
    if (this.state === 'stopped' || this.state === 'closed') return;
    const s = this.stats();
    const droppedSince = s.droppedTotal - this.lastReport.droppedTotal;
    const failedSince = s.failedBatches - this.lastReport.failedBatches;
    this.lastReport = { droppedTotal: s.droppedTotal, failedBatches: s.failedBatches };
    if (droppedSince === 0 && failedSince === 0 && s.state !== 'backoff') return;
    this.reporter.warn(
      `elasticsearch log shipping degraded: ${droppedSince} document(s) dropped and ${failedSince} batch(es) ` +
        `failed since the last report; ${s.buffered} buffered${s.lastError ? `; last error: ${s.lastError}` : ''}`,
      {
        action: 'log-shipping-degraded',
        node: this.nodeText,
        shipped: s.shipped,
        dropped: s.dropped,
        failedBatches: s.failedBatches,
        buffered: s.buffered,
        state: s.state,
      },
    );
  }

  private async closeNow(timeoutMs: number): Promise<void> {
    if (this.reportTimer !== undefined) clearInterval(this.reportTimer);
    this.reportTimer = undefined;
    this.clearTimer();
    const wasStopped = this.state === 'stopped';
    if (!wasStopped) this.state = 'closing';
    const deadline = Date.now() + timeoutMs;
    const deadlineTimer = setTimeout(() => this.abortController?.abort(), timeoutMs);
    try {
      while (!wasStopped && (this.buffer.length > 0 || this.flushing) && Date.now() < deadline) {
        if (this.flushing) {
          await this.flushing;
          continue;
        }
        const wait = Math.min(this.backoffUntil, deadline) - Date.now();
        if (wait > 0) {
          await new Promise((resolve) => setTimeout(resolve, wait));
          continue;
        }
        await this.runFlush(true);
      }
      if (this.flushing) {
        this.abortController?.abort();
        await this.flushing;
      }
    } catch {
      // runFlush never rejects; nothing to do
    } finally {
      clearTimeout(deadlineTimer);
      if (!this.isStopped()) {
        this.drop('closed', this.buffer.length);
        this.buffer = [];
        this.state = 'closed';
      }
      if (this.ownsClient) {
        // A client still loading is closed once it exists.
        const client = this.client ?? (await this.clientLoading?.catch(() => undefined));
        await client?.close().catch(() => undefined);
      }
    }
  }
}

/**
 * The shipper's environment variables. Setting `ELASTICSEARCH_URL` switches it
 * on; the others tune it.
 */
export const elasticsearchConfigSpec = {
  url: optionalUrl('ELASTICSEARCH_URL', {
    description:
      'Elasticsearch to ship ECS logs to, e.g. http://127.0.0.1:9200 (unset: logs go ' +
      'to the console only; put credentials in the variables below, not in the URL)',
    protocols: ['http:', 'https:'],
  }),
  apiKey: optionalStr('ELASTICSEARCH_API_KEY', {
    description: 'Elasticsearch API key (the base64 "encoded" value) for the log shipper',
    secret: true,
  }),
  username: optionalStr('ELASTICSEARCH_USERNAME', {
    description: 'Elasticsearch user for the log shipper (with ELASTICSEARCH_PASSWORD)',
    secret: true,
  }),
  password: optionalStr('ELASTICSEARCH_PASSWORD', {
    description: 'password of ELASTICSEARCH_USERNAME',
    secret: true,
  }),
  indexPrefix: str('ELASTICSEARCH_INDEX_PREFIX', {
    description: 'daily log indices are <prefix>-YYYY.MM.DD (UTC); the index template covers <prefix>-*',
    default: DEFAULT_INDEX_PREFIX,
    pattern: /^[a-z0-9][a-z0-9._-]{0,200}$/,
    allowed: 'lower-case letters, digits, ".", "_" or "-", starting with a letter or digit',
  }),
  flushMs: int('ELASTICSEARCH_FLUSH_MS', {
    description: 'ship buffered log documents at least this often (ms)',
    default: 1000,
    min: 10,
    max: 600_000,
  }),
  maxBuffer: int('ELASTICSEARCH_MAX_BUFFER', {
    description:
      'log documents kept while Elasticsearch is slow or down; beyond it the oldest are dropped and counted',
    default: 10_000,
    min: 1,
    max: 10_000_000,
  }),
};

/**
 * The Elasticsearch transport configured from `env`, or undefined when
 * `ELASTICSEARCH_URL` is unset. Throws a {@link ConfigError} for invalid values.
 * `extra` overrides options (e.g. `registry`).
 */
export function elasticsearchTransportFromEnv(
  env: NodeJS.ProcessEnv,
  service: string | { name: string; version?: string },
  extra: Partial<ElasticsearchTransportOptions> = {},
): ElasticsearchTransport | undefined {
  const config = loadConfig(elasticsearchConfigSpec, env);
  if (config.url === undefined) return undefined;
  if ((config.username === undefined) !== (config.password === undefined)) {
    throw new ConfigError(
      'Invalid configuration: ELASTICSEARCH_USERNAME and ELASTICSEARCH_PASSWORD must be set together',
    );
  }
  if (config.apiKey !== undefined && config.username !== undefined) {
    throw new ConfigError(
      'Invalid configuration: set ELASTICSEARCH_API_KEY or ELASTICSEARCH_USERNAME/ELASTICSEARCH_PASSWORD, not both',
    );
  }
  const auth =
    config.apiKey !== undefined
      ? { apiKey: config.apiKey }
      : config.username !== undefined && config.password !== undefined
        ? { username: config.username, password: config.password }
        : undefined;
  return new ElasticsearchTransport({
    service,
    node: config.url,
    ...(auth !== undefined ? { auth } : {}),
    indexPrefix: config.indexPrefix,
    flushMs: config.flushMs,
    maxBuffer: config.maxBuffer,
    ...extra,
  });
}
