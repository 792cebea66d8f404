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

interface Topic {
  base: number;
  log: BusMessage[];
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
      t = { base: 0, log: [], groups: new Map() };
      this.topics.set(name, t);
    }
    return t;
  }

  async publish(topic: string, key: string, value: unknown): Promise<void> {
    if (this.closed) throw new Error('bus is closed');
    const t = this.topic(topic);
    // Values cross a (logical) process boundary: copy them as JSON so no sender can mutate what a consumer sees.
    const copy: unknown = JSON.parse(JSON.stringify(value));
    t.log.push({ topic, key, value: copy, offset: String(t.base + t.log.length), timestamp: Date.now() });
    if (t.log.length > this.retention) {
      const drop = t.log.length - this.retention;
      t.log.splice(0, drop);
      t.base += drop;
    }
    for (const g of t.groups.values()) this.pump(t, g);
  }

  async subscribe(topic: string, options: SubscribeOptions, handler: BusHandler): Promise<Subscription> {
    const t = this.topic(topic);
    let g = t.groups.get(options.group);
    if (!g) {
      g = {
        name: options.group,
        next: options.fromBeginning === false ? t.base + t.log.length : t.base,
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
          if (g.next < t.base) g.next = t.base;
          const msg = t.log[g.next - t.base];
          if (!msg) break;
          await this.deliver(g, msg);
          g.next++;
        }
      } finally {
        g.running = false;
      }
    })();
  }

  private async deliver(g: Group, msg: BusMessage): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const handler = g.handlers[g.rr++ % g.handlers.length];
      if (!handler) return;
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
    return this.topics.get(topic)?.log ?? [];
  }

  /** Resolves when every group has caught up with every topic. */
  async idle(): Promise<void> {
    for (;;) {
      const pending = [...this.topics.values()].flatMap((t) =>
        [...t.groups.values()].filter(
          (g) => g.running || (g.handlers.length > 0 && g.next < t.base + t.log.length),
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
