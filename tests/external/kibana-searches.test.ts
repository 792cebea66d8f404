/**
 * The Kibana saved objects (k8s/kibana/driftline-kibana.ndjson) against a REAL
 * Elasticsearch holding REAL Driftline logs. Kibana itself is on no registry
 * these machines reach, so what Kibana would do is done here: each saved
 * search's KQL is translated to the query DSL as Kibana translates it
 * (scripts/kibana/kql.ts) and run, with a time-range filter as Kibana's time
 * picker adds, against the data view's index pattern.
 *
 * The logs: one run of the all-in-one `driftline start` (bin/driftline.ts: the
 * simulator, the edge worker, the retrainer, the registry) as a child process
 * with ELASTICSEARCH_URL set, on the real Mosquitto broker (MQTT_URL), playing
 * scenarios/e2e-drift.json (vibration shift and concept drift) at 500 msg/s with
 * --exit-after-phases: a drift alarm, a retrain, a promotion. While it runs the
 * test publishes one invalid telemetry message as device m-000: a dead letter.
 *
 * Checked for every saved search: it finds events, every hit has an
 * `event.action` the search promises, and it finds all of them (its total
 * equals the count of those actions in the same time range, from an
 * independent aggregation); the columns it shows are mapped; the drift alarm's
 * trace.id leads to its retrain and its promotion. For the data view: its
 * pattern matches the daily index and its timeFieldName is mapped as `date`.
 *
 * Needs `scripts/services/elasticsearch.sh start` and
 * `scripts/services/mosquitto.sh start` (ELASTICSEARCH_URL, MOSQUITTO_URL);
 * fails, never skips, when either is unreachable. The run's log goes to
 * test-results/kibana-searches/system.log.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync, type WriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client, type estypes } from '@elastic/elasticsearch';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dailyIndexName } from '../../common/logging/elasticsearch-template.ts';
import { kqlToEs, type EsQuery } from '../../scripts/kibana/kql.ts';

const ES_URL =
  process.env.ELASTICSEARCH_URL || `http://127.0.0.1:${process.env.ELASTICSEARCH_PORT || '9200'}`;
const MQTT_URL = process.env.MOSQUITTO_URL || `mqtt://127.0.0.1:${process.env.MOSQUITTO_PORT || '1884'}`;
const DEV_PASSWORD = process.env.MOSQUITTO_DEV_PASSWORD ?? 'driftline-dev';
const SCENARIO = 'scenarios/e2e-drift.json';
const OUT = path.resolve('test-results/kibana-searches');
const INVALID_TOPIC = 'factory/m-000/telemetry';

interface SavedObject {
  id: string;
  type: string;
  attributes: Record<string, unknown>;
  references: { id: string; name: string; type: string }[];
}
const OBJECTS = readFileSync('k8s/kibana/driftline-kibana.ndjson', 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((l) => JSON.parse(l) as SavedObject);

/** What each saved search promises, stated here independently of its query (from its title and description). */
const PROMISES: Record<string, { accepts: (action: string) => boolean; mustFind: string[] }> = {
  'driftline-search-drift-alarms': { accepts: (a) => a === 'drift-alarm', mustFind: ['drift-alarm'] },
  'driftline-search-retrains': {
    accepts: (a) =>
      [
        'retrain-request',
        'retrain-request-received',
        'retrain-request-duplicate',
        'retrain-request-coalesced',
      ].includes(a) || ['training-started', 'training-finished', 'evaluation', 'rejected'].includes(a),
    mustFind: [
      'retrain-request',
      'retrain-request-received',
      'training-started',
      'training-finished',
      'evaluation',
    ],
  },
  'driftline-search-promotions': {
    accepts: (a) =>
      [
        'promoted',
        'registry.promote',
        'registry.rollback',
        'model-promoted',
        'model-rolled-back',
        'model-swap',
      ].includes(a),
    mustFind: ['promoted', 'registry.promote', 'model-promoted', 'model-swap'],
  },
  'driftline-search-dead-letters': { accepts: (a) => a === 'dead-letter', mustFind: ['dead-letter'] },
};

type Doc = {
  '@timestamp': string;
  event?: { action?: string; reason?: string };
  trace?: { id?: string };
  service?: { name?: string };
  driftline?: Record<string, unknown>;
};

let client: Client;
let child: ChildProcess | undefined;
let logStream: WriteStream | undefined;
let stateRoot = '';
let from = '';
let to = '';
let summary: {
  retrains?: { correlationId: string; outcome: string; version?: string }[];
  finalChampion?: string;
} = {};
let actionCounts: Record<string, number> = {};

