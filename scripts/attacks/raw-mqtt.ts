import net from 'node:net';
import mqttPacket, { type Packet } from 'mqtt-packet';

/**
 * A deliberately minimal MQTT 3.1.1 client over a raw TCP socket, for the
 * attack scripts in this folder and the broker's fault and fuzz tests. Unlike
 * mqtt.js it validates nothing, so it can send what a hostile client sends:
 * wildcards or NUL in a PUBLISH topic, a CONNECT announcing 256 MB, a retained
 * message, packets before CONNACK. It can also bind a chosen local address
 * (`127.0.0.2` …) so one machine plays several remote addresses on loopback.
 */

export interface RawOptions {
  /** Broker host. Default 127.0.0.1. */
  host?: string;
  port: number;
  /** Local address to connect from, e.g. `127.0.0.2` (any 127/8 address works on Linux). */
  localAddress?: string;
  /** Default deadline of {@link RawMqtt.next}, ms. Default 10 000. */
  timeoutMs?: number;
}

/** What waiting for a packet gave: the packet, or how the wait ended. */
export type Outcome<T> = T | 'closed' | 'timeout';

export class RawMqtt {
  readonly socket: net.Socket;
  private readonly parser = mqttPacket.parser({ protocolVersion: 4 });
  private readonly inbox: Packet[] = [];
  private waiters: Array<() => void> = [];
  private closedFlag = false;
  private readonly timeoutMs: number;
  private nextMessageId = 1;
  /** Resolves when the socket closed (either side). */
  readonly closed: Promise<void>;

