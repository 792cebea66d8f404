import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixedHeader, type RawMqtt } from '../../scripts/attacks/raw-mqtt.ts';
import { startTestBroker, until, USERS, type TestBroker } from '../integration/broker/helpers.ts';
import { FUZZ_RUNS, FUZZ_SEED } from './runs.ts';

/**
 * Bad MQTT topic names against the broker (issue 10, "Bad input"): wildcards,
 * `$SYS`, very long, unicode, NUL, invalid UTF-8, empty, other machines' and
 * near-miss topics — FUZZ_RUNS generated cases per surface (200 in
 * `npm test`, 10,000 in `make test`), with good telemetry from another device
 * interleaved. Promised, and asserted:
 *
 * - PUBLISH (as device `m1`, QoS 1) to any topic but `factory/m1/telemetry` is
 *   refused by closing the connection without a PUBACK — MQTT 3.1.1 has no
 *   negative PUBACK [MQTT-3.3.5-2]. Which rule closes it: aedes' protocol check
 *   (empty topic, `+`/`#` in a PUBLISH, too many levels), the packet-size cap
 *   (topics past the device's 8 KiB), or the ACL (everything else, counted in
 *   `driftline_broker_acl_denials_total`). Nothing of it reaches any subscriber.
 * - SUBSCRIBE (as device `m1`) to a filter outside `factory/m1/#` is refused with
 *   SUBACK 0x80 and the connection stays open (ACL denial), or, for a filter
 *   that is not a valid MQTT filter (`#` not last, `+` inside a level, NUL, …),
 *   the connection is closed [MQTT-4.7.3-1 ff.]. Never granted: the refused
 *   connection never receives a message.
 * - Good telemetry interleaved from device `m2` is delivered in full to the
 *   edge (counted by machineId + seq), and the broker serves new logins after.
 */

const GOOD = 'factory/m1/telemetry';

/** Topic-ish strings an attacker or a broken device sends. */
const badTopic: fc.Arbitrary<string> = fc
  .oneof(
    // wildcards anywhere
    fc
      .tuple(
        fc.string({ maxLength: 20 }),
        fc.constantFrom('+', '#', '/+', '/#', '+/', '#/'),
        fc.string({ maxLength: 20 }),
      )
      .map(([a, w, b]) => `${a}${w}${b}`),
    // $SYS and other $-topics
    fc.string({ maxLength: 40 }).map((s) => `$SYS/${s}`),
    fc.string({ maxLength: 40 }).map((s) => `$${s}`),
    // very long (up to 16,000 characters, several bytes each for some: at most 64,011 bytes, since a
    // topic's length field says at most 65,535 and a longer topic cannot be written in a packet at all)
    fc
      .integer({ min: 200, max: 16_000 })
      .chain((n) => fc.constantFrom('a', 'é', '/', '€', '𝄞').map((c) => `factory/m1/${c.repeat(n)}`)),
    // unicode, including control characters, lone surrogates (sent as U+FFFD) and NUL
    fc.string({ unit: 'binary', maxLength: 60 }),
    fc.string({ unit: 'grapheme', maxLength: 30 }).map((s) => `factory/${s}/telemetry`),
    fc
      .tuple(fc.string({ maxLength: 10 }), fc.string({ maxLength: 10 }))
      .map(([a, b]) => `factory/m1${a}\u0000${b}`),
    fc.constantFrom(
      '',
      '/',
      '//',
      'factory',
      'factory/',
      'factory/m1',
      'factory/m1/',
      `${GOOD}/`,
      `/${GOOD}`,
    ),
    fc.constantFrom(
      'Factory/m1/telemetry',
      'factory/M1/telemetry',
      'factory/m1/Telemetry',
      'factory/m1/telemetry ',
    ),
    // other machines, other kinds, other trees
    fc
      .tuple(
        fc.string({ minLength: 1, maxLength: 8 }),
        fc.constantFrom('telemetry', 'label', 'prediction', 'status', 'cmd'),
      )
      .map(([m, k]) => `factory/${m}/${k}`),
    fc.string({ maxLength: 40 }).map((s) => `driftline/${s}`),
    // many levels
    fc.integer({ min: 50, max: 400 }).map((n) => Array.from({ length: n }, () => 'x').join('/')),
  )
  .filter((t) => t !== GOOD);