async function requireTcp(what: string, url: string, hint: string): Promise<void> {
  const u = new URL(url);
  await new Promise<void>((resolve, reject) => {
    const socket = net.connect({ host: u.hostname, port: Number(u.port) });
    const fail = (err: Error): void => {
      socket.destroy();
      reject(new Error(`${what} is not reachable at ${url} (${err.message}). Start it with: ${hint}`));
    };
    socket.setTimeout(5000, () => fail(new Error('connect timeout')));
    socket.once('error', fail);
    socket.once('connect', () => {
      socket.end();
      resolve();
    });
  });
}

/** The Kibana time-range filter of the run, as the time picker adds it. */
const timeRange = (): EsQuery => ({
  range: { '@timestamp': { gte: from, lte: to, format: 'strict_date_optional_time' } },
});

function savedSearch(id: string): { title: string; columns: string[]; kql: string; dataView: SavedObject } {
  const o = OBJECTS.find((x) => x.id === id && x.type === 'search');
  if (!o) throw new Error(`no saved search ${id} in the ndjson`);
  const meta = o.attributes.kibanaSavedObjectMeta as { searchSourceJSON: string };
  const source = JSON.parse(meta.searchSourceJSON) as {
    query: { query: string; language: string };
    indexRefName: string;
  };
  expect(source.query.language).toBe('kuery');
  const ref = o.references.find((r) => r.name === source.indexRefName);
  const dataView = OBJECTS.find((x) => x.id === ref?.id && x.type === 'index-pattern');
  if (!dataView) throw new Error(`saved search ${id}: its data view ${ref?.id} is not in the file`);
  return {
    title: o.attributes.title as string,
    columns: o.attributes.columns as string[],
    kql: source.query.query,
    dataView,
  };
}

function runDriftline(
  env: NodeJS.ProcessEnv,
  onLine: (line: string) => void,
): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    child = spawn(
      path.resolve('node_modules/.bin/tsx'),
      [
        'bin/driftline.ts',
        'start',
        '--scenario-file',
        SCENARIO,
        '--rate',
        '500',
        '--exit-after-phases',
        '--no-dashboard',
        '--state-dir',
        path.join(stateRoot, 'state'),
      ],
      { env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let buffered = '';
    child.stdout?.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr?.on('data', (b: Buffer) => {
      logStream?.write(b);
      buffered += b.toString();
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        onLine(buffered.slice(0, nl));
        buffered = buffered.slice(nl + 1);
      }
    });
    child.once('error', reject);
    child.once('close', (code) => {
      child = undefined;
      resolve({ code: code ?? -1, stdout });
    });
  });
}

/** Publishes one telemetry message that fails the contract, as the device m-000 (its own topic). */
async function publishInvalidTelemetry(): Promise<void> {
  const c = await mqtt.connectAsync(MQTT_URL, {
    username: 'm-000',
    password: `${DEV_PASSWORD}-m-000`,
    clientId: `kibana-test-${process.pid}`,
    reconnectPeriod: 0,
  });
  try {
    await c.publishAsync(INVALID_TOPIC, JSON.stringify({ machineId: 'm-000', note: 'not telemetry' }), {
      qos: 1,
    });
  } finally {
    await c.endAsync();
  }
}

