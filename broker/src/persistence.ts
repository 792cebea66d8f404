import { Readable } from 'node:stream';
import memoryPersistence from 'aedes-persistence';

/**
 * aedes' in-memory persistence with a bounded outgoing queue per client.
 *
 * aedes keeps, for every client with a persistent session (`clean: false`)
 * and a QoS 1/2 subscription, every matching message until the client
 * acknowledges it — while it is offline, and while it is connected but not
 * acknowledging (the Kafka bridge while Kafka is down). aedes-persistence
 * keeps that queue in an unbounded array. Here it holds at most
 * `maxQueuedPerClient` messages; a message arriving at a full queue is not
 * queued for that client (like Mosquitto's `max_queued_messages`): it is
 * dropped for an offline client and delivered once, without redelivery, to a
 * connected one. Every drop is counted (`onDrop`).
 *
 * The queue is indexed, so the calls aedes makes per message are O(1): enqueue,
 * `outgoingUpdate` (by broker id + counter, or by packet id) and
 * `outgoingClearMessageId` (a PUBACK, by packet id) — aedes-persistence scans
 * the whole in-flight list for each. Everything else (subscriptions,
 * retained messages, wills, incoming QoS 2) is aedes-persistence unchanged.
 */

/** What aedes stores per queued message (an `aedes-packet`). */
export interface QueuedPacket {
  cmd: string;
  topic?: string;
  payload?: Buffer;
  qos?: number;
  retain?: boolean;
  messageId?: number;
  brokerId?: string;
  brokerCounter?: number;
  [key: string]: unknown;
}

/** The parts of aedes' `Client` the persistence reads. */
interface ClientRef {
  id: string;
}

export interface BoundedPersistenceOptions {
  /** Messages queued per client at most (1–65,535: the MQTT packet-id space). */
  maxQueuedPerClient: number;
  /**
   * Called for every message not queued because the client's queue was full.
   * `first` is true for the first drop since the queue was last below the bound.
   */
  onDrop?: (clientId: string, packet: QueuedPacket, first: boolean) => void;
  /** Called when a queue that dropped messages has room again, with how many it dropped meanwhile. */
  onRecover?: (clientId: string, dropped: number) => void;
}

/** What the wrapped aedes-persistence offers (promise style, as aedes 1.x calls it). */
type Inner = {
  setup(broker: unknown): Promise<void>;
  broker: unknown;
} & Record<string, (...args: unknown[]) => unknown>;

type PacketCtor = new (original: QueuedPacket) => QueuedPacket;

class ClientQueue {
  private seq = 0;
  /** Queued messages by sequence number, oldest first (a Map keeps insertion order). */
  readonly items = new Map<number, QueuedPacket>();
  /** `brokerId:brokerCounter` → seq. */
  readonly byKey = new Map<string, number>();
  /** Packet id → seq, for messages sent and waiting for their acknowledgement. */
  readonly byMessageId = new Map<number, number>();
  /** Seqs without a packet id yet (not sent), oldest first. */
  readonly unassigned = new Set<number>();
  /** Messages dropped since the queue was last below the bound. */
  dropping = 0;

  add(packet: QueuedPacket): void {
    const seq = ++this.seq;
    this.items.set(seq, packet);
    const key = keyOf(packet);
    if (key !== undefined) this.byKey.set(key, seq);
    if (packet.messageId === undefined) this.unassigned.add(seq);
    else this.byMessageId.set(packet.messageId, seq);
  }

  remove(seq: number): QueuedPacket | undefined {
    const packet = this.items.get(seq);
    if (packet === undefined) return undefined;
    this.items.delete(seq);
    const key = keyOf(packet);
    if (key !== undefined && this.byKey.get(key) === seq) this.byKey.delete(key);
    if (packet.messageId !== undefined && this.byMessageId.get(packet.messageId) === seq)
      this.byMessageId.delete(packet.messageId);
    this.unassigned.delete(seq);
    return packet;
  }