  private constructor(socket: net.Socket, timeoutMs: number) {
    this.socket = socket;
    this.timeoutMs = timeoutMs;
    this.parser.on('packet', (p: Packet) => {
      this.inbox.push(p);
      this.wake();
    });
    this.parser.on('error', () => socket.destroy());
    socket.on('data', (buf) => this.parser.parse(buf));
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.closedFlag = true;
        this.wake();
        resolve();
      }),
    );
  }

  /** Opens a TCP connection (no MQTT yet). */
  static open(options: RawOptions): Promise<RawMqtt> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({
        host: options.host ?? '127.0.0.1',
        port: options.port,
        ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }),
      });
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new RawMqtt(socket, options.timeoutMs ?? 10_000));
      });
      socket.once('error', reject);
    });
  }

  get isClosed(): boolean {
    return this.closedFlag;
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Writes a packet; false when the socket is already gone. */
  send(packet: Packet): boolean {
    if (this.closedFlag || this.socket.destroyed) return false;
    this.socket.write(mqttPacket.generate(packet));
    return true;
  }

  /** Writes raw bytes; resolves when flushed (or the socket is gone). */
  sendBytes(bytes: Uint8Array): Promise<boolean> {
    if (this.closedFlag || this.socket.destroyed) return Promise.resolve(false);
    return new Promise((resolve) => this.socket.write(bytes, (err) => resolve(err == null)));
  }

  /** The next received packet with command `cmd` (others are dropped), or how the wait ended. */
  async next(cmd: Packet['cmd'], timeoutMs = this.timeoutMs): Promise<Outcome<Packet>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.inbox.findIndex((p) => p.cmd === cmd);
      if (i !== -1) return this.inbox.splice(i, 1)[0] as Packet;
      if (this.closedFlag) return 'closed';
      const left = deadline - Date.now();
      if (left <= 0) return 'timeout';
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Sends CONNECT (MQTT 3.1.1) and returns the CONNACK return code. */
  async connect(options: {
    clientId: string;
    username?: string;
    password?: string | Buffer;
    clean?: boolean;
    keepalive?: number;
    will?: { topic: string; payload: Buffer | string; qos?: 0 | 1; retain?: boolean };
    timeoutMs?: number;
  }): Promise<Outcome<number>> {
    this.send({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 4,
      clean: options.clean ?? true,
      clientId: options.clientId,
      keepalive: options.keepalive ?? 60,
      ...(options.username === undefined ? {} : { username: options.username }),
      ...(options.password === undefined ? {} : { password: Buffer.from(options.password) }),
      ...(options.will === undefined
        ? {}
        : {
            will: {
              topic: options.will.topic,
              payload: Buffer.from(options.will.payload),
              qos: options.will.qos ?? 0,
              retain: options.will.retain ?? false,
            },
          }),
    });
    const ack = await this.next('connack', options.timeoutMs);
    if (typeof ack === 'string') return ack;
    return (ack as { returnCode?: number }).returnCode ?? 0;
  }

  /**
   * Publishes. QoS 1 resolves with `'puback'` or how the wait ended; QoS 0
   * resolves `'sent'` at once (use {@link closed} to see a disconnect).
   */
  async publish(options: {
    topic: string;
    payload: Buffer | string;
    qos?: 0 | 1;
    retain?: boolean;
    timeoutMs?: number;
  }): Promise<Outcome<'puback' | 'sent'>> {
    const qos = options.qos ?? 1;
    const messageId = qos > 0 ? this.allocId() : undefined;
    const ok = this.send({
      cmd: 'publish',
      topic: options.topic,
      payload: Buffer.from(options.payload),
      qos,
      retain: options.retain ?? false,
      dup: false,
      ...(messageId === undefined ? {} : { messageId }),
    });
    if (!ok) return 'closed';
    if (qos === 0) return 'sent';
    const ack = await this.next('puback', options.timeoutMs);
    return typeof ack === 'string' ? ack : 'puback';
  }

  /** Subscribes; resolves with the SUBACK return codes (0x80 = refused). */
  async subscribe(
    filters: Array<{ topic: string; qos?: 0 | 1 }>,
    timeoutMs?: number,
  ): Promise<Outcome<number[]>> {
    const ok = this.send({
      cmd: 'subscribe',
      messageId: this.allocId(),
      subscriptions: filters.map((f) => ({ topic: f.topic, qos: f.qos ?? 1 })),
    });
    if (!ok) return 'closed';
    const ack = await this.next('suback', timeoutMs);
    return typeof ack === 'string' ? ack : ((ack as { granted: number[] }).granted ?? []);
  }

  /** Every PUBLISH received so far (removed from the inbox). */
  drainPublishes(): Array<{
    topic: string;
    payload: Buffer;
    retain: boolean;
    qos: number;
    messageId?: number;
  }> {
    const out: Array<{ topic: string; payload: Buffer; retain: boolean; qos: number; messageId?: number }> =
      [];
    for (let i = 0; i < this.inbox.length;) {
      const p = this.inbox[i] as Packet;
      if (p.cmd === 'publish') {
        out.push({
          topic: p.topic,
          payload: Buffer.isBuffer(p.payload) ? p.payload : Buffer.from(p.payload),
          retain: p.retain,
          qos: p.qos,
          ...(p.messageId === undefined ? {} : { messageId: p.messageId }),
        });
        this.inbox.splice(i, 1);
      } else i++;
    }
    return out;
  }

  /** Sends DISCONNECT and closes. */
  async disconnect(): Promise<void> {
    this.send({ cmd: 'disconnect' });
    this.socket.end();
    await Promise.race([this.closed, new Promise((r) => setTimeout(r, 2000))]);
    this.socket.destroy();
  }

  destroy(): void {
    this.socket.destroy();
  }

  private allocId(): number {
    const id = this.nextMessageId;
    this.nextMessageId = id >= 65535 ? 1 : id + 1;
    return id;
  }
}

/**
 * The fixed header of a packet of type `type` announcing `remainingLength`
 * bytes (the MQTT variable-length integer, up to 268,435,455).
 */
export function fixedHeader(type: number, flags: number, remainingLength: number): Buffer {
  const bytes = [(type << 4) | flags];
  let n = remainingLength;
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    bytes.push(b);
  } while (n > 0);
  return Buffer.from(bytes);
}
