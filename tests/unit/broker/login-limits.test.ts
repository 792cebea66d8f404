import { describe, expect, it } from 'vitest';
import { AttemptLimiter } from '../../../common/security/attempt-limiter.ts';
import { FairGate, GateFullError } from '../../../common/security/fair-gate.ts';
import { LoginGuard } from '../../../broker/src/login-guard.ts';
import type { Principal } from '../../../broker/src/acl.ts';

/**
 * The pieces in front of the broker's (and the dashboard's) password check:
 * the failed-attempt limiter (reserve before checking, LRU eviction), the
 * fair concurrency gate, and the broker's LoginGuard combining them.
 */

const deferred = <T>(): { promise: Promise<T>; resolve: (v: T) => void } => {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
};

describe('AttemptLimiter', () => {
  it('counts attempts in flight: of 60 parallel reservations only `max` are granted', () => {
    const l = new AttemptLimiter({ windowMs: 60_000 });
    const rules = [{ key: 'user:alice', max: 5 }];
    const results = Array.from({ length: 60 }, () => l.reserve(rules));
    const granted = results.filter((r) => r.ok);
    expect(granted).toHaveLength(5);
    expect(results.filter((r) => !r.ok)).toHaveLength(55);
    for (const r of granted) if (r.ok) r.fail();
    expect(l.reserve(rules).ok).toBe(false);
  });

  it('frees the slot of a success or a cancel, and lets the window expire failures', () => {
    let t = 0;
    const l = new AttemptLimiter({ windowMs: 10_000, now: () => t });
    const rules = [{ key: 'k', max: 2 }];
    const a = l.reserve(rules);
    const b = l.reserve(rules);
    expect(l.reserve(rules).ok).toBe(false);
    if (!a.ok || !b.ok) throw new Error('reserved');
    a.succeed();
    b.cancel();
    const c = l.reserve(rules);
    const d = l.reserve(rules);
    if (!c.ok || !d.ok) throw new Error('reserved');
    c.fail();
    d.fail();
    d.fail(); // settling twice counts once
    const refused = l.reserve(rules);
    expect(refused).toMatchObject({ ok: false, key: 'k', retryAfterS: 10 });
    t = 10_000;
    expect(l.reserve(rules).ok).toBe(true);
  });

  it('refuses when any rule is full and reports which', () => {
    const l = new AttemptLimiter({ windowMs: 60_000 });
    l.fail([{ key: 'addr:1', max: 2 }]);
    l.fail([{ key: 'addr:1', max: 2 }]);
    const r = l.reserve([
      { key: 'user:bob', max: 5 },
      { key: 'addr:1', max: 2 },
    ]);
    expect(r).toMatchObject({ ok: false, key: 'addr:1' });
    // A refusal reserves nothing under the other rule.
    expect(l.retryAfter([{ key: 'user:bob', max: 1 }])).toBe(0);
  });

  it('succeed(clearKeys) forgets those keys only', () => {
    const l = new AttemptLimiter({ windowMs: 60_000 });
    l.fail([
      { key: 'pair', max: 3 },
      { key: 'addr', max: 3 },
    ]);
    const r = l.reserve([
      { key: 'pair', max: 3 },
      { key: 'addr', max: 3 },
    ]);
    if (!r.ok) throw new Error('reserved');
    r.succeed(['pair']);
    expect(l.size).toBe(1);
    expect(l.retryAfter([{ key: 'addr', max: 1 }])).toBeGreaterThan(0);
    expect(l.retryAfter([{ key: 'pair', max: 1 }])).toBe(0);
  });

  it('evicts the least recently used key, one at a time, never the whole table', () => {
    const l = new AttemptLimiter({ windowMs: 60_000, maxKeys: 3 });
    l.fail([{ key: 'attacker', max: 2 }]);
    l.fail([{ key: 'a', max: 2 }]);
    l.fail([{ key: 'attacker', max: 2 }]); // attacker is now the most recently used
    l.fail([{ key: 'b', max: 2 }]);
    l.fail([{ key: 'c', max: 2 }]); // 4 keys > 3: the least recently used ('a') goes
    expect(l.size).toBe(3);
    expect(l.evictions).toBe(1);
    expect(l.reserve([{ key: 'attacker', max: 2 }]).ok).toBe(false); // still limited
    expect(l.retryAfter([{ key: 'a', max: 1 }])).toBe(0); // forgotten
    // A flood of fresh keys keeps the table at its bound.
    for (let i = 0; i < 1000; i++) l.fail([{ key: `spray-${i}`, max: 2 }]);
    expect(l.size).toBe(3);
  });

  it('counts a refused attempt as a use: a key under attack is not the one evicted', () => {
    const l = new AttemptLimiter({ windowMs: 60_000, maxKeys: 3 });
    l.fail([{ key: 'attacker', max: 1 }]);
    for (let i = 0; i < 50; i++) {
      expect(l.reserve([{ key: 'attacker', max: 1 }]).ok).toBe(false);
      l.fail([{ key: `other-${i}`, max: 1 }]);
    }
    expect(l.reserve([{ key: 'attacker', max: 1 }]).ok).toBe(false);
  });

  it('never evicts a key with an attempt in flight', () => {
    const l = new AttemptLimiter({ windowMs: 60_000, maxKeys: 2 });
    const held = l.reserve([{ key: 'busy', max: 1 }]);
    for (let i = 0; i < 10; i++) l.fail([{ key: `k${i}`, max: 1 }]);
    expect(l.reserve([{ key: 'busy', max: 1 }]).ok).toBe(false);
    if (held.ok) held.fail();
  });
});