beforeAll(async () => {
  client = new Client({ node: ES_URL, requestTimeout: 30_000 });
  try {
    await client.cluster.health({ wait_for_status: 'yellow', timeout: '30s' });
  } catch (err) {
    throw new Error(
      `Elasticsearch is not reachable at ${ES_URL} (${(err as Error).message}); start it with scripts/services/elasticsearch.sh start`,
    );
  }
  await requireTcp('Mosquitto', MQTT_URL, 'scripts/services/mosquitto.sh start');

  await mkdir(OUT, { recursive: true });
  logStream = createWriteStream(path.join(OUT, 'system.log'));
  stateRoot = await mkdtemp(path.join(tmpdir(), 'driftline-kibana-'));
  const devices = Object.fromEntries(
    ['m-000', 'm-001', 'm-002', 'm-003'].map((id) => [id, `${DEV_PASSWORD}-${id}`]),
  );
  const credentialsFile = path.join(stateRoot, 'simulator-credentials.json');
  await writeFile(
    credentialsFile,
    JSON.stringify({
      devices,
      inspection: { username: 'inspection', password: `${DEV_PASSWORD}-inspection` },
    }),
  );
  const env: NodeJS.ProcessEnv = {};
  // The caller's environment minus what would swap the embedded bus/registry or redirect the logs.
  for (const [k, v] of Object.entries(process.env))
    if (
      !/^(KAFKA_|MLFLOW_|MQTT_|ELASTICSEARCH_|DRIFTLINE_VAULT|REGISTRY_DIR|LOG_|EDGE_|DASHBOARD_|SIMULATOR_|RETRAINER_|BROKER_)/.test(
        k,
      )
    )
      env[k] = v;
  Object.assign(env, {
    ELASTICSEARCH_URL: ES_URL,
    ELASTICSEARCH_FLUSH_MS: '200',
    MQTT_URL,
    EDGE_MQTT_USERNAME: 'edge',
    EDGE_MQTT_PASSWORD: `${DEV_PASSWORD}-edge`,
    DASHBOARD_MQTT_PASSWORD: `${DEV_PASSWORD}-dashboard`,
    SIMULATOR_CREDENTIALS_FILE: credentialsFile,
    EDGE_HTTP_PORT: '0',
    RETRAINER_HTTP_PORT: '0',
    LOG_LEVEL: 'info',
  });

  from = new Date().toISOString();
  let published: Promise<void> | undefined;
  const run = await runDriftline(env, (line) => {
    // The simulator has started its first phase: the edge worker is subscribed by then.
    if (published === undefined && line.includes('"action":"phase-started"'))
      published = publishInvalidTelemetry();
  });
  if (published === undefined) throw new Error(`the run never started a phase; see ${OUT}/system.log`);
  await published;
  if (run.code !== 0) throw new Error(`driftline start exited ${run.code}; see ${OUT}/system.log`);
  summary = JSON.parse(run.stdout.trim().split('\n').at(-1) ?? '{}') as typeof summary;
  to = new Date().toISOString();
  await client.indices.refresh({ index: 'edge-mlops-*' });
  const agg = await client.search({
    index: 'edge-mlops-*',
    size: 0,
    query: timeRange(),
    aggs: { actions: { terms: { field: 'event.action', size: 500 } } },
  });
  const buckets = (agg.aggregations?.actions as estypes.AggregationsStringTermsAggregate).buckets as {
    key: string;
    doc_count: number;
  }[];
  actionCounts = Object.fromEntries(buckets.map((b) => [b.key, b.doc_count]));
  logStream.write(
    `---- summary: ${JSON.stringify(summary)}\n---- actions from ${from} to ${to}: ${JSON.stringify(actionCounts)}\n`,
  );
}, 600_000);

afterAll(async () => {
  child?.kill('SIGTERM');
  await new Promise<void>((resolve) => (logStream ? logStream.end(resolve) : resolve()));
  if (stateRoot) await rm(stateRoot, { recursive: true, force: true });
  await client?.close();
}, 60_000);

/** The last retrain of the run that promoted its model. */
const lastPromotion = () => summary.retrains?.filter((r) => r.outcome === 'model-promoted').at(-1);

async function runSavedSearch(
  id: string,
): Promise<{ hits: estypes.SearchHit<Doc>[]; total: number; index: string }> {
  const s = savedSearch(id);
  const index = s.dataView.attributes.title as string;
  const res = await client.search<Doc>({
    index,
    size: 1000,
    track_total_hits: true,
    query: { bool: { filter: [kqlToEs(s.kql), timeRange()] } },
    sort: [{ '@timestamp': 'desc' }],
  });
  const total = typeof res.hits.total === 'number' ? res.hits.total : (res.hits.total?.value ?? 0);
  return { hits: res.hits.hits, total, index };
}

