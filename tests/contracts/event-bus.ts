import { afterEach, describe, expect, it } from 'vitest';
import { BUS_TOPICS, type BusMessage, type EventBus, type Subscription } from '../../common/bus/types.ts';
import { TransportError, ValidationError } from '../../common/errors.ts';

/**
 * The `EventBus` contract (`common/bus/types.ts`), in the style of MQTT.js's
 * `abstract_store`: one suite, run against every implementation —
 * `InProcessBus` in `npm test` (tests/unit/common/bus/contract.test.ts),
 * `KafkaBus` against a real broker (tests/external/kafka-contracts.test.ts).
 *
 * What the interface promises: JSON values round-trip with their topic, key,
 * offset and timestamp; ordering per key; every group gets every message, and
 * the members of one group share them without duplicates; a new group starts
 * from the oldest retained message unless `fromBeginning: false`; a message is
 * acknowledged only when its handler returns — a retriable error redelivers it
 * (before anything after it), any other error dead-letters it on
 * `driftline.dead-letter` with the reason and moves on; closing a subscription
 * lets the handler in flight finish and stops delivery.
 */

/** The topics the suite publishes to (besides `driftline.dead-letter`), for buses that create topics up front. */
export const CONTRACT_TOPICS = ['orders', 'work', 'log', 'jobs', 'inbox'] as const;

/** One bus of the suite. */
export interface BusUnderTest {
  bus: EventBus;
  /**
   * Resolves once these subscriptions receive what is published from now on
   * (Kafka: the group's partitions are assigned). Immediate for an in-process bus.
   */
  joined(subscriptions: readonly Subscription[]): Promise<void>;
  /** Releases what the bus created besides itself (topics, clients). Optional. */
  cleanup?(): Promise<void>;
}

export interface BusContractOptions {
  /** How long a test waits for deliveries, ms. */
  timeoutMs: number;
  /** How long to keep listening for a duplicate or a late delivery after the expected ones, ms. */
  quietMs: number;
}