  setMessageId(seq: number, messageId: number | undefined): void {
    const packet = this.items.get(seq);
    if (packet === undefined || packet.messageId === messageId) return;
    if (packet.messageId !== undefined && this.byMessageId.get(packet.messageId) === seq)
      this.byMessageId.delete(packet.messageId);
    packet.messageId = messageId;
    if (messageId === undefined) this.unassigned.add(seq);
    else {
      this.unassigned.delete(seq);
      this.byMessageId.set(messageId, seq);
    }
  }

  replace(seq: number, packet: QueuedPacket): void {
    const old = this.items.get(seq);
    if (old === undefined) return;
    const oldKey = keyOf(old);
    if (oldKey !== undefined && this.byKey.get(oldKey) === seq) this.byKey.delete(oldKey);
    if (old.messageId !== undefined && this.byMessageId.get(old.messageId) === seq)
      this.byMessageId.delete(old.messageId);
    this.unassigned.delete(seq);
    this.items.set(seq, packet);
    const key = keyOf(packet);
    if (key !== undefined) this.byKey.set(key, seq);
    if (packet.messageId === undefined) this.unassigned.add(seq);
    else this.byMessageId.set(packet.messageId, seq);
  }
}

function keyOf(p: QueuedPacket): string | undefined {
  return p.brokerId === undefined || p.brokerCounter === undefined
    ? undefined
    : `${p.brokerId}:${p.brokerCounter}`;
}

/** See the module comment. Pass an instance as aedes' `persistence` option. */
export class BoundedQueuePersistence {
  private readonly inner: Inner;
  private readonly Packet: PacketCtor;
  private readonly queues = new Map<string, ClientQueue>();
  private readonly max: number;
  private readonly onDrop: BoundedPersistenceOptions['onDrop'];
  private readonly onRecover: BoundedPersistenceOptions['onRecover'];
  private total = 0;
  /** Messages not queued because a queue was full, since start. */
  dropped = 0;

  constructor(options: BoundedPersistenceOptions) {
    const max = options.maxQueuedPerClient;
    if (!Number.isInteger(max) || max < 1 || max > 65_535)
      throw new RangeError(`maxQueuedPerClient must be an integer from 1 to 65535, got ${max}`);
    this.max = max;
    this.onDrop = options.onDrop;
    this.onRecover = options.onRecover;
    // aedes-persistence is CommonJS: the default import is its `module.exports`, the factory
    // (its typings describe an ES default export instead).
    const factory = memoryPersistence as unknown as (() => Inner) & { Packet: PacketCtor };
    this.inner = factory();
    this.Packet = factory.Packet;
  }

  /** Messages queued across all clients. */
  get queuedMessages(): number {
    return this.total;
  }

  /** Messages queued for one client. */
  queuedFor(clientId: string): number {
    return this.queues.get(clientId)?.items.size ?? 0;
  }

  get broker(): unknown {
    return this.inner.broker;
  }

  async setup(broker: unknown): Promise<void> {
    await this.inner.setup(broker);
  }

  // ---- outgoing (bounded, indexed) ---------------------------------------

  async outgoingEnqueue(sub: { clientId: string }, packet: QueuedPacket): Promise<void> {
    this.enqueue(sub.clientId, packet);
  }

  async outgoingEnqueueCombi(subs: ReadonlyArray<{ clientId: string }>, packet: QueuedPacket): Promise<void> {
    for (const sub of subs) this.enqueue(sub.clientId, packet);
  }

  /**
   * Records the packet id a queued message was sent with (matched by broker id
   * and counter), or replaces a message by packet id (a PUBREL for a QoS 2
   * message). A message that is not queued — dropped at a full queue — is
   * ignored rather than refused: refusing would make aedes close the client.
   */
  async outgoingUpdate(client: ClientRef, packet: QueuedPacket): Promise<void> {
    const q = this.queues.get(client.id);
    if (q === undefined) return;
    const key = keyOf(packet);
    const byKey = key === undefined ? undefined : q.byKey.get(key);
    if (byKey !== undefined) {
      q.setMessageId(byKey, packet.messageId);
      return;
    }
    if (packet.messageId === undefined) return;
    const byId = q.byMessageId.get(packet.messageId);
    if (byId === undefined) return;
    const stored = q.items.get(byId);
    if (stored !== undefined && (packet.brokerId === undefined || stored.brokerId !== packet.brokerId))
      q.replace(byId, packet);
  }

