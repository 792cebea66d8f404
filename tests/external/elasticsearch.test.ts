/**
 * The Elasticsearch log shipper against a REAL Elasticsearch node: the index
 * template is installed, documents arrive in `edge-mlops-YYYY.MM.DD` (UTC) with
 * their ECS fields mapped as the template says, a correlation id is searchable
 * (term query and the KQL-style query string Kibana sends), a document the
 * mapping refuses is counted as rejected, and the official client's product
 * check passes.
 *
 * Needs the node: `scripts/services/elasticsearch.sh start` (listens on
 * ELASTICSEARCH_URL, default http://127.0.0.1:9200). Fails, never skips, when
 * it is not reachable. Every run uses fresh correlation ids; the documents of
 * the second suite go to a throw-away prefix that is deleted afterwards.
 */
import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { Client, type estypes } from '@elastic/elasticsearch';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dailyIndexName } from '../../common/logging/elasticsearch-template.ts';
import {
  ElasticsearchTransport,
  elasticsearchTransportFromEnv,
  type ShipperReporter,
} from '../../common/logging/elasticsearch-transport.ts';
import { createLogger } from '../../common/logging/logger.ts';

const URL = process.env.ELASTICSEARCH_URL || `http://127.0.0.1:${process.env.ELASTICSEARCH_PORT || '9200'}`;
const RUN = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
const SCRATCH_PREFIX = `driftline-it-${RUN}`;

const reporterLines: string[] = [];
const reporter: ShipperReporter = {
  warn: (message) => reporterLines.push(`warn ${message}`),
  error: (message) => reporterLines.push(`error ${message}`),
};

type Hit = estypes.SearchHit<Record<string, unknown>>;