async function waitFor(check: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Registers the contract suite for one implementation; `open` gives a fresh bus per test. */
export function eventBusContract(
  name: string,
  open: (test: string) => Promise<BusUnderTest>,
  options: BusContractOptions,
): void {
  const { timeoutMs, quietMs } = options;
  describe(`EventBus contract: ${name}`, () => {
    const opened: BusUnderTest[] = [];
    const fresh = async (test: string): Promise<BusUnderTest> => {
      const b = await open(test);
      opened.push(b);
      return b;
    };
    afterEach(async () => {
      for (const b of opened.splice(0)) {
        await b.bus.close();
        await b.cleanup?.();
      }
    });

    it('round-trips JSON values with topic, key, offset and timestamp, in order per key', async () => {
      const { bus, joined } = await fresh('order');
      const got: BusMessage[] = [];
      const sub = await bus.subscribe('orders', { group: 'reader' }, async (m) => void got.push(m));
      await joined([sub]);
      const keys = ['m-1', 'm-2', 'm-3'];
      const before = Date.now();
      for (let i = 0; i < 30; i++) {
        const key = keys[i % keys.length] as string;
        await bus.publish('orders', key, { seq: i, key, nested: { ok: true, list: [1, 'two', null] } });
      }
      await waitFor(() => got.length >= 30, '30 messages', timeoutMs);
      const first = got[0] as BusMessage;
      expect(first.topic).toBe('orders');
      expect(typeof first.offset).toBe('string');
      expect(first.timestamp).toBeGreaterThanOrEqual(before - 5_000);
      expect(first.timestamp).toBeLessThanOrEqual(Date.now() + 5_000);
      for (const m of got) {
        const v = m.value as { key: string; nested: unknown };
        expect(v.key).toBe(m.key);
        expect(v.nested).toEqual({ ok: true, list: [1, 'two', null] });
      }
      for (const key of keys) {
        const seqs = got.filter((m) => m.key === key).map((m) => (m.value as { seq: number }).seq);
        expect(seqs).toHaveLength(10);
        expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
      }
      // Offsets increase per key (one partition per key on Kafka, one log in process).
      for (const key of keys) {
        const offsets = got.filter((m) => m.key === key).map((m) => BigInt(m.offset));
        expect(offsets).toEqual([...offsets].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
      }
    });

    it('gives every group every message, and splits a group between its members without duplicates', async () => {
      const { bus, joined } = await fresh('groups');
      const audit: number[] = [];
      const worker = { a: [] as number[], b: [] as number[] };
      const subs = [
        await bus.subscribe(
          'work',
          { group: 'audit' },
          async (m) => void audit.push((m.value as { i: number }).i),
        ),
        await bus.subscribe(
          'work',
          { group: 'workers' },
          async (m) => void worker.a.push((m.value as { i: number }).i),
        ),
        await bus.subscribe(
          'work',
          { group: 'workers' },
          async (m) => void worker.b.push((m.value as { i: number }).i),
        ),
      ];
      await joined(subs);
      for (let i = 0; i < 40; i++) await bus.publish('work', `machine-${i}`, { i });
      const all = Array.from({ length: 40 }, (_, i) => i);
      await waitFor(
        () => audit.length >= 40 && worker.a.length + worker.b.length >= 40,
        '40 messages in each group',
        timeoutMs,
      );
      await sleep(quietMs); // duplicates would arrive now
      expect([...audit].sort((x, y) => x - y)).toEqual(all);
      expect([...worker.a, ...worker.b].sort((x, y) => x - y)).toEqual(all);
    });

    it('starts a new group at the oldest retained message, or at the next one with fromBeginning: false', async () => {
      const { bus, joined } = await fresh('start');
      await bus.publish('log', 'k', 'old-1');
      await bus.publish('log', 'k', 'old-2');
      const replayed: unknown[] = [];
      const live: unknown[] = [];
      const subs = [
        await bus.subscribe('log', { group: 'replay' }, async (m) => void replayed.push(m.value)),
        await bus.subscribe(
          'log',
          { group: 'live', fromBeginning: false },
          async (m) => void live.push(m.value),
        ),
      ];
      await joined(subs);
      await bus.publish('log', 'k', 'new');
      await waitFor(
        () => replayed.length >= 3 && live.length >= 1,
        'the replay and the new message',
        timeoutMs,
      );
      await sleep(quietMs);
      expect(replayed).toEqual(['old-1', 'old-2', 'new']);
      expect(live).toEqual(['new']);
    });

    it('redelivers a message whose handler failed with a retriable error, before anything after it', async () => {
      const { bus, joined } = await fresh('retry');
      const seen: string[] = [];
      let failures = 0;
      const sub = await bus.subscribe('jobs', { group: 'g' }, async (m) => {
        seen.push(m.value as string);
        if (m.value === 'flaky' && failures < 2) {
          failures++;
          throw new TransportError('downstream unavailable');
        }
      });
      await joined([sub]);
      for (const v of ['first', 'flaky', 'after']) await bus.publish('jobs', 'k', v);
      await waitFor(() => seen.includes('after'), 'the message after the flaky one', timeoutMs);
      await sleep(quietMs);
      expect(seen).toEqual(['first', 'flaky', 'flaky', 'flaky', 'after']);
    });

    it('dead-letters a message whose handler failed with a non-retriable error, with the reason, and moves on', async () => {
      const { bus, joined } = await fresh('poison');
      const handled: number[] = [];
      const dead: Record<string, unknown>[] = [];
      const delivered = new Map<number, string>();
      const subs = [
        await bus.subscribe('inbox', { group: 'consumer' }, async (m) => {
          const v = m.value as { n: number; bad?: boolean };
          delivered.set(v.n, m.offset);
          if (v.bad) throw new ValidationError('bad_request', 'request is invalid');
          handled.push(v.n);
        }),
        await bus.subscribe(
          BUS_TOPICS.deadLetter,
          { group: 'dlq-reader' },
          async (m) => void dead.push(m.value as Record<string, unknown>),
        ),
      ];
      await joined(subs);
      await bus.publish('inbox', 'k', { n: 1 });
      await bus.publish('inbox', 'k', { n: 2, bad: true });
      await bus.publish('inbox', 'k', { n: 3 });
      await waitFor(
        () => handled.includes(3) && dead.length >= 1,
        'the next message and the dead letter',
        timeoutMs,
      );
      await sleep(quietMs);
      expect(handled).toEqual([1, 3]);
      expect(dead).toHaveLength(1);
      expect(dead[0]).toMatchObject({
        topic: 'inbox',
        group: 'consumer',
        offset: delivered.get(2),
        value: { n: 2, bad: true },
      });
      expect(String(dead[0]?.reason)).toContain('request is invalid');
    });

    it('closing a subscription lets the handler in flight finish and stops delivery', async () => {
      const { bus, joined } = await fresh('close');
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      let started = false;
      let finished = false;
      const seen: string[] = [];
      const sub = await bus.subscribe('jobs', { group: 'g' }, async (m) => {
        seen.push(m.value as string);
        if (m.value !== 'slow') return;
        started = true;
        await gate;
        finished = true;
      });
      await joined([sub]);
      await bus.publish('jobs', 'k', 'slow');
      await waitFor(() => started, 'the slow handler to start', timeoutMs);
      const closing = sub.close();
      await sleep(50);
      expect(finished).toBe(false); // close waits for it…
      release();
      await closing;
      expect(finished).toBe(true); // …and resolves once it is done
      await bus.publish('jobs', 'k', 'after-close');
      await sleep(quietMs);
      expect(seen).toEqual(['slow']);
    });
  });
}
