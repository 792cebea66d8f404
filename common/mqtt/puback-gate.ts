import type { IPublishPacket, MqttClient } from 'mqtt';

/**
 * Holds back the PUBACK of a received QoS 1 message until its receiver says
 * the message is safe (in Kafka, predicted and published, dead-lettered…), so
 * a receiver that dies before that gets the message again: the broker
 * redelivers every unacknowledged message to the next connection of a
 * persistent session (`clean: false`, same client id). Used by the MQTT →
 * Kafka bridge and the edge worker's MQTT intake.
 *
 * Why a gate: mqtt.js 5 writes a QoS 1 message's PUBACK as soon as
 * `handleMessage` calls back, and reads the next message only after that. To
 * read on (batching) and still acknowledge late, the gate wraps the client's
 * internal packet writer `_sendPacket`: the PUBACK of a held message is kept
 * (mqtt.js is told it was written) and written by {@link PubackGate.release}.
 * Every other packet passes through unchanged.
 *
 * Connections: a PUBACK is written only on the connection that received its
 * message, and only while connected. When the connection closes, what it
 * held is never acknowledged (the broker redelivers it, with DUP set, to the
 * next connection); writing it later would make mqtt.js queue it offline and
 * send it on the next connection, where the same packet id may name another
 * message.
 *
 * Use: `hold(packet)` when taking the message, `handBack(held, callback)`
 * instead of calling `handleMessage`'s callback, `held.release()` once the
 * message is safe. Release and hand-back may come in either order. PUBACKs go
 * out in release order; the brokers Driftline runs on (aedes, Mosquitto)
 * match a PUBACK by packet id, so that order may differ from arrival.
 */

/** `_sendPacket(packet, cb, …)`: mqtt.js 5's internal writer. */
type PacketWriter = (
  packet: { cmd: string; messageId?: number },
  cb?: (err?: Error) => void,
  ...rest: unknown[]
) => void;

/** A QoS 1 message whose PUBACK waits for {@link release}. */
export class HeldPuback {
  /** mqtt.js asked to write the PUBACK (the message was handed back). */
  asked = false;
  /** released (or its connection is gone). */
  settled = false;

  constructor(
    private readonly gate: PubackGate,
    /** The packet id, on the connection that received it. */
    readonly messageId: number,
    /** The gate's connection number when it arrived. */
    readonly connection: number,
    /** The broker set DUP: it may have delivered this message before (to a connection that did not acknowledge it). */
    readonly redelivered: boolean,
  ) {}

  /** The message is safe: write its PUBACK (now, or when it is handed back). Idempotent. */
  release(): void {
    this.gate.release(this);
  }
}

export class PubackGate {
  private connection = 0;
  /** Held on the current connection and not released. */
  private open = 0;
  /** The message whose `handleMessage` callback is running (mqtt.js writes its PUBACK synchronously). */
  private asking: HeldPuback | undefined;
  private readonly write: PacketWriter;

  /** Install it before the client can receive a packet (messages of a persistent session come right after CONNACK). */
  constructor(private readonly client: MqttClient) {
    const internal = client as unknown as { _sendPacket?: PacketWriter };
    if (typeof internal._sendPacket !== 'function')
      throw new TypeError('PubackGate: the MQTT client has no _sendPacket (mqtt.js 5 expected)');
    const original = internal._sendPacket.bind(client);
    this.write = original;
    internal._sendPacket = (packet, cb, ...rest) => {
      const held = this.asking;
      if (held !== undefined && packet.cmd === 'puback' && packet.messageId === held.messageId) {
        this.asking = undefined;
        if (!held.settled) {
          held.asked = true; // written by release()
          cb?.();
          return;
        }
        if (!this.live(held)) {
          cb?.(); // its connection is gone: never acknowledged on another one
          return;
        }
      }
      original(packet, cb, ...rest);
    };
    client.on('close', () => {
      this.connection++;
      this.open = 0;
    });
  }

  /** PUBACKs held back on the current connection. */
  get size(): number {
    return this.open;
  }

  /** Holds the PUBACK of a QoS 1 message; undefined for QoS 0 (nothing to acknowledge). */
  hold(packet: IPublishPacket): HeldPuback | undefined {
    if (packet.qos !== 1 || packet.messageId === undefined) return undefined;
    this.open++;
    return new HeldPuback(this, packet.messageId, this.connection, packet.dup === true);
  }

  /**
   * Calls `handleMessage`'s callback: mqtt.js reads the next message; the
   * PUBACK is written at `release` (at once when released already). Without a
   * held message the callback is just called.
   */
  handBack(held: HeldPuback | undefined, callback: (err?: Error) => void): void {
    if (held === undefined) {
      callback();
      return;
    }
    this.asking = held;
    try {
      callback();
    } finally {
      this.asking = undefined;
    }
  }

  /** See {@link HeldPuback.release}. */
  release(held: HeldPuback): void {
    if (held.settled) return;
    held.settled = true;
    if (held.connection !== this.connection) return;
    this.open--;
    if (held.asked && this.client.connected) this.write({ cmd: 'puback', messageId: held.messageId });
  }

  private live(held: HeldPuback): boolean {
    return held.connection === this.connection && this.client.connected;
  }
}
