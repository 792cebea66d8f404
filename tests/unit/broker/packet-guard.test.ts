import { PassThrough } from 'node:stream';
import fc from 'fast-check';
import mqttPacket from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import { guardPacketSize, PacketScanner, type PacketViolation } from '../../../broker/src/packet-guard.ts';
import { fixedHeader } from '../../../scripts/attacks/raw-mqtt.ts';

/** The byte-level packet size cap that runs before aedes' parser. */

const publish = (payloadBytes: number, topic = 't'): Buffer =>
  mqttPacket.generate({
    cmd: 'publish',
    topic,
    payload: Buffer.alloc(payloadBytes, 1),
    qos: 0,
    retain: false,
    dup: false,
  });

/** Splits `bytes` at the given cut points. */
function chunks(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const p of points) {
    out.push(bytes.subarray(from, p));
    from = p;
  }
  out.push(bytes.subarray(from));
  return out.filter((c) => c.length > 0);
}

describe('PacketScanner', () => {
  it('finds every packet boundary however the stream is cut, and flags exactly the oversized packets', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 20_000 }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        fc.integer({ min: 64, max: 20_000 }),
        (sizes, cuts, limit) => {
          const packets = sizes.map((n) => publish(n));
          const stream = Buffer.concat(packets);
          const scanner = new PacketScanner();
          let violation: PacketViolation | undefined;
          for (const c of chunks(stream, cuts)) {
            violation = scanner.feed(c, () => limit);
            if (violation) break;
          }
          const firstTooBig = packets.findIndex((p) => p.length > limit);
          if (firstTooBig === -1) {
            expect(violation).toBeUndefined();
            expect(scanner.packets).toBe(packets.length);
          } else {
            expect(violation).toEqual({
              kind: 'too_large',
              type: 3,
              bytes: (packets[firstTooBig] as Buffer).length,
              limit,
            });
            expect(scanner.packets).toBe(firstTooBig);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('flags a 256 MiB CONNECT from its 5-byte header alone', () => {
    const scanner = new PacketScanner();
    const v = scanner.feed(fixedHeader(1, 0, 268_435_455), () => 8192);
    expect(v).toEqual({ kind: 'too_large', type: 1, bytes: 268_435_460, limit: 8192 });
  });

  it('flags a remaining length longer than 4 bytes', () => {
    expect(new PacketScanner().feed(Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x01]), () => 1e9)).toEqual({
      kind: 'malformed_length',
    });
  });

  it('asks the limit per packet (it can change after the login)', () => {
    const scanner = new PacketScanner();
    let limit = 100;
    const first = publish(50);
    expect(scanner.feed(first, () => limit)).toBeUndefined();
    limit = 10;
    expect(scanner.feed(publish(50), () => limit)).toMatchObject({ kind: 'too_large', limit: 10 });
  });
});

describe('guardPacketSize', () => {
  it('withholds the chunk that announces an oversized packet and destroys the stream', async () => {
    const stream = new PassThrough();
    const seen: PacketViolation[] = [];
    guardPacketSize(
      stream,
      () => 1024,
      (v) => seen.push(v),
    );
    stream.write(publish(10));
    await new Promise((r) => setImmediate(r));
    expect((stream.read() as Buffer).length).toBe(publish(10).length);
    stream.write(Buffer.concat([fixedHeader(3, 0, 10_000_000), Buffer.alloc(60_000)]));
    await new Promise((r) => setImmediate(r));
    expect(stream.read()).toBeNull();
    expect(seen).toEqual([{ kind: 'too_large', type: 3, bytes: 10_000_005, limit: 1024 }]);
    expect(stream.destroyed).toBe(true);
  });
});