/** Invalid UTF-8 inside the topic bytes (a raw PUBLISH; mqtt.js would never send it). */
const invalidUtf8: fc.Arbitrary<Buffer> = fc
  .tuple(
    fc.uint8Array({ maxLength: 10 }),
    fc.constantFrom(
      [0xc3, 0x28],
      [0xa0, 0xa1],
      [0xe2, 0x28, 0xa1],
      [0xf0, 0x28, 0x8c, 0xbc],
      [0xff],
      [0xc0, 0x80],
    ),
  )
  .map(([a, bad]) => Buffer.concat([Buffer.from('factory/m1/'), Buffer.from(a), Buffer.from(bad)]));

/** Filters a device must not get: outside `factory/m1/#`, or not valid filters at all. */
const badFilter: fc.Arbitrary<string> = fc
  .oneof(
    badTopic,
    fc.constantFrom(
      '#',
      '+',
      '+/#',
      'factory/#',
      'factory/+/telemetry',
      'factory/+/#',
      '$SYS/#',
      '$share/g/factory/#',
    ),
    fc.string({ maxLength: 15 }).map((s) => `factory/m1${s}#`),
    fc.string({ maxLength: 15 }).map((s) => `factory/${s}+/telemetry`),
  )
  .filter((f) => f !== 'factory/m1' && !f.startsWith('factory/m1/'));

/** A raw QoS 1 PUBLISH with arbitrary topic bytes. */
function rawPublish(topic: Buffer, payload: Buffer, messageId: number): Buffer {
  const body = Buffer.alloc(2 + topic.length + 2 + payload.length);
  body.writeUInt16BE(topic.length, 0);
  topic.copy(body, 2);
  body.writeUInt16BE(messageId, 2 + topic.length);
  payload.copy(body, 4 + topic.length);
  return Buffer.concat([fixedHeader(3, 0b0010, body.length), body]);
}

let t: TestBroker;
let edge: RawMqtt;
let watcher: RawMqtt;
const goodSeqs = new Set<number>();
const seenByWatcher: string[] = [];
let goodSent = 0;
let goodDevice: RawMqtt;

beforeAll(async () => {
  t = await startTestBroker();
  edge = await t.login(USERS.edge, { clientId: 'fuzz-edge', clean: false });
  expect(await edge.subscribe([{ topic: 'factory/+/telemetry', qos: 1 }])).toEqual([1]);
  watcher = await t.login(USERS.admin, { clientId: 'fuzz-watcher' });
  expect(await watcher.subscribe([{ topic: '#', qos: 0 }])).toEqual([0]);
  goodDevice = await t.login(USERS.device2, { clientId: 'fuzz-good-m2' });
});

afterAll(async () => {
  await t.close();
});

/** Publishes one good telemetry message from device m2 (interleaved with the bad cases). */
async function sendGood(): Promise<void> {
  const seq = goodSent++;
  const ack = await goodDevice.publish({
    topic: 'factory/m2/telemetry',
    payload: JSON.stringify({ machineId: 'm2', seq }),
  });
  expect(ack).toBe('puback');
}

function collectEdge(): void {
  for (const p of edge.drainPublishes()) {
    const v = JSON.parse(p.payload.toString()) as { machineId: string; seq: number };
    if (v.machineId === 'm2') goodSeqs.add(v.seq);
    if (p.messageId !== undefined) edge.send({ cmd: 'puback', messageId: p.messageId });
  }
  for (const p of watcher.drainPublishes()) seenByWatcher.push(p.topic);
}

/** Runs `task` over `items` with `width` at a time. */
async function pool<T>(
  items: readonly T[],
  width: number,
  task: (item: T, i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) {
        const i = next++;
        await task(items[i] as T, i);
      }
    }),
  );
}