describe(`Kibana saved searches on real Driftline logs in ${ES_URL}`, () => {
  it('the run went through drift, retrain and promotion', () => {
    const promoted = lastPromotion();
    expect(promoted, `summary: ${JSON.stringify(summary)}`).toBeDefined();
    // The edge serves the last promoted model: it heard of the promotion (and logged it) before the end.
    expect(summary.finalChampion).toBe(promoted?.version);
  });

  for (const [id, promise] of Object.entries(PROMISES)) {
    it(`${id}: finds the events it promises, only those, and all of them`, async () => {
      const { hits, total, index } = await runSavedSearch(id);
      const actions = hits.map((h) => h._source?.event?.action ?? '(none)');
      expect(
        total,
        `no hit for ${id}; actions in the range: ${JSON.stringify(actionCounts)}`,
      ).toBeGreaterThan(0);
      expect(hits).toHaveLength(total);
      for (const a of actions) expect(promise.accepts(a), `${id} returned ${a}`).toBe(true);
      for (const a of promise.mustFind) expect(actions, `${id} should find ${a}`).toContain(a);
      const expected = Object.entries(actionCounts)
        .filter(([a]) => promise.accepts(a))
        .reduce((n, [, c]) => n + c, 0);
      expect(total).toBe(expected);
      // The hits come from the daily indices the data view's pattern covers.
      const days = new Set([
        dailyIndexName('edge-mlops', new Date(from)),
        dailyIndexName('edge-mlops', new Date(to)),
      ]);
      for (const h of hits) expect(days).toContain(h._index);
      expect(index).toBe('edge-mlops-*');
    });
  }

  it('the dead letter is the invalid message, with its reason and topic', async () => {
    const { hits } = await runSavedSearch('driftline-search-dead-letters');
    const ours = hits.filter((h) => h._source?.driftline?.topic === INVALID_TOPIC);
    expect(ours.length, JSON.stringify(hits.map((h) => h._source))).toBeGreaterThanOrEqual(1);
    expect(ours[0]?._source?.service?.name).toBe('edge-inference');
    expect(ours[0]?._source?.event?.reason).toMatch(/^[a-z_]+$/);
  });

  it("the drift alarm's trace.id leads to its retrain and its promotion", async () => {
    const correlationId = lastPromotion()?.correlationId;
    expect(correlationId, `summary: ${JSON.stringify(summary)}`).toBeTruthy();
    const traced = async (id: string): Promise<string[]> =>
      (await runSavedSearch(id)).hits
        .filter((h) => h._source?.trace?.id === correlationId)
        .map((h) => h._source?.event?.action ?? '');
    expect(await traced('driftline-search-drift-alarms')).toContain('drift-alarm');
    expect(await traced('driftline-search-retrains')).toEqual(
      expect.arrayContaining([
        'retrain-request',
        'retrain-request-received',
        'training-started',
        'training-finished',
      ]),
    );
    expect(await traced('driftline-search-promotions')).toEqual(
      expect.arrayContaining(['promoted', 'registry.promote', 'model-promoted']),
    );
  });

  it("the data view's pattern matches the daily index and its time field is mapped as date", async () => {
    const dv = OBJECTS.find((o) => o.type === 'index-pattern');
    expect(dv?.attributes.title).toBe('edge-mlops-*');
    const timeField = dv?.attributes.timeFieldName as string;
    expect(timeField).toBe('@timestamp');
    const index = dailyIndexName('edge-mlops', new Date(from));
    const resolved = await client.indices.resolveIndex({ name: dv?.attributes.title as string });
    expect(resolved.indices.map((i) => i.name)).toContain(index);
    const mapping = await client.indices.getFieldMapping({ index, fields: [timeField] });
    const field = mapping[index]?.mappings[timeField]?.mapping as
      Record<string, { type?: string }> | undefined;
    expect(field && Object.values(field)[0]?.type).toBe('date');
  });

  it('every column the saved searches show is a field the daily index maps', async () => {
    const index = dailyIndexName('edge-mlops', new Date(from));
    const whole = await client.indices.getMapping({ index });
    const dynamicTemplates = (whole[index]?.mappings.dynamic_templates ?? []).flatMap((t) =>
      Object.values(t),
    ) as {
      path_match?: string | string[];
      mapping?: { type?: string };
    }[];
    for (const id of Object.keys(PROMISES)) {
      const { columns } = savedSearch(id);
      // driftline.* lives in one flattened field: its keys are not mapped one by one.
      const plain = [...new Set(columns.map((c) => (c.startsWith('driftline.') ? 'driftline' : c)))];
      const mapping = await client.indices.getFieldMapping({ index, fields: plain });
      const mapped = Object.keys(mapping[index]?.mappings ?? {});
      for (const c of plain) {
        if (mapped.includes(c)) continue;
        // labels.* appear when a service logs them (a per-machine alarm carries labels.machine_id, a
        // fleet-wide one does not); the template maps each one as a keyword when it does.
        expect(c.startsWith('labels.'), `${id} column ${c} is not mapped in ${index}`).toBe(true);
        expect(
          dynamicTemplates.some(
            (t) => [t.path_match].flat().includes('labels.*') && t.mapping?.type === 'keyword',
          ),
          `${id} column ${c}: no labels.* dynamic template`,
        ).toBe(true);
      }
      if (plain.includes('driftline')) {
        const m = mapping[index]?.mappings.driftline?.mapping as Record<string, { type?: string }>;
        expect(Object.values(m)[0]?.type).toBe('flattened');
      }
    }
  });
});