  /**
   * Removes a message (acknowledged, or discarded with its session) and
   * returns it: by broker id and counter when the packet carries them, else by
   * packet id, else the oldest message not yet sent.
   */
  async outgoingClearMessageId(client: ClientRef, packet: QueuedPacket): Promise<QueuedPacket | undefined> {
    const q = this.queues.get(client.id);
    if (q === undefined) return undefined;
    const key = keyOf(packet);
    let seq = key === undefined ? undefined : q.byKey.get(key);
    if (seq === undefined && packet.messageId !== undefined) seq = q.byMessageId.get(packet.messageId);
    if (seq === undefined && packet.messageId === undefined) {
      const first = q.unassigned.values().next();
      seq = first.done === true ? undefined : first.value;
    }
    if (seq === undefined) return undefined;
    const removed = q.remove(seq);
    if (removed !== undefined) this.total--;
    this.settle(client.id, q);
    return removed;
  }

  outgoingStream(client: ClientRef): Readable {
    const q = this.queues.get(client.id);
    return Readable.from(q === undefined ? [] : [...q.items.values()]);
  }

  private enqueue(clientId: string, packet: QueuedPacket): void {
    let q = this.queues.get(clientId);
    if (q === undefined) {
      q = new ClientQueue();
      this.queues.set(clientId, q);
    }
    if (q.items.size >= this.max) {
      this.dropped++;
      q.dropping++;
      this.onDrop?.(clientId, packet, q.dropping === 1);
      return;
    }
    q.add(new this.Packet(packet));
    this.total++;
  }

  private settle(clientId: string, q: ClientQueue): void {
    if (q.dropping > 0 && q.items.size < this.max) {
      const dropped = q.dropping;
      q.dropping = 0;
      this.onRecover?.(clientId, dropped);
    }
    if (q.items.size === 0 && q.dropping === 0) this.queues.delete(clientId);
  }

  // ---- everything else: aedes-persistence --------------------------------

  storeRetained(packet: unknown): unknown {
    return this.inner.storeRetained!(packet);
  }
  createRetainedStream(pattern: unknown): unknown {
    return this.inner.createRetainedStream!(pattern);
  }
  createRetainedStreamCombi(patterns: unknown): unknown {
    return this.inner.createRetainedStreamCombi!(patterns);
  }
  addSubscriptions(client: unknown, subs: unknown): unknown {
    return this.inner.addSubscriptions!(client, subs);
  }
  removeSubscriptions(client: unknown, subs: unknown): unknown {
    return this.inner.removeSubscriptions!(client, subs);
  }
  subscriptionsByClient(client: unknown): unknown {
    return this.inner.subscriptionsByClient!(client);
  }
  countOffline(): unknown {
    return this.inner.countOffline!();
  }
  subscriptionsByTopic(pattern: unknown): unknown {
    return this.inner.subscriptionsByTopic!(pattern);
  }
  cleanSubscriptions(client: unknown): unknown {
    return this.inner.cleanSubscriptions!(client);
  }
  incomingStorePacket(client: unknown, packet: unknown): unknown {
    return this.inner.incomingStorePacket!(client, packet);
  }
  incomingGetPacket(client: unknown, packet: unknown): unknown {
    return this.inner.incomingGetPacket!(client, packet);
  }
  incomingDelPacket(client: unknown, packet: unknown): unknown {
    return this.inner.incomingDelPacket!(client, packet);
  }
  cleanIncoming(client: unknown): unknown {
    return this.inner.cleanIncoming!(client);
  }
  putWill(client: unknown, packet: unknown): unknown {
    return this.inner.putWill!(client, packet);
  }
  getWill(client: unknown): unknown {
    return this.inner.getWill!(client);
  }
  delWill(client: unknown): unknown {
    return this.inner.delWill!(client);
  }
  streamWill(brokers: unknown): unknown {
    return this.inner.streamWill!(brokers);
  }
  getClientList(topic: unknown): unknown {
    return this.inner.getClientList!(topic);
  }
  destroy(): unknown {
    this.queues.clear();
    this.total = 0;
    return this.inner.destroy!();
  }
}
