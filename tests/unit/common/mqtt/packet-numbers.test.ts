import mqttPacket from 'mqtt-packet';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it, vi } from 'vitest';

// Off for the rest of this worker whatever a test leaves behind (the switch is process-wide).
afterAll(() => {
  mqttPacket.writeToStream.cacheNumbers = false;
});

describe("mqtt-packet's number cache", () => {
  for (const [who, file] of [
    ['every MQTT client (common/mqtt/connect.ts)', '../../../../common/mqtt/connect.ts'],
    ['the broker (broker/src/broker.ts)', '../../../../broker/src/broker.ts'],
    ['the dashboard (dashboard/src/mqtt-source.ts)', '../../../../dashboard/src/mqtt-source.ts'],
  ] as const) {
    it(`is turned off by loading ${who}`, async () => {
      mqttPacket.writeToStream.cacheNumbers = true;
      vi.resetModules();
      await import(file);
      expect(mqttPacket.writeToStream.cacheNumbers).toBe(false);
    });
  }

  it('packets are written the same without it', async () => {
    // writeToStream corks the stream and uncorks it on the next tick.
    const write = async (): Promise<Buffer> => {
      const out = new PassThrough();
      mqttPacket.writeToStream({ cmd: 'puback', messageId: 513 }, out);
      mqttPacket.writeToStream(
        {
          cmd: 'publish',
          topic: 'factory/m-001/prediction',
          payload: '{}',
          qos: 1,
          messageId: 65535,
          dup: false,
          retain: false,
        },
        out,
      );
      await new Promise((r) => setImmediate(r));
      return out.read() as Buffer;
    };
    mqttPacket.writeToStream.cacheNumbers = false;
    const without = await write();
    mqttPacket.writeToStream.cacheNumbers = true;
    const withCache = await write();
    mqttPacket.writeToStream.cacheNumbers = false;
    expect(without.equals(withCache)).toBe(true);
    expect([...without.subarray(0, 4)]).toEqual([0x40, 2, 2, 1]); // PUBACK, length 2, id 513
  });
});
