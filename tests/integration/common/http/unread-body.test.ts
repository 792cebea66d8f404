import http from 'node:http';
import net from 'node:net';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readBody } from '../../../../common/http/body.ts';
import { sendJson, startOpsServer, type OpsServer } from '../../../../common/http/ops-server.ts';
import { startDashboardStack, type DashboardStack } from '../../../helpers/dashboard/stack.ts';

/**
 * Promise (issue 10, dashboard/ops HTTP keep-alive): a request whose body the server answers without
 * reading (all of) it — a 401/404 that never looks at it, a 413 past a limit — gets its answer, and the
 * next request on the same kept-alive connection (one `http.Agent`, one socket) is served. A body the
 * server will not read in full is not read without bound: past 1 MiB the answer says `Connection: close`
 * and the connection is closed without resetting it.
 *
 * Found: a body over twice a route's limit (a 20 KB login) was answered by a reset connection — the client
 * saw "socket hang up" or ECONNRESET instead of its 413 — and a declared 64 MiB body to a 401 path was read
 * to its end. (Short unread bodies to 401/404 paths kept the connection in step already: Node discards
 * them. The keep-alive desynchronisation the dashboard fuzz suite noticed came from its test client
 * sending a DELETE body without Content-Length or chunked framing, which no server can delimit.)
 */
let stack: DashboardStack;
let ops: OpsServer;

beforeAll(async () => {
  stack = await startDashboardStack();
  ops = await startOpsServer({
    port: 0,
    registry: new Registry(),
    routes: [
      async (req, res, url) => {
        if (url.pathname !== '/read') return false;
        await readBody(req, 4096).then(
          (b) => sendJson(res, 200, { bytes: b.length }),
          (err: { status?: number }) => sendJson(res, err.status ?? 400, { error: 'too large' }),
        );
        return true;
      },
    ],
  });
}, 60_000);

afterAll(async () => {
  await ops?.close();
  await stack?.close();
});

interface Answer {
  status?: number;
  error?: string;
  reused: boolean;
  headers?: http.IncomingHttpHeaders;
}

function send(
  agent: http.Agent,
  url: string,
  method: string,
  body?: string,
  chunked = false,
): Promise<Answer> {
  return new Promise((resolve) => {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (body !== undefined && !chunked) headers['content-length'] = String(Buffer.byteLength(body));
    const req = http.request(url, { method, headers, agent }, (res) => {
      res.resume();
      res.on('end', () =>
        resolve({ status: res.statusCode, reused: req.reusedSocket, headers: res.headers }),
      );
    });
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ error: e.message, reused: req.reusedSocket }));
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** Two requests on one kept-alive connection: `first`, then a GET `next`. */
async function twoOnOneConnection(
  first: { url: string; method: string; body: string; chunked?: boolean },
  next: string,
): Promise<[Answer, Answer]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const a = await send(agent, first.url, first.method, first.body, first.chunked);
    return [a, await send(agent, next, 'GET')];
  } finally {
    agent.destroy();
  }
}

const dashboard = (): string => stack.dashboard.url.replace(/\/+$/, '');
const opsUrl = (): string => `http://127.0.0.1:${ops.port}`;
const json = (n: number): string => JSON.stringify({ username: 'x', password: 'y'.repeat(n) });

describe('bodies answered without being read, on a kept-alive connection', () => {
  it.each([false, true])(
    'dashboard: a 20 KB login body (chunked: %s) gets its 413; the next request is served',
    async (chunked) => {
      const [a, b] = await twoOnOneConnection(
        { url: `${dashboard()}/api/login`, method: 'POST', body: json(20_000), chunked },
        `${dashboard()}/healthz`,
      );
      expect(a).toMatchObject({ status: 413 });
      expect(b).toMatchObject({ status: 200, reused: true });
    },
  );

  it.each(['/api/snapshot', '/api/nope', '/api/model/rollback'])(
    'dashboard: POST %s (401, body unread) keeps the connection in step',
    async (p) => {
      const [a, b] = await twoOnOneConnection(
        { url: `${dashboard()}${p}`, method: 'POST', body: json(100_000) },
        `${dashboard()}/healthz`,
      );
      expect(a).toMatchObject({ status: 401, reused: false });
      expect(b).toMatchObject({ status: 200, reused: true });
    },
  );

  it.each([false, true])(
    'ops server: a 20 KB body over a 4 KiB route limit (chunked: %s) gets its 413; a 404 body is skipped',
    async (chunked) => {
      const [a, b] = await twoOnOneConnection(
        { url: `${opsUrl()}/read`, method: 'POST', body: json(20_000), chunked },
        `${opsUrl()}/healthz`,
      );
      expect(a).toMatchObject({ status: 413 });
      expect(b).toMatchObject({ status: 200, reused: true });
      const [c, d] = await twoOnOneConnection(
        { url: `${opsUrl()}/nope`, method: 'POST', body: json(200_000), chunked },
        `${opsUrl()}/healthz`,
      );
      expect(c).toMatchObject({ status: 404 });
      expect(d).toMatchObject({ status: 200, reused: true });
    },
  );

  it.each(['dashboard', 'ops'])(
    '%s: a declared 64 MiB body to a path that does not read it is answered with Connection: close and cut off',
    async (which) => {
      const url = new URL(which === 'dashboard' ? `${dashboard()}/api/snapshot` : `${opsUrl()}/nope`);
      const socket = net.connect(Number(url.port), url.hostname);
      let answer = '';
      let ended = false;
      socket.on('data', (c: Buffer) => (answer += c.toString('latin1')));
      socket.on('end', () => (ended = true));
      socket.on('error', () => (ended = true));
      await new Promise((r) => socket.once('connect', r));
      socket.write(
        `POST ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/json\r\nContent-Length: ${64 * 1_048_576}\r\n\r\n`,
      );
      const chunk = Buffer.alloc(65_536, 'x');
      let sent = 0;
      while (!ended && sent < 64 * 1_048_576) {
        if (!socket.write(chunk)) await new Promise((r) => socket.once('drain', r).once('close', r));
        sent += chunk.length;
        if (sent % (1_048_576 * 4) === 0) await new Promise((r) => setImmediate(r));
      }
      socket.destroy();
      console.log(JSON.stringify({ surface: which, declaredMiB: 64, sentMiB: sent / 1_048_576, ended }));
      expect(answer).toMatch(/^HTTP\/1\.1 40[14] /);
      expect(answer.toLowerCase()).toContain('connection: close');
      expect(ended).toBe(true);
      expect(sent).toBeLessThan(32 * 1_048_576);
    },
  );
});
