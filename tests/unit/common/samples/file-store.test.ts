import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ValidationError } from '../../../../common/errors.ts';
import { openFileSampleStore, type FileSampleStore } from '../../../../common/samples/file-store.ts';
import type { LabelledSample } from '../../../../common/samples/types.ts';

function sample(i: number, over: Partial<LabelledSample> = {}): LabelledSample {
  return {
    machineId: `m-${i % 3}`,
    seq: i,
    ts: 1_700_000_000_000 + i * 1000,
    sampleIndex: i,
    row: {
      operationMode: 'Active',
      temperatureC: 50,
      vibrationHz: 1,
      powerKw: 5,
      networkLatencyMs: 10,
      packetLossPct: 1,
      defectRatePct: 2,
      productionSpeedUph: 100 + (i % 400),
      maintenanceScore: 0.5,
      errorRatePct: 3,
    },
    label: 'Low',
    ...over,
  };
}
const range = (from: number, to: number): LabelledSample[] =>
  Array.from({ length: to - from }, (_, k) => sample(from + k));

describe('FileSampleStore', () => {
  let dir: string;
  const open: FileSampleStore[] = [];
  const track = (s: FileSampleStore): FileSampleStore => (open.push(s), s);

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'driftline-samples-'));
  });
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('appends and reads windows by ts and by sample index', async () => {
    const store = track(await openFileSampleStore({ dir, segmentRecords: 25 }));
    await store.append(range(0, 100));
    expect(await store.readWindow()).toHaveLength(100);
    const byTs = await store.readWindow({ fromTs: sample(10).ts, toTs: sample(19).ts });
    expect(byTs.map((s) => s.seq)).toEqual(range(10, 20).map((s) => s.seq));
    const byIndex = await store.readWindow({ fromSample: 40, toSample: 79 });
    expect(byIndex.map((s) => s.sampleIndex)).toEqual(range(40, 80).map((s) => s.sampleIndex));
    const machine = await store.readWindow({ fromSample: 0, toSample: 9, machineIds: ['m-1'] });
    expect(machine.map((s) => s.seq)).toEqual([1, 4, 7]);
    const stats = await store.stats();
    expect(stats).toMatchObject({
      samples: 100,
      segments: 5,
      oldestTs: sample(0).ts,
      newestTs: sample(99).ts,
      minSampleIndex: 0,
      maxSampleIndex: 99,
    });
  });

  it('returns the newest samples under a limit, oldest first', async () => {
    const store = track(await openFileSampleStore({ dir, segmentRecords: 7 }));
    await store.append(range(0, 50));
    const last = await store.readWindow({ limit: 12 });
    expect(last.map((s) => s.seq)).toEqual(range(38, 50).map((s) => s.seq));
    const before = await store.readWindow({ toSample: 19, limit: 5 });
    expect(before.map((s) => s.seq)).toEqual([15, 16, 17, 18, 19]);
  });

  it('de-duplicates redelivered samples and skips samples without an index for index queries', async () => {
    const store = track(await openFileSampleStore({ dir }));
    await store.append(range(0, 5));
    await store.append(range(3, 8));
    const { sampleIndex: _drop, ...noIndex } = sample(100);
    await store.append([noIndex]);
    expect(await store.readWindow()).toHaveLength(9);
    expect(await store.readWindow({ fromSample: 0 })).toHaveLength(8);
  });

  it('rejects an invalid sample with a non-retriable validation error and writes nothing of the batch', async () => {
    const store = track(await openFileSampleStore({ dir }));
    const bad = { ...sample(1), label: 'Excellent' } as unknown as LabelledSample;
    await expect(store.append([sample(0), bad])).rejects.toBeInstanceOf(ValidationError);
    const notFinite = sample(2, { row: { ...sample(2).row, powerKw: Number.NaN } });
    await expect(store.append([notFinite])).rejects.toMatchObject({ retriable: false });
    expect(await store.readWindow()).toHaveLength(0);
  });

  it('stays bounded: the oldest segments are deleted beyond maxSamples', async () => {
    const store = track(await openFileSampleStore({ dir, segmentRecords: 10, maxSamples: 35 }));
    for (let i = 0; i < 10; i++) await store.append(range(i * 10, i * 10 + 10));
    const stats = await store.stats();
    expect(stats.samples).toBeLessThanOrEqual(35);
    expect(stats.samples).toBeGreaterThanOrEqual(25);
    const all = await store.readWindow();
    expect(all[all.length - 1]?.seq).toBe(99);
    expect(all[0]?.seq).toBe(100 - stats.samples);
    const files = (await fs.readdir(dir)).filter((f) => f.endsWith('.jsonl'));
    expect(files.length).toBe(stats.segments);
  });

  it('stays bounded by bytes too', async () => {
    const lineBytes = Buffer.byteLength(`${JSON.stringify(sample(0))}\n`);
    const store = track(await openFileSampleStore({ dir, segmentRecords: 10, maxBytes: lineBytes * 30 }));
    await store.append(range(0, 100));
    const stats = await store.stats();
    expect(stats.bytes).toBeLessThanOrEqual(lineBytes * 30 + 50);
    expect((await store.readWindow()).at(-1)?.seq).toBe(99);
  });

  it('ignores a torn last line while reading, and the writer repairs it on reopen', async () => {
    let store = await openFileSampleStore({ dir, segmentRecords: 1000 });
    await store.append(range(0, 10));
    await store.close();
    const seg = path.join(dir, (await fs.readdir(dir)).find((f) => f.endsWith('.jsonl')) as string);
    const torn = JSON.stringify(sample(10)).slice(0, 40);
    await fs.appendFile(seg, torn);

    const reader = track(await openFileSampleStore({ dir, readOnly: true }));
    expect(await reader.readWindow()).toHaveLength(10);
    expect((await reader.stats()).samples).toBe(10);

    store = track(await openFileSampleStore({ dir, segmentRecords: 1000 }));
    await store.append(range(11, 13));
    const all = await store.readWindow();
    expect(all.map((s) => s.seq)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12]);
    expect((await store.stats()).skippedLines).toBeGreaterThanOrEqual(1);
  });

  it('a reopened store sees the previous data and keeps appending to it', async () => {
    const first = await openFileSampleStore({ dir, segmentRecords: 8 });
    await first.append(range(0, 20));
    await first.close();
    const second = track(await openFileSampleStore({ dir, segmentRecords: 8 }));
    expect(await second.readWindow()).toHaveLength(20);
    await second.append(range(20, 30));
    expect((await second.readWindow({ fromSample: 15, toSample: 24 })).map((s) => s.seq)).toEqual(
      range(15, 25).map((s) => s.seq),
    );
    expect((await second.stats()).samples).toBe(30);
  });

  it('lets another reader see data while it is being written', async () => {
    const writer = track(await openFileSampleStore({ dir, segmentRecords: 6, fsyncIntervalMs: 0 }));
    const reader = track(await openFileSampleStore({ dir, readOnly: true }));
    await writer.append(range(0, 15));
    expect((await reader.readWindow({ fromSample: 5, toSample: 12 })).map((s) => s.seq)).toEqual(
      range(5, 13).map((s) => s.seq),
    );
    await writer.append(range(15, 20));
    expect((await reader.stats()).samples).toBe(20);
    await expect(reader.append(range(0, 1))).rejects.toThrow(/read-only/);
  });

  it('refuses a second writer on the same directory', async () => {
    track(await openFileSampleStore({ dir }));
    await expect(openFileSampleStore({ dir })).rejects.toThrow(/already open/);
  });

  it('takes over a stale lock left by a dead process', async () => {
    await fs.writeFile(path.join(dir, 'writer.lock'), JSON.stringify({ pid: 2 ** 22 + 12345 }));
    const store = track(await openFileSampleStore({ dir }));
    await store.append(range(0, 1));
    expect(await store.readWindow()).toHaveLength(1);
  });
});
