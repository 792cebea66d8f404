import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { guardUnreadBody } from './body.ts';

/** Request bodies: {@link readBody} lives in `./body.ts` with the guard for bodies left unread. */
export { readBody } from './body.ts';

/** A route handler; returns true when it answered the request. */
export type Route = (
  req: http.IncomingMessage,
  res: http.ServerResponse,
  url: URL,
) => boolean | Promise<boolean>;

export interface OpsServerOptions {
  /** Port; 0 picks a free one. */
  port: number;
  /** Interface; default 127.0.0.1. */
  host?: string;
  /** Served at `/metrics`. */
  registry: Registry;
  /** `/healthz`: the process is alive and its loop turns. */
  health?: () => Record<string, unknown>;
  /** `/readyz`: ready for traffic (model loaded, broker connected…). */
  ready?: () => { ready: boolean; detail?: Record<string, unknown> };
  /** Extra routes tried before the 404. */
  routes?: Route[];
}

export interface OpsServer {
  readonly server: http.Server;
  readonly port: number;
  close(): Promise<void>;
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

/** The HTTP server every service runs for `/healthz`, `/readyz` and Prometheus `/metrics`. */
export async function startOpsServer(options: OpsServerOptions): Promise<OpsServer> {
  const server = http.createServer((req, res) => {
    guardUnreadBody(req, res);
    void handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: (err as Error).message });
      else res.end();
    });
  });
  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method === 'GET' && url.pathname === '/healthz')
      return sendJson(res, 200, { status: 'ok', ...(options.health?.() ?? {}) });
    if (req.method === 'GET' && url.pathname === '/readyz') {
      const r = options.ready?.() ?? { ready: true };
      return sendJson(res, r.ready ? 200 : 503, { ready: r.ready, ...(r.detail ?? {}) });
    }
    if (req.method === 'GET' && url.pathname === '/metrics') {
      const body = await options.registry.metrics();
      res.writeHead(200, { 'content-type': options.registry.contentType });
      res.end(body);
      return;
    }
    for (const route of options.routes ?? []) if (await route(req, res, url)) return;
    sendJson(res, 404, { error: `no route for ${req.method} ${url.pathname}` });
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
