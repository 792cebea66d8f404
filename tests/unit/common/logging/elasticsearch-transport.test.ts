/**
 * The Elasticsearch log shipper against `@elastic/elasticsearch-mock` (the
 * client's own test utility: a Connection class that answers from handlers,
 * no network): batching into daily indices with ECS fields, the index
 * template, partial bulk failures, whole-request failures with backoff,
 * Elasticsearch down, the product check, close() with a deadline, metrics and
 * the environment helper. Real timers with short intervals: the file runs in a
 * few seconds.
 */
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { PassThrough } from 'node:stream';
import type * as Es from '@elastic/elasticsearch';
import MockPackage from '@elastic/elasticsearch-mock';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { summarizeConfig } from '../../../../common/config/env.ts';
import { ConfigError } from '../../../../common/errors.ts';
import { dailyIndexName, indexForDocument } from '../../../../common/logging/elasticsearch-template.ts';
import {
  ElasticsearchTransport,
  elasticsearchConfigSpec,
  elasticsearchTransportFromEnv,
  type ElasticsearchTransportOptions,
  type ShipperReporter,
} from '../../../../common/logging/elasticsearch-transport.ts';
import { createLogger, type Logger } from '../../../../common/logging/logger.ts';

// The mock is CommonJS: its code is `module.exports = Mock` while its types
// declare an ES default export, and it recognises the error classes of the
// client's CommonJS build (the ES module build has its own copies of them).
const Mock = MockPackage as unknown as typeof MockPackage.default;
type Mock = InstanceType<typeof Mock>;
const { errors } = createRequire(import.meta.url)('@elastic/elasticsearch') as typeof Es;
type EsConnection = NonNullable<ElasticsearchTransportOptions['clientOptions']>['Connection'];

/**
 * The mock's connection, but responses for which `strip(path)` is true lose
 * their `x-elastic-product` header: what OpenSearch or a header-stripping proxy
 * looks like to the client's product check.
 */
function withoutProductHeader(mock: Mock, strip: (path: string) => boolean): EsConnection {
  const Base = mock.getConnection();
  type Request = (...args: unknown[]) => Promise<{ headers: Record<string, unknown> }>;
  const original = (Base.prototype as unknown as { request: Request }).request;
  class NotElasticsearch extends Base {}
  (NotElasticsearch.prototype as unknown as { request: Request }).request = async function (
    this: unknown,
    ...args: unknown[]
  ) {
    const response = await original.apply(this, args);
    if (strip((args[0] as { path?: string }).path ?? '')) delete response.headers['x-elastic-product'];
    return response;
  };
  return NotElasticsearch as unknown as EsConnection;
}

type Doc = Record<string, unknown> & { trace?: { id?: string }; message?: string };
interface BulkCall {
  at: number;
  actions: { _index: string; _id: string }[];
  docs: Doc[];
}
interface BulkItem {
  index: {
    _index: string;
    _id: string;
    status: number;
    result?: string;
    error?: { type: string; reason: string };
  };
}
type BulkResult = { took: number; errors: boolean; items: BulkItem[] } | Error;
type BulkHandler = (call: BulkCall, callNo: number) => BulkResult;

const transports: ElasticsearchTransport[] = [];
afterEach(async () => {
  await Promise.all(transports.splice(0).map((t) => t.close(200)));
});

const today = (): string => dailyIndexName('edge-mlops', new Date());

