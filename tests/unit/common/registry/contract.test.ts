import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DirectoryRegistry } from '../../../../common/registry/directory.ts';
import { modelRegistryContract } from '../../../contracts/model-registry.ts';

// The ModelRegistry contract on the directory registry (MlflowRegistry: tests/external/mlflow-contract.test.ts).
modelRegistryContract(
  'DirectoryRegistry',
  async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'driftline-registry-'));
    return {
      registry: new DirectoryRegistry({ root, watchIntervalMs: 20 }),
      model: 'driftline-efficiency',
      other: () => new DirectoryRegistry({ root, watchIntervalMs: 20 }),
      cleanup: () => rm(root, { recursive: true, force: true }),
    };
  },
  { timeoutMs: 5_000, watchIntervalMs: 20 },
);
