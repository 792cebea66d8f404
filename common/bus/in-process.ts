import { describeError, isRetriable } from '../errors.ts';
import type { Logger } from '../logging/logger.ts';
import { silentLogger } from '../logging/logger.ts';
import {
  BUS_TOPICS,
  type BusHandler,
  type BusMessage,
  type EventBus,
  type SubscribeOptions,
  type Subscription,
} from './types.ts';

export interface InProcessBusOptions {
  logger?: Logger;
  /** Messages kept per topic for late subscribers and new groups; default 10,000. */
  retention?: number;
  /** Redeliveries of a message whose handler throws a retriable error; default 5. */
  maxRedeliveries?: number;
  /** Delay before a redelivery, ms; default 50. */
  redeliveryDelayMs?: number;
}

interface Group {
  name: string;
  /** Index (absolute offset) of the next message to deliver. */
  next: number;
  handlers: BusHandler[];
  rr: number;
  running: boolean;
  inFlight: Promise<void> | null;
}

/**
 * A retained message: its value kept as the JSON text it was published as, and parsed for each
 * delivery. Text is about a third of the parsed objects' heap (a batch of labelled samples: ~1 KB
 * against ~2.7 KB), a topic nobody subscribes to (the edge's labelled samples when no retrainer runs
 * in the process) costs no parse at all, and no two groups share one mutable object.
 */
interface Retained {
  key: string;
  json: string;
  offset: string;
  timestamp: number;
}

interface Topic {
  name: string;
  /** Absolute offset of the oldest retained message, `log[head]`. */
  base: number;
  /**
   * Messages beyond retention still at the front of `log`, removed in one splice once they are as many
   * as the retention: trimming one message per publish shifted the whole array each time (O(retention)
   * per message; 2.8 % of the edge's CPU in the pipeline benchmark at 7,000 msg/s).
   */
  head: number;
  log: Retained[];
  groups: Map<string, Group>;
}

/**
 * The embedded event bus: an in-memory, per-topic log with consumer groups.
 * Delivery is in order, one message at a time per group, at least once: the
 * group's position advances only after its handler returns. A retriable error
 * redelivers; any other error dead-letters the message on `driftline.dead-letter`.
 */
export class InProcessBus implements EventBus {
  readonly kind = 'in-process';
  private readonly topics = new Map<string, Topic>();
  private readonly logger: Logger;
  private readonly retention: number;
  private readonly maxRedeliveries: number;
  private readonly redeliveryDelayMs: number;
  private closed = false;

  constructor(options: InProcessBusOptions = {}) {
    this.logger = options.logger ?? silentLogger();
    this.retention = options.retention ?? 10_000;
    this.maxRedeliveries = options.maxRedeliveries ?? 5;
    this.redeliveryDelayMs = options.redeliveryDelayMs ?? 50;
  }

  private topic(name: string): Topic {
    let t = this.topics.get(name);
    if (!t) {
      t = { name, base: 0, head: 0, log: [], groups: new Map() };
      this.topics.set(name, t);
    }
    return t;
  }

  async publish(topic: string, key: string, value: unknown): Promise<void> {
    if (this.closed) throw new Error('bus is closed');
    const t = this.topic(topic);
    // Values cross a (logical) process boundary: kept as JSON text, so no sender can mutate what a consumer sees.
    const json: string | undefined = JSON.stringify(value);
    if (json === undefined)
      throw new TypeError(`bus value on ${topic} is not JSON-serialisable (${typeof value})`);
    const end = t.base + t.log.length - t.head;
    t.log.push({ key, json, offset: String(end), timestamp: Date.now() });
    const excess = t.log.length - t.head - this.retention;
    if (excess > 0) {
      t.head += excess;
      t.base += excess;
      if (t.head >= this.retention) {
        t.log.splice(0, t.head);
        t.head = 0;
      }
    }
    for (const g of t.groups.values()) this.pump(t, g);
  }