async function waitFor(check: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function ok(call: BulkCall): BulkResult {
  return {
    took: 1,
    errors: false,
    items: call.actions.map((a) => ({ index: { ...a, status: 201, result: 'created' } })),
  };
}

function responseError(statusCode: number, type: string): Error {
  return new errors.ResponseError({
    body: { error: { type, reason: `${type} (mock)` }, status: statusCode },
    statusCode,
    headers: {},
    warnings: null,
    meta: {} as never,
  });
}

/** A reporter that records lines instead of writing them. */
function recorder(): ShipperReporter & {
  lines: { level: string; message: string; meta?: Record<string, unknown> }[];
} {
  const lines: { level: string; message: string; meta?: Record<string, unknown> }[] = [];
  return {
    lines,
    warn: (message, meta) => lines.push({ level: 'warn', message, ...(meta ? { meta } : {}) }),
    error: (message, meta) => lines.push({ level: 'error', message, ...(meta ? { meta } : {}) }),
  };
}

interface Harness {
  mock: Mock;
  transport: ElasticsearchTransport;
  logger: Logger;
  bulkCalls: BulkCall[];
  templateCalls: { at: number; body: Record<string, unknown> }[];
  reporter: ReturnType<typeof recorder>;
  consoleLines: () => string[];
}

/**
 * A transport whose client talks to the mock (`Connection: mock.getConnection()`),
 * a logger with it plus a console stream, and records of every request.
 */
function harness(
  options: Partial<ElasticsearchTransportOptions> & {
    bulk?: BulkHandler;
    template?: () => Record<string, unknown> | Error;
  } = {},
): Harness {
  const mock = new Mock();
  const bulkCalls: BulkCall[] = [];
  const templateCalls: { at: number; body: Record<string, unknown> }[] = [];
  const bulk = options.bulk ?? ok;
  mock.add({ method: 'POST', path: '/_bulk' }, (params: { body?: unknown }) => {
    const lines = (params.body ?? []) as Record<string, unknown>[];
    const call: BulkCall = { at: Date.now(), actions: [], docs: [] };
    for (let i = 0; i < lines.length; i += 2) {
      call.actions.push((lines[i] as { index: { _index: string; _id: string } }).index);
      call.docs.push(lines[i + 1] as Doc);
    }
    bulkCalls.push(call);
    return bulk(call, bulkCalls.length) as unknown as Record<string, unknown>;
  });
  mock.add({ method: 'PUT', path: '/_index_template/:name' }, (params: { body?: unknown }) => {
    templateCalls.push({ at: Date.now(), body: params.body as Record<string, unknown> });
    return (options.template?.() ?? { acknowledged: true }) as Record<string, unknown>;
  });
  const reporter = recorder();
  const { bulk: _b, template: _t, ...rest } = options;
  const transport = new ElasticsearchTransport({
    service: { name: 'edge-inference', version: '1.2.3' },
    node: 'http://127.0.0.1:9200',
    clientOptions: { Connection: mock.getConnection() as unknown as EsConnection },
    flushMs: 30,
    backoffBaseMs: 20,
    backoffMaxMs: 200,
    reportIntervalMs: 0,
    reporter,
    ...rest,
  });
  transports.push(transport);
  const stream = new PassThrough();
  const chunks: string[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c.toString()));
  const logger = createLogger({
    service: 'edge-inference',
    version: '1.2.3',
    format: 'json',
    stream,
    transports: [transport],
    level: 'debug',
  });
  return {
    mock,
    transport,
    logger,
    bulkCalls,
    templateCalls,
    reporter,
    consoleLines: () => chunks.join('').split('\n').filter(Boolean),
  };
}

describe('daily index names', () => {
  it('uses the UTC date of the event', () => {
    expect(dailyIndexName('edge-mlops', new Date('2026-03-09T23:59:59.999Z'))).toBe('edge-mlops-2026.03.09');
    // 00:30 in UTC+2 is still the previous day in UTC
    expect(dailyIndexName('edge-mlops', new Date('2026-01-01T00:30:00+02:00'))).toBe('edge-mlops-2025.12.31');
    expect(indexForDocument('edge-mlops', { '@timestamp': '2024-02-29T12:00:00Z' })).toBe(
      'edge-mlops-2024.02.29',
    );
    expect(indexForDocument('x', { '@timestamp': 'not a date' }, new Date('2026-07-04T00:00:00Z'))).toBe(
      'x-2026.07.04',
    );
  });
});