describe(`bad MQTT topic names (${FUZZ_RUNS} generated cases per surface, seed ${FUZZ_SEED})`, () => {
  it('refuses every bad PUBLISH topic by closing the connection without a PUBACK, delivering nothing', async () => {
    const cases: Array<string | Buffer> = [
      ...fc.sample(badTopic, { numRuns: FUZZ_RUNS - Math.floor(FUZZ_RUNS / 10), seed: FUZZ_SEED }),
      ...fc.sample(invalidUtf8, { numRuns: Math.floor(FUZZ_RUNS / 10), seed: FUZZ_SEED + 1 }),
    ];
    expect(cases).toHaveLength(FUZZ_RUNS);
    const outcomes: Record<string, number> = {};
    const deniedBefore = await t.metric('driftline_broker_acl_denials_total', { action: 'publish' });
    const tooLargeBefore = await t.metric('driftline_broker_packets_too_large_total');
    await pool(cases, 16, async (topic, i) => {
      const c = await t.open();
      const code = await c.connect({ clientId: `fuzz-pub-${i}`, ...USERS.device });
      expect(code).toBe(0);
      const payload = Buffer.from(JSON.stringify({ machineId: 'm1', seq: i, fuzz: true }));
      let ack: string;
      if (typeof topic === 'string') ack = await c.publish({ topic, payload, timeoutMs: 10_000 });
      else {
        await c.sendBytes(rawPublish(topic, payload, 1));
        const got = await c.next('puback', 10_000);
        ack = typeof got === 'string' ? got : 'puback';
      }
      if (ack === 'puback') throw new Error(`bad topic ${JSON.stringify(String(topic))} was acknowledged`);
      outcomes[ack] = (outcomes[ack] ?? 0) + 1;
      c.destroy();
      if (i % 10 === 0) await sendGood();
      if (i % 50 === 0) collectEdge();
    });
    expect(outcomes).toEqual({ closed: FUZZ_RUNS });
    // Which rule closed them (the rest are aedes' protocol checks: empty, wildcards, too many levels).
    const denied =
      (await t.metric('driftline_broker_acl_denials_total', { action: 'publish' })) - deniedBefore;
    const tooLarge = (await t.metric('driftline_broker_packets_too_large_total')) - tooLargeBefore;
    expect(denied + tooLarge).toBeGreaterThan(FUZZ_RUNS / 2);
    expect(denied + tooLarge).toBeLessThanOrEqual(FUZZ_RUNS);
    console.log(
      `publish fuzz: ${FUZZ_RUNS} bad topics, all closed without PUBACK: ${denied} ACL denials, ${tooLarge} over the packet cap, ${FUZZ_RUNS - denied - tooLarge} protocol violations`,
    );
  }, 600_000);

  it('refuses every bad SUBSCRIBE filter: SUBACK 0x80 (ACL) or a closed connection (invalid filter), never granted', async () => {
    const filters = fc.sample(badFilter, { numRuns: FUZZ_RUNS, seed: FUZZ_SEED + 2 });
    const tally = { suback128: 0, closed: 0 };
    let c: RawMqtt | undefined;
    const leaked: string[] = [];
    let n = 0;
    for (const filter of filters) {
      if (c === undefined || c.isClosed) {
        if (c) leaked.push(...c.drainPublishes().map((p) => p.topic));
        c = await t.open();
        expect(await c.connect({ clientId: `fuzz-sub-${n}`, ...USERS.device })).toBe(0);
      }
      const granted = await c.subscribe([{ topic: filter, qos: 1 }], 10_000);
      if (granted === 'closed') tally.closed++;
      else if (Array.isArray(granted) && granted[0] === 128) tally.suback128++;
      else throw new Error(`bad filter ${JSON.stringify(filter)} answered ${JSON.stringify(granted)}`);
      if (++n % 20 === 0) await sendGood();
    }
    if (c) {
      leaked.push(...c.drainPublishes().map((p) => p.topic));
      c.destroy();
    }
    expect(tally.suback128 + tally.closed).toBe(FUZZ_RUNS);
    // m2's telemetry flowed all along; a granted bad filter would have received it.
    expect(leaked).toEqual([]);
    console.log(
      `subscribe fuzz: ${FUZZ_RUNS} bad filters: ${tally.suback128} SUBACK 0x80, ${tally.closed} closed`,
    );
  }, 600_000);

  it('delivered every interleaved good message (by machineId + seq), nothing else, and still serves logins', async () => {
    await until(
      () => {
        collectEdge();
        return goodSeqs.size === goodSent;
      },
      `${goodSent} good messages at the edge`,
      30_000,
    );
    expect([...goodSeqs].sort((a, b) => a - b)).toEqual(Array.from({ length: goodSent }, (_, i) => i));
    expect(new Set(seenByWatcher)).toEqual(new Set(['factory/m2/telemetry']));
    const fresh = await t.login(USERS.device, { clientId: 'after-fuzz' });
    expect(await fresh.publish({ topic: GOOD, payload: '{"machineId":"m1","seq":0}' })).toBe('puback');
  });
});
