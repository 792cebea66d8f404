import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { WebSocketServer, createWebSocketStream } from 'ws';

/**
 * Network listeners that hand each connection to aedes: plain TCP (mqtt://),
 * TLS (mqtts://) and WebSocket (ws://, for the browser dashboard). Each one
 * knows its bound port and closes completely, dropping open connections.
 */

/** Hands one client connection to the broker (`aedes.handle`). */
export type ConnectionHandler = (stream: Duplex, req?: http.IncomingMessage) => void;

export interface Listener {
  /** The bound port (the real one when 0 was asked for). */
  readonly port: number;
  /** Stops accepting, destroys open connections, resolves when the server is closed. */
  close(): Promise<void>;
}

/** Largest WebSocket frame accepted; an MQTT packet rides in one or more frames. */
const WS_MAX_PAYLOAD = 1024 * 1024;

export function listenTcp(handle: ConnectionHandler, host: string, port: number): Promise<Listener> {
  return serve(
    net.createServer((socket) => handle(socket)),
    host,
    port,
  );
}

/** TLS-wrapped MQTT (mqtts). `key`/`cert` are PEM contents, not paths. */
export function listenTls(
  handle: ConnectionHandler,
  host: string,
  port: number,
  options: { key: string | Buffer; cert: string | Buffer; ca?: string | Buffer },
): Promise<Listener> {
  const server = tls.createServer(
    {
      key: options.key,
      cert: options.cert,
      ...(options.ca === undefined ? {} : { ca: options.ca }),
      minVersion: 'TLSv1.2',
    },
    (socket) => handle(socket),
  );
  return serve(server, host, port);
}

/** MQTT over WebSocket on any path (clients conventionally use `/mqtt`). Plain HTTP requests get 426. */
export async function listenWebSocket(
  handle: ConnectionHandler,
  host: string,
  port: number,
): Promise<Listener> {
  const server = http.createServer((_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' });
    res.end('MQTT over WebSocket: connect with a WebSocket client (subprotocol mqtt)\n');
  });
  const wss = new WebSocketServer({ server, maxPayload: WS_MAX_PAYLOAD });
  wss.on('connection', (ws, req) => {
    const stream = createWebSocketStream(ws);
    // aedes adds its own error listener; this one covers the window before it does.
    stream.on('error', () => undefined);
    handle(stream, req);
  });
  const inner = await serve(server, host, port);
  return {
    port: inner.port,
    async close() {
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await inner.close();
    },
  };
}

async function serve(server: net.Server, host: string, port: number): Promise<Listener> {
  const sockets = new Set<net.Socket>();
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}