describe('ElasticsearchTransport (mock Elasticsearch)', () => {
  it('batches ECS documents into the daily index and installs the template once, before the first batch', async () => {
    const h = harness({ flushDocs: 3, flushMs: 40 });
    const flow = h.logger.child({ correlationId: 'corr-42' });
    for (let i = 0; i < 7; i++)
      flow.info(`window ${i}`, {
        machineId: 'm-7',
        action: 'drift-alarm',
        outcome: 'success',
        pValue: 0.001,
      });
    h.logger.warn('from the past', { timestamp: '2024-02-29T23:59:59.999Z', action: 'retrain-requested' });
    await waitFor(() => h.transport.stats().shipped === 8, '8 documents shipped');

    // size trigger: full batches of 3, then the rest on the timer
    expect(h.bulkCalls.map((c) => c.docs.length)).toEqual([3, 3, 2]);
    const first = h.bulkCalls[0];
    expect(first).toBeDefined();
    expect(first?.actions.every((a) => a._index === today())).toBe(true);
    const last = h.bulkCalls.at(-1);
    expect(last?.actions.at(-1)?._index).toBe('edge-mlops-2024.02.29');
    const ids = h.bulkCalls.flatMap((c) => c.actions.map((a) => a._id));
    expect(new Set(ids).size).toBe(8);

    const doc = first?.docs[0] as Doc;
    expect(doc['log.level']).toBe('info');
    expect(doc.message).toBe('window 0');
    expect(doc.service).toEqual({ name: 'edge-inference', version: '1.2.3' });
    expect(doc.trace).toEqual({ id: 'corr-42' });
    expect(doc.event).toEqual({ action: 'drift-alarm', outcome: 'success' });
    expect(doc.labels).toEqual({ machine_id: 'm-7' });
    expect(doc.driftline).toEqual({ pValue: 0.001 });
    expect(doc.ecs).toEqual({ version: expect.any(String) });
    expect(Number.isNaN(Date.parse(String(doc['@timestamp'])))).toBe(false);

    expect(h.templateCalls).toHaveLength(1);
    expect(h.templateCalls[0]?.at).toBeLessThanOrEqual(first?.at ?? 0);
    const tpl = h.templateCalls[0]?.body as {
      index_patterns: string[];
      template: {
        mappings: {
          properties: Record<string, { type?: string; properties?: Record<string, { type: string }> }>;
        };
      };
    };
    expect(tpl.index_patterns).toEqual(['edge-mlops-*']);
    const props = tpl.template.mappings.properties;
    expect(props['@timestamp']?.type).toBe('date');
    expect(props.message?.type).toBe('text');
    expect(props.log?.properties?.level?.type).toBe('keyword');
    expect(props.service?.properties?.name?.type).toBe('keyword');
    expect(props.service?.properties?.version?.type).toBe('keyword');
    expect(props.trace?.properties?.id?.type).toBe('keyword');
    expect(props.event?.properties?.action?.type).toBe('keyword');
    expect(props.event?.properties?.outcome?.type).toBe('keyword');
    expect(props.error?.properties?.message?.type).toBe('text');
    expect(props.error?.properties?.type?.type).toBe('keyword');
    expect(JSON.stringify(tpl)).toContain('labels.*');

    // more traffic later: no second template request
    h.logger.info('later');
    await waitFor(() => h.transport.stats().shipped === 9, '9 documents shipped');
    expect(h.templateCalls).toHaveLength(1);
    expect(h.transport.stats()).toMatchObject({
      state: 'running',
      templateInstalled: true,
      droppedTotal: 0,
      failedBatches: 0,
    });
  });

  it('retries documents answered 429 and drops (and counts) documents rejected with a 400 mapping error', async () => {
    const h = harness({
      flushDocs: 3,
      bulk: (call, n) => {
        if (n > 1) return ok(call);
        const [a, b, c] = call.actions as [
          BulkCall['actions'][0],
          BulkCall['actions'][0],
          BulkCall['actions'][0],
        ];
        return {
          took: 1,
          errors: true,
          items: [
            {
              index: {
                ...a,
                status: 429,
                error: {
                  type: 'es_rejected_execution_exception',
                  reason: 'rejected execution of coordinating operation',
                },
              },
            },
            {
              index: {
                ...b,
                status: 400,
                error: {
                  type: 'document_parsing_exception',
                  reason: 'failed to parse field [event.duration_ms] of type [double]',
                },
              },
            },
            { index: { ...c, status: 201, result: 'created' } },
          ],
        };
      },
    });
    h.logger.info('overloaded', { correlationId: 'c-429' });
    h.logger.info('bad', { correlationId: 'c-400' });
    h.logger.info('fine', { correlationId: 'c-201' });
    await waitFor(() => h.transport.stats().shipped === 2, 'the 429 document shipped on the retry');
    const s = h.transport.stats();
    expect(s.dropped.rejected_by_es).toBe(1);
    expect(s.droppedTotal).toBe(1);
    expect(s.retried).toBe(1);
    expect(s.lastError).toContain('document_parsing_exception');
    expect(h.bulkCalls).toHaveLength(2);
    // the retry carries only the 429 document, with the same _id (idempotent)
    expect(h.bulkCalls[1]?.docs.map((d) => d.trace?.id)).toEqual(['c-429']);
    expect(h.bulkCalls[1]?.actions[0]?._id).toBe(h.bulkCalls[0]?.actions[0]?._id);
  });

  it('retries a whole-request 503 with growing backoff, then ships', async () => {
    const h = harness({
      backoffBaseMs: 60,
      backoffMaxMs: 1000,
      bulk: (call, n) => (n <= 2 ? responseError(503, 'unavailable_shards_exception') : ok(call)),
    });
    for (let i = 0; i < 5; i++) h.logger.info(`m${i}`);
    await waitFor(() => h.transport.stats().shipped === 5, 'shipped after two 503s');
    const at = h.bulkCalls.map((c) => c.at);
    expect(at).toHaveLength(3);
    const gap1 = (at[1] ?? 0) - (at[0] ?? 0);
    const gap2 = (at[2] ?? 0) - (at[1] ?? 0);
    // full jitter on half the ceiling: first wait in [30, 60] ms, second in [60, 120] ms
    expect(gap1).toBeGreaterThanOrEqual(25);
    expect(gap2).toBeGreaterThanOrEqual(55);
    const s = h.transport.stats();
    expect(s).toMatchObject({ state: 'running', failedBatches: 2, droppedTotal: 0, retried: 10 });
    expect(h.bulkCalls.every((c) => c.docs.length === 5)).toBe(true);
  });

  it('gives up on a document after maxRetries retriable failures (retries_exhausted)', async () => {
    const h = harness({
      maxRetries: 2,
      backoffBaseMs: 5,
      backoffMaxMs: 10,
      bulk: () => responseError(502, 'bad_gateway'),
    });
    h.logger.info('doomed 1');
    h.logger.info('doomed 2');
    await waitFor(() => h.transport.stats().dropped.retries_exhausted === 2, 'retries exhausted');
    expect(h.bulkCalls).toHaveLength(3); // first attempt + 2 retries
    expect(h.transport.stats()).toMatchObject({ buffered: 0, shipped: 0, failedBatches: 3 });
  });

  it('keeps the service logging when Elasticsearch is down: log() returns at once, the buffer is capped, overflow counted, shipping resumes', async () => {
    let down = true;
    const refused = (): Error => new errors.ConnectionError('connect ECONNREFUSED 127.0.0.1:9200');
    const h = harness({
      maxBuffer: 1000,
      flushDocs: 500,
      backoffBaseMs: 20,
      backoffMaxMs: 40,
      reportIntervalMs: 60,
      bulk: (call) => (down ? refused() : ok(call)),
      template: () => (down ? refused() : { acknowledged: true }),
    });
    const slow: number[] = [];
    const started = performance.now();
    for (let i = 0; i < 5000; i++) {
      const t0 = performance.now();
      h.transport.log({ level: 'info', message: `reading ${i}`, correlationId: `c-${i}` }, () => undefined);
      const ms = performance.now() - t0;
      if (ms >= 100) slow.push(ms);
    }
    const total = performance.now() - started;
    expect(total).toBeLessThan(2000);
    // No call waits for Elasticsearch. A loaded machine may preempt the process during a call or
    // two (seen: 108 ms at load average 9 on 2 cores); a call that waited would slow every flush.
    expect(
      slow.length,
      `calls of 100 ms or more: ${slow.map((ms) => ms.toFixed(0)).join(', ')}`,
    ).toBeLessThanOrEqual(2);
    // the logger (console and all) keeps working too
    expect(() => h.logger.error('still logging', { err: new Error('es down') })).not.toThrow();

    let s = h.transport.stats();
    expect(s.buffered).toBe(1000);
    expect(s.dropped.buffer_full).toBe(4001); // 5000 + 1 logged, the newest 1000 kept

    // the periodic warn line, through the separate reporter
    await waitFor(
      () => h.reporter.lines.some((l) => l.level === 'warn' && l.message.includes('ECONNREFUSED')),
      'a degraded report naming the error',
    );
    const report = h.reporter.lines.find((l) => l.message.includes('degraded'));
    expect(report?.message).toContain('4001 document(s) dropped');
    expect(report?.meta).toMatchObject({ action: 'log-shipping-degraded', dropped: { buffer_full: 4001 } });
    expect(h.consoleLines().some((l) => l.includes('degraded'))).toBe(false); // not through the service logger
    s = h.transport.stats();
    expect(['backoff', 'running']).toContain(s.state);
    expect(s.shipped).toBe(0);

    down = false;
    await waitFor(
      () => h.transport.stats().shipped === 1000,
      'the buffered 1000 shipped after recovery',
      5000,
    );
    const shippedIds = h.bulkCalls.flatMap((c) => c.docs.map((d) => d.trace?.id));
    expect(shippedIds).toContain('c-4999'); // the newest kept, the oldest dropped
    expect(shippedIds).not.toContain('c-0');
    expect(h.transport.stats()).toMatchObject({ buffered: 0, state: 'running', templateInstalled: true });
  });

  it('survives a real refused connection (nothing listening on the port) and close() keeps its deadline', async () => {
    const port = await new Promise<number>((resolve) => {
      const srv = createServer();
      srv.listen(0, '127.0.0.1', () => {
        const addr = srv.address();
        srv.close(() => resolve(typeof addr === 'object' && addr !== null ? addr.port : 0));
      });
    });
    const reporter = recorder();
    const transport = new ElasticsearchTransport({
      service: 'broker',
      node: `http://127.0.0.1:${port}`,
      flushMs: 10,
      backoffBaseMs: 20,
      backoffMaxMs: 50,
      requestTimeoutMs: 500,
      reportIntervalMs: 0,
      reporter,
    });
    transports.push(transport);
    for (let i = 0; i < 20; i++) transport.log({ level: 'info', message: `m${i}` }, () => undefined);
    await sleep(150);
    expect(transport.stats().lastError).toMatch(/ConnectionError|ECONNREFUSED/);
    const t0 = Date.now();
    await transport.close(300);
    expect(Date.now() - t0).toBeLessThan(1500);
    const s = transport.stats();
    expect(s.state).toBe('closed');
    expect(s.dropped.closed).toBe(20);
    transport.log({ level: 'info', message: 'after close' }, () => undefined);
    expect(transport.stats().dropped.closed).toBe(21);
  });

  it('stops shipping with one clear error line when the product check fails; the logger keeps working', async () => {
    const mock = new Mock();
    let requests = 0;
    mock.add({ method: ['PUT', 'POST'], path: ['/_index_template/:name', '/_bulk'] }, () => {
      requests++;
      return { acknowledged: true, errors: false, items: [] };
    });
    // Like OpenSearch or a header-stripping proxy: 200 without `x-elastic-product`.
    const NotElasticsearch = withoutProductHeader(mock, () => true);
    const reporter = recorder();
    const transport = new ElasticsearchTransport({
      service: 'retrainer',
      node: 'http://127.0.0.1:9200',
      clientOptions: { Connection: NotElasticsearch },
      flushMs: 10,
      reportIntervalMs: 20,
      reporter,
    });
    transports.push(transport);
    const stream = new PassThrough();
    let consoleLines = 0;
    stream.on('data', (c: Buffer) => (consoleLines += c.toString().split('\n').filter(Boolean).length));
    const logger = createLogger({ service: 'retrainer', format: 'json', stream, transports: [transport] });
    for (let i = 0; i < 5; i++) logger.info(`before ${i}`);
    await waitFor(() => transport.stats().state === 'stopped', 'shipping stopped');
    let s = transport.stats();
    expect(s.stoppedReason).toMatch(/product check/);
    expect(s.dropped.product_check_failed).toBe(5);
    expect(s.buffered).toBe(0);

    for (let i = 0; i < 10; i++) expect(() => logger.info(`after ${i}`)).not.toThrow();
    await sleep(80);
    s = transport.stats();
    expect(s.dropped.product_check_failed).toBe(15);
    expect(s.shipped).toBe(0);
    expect(requests).toBe(1); // the template request found out; nothing sent after it
    const errorsLogged = reporter.lines.filter((l) => l.level === 'error');
    expect(errorsLogged).toHaveLength(1);
    expect(errorsLogged[0]?.message).toContain('x-elastic-product');
    expect(errorsLogged[0]?.message).toContain('stopped');
    expect(reporter.lines.filter((l) => l.level === 'warn')).toHaveLength(0); // one line, no periodic repeats
    expect(consoleLines).toBe(15);
  });

  it('counts a batch as dropped when only the bulk response fails the product check', async () => {
    const mock = new Mock();
    mock.add({ method: 'PUT', path: '/_index_template/:name' }, () => ({ acknowledged: true }));
    mock.add({ method: 'POST', path: '/_bulk' }, () => ({ took: 1, errors: false, items: [] }));
    const BulkWithoutHeader = withoutProductHeader(mock, (path) => path === '/_bulk');
    const reporter = recorder();
    const transport = new ElasticsearchTransport({
      service: 'edge',
      node: 'http://127.0.0.1:9200',
      clientOptions: { Connection: BulkWithoutHeader },
      flushMs: 10,
      reportIntervalMs: 0,
      reporter,
    });
    transports.push(transport);
    for (let i = 0; i < 4; i++) transport.log({ level: 'info', message: `m${i}` }, () => undefined);
    await waitFor(() => transport.stats().state === 'stopped', 'shipping stopped');
    expect(transport.stats()).toMatchObject({
      templateInstalled: true,
      shipped: 0,
      dropped: { product_check_failed: 4 },
    });
    expect(reporter.lines.filter((l) => l.level === 'error')).toHaveLength(1);
  });

  it('close() flushes what is buffered before resolving', async () => {
    const h = harness({ flushMs: 60_000, flushDocs: 1000 });
    for (let i = 0; i < 25; i++) h.logger.info(`shutdown ${i}`);
    expect(h.bulkCalls).toHaveLength(0);
    await h.transport.close();
    expect(h.transport.stats()).toMatchObject({ state: 'closed', shipped: 25, buffered: 0, droppedTotal: 0 });
    expect(h.bulkCalls.flatMap((c) => c.docs)).toHaveLength(25);
  });

  it('flush() sends what is buffered now', async () => {
    const h = harness({ flushMs: 60_000 });
    h.logger.info('one');
    h.logger.info('two');
    await h.transport.flush();
    expect(h.transport.stats().shipped).toBe(2);
  });

  it('ships documents whose metadata cannot be serialized as plain JSON', async () => {
    const h = harness();
    const circular: Record<string, unknown> = { name: 'loop' };
    circular.self = circular;
    h.transport.log({ level: 'info', message: 'odd meta', big: 10n, circular }, () => undefined);
    await waitFor(() => h.transport.stats().shipped === 1, 'shipped');
    const doc = h.bulkCalls[0]?.docs[0] as { driftline: { big: string; circular: { self: string } } };
    expect(doc.driftline.big).toBe('10');
    expect(doc.driftline.circular.self).toBe('[Circular]');
  });

  it('exports Prometheus counters when given a registry', async () => {
    const registry = new Registry();
    const h = harness({
      registry,
      flushDocs: 2,
      bulk: (call) => ({
        took: 1,
        errors: true,
        items: call.actions.map((a, i) => ({
          index: {
            ...a,
            status: i === 0 ? 201 : 400,
            ...(i === 0 ? {} : { error: { type: 'mapper_parsing_exception', reason: 'x' } }),
          },
        })),
      }),
    });
    h.logger.info('a');
    h.logger.info('b');
    await waitFor(() => h.transport.stats().shipped === 1, 'shipped');
    const text = await registry.metrics();
    expect(text).toContain('driftline_log_shipper_shipped_total 1');
    expect(text).toContain('driftline_log_shipper_dropped_total{reason="rejected_by_es"} 1');
    expect(text).toContain('driftline_log_shipper_dropped_total{reason="buffer_full"} 0');
    expect(text).toContain('driftline_log_shipper_failed_batches_total 0');
    expect(text).toMatch(/driftline_log_shipper_buffered \d+/);
  });
});