describe('FairGate', () => {
  it('runs at most maxConcurrent jobs and refuses beyond maxQueued', async () => {
    const gate = new FairGate({ maxConcurrent: 2, maxQueued: 3 });
    const blockers = Array.from({ length: 5 }, () => deferred<number>());
    const runs = blockers.map((b) => gate.run('a', () => b.promise));
    expect(gate.active).toBe(2);
    expect(gate.waiting).toBe(3);
    await expect(gate.run('b', async () => 1)).rejects.toBeInstanceOf(GateFullError);
    blockers.forEach((b, i) => b.resolve(i));
    expect(await Promise.all(runs)).toEqual([0, 1, 2, 3, 4]);
    expect(gate.started).toBe(5);
    expect(gate.refused).toBe(1);
  });

  it('serves waiting lanes round-robin: one busy address does not starve another', async () => {
    const gate = new FairGate({ maxConcurrent: 1, maxQueued: 100 });
    const order: string[] = [];
    const first = deferred<void>();
    const running = gate.run('flood', () => first.promise);
    const jobs: Promise<void>[] = [];
    for (let i = 0; i < 20; i++)
      jobs.push(
        gate.run('flood', async () => {
          order.push(`flood-${i}`);
        }),
      );
    jobs.push(
      gate.run('legit', async () => {
        order.push('legit');
      }),
    );
    first.resolve();
    await running;
    await Promise.all(jobs);
    expect(order.indexOf('legit')).toBeLessThanOrEqual(1);
  });

  it('keeps running after a job throws', async () => {
    const gate = new FairGate({ maxConcurrent: 1, maxQueued: 1 });
    await expect(gate.run('x', () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    await expect(gate.run('x', async () => 7)).resolves.toBe(7);
    expect(gate.active).toBe(0);
  });
});

describe('LoginGuard', () => {
  const alice: Principal = { username: 'alice', role: 'edge' };

  it('lets at most maxFailuresPerUsername of 60 parallel wrong passwords reach the check', async () => {
    const guard = new LoginGuard({ maxFailuresPerUsername: 5, maxFailuresPerAddress: 1000 });
    let checks = 0;
    const results = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        guard.check(`10.0.0.${i}`, 'alice', async () => {
          checks++;
          return undefined;
        }),
      ),
    );
    expect(checks).toBe(5);
    expect(results.filter((r) => r.outcome === 'rejected')).toHaveLength(5);
    expect(results.filter((r) => r.outcome === 'rate_limited')).toHaveLength(55);
    expect(results.find((r) => r.outcome === 'rate_limited')).toMatchObject({ limitedBy: 'username' });
  });

  it('limits one address spraying usernames', async () => {
    const guard = new LoginGuard({ maxFailuresPerAddress: 3, maxFailuresPerUsername: 1000 });
    let checks = 0;
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        guard.check('10.0.0.9', `user-${i}`, async () => {
          checks++;
          return undefined;
        }),
      ),
    );
    expect(checks).toBe(3);
    expect(results.filter((r) => r.outcome === 'rate_limited')).toHaveLength(7);
    // Another address is not affected.
    expect(await guard.check('10.0.0.10', 'alice', async () => alice)).toEqual({
      outcome: 'accepted',
      principal: alice,
    });
  });

  it('answers overloaded (and counts nothing) when the check queue is full', async () => {
    const guard = new LoginGuard({ maxConcurrent: 1, maxQueued: 0, maxFailuresPerAddress: 100 });
    const slow = deferred<Principal | undefined>();
    const first = guard.check('a', 'u1', () => slow.promise);
    expect(await guard.check('b', 'u2', async () => alice)).toEqual({ outcome: 'overloaded' });
    slow.resolve(alice);
    expect((await first).outcome).toBe('accepted');
    expect(guard.limiter.size).toBe(0);
  });
});
