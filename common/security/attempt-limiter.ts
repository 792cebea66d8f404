/**
 * A limiter of failed login attempts, shared by the broker and the dashboard.
 *
 * Each attempt names one or more rules — a key (`address`, `username`,
 * `address+username`) and the most failures that key may collect within the
 * window. An attempt must {@link AttemptLimiter.reserve reserve} a slot under
 * every rule *before* the password is checked; an attempt in flight counts
 * against its keys like a failure until it is settled. So N parallel guesses
 * cannot all pass a check made before any of them failed: at most `max` of
 * them reach the password hash, the rest are refused at once.
 *
 * Memory is bounded: at most `maxKeys` keys are tracked; beyond, the least
 * recently used key without an attempt in flight is forgotten (its count
 * restarts at zero), one key at a time — never the whole table.
 */

export interface AttemptRule {
  /** What is limited, e.g. `addr:10.0.0.7` or `user:sensor-m1`. */
  readonly key: string;
  /** Failures (plus attempts in flight) allowed within the window. */
  readonly max: number;
}

export interface AttemptLimiterOptions {
  /** Window over which failures count, ms. */
  windowMs: number;
  /** Keys tracked at most (least recently used forgotten first). Default 50,000. */
  maxKeys?: number;
  now?: () => number;
}

/** A reserved attempt: settle it exactly once (later calls are ignored). */
export interface Reservation {
  readonly ok: true;
  /** The password was wrong: counts as a failure under every rule. */
  fail(): void;
  /** The login succeeded: releases the slot and forgets the failures of `clearKeys`. */
  succeed(clearKeys?: readonly string[]): void;
  /** Neither (e.g. the check itself errored): releases the slot, counts nothing. */
  cancel(): void;
}

/** A refused attempt. */
export interface Refusal {
  readonly ok: false;
  /** The rule that refused. */
  readonly key: string;
  /** Seconds until an attempt may succeed (at least 1). */
  readonly retryAfterS: number;
}

interface Entry {
  /** Times of the most recent failures, oldest first (at most the largest `max` seen). */
  failures: number[];
  /** Attempts reserved and not settled. */
  pending: number;
}

export class AttemptLimiter {
  private readonly entries = new Map<string, Entry>();
  private readonly windowMs: number;
  private readonly maxKeys: number;
  private readonly now: () => number;
  /** Keys forgotten to stay within `maxKeys` (for tests and metrics). */
  evictions = 0;

  constructor(options: AttemptLimiterOptions) {
    this.windowMs = options.windowMs;
    this.maxKeys = options.maxKeys ?? 50_000;
    this.now = options.now ?? Date.now;
  }

  /** Keys currently tracked. */
  get size(): number {
    return this.entries.size;
  }

  /**
   * Seconds until an attempt under `rules` would be allowed, 0 when it would
   * be allowed now. Reserves nothing; use {@link reserve} before checking a password.
   */
  retryAfter(rules: readonly AttemptRule[]): number {
    const t = this.now();
    let worst = 0;
    for (const rule of rules) worst = Math.max(worst, this.waitFor(rule, t));
    return worst;
  }

  /** Reserves one attempt under every rule, or refuses when any rule is exhausted. */
  reserve(rules: readonly AttemptRule[]): Reservation | Refusal {
    const t = this.now();
    for (const rule of rules) {
      const wait = this.waitFor(rule, t);
      if (wait > 0) {
        // A key still being hammered is recently used: it is the last one eviction would pick.
        for (const r of rules) if (this.entries.has(r.key)) this.touch(r.key);
        return { ok: false, key: rule.key, retryAfterS: wait };
      }
    }
    return this.hold(rules);
  }

  /** Records one failure under every rule without checking them (e.g. a login refused before any check). */
  fail(rules: readonly AttemptRule[]): void {
    this.hold(rules).fail();
  }

  /** Forgets the failures of `key`. */
  clear(key: string): void {
    const e = this.entries.get(key);
    if (e === undefined) return;
    e.failures = [];
    if (e.pending === 0) this.entries.delete(key);
  }

  /** Takes a slot under every rule; the reservation releases it once. */
  private hold(rules: readonly AttemptRule[]): Reservation {
    for (const rule of rules) this.touch(rule.key).pending++;
    this.evict();
    let settled = false;
    const settle = (failed: boolean, clearKeys: readonly string[]): void => {
      if (settled) return;
      settled = true;
      const at = this.now();
      for (const rule of rules) {
        const e = this.entries.get(rule.key) ?? this.touch(rule.key);
        e.pending = Math.max(0, e.pending - 1);
        if (failed) {
          e.failures.push(at);
          // Only the last `max` failures decide anything.
          const keep = Math.max(1, rule.max);
          if (e.failures.length > keep) e.failures.splice(0, e.failures.length - keep);
        } else if (clearKeys.includes(rule.key)) e.failures = [];
        if (e.pending === 0 && e.failures.length === 0) this.entries.delete(rule.key);
      }
      this.evict();
    };
    return {
      ok: true,
      fail: () => settle(true, []),
      succeed: (clearKeys = []) => settle(false, clearKeys),
      cancel: () => settle(false, []),
    };
  }

  /** Seconds to wait under one rule at time `t` (0: an attempt may be reserved). Prunes old failures. */
  private waitFor(rule: AttemptRule, t: number): number {
    const e = this.entries.get(rule.key);
    if (e === undefined) return rule.max > 0 ? 0 : 1;
    while (e.failures.length > 0 && t - (e.failures[0] as number) >= this.windowMs) e.failures.shift();
    if (e.failures.length === 0 && e.pending === 0) {
      this.entries.delete(rule.key);
      return rule.max > 0 ? 0 : 1;
    }
    if (e.failures.length + e.pending < rule.max) return 0;
    // Full. When failures alone fill it, wait until the oldest one that counts leaves the window;
    // when attempts in flight hold slots, they settle within a check: ask to come back in a second.
    if (e.failures.length >= rule.max) {
      const oldestCounting = e.failures[e.failures.length - rule.max] as number;
      return Math.max(1, Math.ceil((oldestCounting + this.windowMs - t) / 1000));
    }
    return 1;
  }

  /** The entry of `key`, created if missing, marked most recently used. */
  private touch(key: string): Entry {
    const e = this.entries.get(key);
    if (e !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, e);
      return e;
    }
    const fresh: Entry = { failures: [], pending: 0 };
    this.entries.set(key, fresh);
    return fresh;
  }

  /** Forgets least recently used keys without attempts in flight until within `maxKeys`. */
  private evict(): void {
    if (this.entries.size <= this.maxKeys) return;
    for (const [key, e] of this.entries) {
      if (this.entries.size <= this.maxKeys) break;
      if (e.pending > 0) continue;
      this.entries.delete(key);
      this.evictions++;
    }
  }
}
