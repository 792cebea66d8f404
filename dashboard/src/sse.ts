import type http from 'node:http';

/**
 * Server-Sent Events to the browsers. Each stream starts with `retry:` and a
 * `snapshot` event; then every broadcast `update` goes to every stream
 * (serialized once). A comment line every `heartbeatMs` keeps proxies from
 * closing idle streams. A browser that stops reading is disconnected once
 * `maxBufferedBytes` pile up: its EventSource reconnects and gets a fresh
 * snapshot, which is cheaper than buffering a backlog nobody will read.
 */

export interface EventStreamHubOptions {
  /** Comment line interval, ms. Default 15 000. */
  heartbeatMs?: number;
  /** Reconnect delay the browser is told, ms. Default 1000. */
  retryMs?: number;
  /** Unsent bytes per stream before it is dropped. Default 4 MiB. */
  maxBufferedBytes?: number;
}

interface Stream {
  res: http.ServerResponse;
  sessionId: string;
}

/** One SSE frame. `data` is JSON; newlines inside JSON are escaped, so one `data:` line suffices. */
export function sseFrame(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

export class EventStreamHub {
  private readonly streams = new Set<Stream>();
  private readonly heartbeat: NodeJS.Timeout;
  private readonly retryMs: number;
  private readonly maxBuffered: number;
  private closed = false;

  constructor(options: EventStreamHubOptions = {}) {
    this.retryMs = options.retryMs ?? 1000;
    this.maxBuffered = options.maxBufferedBytes ?? 4 * 1024 * 1024;
    this.heartbeat = setInterval(() => this.write(': ping\n\n'), options.heartbeatMs ?? 15_000);
    this.heartbeat.unref();
  }

  /** Opens a stream on `res` and sends the snapshot. */
  open(req: http.IncomingMessage, res: http.ServerResponse, sessionId: string, snapshot: unknown): void {
    if (this.closed) {
      res.writeHead(503).end();
      return;
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.socket?.setNoDelay(true);
    const stream: Stream = { res, sessionId };
    this.streams.add(stream);
    const drop = (): void => {
      this.streams.delete(stream);
    };
    req.on('close', drop);
    res.on('close', drop);
    res.on('error', drop);
    res.write(`retry: ${this.retryMs}\n\n${sseFrame('snapshot', snapshot)}`);
  }

  /** Sends an event to every stream. */
  broadcast(event: string, data: unknown): void {
    if (this.streams.size === 0) return;
    this.write(sseFrame(event, data));
  }

  private write(frame: string): void {
    for (const s of this.streams) {
      if (s.res.writableLength > this.maxBuffered) {
        this.streams.delete(s);
        s.res.destroy();
        continue;
      }
      s.res.write(frame);
    }
  }

  /** Ends every stream of a session (logout). */
  closeSession(sessionId: string): void {
    for (const s of this.streams) {
      if (s.sessionId === sessionId) {
        this.streams.delete(s);
        s.res.end();
      }
    }
  }

  /** Sessions with at least one open stream. */
  sessionIds(): Set<string> {
    return new Set([...this.streams].map((s) => s.sessionId));
  }

  get size(): number {
    return this.streams.size;
  }

  /** Ends every stream and stops the heartbeat. */
  close(): void {
    this.closed = true;
    clearInterval(this.heartbeat);
    for (const s of this.streams) s.res.end();
    this.streams.clear();
  }
}
