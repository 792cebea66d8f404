import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

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

/**
 * Reads a request body up to `limit` bytes; rejects with a status-carrying error (413) beyond it. The rest of
 * an oversized body is read and discarded (up to another `limit` bytes, then the socket is destroyed), so the
 * client receives the 413: closing a socket with unread data resets the connection, and the client sees
 * "socket hang up" instead of the answer.
 */
export function readBody(req: http.IncomingMessage, limit = 1_048_576): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        if (!over) {
          over = true;
          chunks.length = 0;
          reject(Object.assign(new Error(`request body over ${limit} bytes`), { status: 413 }));
        }
        if (size > 2 * limit) req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (!over) resolve(Buffer.concat(chunks));
    });
    req.on('error', reject);
  });
}

/** The HTTP server every service runs for `/healthz`, `/readyz` and Prometheus `/metrics`. */
export async function startOpsServer(options: OpsServerOptions): Promise<OpsServer> {
  const server = http.createServer((req, res) => {
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
