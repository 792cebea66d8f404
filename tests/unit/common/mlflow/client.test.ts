import { describe, expect, it } from 'vitest';
import {
  ArtifactError,
  ConfigError,
  TimeoutError,
  TransportError,
  isRetriable,
} from '../../../../common/errors.ts';
import { MlflowClient, encodeArtifactPath, proxyPathFromUri } from '../../../../common/mlflow/client.ts';
import {
  MlflowAlreadyExistsError,
  MlflowApiError,
  MlflowInvalidParameterError,
  MlflowNotFoundError,
  MlflowTransportError,
  errorFromResponse,
} from '../../../../common/mlflow/errors.ts';

const BASE = 'http://mlflow.test:5055';

interface Call {
  method: string;
  path: string;
  query: Record<string, string[]>;
  headers: Record<string, string>;
  json: unknown;
  bytes: Uint8Array | undefined;
}

type Reply = { status?: number; json?: unknown; body?: string | Uint8Array } | Error;

/** A fake `fetch` that records requests and answers from a queue (default: 200 `{}`). */
function fakeFetch(replies: Reply[] = []): { fetch: typeof fetch; calls: Call[] } {
  const calls: Call[] = [];
  const impl = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(String(input));
    const query: Record<string, string[]> = {};
    for (const [k, v] of url.searchParams) (query[k] ??= []).push(v);
    const headers = Object.fromEntries(
      Object.entries((init?.headers ?? {}) as Record<string, string>).map(([k, v]) => [k.toLowerCase(), v]),
    );
    const body = init?.body;
    calls.push({
      method: init?.method ?? 'GET',
      path: url.pathname,
      query,
      headers,
      json: typeof body === 'string' ? JSON.parse(body) : undefined,
      bytes: body instanceof Uint8Array ? body : undefined,
    });
    const reply = replies.shift() ?? {};
    if (reply instanceof Error) throw reply;
    const payload = reply.body ?? JSON.stringify(reply.json ?? {});
    return new Response(typeof payload === 'string' ? payload : new Uint8Array(payload), {
      status: reply.status ?? 200,
    });
  };
  return { fetch: impl as typeof fetch, calls };
}

function client(
  replies: Reply[] = [],
  extra: Partial<ConstructorParameters<typeof MlflowClient>[0]> = {},
): { c: MlflowClient; calls: Call[] } {
  const fake = fakeFetch(replies);
  const c = new MlflowClient({
    trackingUri: `${BASE}/`,
    fetch: fake.fetch,
    env: {},
    retry: { attempts: 3, initialDelayMs: 1, maxDelayMs: 2 },
    ...extra,
  });
  return { c, calls: fake.calls };
}