describe(`Elasticsearch at ${URL}`, () => {
  let client: Client;
  let unreachable: Error | undefined;
  let esVersion = '?';

  beforeAll(async () => {
    client = new Client({ node: URL, requestTimeout: 30_000 });
    try {
      const health = await client.cluster.health({ wait_for_status: 'yellow', timeout: '30s' });
      const nodes = await client.nodes.info({ node_id: '_local', metric: ['settings'] });
      esVersion = Object.values(nodes.nodes)[0]?.version ?? '?';
      expect(['green', 'yellow']).toContain(health.status);
    } catch (err) {
      unreachable = err as Error;
    }
  });

  afterAll(async () => {
    await client?.indices
      .delete({ index: `${SCRATCH_PREFIX}-*`, ignore_unavailable: true, allow_no_indices: true })
      .catch(() => undefined);
    await client?.indices.deleteIndexTemplate({ name: SCRATCH_PREFIX }).catch(() => undefined);
    await client?.close();
  });

  function requireNode(): void {
    if (unreachable) {
      throw new Error(
        `Elasticsearch is not reachable at ${URL} (${unreachable.message}); ` +
          `start it with scripts/services/elasticsearch.sh start`,
      );
    }
  }

  async function search(index: string, query: estypes.QueryDslQueryContainer): Promise<Hit[]> {
    await client.indices.refresh({ index });
    const res = await client.search<Record<string, unknown>>({
      index,
      query,
      size: 100,
      sort: [{ '@timestamp': 'asc' }],
    });
    return res.hits.hits;
  }

  describe('a service logging with ELASTICSEARCH_URL set (default prefix edge-mlops)', () => {
    const correlationId = `corr-${RUN}`;
    let transport: ElasticsearchTransport;
    const today = dailyIndexName('edge-mlops', new Date());

    beforeAll(async () => {
      if (unreachable) return;
      const t = elasticsearchTransportFromEnv(
        { ELASTICSEARCH_URL: URL, ELASTICSEARCH_FLUSH_MS: '100' },
        { name: 'edge-inference', version: '9.9.9-test' },
        { reporter },
      );
      if (!t)
        throw new Error('elasticsearchTransportFromEnv returned undefined although ELASTICSEARCH_URL is set');
      transport = t;
      const logger = createLogger({
        service: 'edge-inference',
        version: '9.9.9-test',
        format: 'json',
        stream: new PassThrough(),
        transports: [transport],
      });
      const flow = logger.child({ correlationId });
      flow.info('drift alarm raised', {
        action: 'drift-alarm',
        machineId: 'press-07',
        modelVersion: '3',
        features: ['vibrationHz'],
        pValue: 0.0004,
      });
      flow.info('retraining requested', {
        action: 'retrain-requested',
        reason: 'drift',
        outcome: 'success',
        durationMs: 12.5,
      });
      flow.error('champion load failed', { action: 'model-load', err: new TypeError('bad checksum') });
      // event.duration_ms is a double in the template: a string there is refused by Elasticsearch.
      flow.warn('unparseable duration', { action: 'dead-letter', durationMs: 'slow' });
      await transport.close(15_000);
    });

    it('ships through the official client (product check passed) and counts the refused document', () => {
      requireNode();
      const s = transport.stats();
      expect(s.stoppedReason).toBeUndefined();
      expect(s.templateInstalled).toBe(true);
      expect(s.shipped).toBe(3);
      expect(s.dropped.rejected_by_es).toBe(1);
      expect(s.lastError).toMatch(/event\.duration_ms|parsing/);
      expect(reporterLines.filter((l) => l.startsWith('error'))).toEqual([]);
    });

    it('installed the edge-mlops index template', async () => {
      requireNode();
      const res = await client.indices.getIndexTemplate({ name: 'edge-mlops' });
      const tpl = res.index_templates[0]?.index_template;
      expect(tpl?.index_patterns).toEqual(['edge-mlops-*']);
      expect(tpl?._meta).toMatchObject({ managed_by: 'driftline' });
    });

    it(`puts the documents into today's daily index (UTC) with their ECS fields`, async () => {
      requireNode();
      const hits = await search('edge-mlops-*', { term: { 'trace.id': correlationId } });
      expect(hits).toHaveLength(3);
      expect(new Set(hits.map((h) => h._index))).toEqual(new Set([today]));
      const [alarm, retrain, failure] = hits.map((h) => h._source ?? {}) as [
        Record<string, unknown>,
        Record<string, unknown>,
        Record<string, unknown>,
      ];
      expect(alarm).toMatchObject({
        'log.level': 'info',
        message: 'drift alarm raised',
        service: { name: 'edge-inference', version: '9.9.9-test' },
        trace: { id: correlationId },
        event: { action: 'drift-alarm' },
        labels: { machine_id: 'press-07', model_version: '3' },
        driftline: { features: ['vibrationHz'], pValue: 0.0004 },
      });
      expect(retrain).toMatchObject({
        event: { action: 'retrain-requested', outcome: 'success', reason: 'drift', duration_ms: 12.5 },
      });
      expect(failure).toMatchObject({
        'log.level': 'error',
        error: { type: 'TypeError', message: 'bad checksum' },
      });
    });

    it('maps the ECS fields as the template says', async () => {
      requireNode();
      const res = await client.indices.getFieldMapping({
        index: today,
        fields: [
          '@timestamp',
          'log.level',
          'message',
          'service.name',
          'service.version',
          'trace.id',
          'event.action',
          'event.outcome',
          'event.duration_ms',
          'labels.machine_id',
          'error.message',
          'error.type',
          'driftline',
        ],
      });
      const mappings = res[today]?.mappings ?? {};
      const typeOf = (field: string): string | undefined => {
        const m = mappings[field]?.mapping as Record<string, { type?: string }> | undefined;
        return m ? Object.values(m)[0]?.type : undefined;
      };
      expect(typeOf('@timestamp')).toBe('date');
      expect(typeOf('log.level')).toBe('keyword');
      expect(typeOf('message')).toBe('text');
      expect(typeOf('service.name')).toBe('keyword');
      expect(typeOf('service.version')).toBe('keyword');
      expect(typeOf('trace.id')).toBe('keyword');
      expect(typeOf('event.action')).toBe('keyword');
      expect(typeOf('event.outcome')).toBe('keyword');
      expect(typeOf('event.duration_ms')).toBe('double');
      expect(typeOf('labels.machine_id')).toBe('keyword');
      expect(typeOf('error.message')).toBe('text');
      expect(typeOf('error.type')).toBe('keyword');
      expect(typeOf('driftline')).toBe('flattened');
    });

    it('finds a flow by correlation id the way Kibana asks (query string), and by action', async () => {
      requireNode();
      const byQueryString = await search('edge-mlops-*', {
        query_string: { query: `trace.id:"${correlationId}" AND event.action:drift-alarm` },
      });
      expect(byQueryString.map((h) => (h._source as { message?: string }).message)).toEqual([
        'drift alarm raised',
      ]);
      const byPrefix = await search('edge-mlops-*', {
        bool: {
          filter: [{ term: { 'trace.id': correlationId } }, { prefix: { 'event.action': 'retrain-' } }],
        },
      });
      expect(byPrefix).toHaveLength(1);
      const byFlattened = await search('edge-mlops-*', {
        bool: {
          filter: [
            { term: { 'trace.id': correlationId } },
            { term: { 'driftline.features': 'vibrationHz' } },
          ],
        },
      });
      expect(byFlattened).toHaveLength(1);
    });
  });

  describe('daily indices follow the UTC date of each event', () => {
    it('routes events of different days to different indices', async () => {
      requireNode();
      const transport = new ElasticsearchTransport({
        service: 'simulator',
        node: URL,
        indexPrefix: SCRATCH_PREFIX,
        template: { replicas: 0 },
        flushMs: 50,
        reportIntervalMs: 0,
        reporter,
      });
      const logger = createLogger({
        service: 'simulator',
        format: 'json',
        stream: new PassThrough(),
        transports: [transport],
      });
      logger.info('leap day, last millisecond (UTC)', {
        timestamp: '2024-02-29T23:59:59.999Z',
        correlationId: RUN,
      });
      logger.info('next day in UTC, still 29 Feb in New York', {
        timestamp: '2024-03-01T00:00:00.000Z',
        correlationId: RUN,
      });
      await transport.close(15_000);
      expect(transport.stats()).toMatchObject({ shipped: 2, droppedTotal: 0 });
      const hits = await search(`${SCRATCH_PREFIX}-*`, { term: { 'trace.id': RUN } });
      expect(hits.map((h) => h._index)).toEqual([
        `${SCRATCH_PREFIX}-2024.02.29`,
        `${SCRATCH_PREFIX}-2024.03.01`,
      ]);
      const settings = await client.indices.getSettings({ index: `${SCRATCH_PREFIX}-2024.02.29` });
      expect(settings[`${SCRATCH_PREFIX}-2024.02.29`]?.settings?.index?.number_of_replicas).toBe('0');
      expect(esVersion).toMatch(/^\d+\.\d+\.\d+/);
    });
  });
});
