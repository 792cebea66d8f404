import { afterEach, describe, expect, it } from 'vitest';
import { ValidationError, isRetriable } from '../../common/errors.ts';
import type { LabelledSample, LabelledSampleStore } from '../../common/samples/types.ts';

/**
 * The `LabelledSampleStore` contract (`common/samples/types.ts`), one suite run
 * against every implementation: the memory and file stores in `npm test`
 * (tests/unit/common/samples/contract.test.ts), the Kafka store against a
 * real broker (tests/external/kafka-contracts.test.ts).
 *
 * What the interface promises: an invalid sample rejects the whole batch with
 * a non-retriable `ValidationError` and nothing of it is stored; an appended
 * batch is visible to the next read; reads return the samples matching the
 * query (ts and sample-index bounds inclusive, a sample without an index never
 * matches an index bound, machines) oldest first, a machine's samples in the
 * order appended; a reading delivered twice (same machine, seq and ts) comes
 * back once but counts twice in `stats`; `limit` keeps the newest; after
 * `close`, `append` rejects.
 */

/** One store of the suite. */
export interface StoreUnderTest {
  store: LabelledSampleStore;
  /** Removes what the store left behind (files, topics). Optional. */
  cleanup?(): Promise<void>;
}

const T0 = 1_700_000_000_000;

/** A valid sample; `i` drives machine (m-0…m-2), seq, ts (1 s apart) and sample index. */
export function contractSample(i: number, over: Partial<LabelledSample> = {}): LabelledSample {
  return {
    machineId: `m-${i % 3}`,
    seq: i,
    ts: T0 + i * 1000,
    sampleIndex: i,
    row: {
      operationMode: 'Active',
      temperatureC: 50 + (i % 10),
      vibrationHz: 1,
      powerKw: 5,
      networkLatencyMs: 10,
      packetLossPct: 1,
      defectRatePct: 2,
      productionSpeedUph: 100 + (i % 400),
      maintenanceScore: 0.5,
      errorRatePct: 3,
    },
    label: i % 2 === 0 ? 'Low' : 'High',
    prediction: 'Low',
    modelVersion: '1',
    ...over,
  };
}

const range = (from: number, to: number, over: Partial<LabelledSample> = {}): LabelledSample[] =>
  Array.from({ length: to - from }, (_, k) => contractSample(from + k, over));

/** Machine, seq and sample index: what identifies a sample in these tests. */
const ids = (xs: readonly LabelledSample[]): string[] =>
  xs.map((s) => `${s.machineId}/${s.seq}/${s.sampleIndex}`);

/** Registers the contract suite for one implementation; `open` gives an empty store per test. */
export function sampleStoreContract(name: string, open: (test: string) => Promise<StoreUnderTest>): void {
  describe(`LabelledSampleStore contract: ${name}`, () => {
    const opened: StoreUnderTest[] = [];
    const fresh = async (test: string): Promise<LabelledSampleStore> => {
      const s = await open(test);
      opened.push(s);
      return s.store;
    };
    afterEach(async () => {
      for (const s of opened.splice(0)) {
        await s.store.close();
        await s.cleanup?.();
      }
    });

    it('reads back what was appended, every field, a machine in the order appended', async () => {
      const store = await fresh('roundtrip');
      expect(typeof store.kind).toBe('string');
      expect(await store.readWindow()).toEqual([]);
      const batch = range(0, 30);
      await store.append(batch);
      await store.append(range(30, 45));
      const all = await store.readWindow();
      expect(all).toHaveLength(45);
      expect(new Set(ids(all))).toEqual(new Set(ids(range(0, 45))));
      expect(all.find((s) => s.seq === 7)).toEqual(contractSample(7));
      for (const m of ['m-0', 'm-1', 'm-2']) {
        const seqs = all.filter((s) => s.machineId === m).map((s) => s.seq);
        expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
      }
    });

    it('selects by ts and by sample index (inclusive bounds), and by machine', async () => {
      const store = await fresh('window');
      await store.append(range(0, 60));
      const byTs = await store.readWindow({ fromTs: T0 + 10_000, toTs: T0 + 19_000 });
      expect(new Set(ids(byTs))).toEqual(new Set(ids(range(10, 20))));
      const byIndex = await store.readWindow({ fromSample: 40, toSample: 49 });
      expect(new Set(ids(byIndex))).toEqual(new Set(ids(range(40, 50))));
      const open = await store.readWindow({ fromSample: 55 });
      expect(open.map((s) => s.sampleIndex).sort((a, b) => (a ?? 0) - (b ?? 0))).toEqual([
        55, 56, 57, 58, 59,
      ]);
      const machine = await store.readWindow({ fromSample: 0, toSample: 9, machineIds: ['m-1'] });
      expect(machine.map((s) => s.seq)).toEqual([1, 4, 7]);
      expect(await store.readWindow({ fromTs: T0 + 1_000_000 })).toEqual([]);
    });

    it('never matches a sample without an index to an index bound', async () => {
      const store = await fresh('no-index');
      const { sampleIndex: _drop, ...unindexed } = contractSample(100);
      await store.append([contractSample(1), unindexed as LabelledSample, contractSample(2)]);
      expect((await store.readWindow({ fromSample: 0 })).map((s) => s.seq).sort()).toEqual([1, 2]);
      expect(await store.readWindow()).toHaveLength(3);
    });

    it('returns a reading delivered twice once, and counts both in stats', async () => {
      const store = await fresh('duplicates');
      await store.append(range(0, 10));
      await store.append(range(5, 10)); // redelivered: same machine, seq and ts
      const all = await store.readWindow();
      expect(all).toHaveLength(10);
      expect(new Set(ids(all))).toEqual(new Set(ids(range(0, 10))));
      const stats = await store.stats();
      expect(stats).toMatchObject({
        samples: 15,
        oldestTs: T0,
        newestTs: T0 + 9_000,
        minSampleIndex: 0,
        maxSampleIndex: 9,
        skippedLines: 0,
      });
    });

    it('keeps the newest samples under a limit, oldest first', async () => {
      const store = await fresh('limit');
      // One machine: the store order is the append order on every implementation.
      await store.append(range(0, 20, { machineId: 'solo' }));
      await store.append(range(20, 30, { machineId: 'solo' }));
      const newest = await store.readWindow({ limit: 5 });
      expect(newest.map((s) => s.seq)).toEqual([25, 26, 27, 28, 29]);
      const inWindow = await store.readWindow({ toSample: 19, limit: 3 });
      expect(inWindow.map((s) => s.seq)).toEqual([17, 18, 19]);
    });

    it('rejects a batch holding an invalid sample with a non-retriable ValidationError and stores none of it', async () => {
      const store = await fresh('invalid');
      await store.append(range(0, 3));
      const bad = [contractSample(3), { ...contractSample(4), label: 'Huge' } as unknown as LabelledSample];
      const err = await store.append(bad).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ValidationError);
      expect(isRetriable(err)).toBe(false);
      const out = await store.append([{ ...contractSample(5), ts: -1 }]).catch((e: unknown) => e);
      expect(out).toBeInstanceOf(ValidationError);
      expect((await store.readWindow()).map((s) => s.seq).sort()).toEqual([0, 1, 2]);
    });

    it('refuses appends after close', async () => {
      const store = await fresh('closed');
      await store.append(range(0, 2));
      await store.close();
      await expect(store.append(range(2, 3))).rejects.toThrow();
    });
  });
}