describe('MlflowClient request shapes', () => {
  it('experiments: get-by-name, create, get-or-create', async () => {
    const { c, calls } = client([
      { json: { experiment: { experiment_id: '7', name: 'driftline' } } },
      { json: { experiment_id: '8' } },
      { status: 404, json: { error_code: 'RESOURCE_DOES_NOT_EXIST', message: 'no' } },
      { json: { experiment_id: '9' } },
    ]);
    expect(await c.getExperimentByName('driftline')).toMatchObject({ experiment_id: '7' });
    expect(await c.createExperiment('x', { tags: { a: 'b' } })).toBe('8');
    expect(await c.getOrCreateExperiment('y')).toBe('9');
    expect(calls.map((k) => `${k.method} ${k.path}`)).toEqual([
      'GET /api/2.0/mlflow/experiments/get-by-name',
      'POST /api/2.0/mlflow/experiments/create',
      'GET /api/2.0/mlflow/experiments/get-by-name',
      'POST /api/2.0/mlflow/experiments/create',
    ]);
    expect(calls[0]?.query).toEqual({ experiment_name: ['driftline'] });
    expect(calls[1]?.json).toEqual({ name: 'x', tags: [{ key: 'a', value: 'b' }] });
    expect(calls[1]?.headers['content-type']).toBe('application/json');
    expect(calls[3]?.json).toEqual({ name: 'y' });
  });

  it('get-or-create survives a concurrent creator (RESOURCE_ALREADY_EXISTS)', async () => {
    const { c } = client([
      { status: 404, json: { error_code: 'RESOURCE_DOES_NOT_EXIST' } },
      { status: 400, json: { error_code: 'RESOURCE_ALREADY_EXISTS' } },
      { json: { experiment: { experiment_id: '3', name: 'd' } } },
    ]);
    expect(await c.getOrCreateExperiment('d')).toBe('3');
  });

  it('runs: create, update, log-batch, set-tag, get', async () => {
    const run = {
      info: {
        run_id: 'r1',
        experiment_id: '1',
        status: 'RUNNING',
        artifact_uri: 'mlflow-artifacts:/1/r1/artifacts',
      },
    };
    const { c, calls } = client([
      { json: { run } },
      { json: { run_info: { ...run.info, status: 'FINISHED' } } },
      {},
      {},
      { json: { run } },
      { json: { metrics: [{ key: 'loss', value: 1, timestamp: 1, step: 0 }], next_page_token: 't' } },
      { json: { metrics: [{ key: 'loss', value: 0.5, timestamp: 2, step: 1 }] } },
    ]);
    expect(
      (await c.createRun({ experimentId: '1', runName: 'retrain', startTime: 5, tags: { k: 'v' } })).info
        .run_id,
    ).toBe('r1');
    expect((await c.updateRun({ runId: 'r1', status: 'FINISHED', endTime: 9 })).status).toBe('FINISHED');
    await c.logBatch('r1', {
      metrics: [{ key: 'loss', value: 0.5, timestamp: 1, step: 3 }],
      params: [{ key: 'lr', value: '0.01' }],
    });
    await c.setTag('r1', 'stage', 'train');
    expect((await c.getRun('r1')).info.artifact_uri).toBe('mlflow-artifacts:/1/r1/artifacts');
    expect((await c.getMetricHistory('r1', 'loss')).map((m) => m.step)).toEqual([0, 1]);
    expect(calls.map((k) => [k.method, k.path, k.json ?? k.query])).toEqual([
      [
        'POST',
        '/api/2.0/mlflow/runs/create',
        { experiment_id: '1', run_name: 'retrain', start_time: 5, tags: [{ key: 'k', value: 'v' }] },
      ],
      ['POST', '/api/2.0/mlflow/runs/update', { run_id: 'r1', status: 'FINISHED', end_time: 9 }],
      [
        'POST',
        '/api/2.0/mlflow/runs/log-batch',
        {
          run_id: 'r1',
          metrics: [{ key: 'loss', value: 0.5, timestamp: 1, step: 3 }],
          params: [{ key: 'lr', value: '0.01' }],
          tags: [],
        },
      ],
      ['POST', '/api/2.0/mlflow/runs/set-tag', { run_id: 'r1', key: 'stage', value: 'train' }],
      ['GET', '/api/2.0/mlflow/runs/get', { run_id: ['r1'] }],
      ['GET', '/api/2.0/mlflow/metrics/get-history', { run_id: ['r1'], metric_key: ['loss'] }],
      [
        'GET',
        '/api/2.0/mlflow/metrics/get-history',
        { run_id: ['r1'], metric_key: ['loss'], page_token: ['t'] },
      ],
    ]);
  });

  it('artifacts: list, proxy upload (PUT bytes), proxy download', async () => {
    const { c, calls } = client([
      {
        json: {
          root_uri: 'mlflow-artifacts:/1/r1/artifacts',
          files: [{ path: 'model/w.bin', is_dir: false, file_size: 3 }],
        },
      },
      {},
      { body: new Uint8Array([1, 2, 3]) },
    ]);
    expect((await c.listArtifacts('r1', 'model')).files?.[0]?.path).toBe('model/w.bin');
    await c.uploadArtifact('1/r1/artifacts/model/weights file.bin', new Uint8Array([1, 2, 3]));
    expect([...(await c.downloadArtifact('1/r1/artifacts/model/w.bin'))]).toEqual([1, 2, 3]);
    expect(calls[0]).toMatchObject({
      method: 'GET',
      path: '/api/2.0/mlflow/artifacts/list',
      query: { run_id: ['r1'], path: ['model'] },
    });
    expect(calls[1]).toMatchObject({
      method: 'PUT',
      path: '/api/2.0/mlflow-artifacts/artifacts/1/r1/artifacts/model/weights%20file.bin',
    });
    expect(calls[1]?.headers['content-type']).toBe('application/octet-stream');
    expect([...(calls[1]?.bytes ?? [])]).toEqual([1, 2, 3]);
    expect(calls[2]).toMatchObject({
      method: 'GET',
      path: '/api/2.0/mlflow-artifacts/artifacts/1/r1/artifacts/model/w.bin',
    });
  });

  it('registered models and model versions', async () => {
    const mv = { name: 'm', version: '4', status: 'READY', source: 'runs:/r1/model' };
    const { c, calls } = client([
      { json: { registered_model: { name: 'm' } } },
      { json: { registered_model: { name: 'm', aliases: [{ alias: 'champion', version: '4' }] } } },
      {},
      {},
      { json: { model_version: mv } },
      { json: { model_version: mv } },
      { json: { model_versions: [mv], next_page_token: 'p2' } },
      { json: { model_versions: [{ ...mv, version: '5' }] } },
      {},
      {},
    ]);
    await c.createRegisteredModel('m', { tags: { team: 'ml' }, description: 'd' });
    expect((await c.getRegisteredModel('m')).aliases).toEqual([{ alias: 'champion', version: '4' }]);
    await c.setRegisteredModelTag('m', 'k', 'v');
    await c.deleteRegisteredModelTag('m', 'k');
    expect(
      (
        await c.createModelVersion({
          name: 'm',
          source: 'runs:/r1/model',
          runId: 'r1',
          tags: { 'driftline.checksum': 'abc' },
        })
      ).version,
    ).toBe('4');
    expect((await c.getModelVersion('m', '4')).source).toBe('runs:/r1/model');
    expect((await c.searchAllModelVersions("name='m'")).map((v) => v.version)).toEqual(['4', '5']);
    await c.setModelVersionTag('m', '4', 'driftline.rejected', 'worse');
    await c.deleteModelVersionTag('m', '4', 'driftline.rejected');
    expect(calls.map((k) => [k.method, k.path, k.json ?? k.query])).toEqual([
      [
        'POST',
        '/api/2.0/mlflow/registered-models/create',
        { name: 'm', tags: [{ key: 'team', value: 'ml' }], description: 'd' },
      ],
      ['GET', '/api/2.0/mlflow/registered-models/get', { name: ['m'] }],
      ['POST', '/api/2.0/mlflow/registered-models/set-tag', { name: 'm', key: 'k', value: 'v' }],
      ['DELETE', '/api/2.0/mlflow/registered-models/delete-tag', { name: 'm', key: 'k' }],
      [
        'POST',
        '/api/2.0/mlflow/model-versions/create',
        {
          name: 'm',
          source: 'runs:/r1/model',
          run_id: 'r1',
          tags: [{ key: 'driftline.checksum', value: 'abc' }],
        },
      ],
      ['GET', '/api/2.0/mlflow/model-versions/get', { name: ['m'], version: ['4'] }],
      ['GET', '/api/2.0/mlflow/model-versions/search', { filter: ["name='m'"], max_results: ['1000'] }],
      [
        'GET',
        '/api/2.0/mlflow/model-versions/search',
        { filter: ["name='m'"], max_results: ['1000'], page_token: ['p2'] },
      ],
      [
        'POST',
        '/api/2.0/mlflow/model-versions/set-tag',
        { name: 'm', version: '4', key: 'driftline.rejected', value: 'worse' },
      ],
      [
        'DELETE',
        '/api/2.0/mlflow/model-versions/delete-tag',
        { name: 'm', version: '4', key: 'driftline.rejected' },
      ],
    ]);
  });

  it('search passes order_by as repeated query parameters', async () => {
    const { c, calls } = client([{ json: {} }]);
    await c.searchModelVersions({
      filter: "name='m'",
      maxResults: 5,
      orderBy: ['version_number DESC', 'creation_timestamp'],
    });
    expect(calls[0]?.query).toEqual({
      filter: ["name='m'"],
      max_results: ['5'],
      order_by: ['version_number DESC', 'creation_timestamp'],
    });
  });

  it('aliases: set, delete, get-by-alias (unknown alias → undefined)', async () => {
    const { c, calls } = client([
      {},
      {},
      { json: { model_version: { name: 'm', version: '2', aliases: ['champion'] } } },
      {
        status: 400,
        json: {
          error_code: 'INVALID_PARAMETER_VALUE',
          message: 'Registered model alias champion not found.',
        },
      },
      {
        status: 404,
        json: { error_code: 'RESOURCE_DOES_NOT_EXIST', message: 'Registered Model with name=x not found' },
      },
    ]);
    await c.setAlias('m', 'champion', '2');
    await c.deleteAlias('m', 'champion');
    expect((await c.getModelVersionByAlias('m', 'champion'))?.version).toBe('2');
    expect(await c.getModelVersionByAlias('m', 'champion')).toBeUndefined();
    expect(await c.getModelVersionByAlias('x', 'champion')).toBeUndefined();
    expect(calls.slice(0, 3).map((k) => [k.method, k.path, k.json ?? k.query])).toEqual([
      ['POST', '/api/2.0/mlflow/registered-models/alias', { name: 'm', alias: 'champion', version: '2' }],
      ['DELETE', '/api/2.0/mlflow/registered-models/alias', { name: 'm', alias: 'champion' }],
      ['GET', '/api/2.0/mlflow/registered-models/alias', { name: ['m'], alias: ['champion'] }],
    ]);
  });

  it('sends basic auth or a bearer token', async () => {
    const basic = client([{}], { username: 'alice', password: 's3cret' });
    await basic.c.setTag('r', 'k', 'v');
    expect(basic.calls[0]?.headers.authorization).toBe(
      `Basic ${Buffer.from('alice:s3cret').toString('base64')}`,
    );
    const bearer = client([{}], { env: { MLFLOW_TRACKING_TOKEN: 'tok', MLFLOW_TRACKING_USERNAME: 'bob' } });
    await bearer.c.setTag('r', 'k', 'v');
    expect(bearer.calls[0]?.headers.authorization).toBe('Bearer tok');
    const none = client([{}]);
    await none.c.setTag('r', 'k', 'v');
    expect(none.calls[0]?.headers.authorization).toBeUndefined();
  });

  it('reads the base URL from MLFLOW_TRACKING_URI and refuses non-http URIs', () => {
    expect(new MlflowClient({ env: { MLFLOW_TRACKING_URI: 'http://h:1/' } }).baseUrl).toBe('http://h:1');
    expect(() => new MlflowClient({ env: {} })).toThrow(ConfigError);
    expect(() => new MlflowClient({ env: { MLFLOW_TRACKING_URI: 'file:///tmp/mlruns' } })).toThrow(
      ConfigError,
    );
    expect(() => new MlflowClient({ env: { MLFLOW_TRACKING_URI: 'not a url' } })).toThrow(ConfigError);
  });
});

