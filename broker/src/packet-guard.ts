import type { Duplex } from 'node:stream';

/**
 * A cap on the size of every MQTT packet a client sends, enforced on the raw
 * byte stream before aedes' parser buffers anything: the fixed header of each
 * packet announces its length (a 1–4 byte variable integer), and a packet
 * announcing more than the limit closes the connection right there. A client
 * streaming a 256 MiB CONNECT is cut off after its first read (one socket
 * chunk, ≤ 64 KiB), not after the broker has buffered 256 MiB.
 *
 * The limit is asked per packet, so it can depend on the connection's state:
 * small until the login succeeded, then the limit of the client's role.
 */

/** Why a stream was cut off. */
export type PacketViolation =
  | {
      kind: 'too_large';
      /** packet type 1–15 */ type: number;
      /** total packet bytes announced */ bytes: number;
      limit: number;
    }
  | { kind: 'malformed_length' };

/** Largest total size of a packet whose remaining length fits the 4-byte variable integer. */
export const MQTT_MAX_PACKET_BYTES = 1 + 4 + 268_435_455;

/**
 * Walks MQTT packet boundaries through a byte stream, chunk by chunk, keeping
 * only a few counters (never the bytes). Bodies are skipped, not parsed.
 */
export class PacketScanner {
  private state: 'type' | 'length' | 'body' = 'type';
  private type = 0;
  private length = 0;
  private multiplier = 1;
  private lengthBytes = 0;
  private remaining = 0;
  /** Complete packets seen. */
  packets = 0;

  /**
   * Feeds one chunk. `limit(type)` is the largest total packet size (header
   * included) allowed for the packet starting now. Returns the first violation,
   * after which the scanner must not be fed again.
   */
  feed(chunk: Uint8Array, limit: (type: number) => number): PacketViolation | undefined {
    let i = 0;
    while (i < chunk.length) {
      if (this.state === 'body') {
        const take = Math.min(this.remaining, chunk.length - i);
        this.remaining -= take;
        i += take;
        if (this.remaining === 0) this.endPacket();
        continue;
      }
      const byte = chunk[i++] as number;
      if (this.state === 'type') {
        this.type = byte >> 4;
        this.length = 0;
        this.multiplier = 1;
        this.lengthBytes = 0;
        this.state = 'length';
        continue;
      }
      // Remaining length: 7 bits per byte, continuation in the high bit, at most 4 bytes.
      this.length += (byte & 0x7f) * this.multiplier;
      this.multiplier *= 128;
      this.lengthBytes++;
      if ((byte & 0x80) !== 0) {
        if (this.lengthBytes >= 4) return { kind: 'malformed_length' };
        continue;
      }
      const total = 1 + this.lengthBytes + this.length;
      const max = limit(this.type);
      if (total > max) return { kind: 'too_large', type: this.type, bytes: total, limit: max };
      if (this.length === 0) this.endPacket();
      else {
        this.remaining = this.length;
        this.state = 'body';
      }
    }
    return undefined;
  }

  private endPacket(): void {
    this.packets++;
    this.state = 'type';
  }
}

/**
 * Installs the cap on a client stream before it is handed to aedes. aedes
 * pulls data with `stream.read()`; every chunk it pulls passes through the
 * scanner first. On a violation the chunk is withheld, `onViolation` runs and
 * the stream is destroyed (aedes then closes the client as for any dropped
 * connection).
 */
export function guardPacketSize(
  stream: Duplex,
  limit: (type: number) => number,
  onViolation: (violation: PacketViolation) => void,
): void {
  const scanner = new PacketScanner();
  const read = stream.read.bind(stream);
  let tripped = false;
  stream.read = function guardedRead(size?: number): unknown {
    if (tripped) return null;
    const chunk: unknown = read(size);
    if (chunk === null || chunk === undefined) return chunk;
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Uint8Array);
    const violation = scanner.feed(bytes, limit);
    if (violation === undefined) return chunk;
    tripped = true;
    try {
      onViolation(violation);
    } finally {
      stream.destroy();
    }
    return null;
  };
}
