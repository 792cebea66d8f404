import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { openFileSampleStore } from '../../../../common/samples/file-store.ts';
import { MemorySampleStore } from '../../../../common/samples/memory-store.ts';
import { sampleStoreContract } from '../../../contracts/sample-store.ts';

// The LabelledSampleStore contract on the in-process stores (Kafka: tests/external/kafka-contracts.test.ts).
sampleStoreContract('MemorySampleStore', async () => ({ store: new MemorySampleStore() }));

sampleStoreContract('FileSampleStore', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'driftline-samples-'));
  // Small segments, so reads cross sealed segments and the open one.
  const store = await openFileSampleStore({ dir, segmentRecords: 8 });
  return { store, cleanup: () => rm(dir, { recursive: true, force: true }) };
});