describe('MlflowClient errors and retries', () => {
  it('retries a 503 and then succeeds', async () => {
    const { c, calls } = client([
      { status: 503, body: 'unavailable' },
      { status: 503, json: { error_code: 'TEMPORARILY_UNAVAILABLE' } },
      {
        json: {
          run: {
            info: {
              run_id: 'r',
              experiment_id: '1',
              status: 'RUNNING',
              artifact_uri: 'mlflow-artifacts:/1/r',
            },
          },
        },
      },
    ]);
    expect((await c.getRun('r')).info.run_id).toBe('r');
    expect(calls).toHaveLength(3);
  });

  it('retries network failures and gives up with a retriable TransportError naming the fix', async () => {
    const refused = Object.assign(new TypeError('fetch failed'), {
      cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }),
    });
    const { c, calls } = client([refused, refused, refused]);
    const err = await c.getRun('r').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransportError);
    expect(isRetriable(err)).toBe(true);
    expect(String((err as Error).message)).toContain('scripts/services/mlflow.sh start');
    expect(calls).toHaveLength(3);
  });

  it('maps a request past its deadline to a retriable TimeoutError', async () => {
    const slow = ((_: unknown, init?: RequestInit) =>
      new Promise((_resolve, reject) => {
        init?.signal?.addEventListener('abort', () => reject(init.signal?.reason));
      })) as typeof fetch;
    const c = new MlflowClient({
      trackingUri: BASE,
      fetch: slow,
      timeoutMs: 20,
      retry: { attempts: 2, initialDelayMs: 1 },
      env: {},
    });
    const err = await c.getRun('r').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    expect(isRetriable(err)).toBe(true);
  });

  it('does not retry 4xx answers and maps MLflow error codes to typed errors', async () => {
    const cases: Array<[number, string, new (...args: never[]) => Error]> = [
      [400, 'RESOURCE_ALREADY_EXISTS', MlflowAlreadyExistsError],
      [404, 'RESOURCE_DOES_NOT_EXIST', MlflowNotFoundError],
      [400, 'INVALID_PARAMETER_VALUE', MlflowInvalidParameterError],
      [403, 'PERMISSION_DENIED', MlflowApiError],
    ];
    for (const [status, code, type] of cases) {
      const { c, calls } = client([{ status, json: { error_code: code, message: 'nope' } }]);
      const err = await c.createRegisteredModel('m').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(type);
      expect(err).toMatchObject({ errorCode: code, status, retriable: false, code: `MLFLOW_${code}` });
      expect(calls).toHaveLength(1);
    }
    const unauth = errorFromResponse(401, '<html>login</html>', 'GET /x');
    expect(unauth).toBeInstanceOf(MlflowApiError);
    expect(unauth).toMatchObject({ errorCode: 'HTTP_401', retriable: false });
    expect(errorFromResponse(404, '', 'GET /x')).toBeInstanceOf(MlflowNotFoundError);
    expect(errorFromResponse(429, '{}', 'GET /x')).toBeInstanceOf(MlflowTransportError);
    expect(errorFromResponse(500, '{"error_code":"INTERNAL_ERROR"}', 'GET /x')).toMatchObject({
      retriable: true,
      errorCode: 'INTERNAL_ERROR',
      status: 500,
    });
  });

  it('does not resend a create after a 500 (it may have been applied) but does after a 503', async () => {
    const first = client([{ status: 500, json: { error_code: 'INTERNAL_ERROR' } }]);
    await expect(first.c.createModelVersion({ name: 'm', source: 'runs:/r/model' })).rejects.toBeInstanceOf(
      MlflowTransportError,
    );
    expect(first.calls).toHaveLength(1);
    const second = client([{ status: 503 }, { json: { model_version: { name: 'm', version: '1' } } }]);
    expect((await second.c.createModelVersion({ name: 'm', source: 'runs:/r/model' })).version).toBe('1');
    expect(second.calls).toHaveLength(2);
  });
});

describe('artifact proxy paths', () => {
  it('maps the URIs MLflow hands out to proxy paths', () => {
    expect(proxyPathFromUri('mlflow-artifacts:/1/abc/artifacts')).toBe('1/abc/artifacts');
    expect(proxyPathFromUri('mlflow-artifacts://host:5000/1/abc/artifacts/')).toBe('1/abc/artifacts');
    expect(proxyPathFromUri('http://h:5055/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts')).toBe(
      '1/abc/artifacts',
    );
    expect(() => proxyPathFromUri('/var/mlruns/1/abc/artifacts')).toThrow(ArtifactError);
    expect(() => proxyPathFromUri('s3://bucket/1/abc')).toThrow(/--serve-artifacts/);
  });

  it('encodes segments and refuses traversal', () => {
    expect(encodeArtifactPath('1/r/artifacts/model/a b#.json')).toBe('1/r/artifacts/model/a%20b%23.json');
    expect(() => encodeArtifactPath('1/../etc/passwd')).toThrow(ArtifactError);
  });
});
