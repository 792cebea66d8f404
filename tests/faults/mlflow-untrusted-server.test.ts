import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { isRetriable } from '../../common/errors.ts';
import { MlflowClient } from '../../common/mlflow/client.ts';
import {
  MlflowMalformedResponseError,
  MlflowResponseTooLargeError,
  MlflowTransportError,
} from '../../common/mlflow/errors.ts';
import { MlflowRegistry } from '../../common/registry/mlflow.ts';

/**
 * Issue 10: the MLflow client trusted the server — no size limit on answers,
 * no schema check — and carried an unused artifact download that wrote files
 * wherever the server's listing pointed. A local HTTP server plays a hostile
 * or broken MLflow.
 */

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

let server: http.Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

async function fakeMlflow(handler: Handler): Promise<{ url: string; requests: () => number }> {
  let requests = 0;
  server = http.createServer((req, res) => {
    requests++;
    handler(req, res);
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests: () => requests };
}

/** Streams `prefix` then filler until `total` bytes or the client goes away; reports what was written. */
function endless(total: number, prefix = '', status = 200, sent?: { bytes: number }): Handler {
  return (_req, res) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    let written = 0;
    res.write(prefix);
    const pump = (): void => {
      while (written < total && !res.destroyed) {
        written += chunk.length;
        if (sent) sent.bytes = written;
        if (!res.write(chunk)) {
          res.once('drain', pump);
          return;
        }
      }
      res.end();
    };
    res.on('close', () => undefined);
    pump();
  };
}

const clientFor = (
  url: string,
  extra: Partial<ConstructorParameters<typeof MlflowClient>[0]> = {},
): MlflowClient =>
  new MlflowClient({
    trackingUri: url,
    env: {},
    retry: { attempts: 3, initialDelayMs: 1, maxDelayMs: 2 },
    ...extra,
  });

describe('MLflow answers too large', () => {
  it('aborts a streamed JSON answer past maxResponseBytes instead of buffering it', async () => {
    const sent = { bytes: 0 };
    const fake = await fakeMlflow(endless(96 * 1024 * 1024, '{"run":{"info":{"run_id":"', 200, sent));
    const c = clientFor(fake.url, { maxResponseBytes: 1024 * 1024 });
    const err = await c.getRun('r').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MlflowResponseTooLargeError);
    expect(isRetriable(err)).toBe(false);
    expect(fake.requests()).toBe(1);
    // The server could push at most what the socket buffers held past the limit, far from 96 MiB.
    await new Promise((r) => setTimeout(r, 200));
    expect(sent.bytes).toBeLessThan(32 * 1024 * 1024);
  });

  it('refuses an answer whose Content-Length is above the limit without reading it', async () => {
    const fake = await fakeMlflow((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(2 ** 30) });
      res.write('{');
    });
    const err = await clientFor(fake.url)
      .getRegisteredModel('m')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MlflowResponseTooLargeError);
  });

  it('caps an artifact download at maxArtifactBytes', async () => {
    const fake = await fakeMlflow(endless(64 * 1024 * 1024));
    const err = await clientFor(fake.url, { maxArtifactBytes: 256 * 1024 })
      .downloadArtifact('1/r/artifacts/model/weights.bin')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MlflowResponseTooLargeError);
    expect((err as MlflowResponseTooLargeError).limitBytes).toBe(256 * 1024);
  });

  it('reads only the head of a huge error body, and the error stays retriable', async () => {
    const sent = { bytes: 0 };
    const fake = await fakeMlflow(
      endless(96 * 1024 * 1024, '{"error_code":"INTERNAL_ERROR","message":"', 500, sent),
    );
    const err = await clientFor(fake.url, { retry: { attempts: 1 } })
      .getRun('r')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MlflowTransportError);
    expect(isRetriable(err)).toBe(true);
    expect((err as Error).message.length).toBeLessThan(1000);
    await new Promise((r) => setTimeout(r, 200));
    expect(sent.bytes).toBeLessThan(32 * 1024 * 1024);
  });
});

describe('MLflow answers of the wrong shape', () => {
  const cases: Array<[string, unknown, (c: MlflowClient) => Promise<unknown>]> = [
    ['run id of the wrong type', { run: { info: { run_id: 5 } } }, (c) => c.getRun('r')],
    [
      'run without its artifact location',
      { run: { info: { run_id: 'r', experiment_id: '1', status: 'RUNNING' } } },
      (c) => c.getRun('r'),
    ],
    [
      'unknown run status',
      { run_info: { run_id: 'r', experiment_id: '1', status: 'EXPLODED', artifact_uri: 'x' } },
      (c) => c.updateRun({ runId: 'r', status: 'FINISHED' }),
    ],
    ['model version as a string', { model_version: 'champion' }, (c) => c.getModelVersion('m', '1')],
    [
      'version number as a number',
      { model_versions: [{ name: 'm', version: 1 }] },
      (c) => c.searchAllModelVersions("name='m'"),
    ],
    [
      'aliases as an object',
      { registered_model: { name: 'm', aliases: { champion: '1' } } },
      (c) => c.getRegisteredModel('m'),
    ],
    ['experiment without id', { experiment: { name: 'x' } }, (c) => c.getExperimentByName('x')],
    ['artifact listing with numeric paths', { files: [{ path: 7 }] }, (c) => c.listArtifacts('r')],
    ['a JSON array instead of an object', [1, 2, 3], (c) => c.setTag('r', 'k', 'v')],
  ];
  for (const [what, body, call] of cases) {
    it(`refuses ${what} with a non-retriable MlflowMalformedResponseError`, async () => {
      const fake = await fakeMlflow((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      });
      const err = await call(clientFor(fake.url)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MlflowMalformedResponseError);
      expect(isRetriable(err)).toBe(false);
      expect(fake.requests()).toBe(1);
    });
  }

  it('keeps accepting unknown extra fields (newer MLflow versions add some)', async () => {
    const fake = await fakeMlflow((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          model_version: { name: 'm', version: '3', brand_new_field: { x: 1 } },
          extra: true,
        }),
      );
    });
    expect((await clientFor(fake.url).getModelVersion('m', '3')).version).toBe('3');
  });
});

describe('dead code', () => {
  it('has no recursive artifact download that follows the server’s paths onto the local disk', () => {
    expect('downloadArtifactDir' in MlflowRegistry.prototype).toBe(false);
    expect('listProxiedArtifacts' in MlflowClient.prototype).toBe(false);
  });
});
