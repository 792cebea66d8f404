import { Transform, type Readable } from 'node:stream';

/**
 * Sets DUP on re-deliveries, as MQTT 3.1.1 requires [MQTT-3.3.1-1] and aedes
 * does not: when a persistent session reconnects, aedes sends the session's
 * queue from the persistence's `outgoingStream` and copies each packet's `dup`
 * flag, which no persistence sets. A queued message that already carries a
 * packet id was written to an earlier connection and not acknowledged: it goes
 * out again with DUP set, so the receiver can tell a redelivery from a first
 * delivery (the edge marks predictions made from one: edge-inference/src/ingest.ts).
 * A message never sent has no packet id and goes out without it.
 *
 * Wraps any aedes persistence (the bounded in-memory one, or e.g. Redis) by
 * replacing its `outgoingStream`; the stored packets are not changed (the
 * persistence contract, checked by aedes-persistence's conformance suite,
 * returns them as stored).
 */

/** The part of an aedes persistence this wrapper touches. */
interface OutgoingStream {
  outgoingStream(client: { id: string }): Readable;
}

/** A queued packet as far as this module reads it. */
interface Queued {
  cmd?: string;
  messageId?: number;
  dup?: boolean;
}

/** The packet as aedes should send it again: a copy with DUP set when it was sent before. */
export function asRedelivery<T extends Queued>(packet: T): T {
  return packet.cmd === 'publish' && packet.messageId !== undefined && packet.dup !== true
    ? { ...packet, dup: true }
    : packet;
}

/** Makes `persistence` replay previously sent messages with DUP set; returns it. */
export function markRedeliveries<P extends object>(persistence: P): P {
  const target = persistence as unknown as OutgoingStream;
  const original = target.outgoingStream.bind(persistence);
  target.outgoingStream = (client) => {
    const source = original(client);
    const marked = new Transform({
      objectMode: true,
      transform(packet: Queued, _enc, done) {
        done(null, asRedelivery(packet));
      },
    });
    source.on('error', (err) => marked.destroy(err));
    return source.pipe(marked);
  };
  return persistence;
}
