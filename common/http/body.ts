import type http from 'node:http';
import type { Socket } from 'node:net';

/**
 * Request bodies a server answers without reading (all of) them.
 *
 * A handler may answer before it has read the body: a 401/403/404/405/415 that never looks at it, a 413
 * past a size limit. Node then reads and discards the rest so that a kept-alive connection stays in step
 * with the client — with no bound: a client may stream gigabytes into an answered request. Closing the
 * connection is not simple either: a socket closed while the client is still sending is reset by the
 * kernel, and the reset can reach the client before it has read the answer ("socket hang up" or
 * ECONNRESET instead of the 413: what the dashboard's login answered a body over 8 KiB).
 *
 * {@link guardUnreadBody}, installed for every request by the ops server and the dashboard:
 * - a body of known length up to `discardBytes` that the handler leaves unread is read and discarded after
 *   the answer (Node's own behaviour): the connection stays usable;
 * - a body declared longer than that: the answer carries `Connection: close` (the client sends its next
 *   request on another connection) and the close lingers ({@link lingeringClose});
 * - a body of unknown length (chunked) still arriving after the answer is read and discarded up to
 *   `discardBytes` more bytes and for `lingerMs`; past either, the connection is closed the same way.
 *   (A client that finishes its chunked upload exactly then may see its next request on that connection
 *   fail; it was not told in advance, because the length was not known.)
 */

/** Options of {@link guardUnreadBody}. */
export interface UnreadBodyOptions {
  /** Bytes of an unread body still read and discarded after the answer. Default 1 MiB. */
  discardBytes?: number;
  /** How long an answered body may take to finish arriving, and a closing connection lingers, ms. Default 5000. */
  lingerMs?: number;
}

export const DEFAULT_DISCARD_BYTES = 1_048_576;
export const DEFAULT_LINGER_MS = 5000;

const lingering = new WeakSet<Socket>();

/**
 * Closes a connection without resetting it: FIN after what is already written (the answer); the read side
 * stays open, so what the client is still sending is read (and discarded by the HTTP parser) instead of
 * being answered with a reset; the socket is destroyed when the client closes, or after `lingerMs`.
 */
export function lingeringClose(socket: Socket, lingerMs = DEFAULT_LINGER_MS): void {
  if (socket.destroyed || lingering.has(socket)) return;
  lingering.add(socket);
  if (!socket.writableEnded) socket.end();
  const timer = setTimeout(() => socket.destroy(), lingerMs);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}

/** Bounds what the server reads of a body it answered without reading (see the module comment). */
export function guardUnreadBody(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  options: UnreadBodyOptions = {},
): void {
  const discardBytes = options.discardBytes ?? DEFAULT_DISCARD_BYTES;
  const lingerMs = options.lingerMs ?? DEFAULT_LINGER_MS;
  const socket = req.socket;
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > discardBytes) {
    // This connection is not kept after the answer: say so, and let Node's close of it linger.
    res.setHeader('connection', 'close');
    socket.destroySoon = () => lingeringClose(socket, lingerMs);
  }
  res.once('finish', () => {
    if (req.complete || socket.destroyed) return;
    let rest = 0;
    const cut = (): void => {
      req.off('data', count);
      clearTimeout(timer);
      lingeringClose(socket, lingerMs);
    };
    const count = (chunk: Buffer): void => {
      rest += chunk.length;
      if (rest > discardBytes) cut();
    };
    const timer = setTimeout(cut, lingerMs);
    timer.unref();
    req.once('end', () => clearTimeout(timer));
    req.on('data', count);
    req.resume();
  });
}

/**
 * Reads a request body up to `limit` bytes; rejects with a status-carrying error (413) beyond it. The rest of
 * an oversized body is read and discarded — bounded by {@link guardUnreadBody} once the 413 is answered — so
 * the client receives the 413 rather than a reset connection.
 */
export function readBody(req: http.IncomingMessage, limit = 1_048_576): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (over) return;
      if (size > limit) {
        over = true;
        chunks.length = 0;
        reject(Object.assign(new Error(`request body over ${limit} bytes`), { status: 413 }));
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
