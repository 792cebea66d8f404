import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readBody, sendJson } from '../../../../common/http/ops-server.ts';

/**
 * Promise: a body over the limit is answered with 413 and a JSON error that the client receives; the
 * connection is not reset under it (a reset shows as "socket hang up" / ECONNRESET and hides the answer).
 * Found by the dashboard API fuzz suite at 10,000 cases (POST /api/login with a body over its limit).
 */
const LIMIT = 4096;
let server: http.Server;
let port: number;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    readBody(req, LIMIT).then(
      (body) => sendJson(res, 200, { bytes: body.length }),
      (err: { status?: number; message: string }) => sendJson(res, err.status ?? 400, { error: err.message }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

function post(body: Buffer, agent?: http.Agent): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/',
        agent,
        headers: { 'content-length': body.length },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('readBody', () => {
  it('reads a body within the limit', async () => {
    expect(await post(Buffer.alloc(LIMIT, 'x'))).toEqual({ status: 200, json: { bytes: LIMIT } });
  });

  it('answers a body over the limit with 413 the client receives, and the connection serves the next request', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (const size of [LIMIT + 1, Math.floor(1.5 * LIMIT), 2 * LIMIT]) {
        const r = await post(Buffer.alloc(size, 'x'), agent);
        expect(r.status).toBe(413);
        expect(r.json).toEqual({ error: `request body over ${LIMIT} bytes` });
        expect(await post(Buffer.from('{}'), agent)).toEqual({ status: 200, json: { bytes: 2 } });
      }
    } finally {
      agent.destroy();
    }
  });
});