describe('elasticsearchTransportFromEnv', () => {
  it('is off without ELASTICSEARCH_URL', () => {
    expect(elasticsearchTransportFromEnv({}, 'broker')).toBeUndefined();
  });

  it('switches on with ELASTICSEARCH_URL and reads the other variables', async () => {
    const t = elasticsearchTransportFromEnv(
      {
        ELASTICSEARCH_URL: 'http://127.0.0.1:9',
        ELASTICSEARCH_INDEX_PREFIX: 'edge-test',
        ELASTICSEARCH_FLUSH_MS: '250',
        ELASTICSEARCH_MAX_BUFFER: '50',
        ELASTICSEARCH_API_KEY: 'c2VjcmV0',
      },
      { name: 'broker', version: '0.1.0' },
      { reportIntervalMs: 0, installTemplate: false, reporter: recorder() },
    );
    expect(t).toBeInstanceOf(ElasticsearchTransport);
    if (!t) return;
    transports.push(t);
    expect(t.indexPrefix).toBe('edge-test');
    for (let i = 0; i < 60; i++) t.log({ level: 'info', message: `m${i}` }, () => undefined);
    expect(t.stats().dropped.buffer_full).toBe(10);
    await t.close(50);
  });

  it('rejects invalid values and half-set credentials with a ConfigError', () => {
    expect(() => elasticsearchTransportFromEnv({ ELASTICSEARCH_URL: 'ftp://x' }, 'broker')).toThrow(
      ConfigError,
    );
    expect(() =>
      elasticsearchTransportFromEnv(
        { ELASTICSEARCH_URL: 'http://x:9200', ELASTICSEARCH_FLUSH_MS: 'soon' },
        'broker',
      ),
    ).toThrow(/ELASTICSEARCH_FLUSH_MS/);
    expect(() =>
      elasticsearchTransportFromEnv(
        { ELASTICSEARCH_URL: 'http://x:9200', ELASTICSEARCH_INDEX_PREFIX: 'Edge*' },
        'broker',
      ),
    ).toThrow(/ELASTICSEARCH_INDEX_PREFIX/);
    expect(() =>
      elasticsearchTransportFromEnv(
        { ELASTICSEARCH_URL: 'http://x:9200', ELASTICSEARCH_USERNAME: 'elastic' },
        'broker',
      ),
    ).toThrow(/ELASTICSEARCH_PASSWORD/);
    expect(() =>
      elasticsearchTransportFromEnv(
        {
          ELASTICSEARCH_URL: 'http://x:9200',
          ELASTICSEARCH_API_KEY: 'k',
          ELASTICSEARCH_USERNAME: 'u',
          ELASTICSEARCH_PASSWORD: 'p',
        },
        'broker',
      ),
    ).toThrow(/not both/);
  });

  it('keeps credentials out of the config summary', () => {
    const summary = summarizeConfig(elasticsearchConfigSpec, {
      url: 'http://127.0.0.1:9200',
      apiKey: 'k',
      username: 'u',
      password: 'p',
      indexPrefix: 'edge-mlops',
      flushMs: 1000,
      maxBuffer: 10,
    });
    expect(summary).toMatchObject({
      ELASTICSEARCH_API_KEY: '***',
      ELASTICSEARCH_USERNAME: '***',
      ELASTICSEARCH_PASSWORD: '***',
      ELASTICSEARCH_INDEX_PREFIX: 'edge-mlops',
    });
  });
});