  async subscribe(topic: string, options: SubscribeOptions, handler: BusHandler): Promise<Subscription> {
    const t = this.topic(topic);
    let g = t.groups.get(options.group);
    if (!g) {
      g = {
        name: options.group,
        next: options.fromBeginning === false ? t.base + t.log.length - t.head : t.base,
        handlers: [],
        rr: 0,
        running: false,
        inFlight: null,
      };
      t.groups.set(options.group, g);
    }
    g.handlers.push(handler);
    this.pump(t, g);
    const group = g;
    return {
      close: async () => {
        const i = group.handlers.indexOf(handler);
        if (i >= 0) group.handlers.splice(i, 1);
        await group.inFlight;
      },
    };
  }

  private pump(t: Topic, g: Group): void {
    if (g.running || this.closed) return;
    g.running = true;
    g.inFlight = (async () => {
      try {
        while (!this.closed && g.handlers.length > 0) {
          if (g.next < t.base) {
            // Never silent: the group was slower than the retention, and these messages are gone for it.
            this.logger.warn('bus group fell behind the retention: messages skipped', {
              topic: t.name,
              group: g.name,
              skipped: t.base - g.next,
              retention: this.retention,
            });
            g.next = t.base;
          }
          const entry = t.log[t.head + g.next - t.base];
          if (!entry) break;
          await this.deliver(g, t.name, entry);
          g.next++;
        }
      } finally {
        g.running = false;
      }
    })();
  }

  private async deliver(g: Group, topic: string, entry: Retained): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const handler = g.handlers[g.rr++ % g.handlers.length];
      if (!handler) return;
      // A fresh copy per attempt: a handler that mutated the value and then failed does not change the retry.
      const msg = messageOf(topic, entry);
      try {
        await handler(msg);
        return;
      } catch (err) {
        if (isRetriable(err) && attempt < this.maxRedeliveries) {
          this.logger.warn('bus handler failed; redelivering', {
            topic: msg.topic,
            group: g.name,
            attempt: attempt + 1,
            err: describeError(err),
          });
          await new Promise((r) => setTimeout(r, this.redeliveryDelayMs * (attempt + 1)));
          continue;
        }
        this.logger.error('bus handler failed; message dead-lettered', {
          topic: msg.topic,
          group: g.name,
          reason: describeError(err),
        });
        if (msg.topic !== BUS_TOPICS.deadLetter) {
          await this.publish(BUS_TOPICS.deadLetter, msg.key, {
            topic: msg.topic,
            offset: msg.offset,
            group: g.name,
            reason: describeError(err),
            value: msg.value,
          });
        }
        return;
      }
    }
  }

  /** Messages currently retained on a topic (tests and the dashboard use it). */
  retained(topic: string): readonly BusMessage[] {
    const t = this.topics.get(topic);
    if (!t) return [];
    return t.log.slice(t.head).map((entry) => messageOf(topic, entry));
  }

  /** Resolves when every group has caught up with every topic. */
  async idle(): Promise<void> {
    for (;;) {
      const pending = [...this.topics.values()].flatMap((t) =>
        [...t.groups.values()].filter(
          (g) => g.running || (g.handlers.length > 0 && g.next < t.base + t.log.length - t.head),
        ),
      );
      if (pending.length === 0) return;
      await Promise.all(pending.map((g) => g.inFlight));
      await new Promise((r) => setImmediate(r));
    }
  }

  async close(): Promise<void> {
    const inflight = [...this.topics.values()].flatMap((t) => [...t.groups.values()].map((g) => g.inFlight));
    this.closed = true;
    await Promise.all(inflight);
  }
}

/** The message a handler gets: the retained entry with its value parsed from the JSON text. */
function messageOf(topic: string, entry: Retained): BusMessage {
  const value: unknown = JSON.parse(entry.json);
  return { topic, key: entry.key, value, offset: entry.offset, timestamp: entry.timestamp };
}
