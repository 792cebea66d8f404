/**
 * The ModelRegistry contract (tests/contracts/model-registry.ts) on
 * `MlflowRegistry` against the real MLflow server of `scripts/services/mlflow.sh`
 * (MLFLOW_TRACKING_URI, default http://127.0.0.1:5055). The same suite runs on
 * `DirectoryRegistry` in `npm test`. Every test registers its own model name, so
 * the suite can run again against the same server.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { MlflowRegistry } from '../../common/registry/mlflow.ts';
import { modelRegistryContract } from '../contracts/model-registry.ts';

const TRACKING_URI =
  process.env.MLFLOW_TRACKING_URI || `http://127.0.0.1:${process.env.MLFLOW_PORT || '5055'}`;
const RUN = `driftline-contract-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
let reachable: Promise<void> | undefined;

/** Every test opens through this: an absent server fails each test by name (never a skip). */
function mlflowUp(): Promise<void> {
  reachable ??= (async () => {
    try {
      const health = await fetch(`${TRACKING_URI}/health`, { signal: AbortSignal.timeout(5000) });
      if (!health.ok) throw new Error(`/health answered ${health.status}`);
    } catch (err) {
      throw new Error(
        `MLflow is not reachable at ${TRACKING_URI} (${String(err)}). Start it with: scripts/services/mlflow.sh start`,
      );
    }
  })();
  return reachable;
}

modelRegistryContract(
  'MlflowRegistry',
  async (test) => {
    await mlflowUp();
    const tmp = await mkdtemp(path.join(os.tmpdir(), 'driftline-mlflow-contract-'));
    const open = (cache: string): MlflowRegistry =>
      new MlflowRegistry({
        clientOptions: { trackingUri: TRACKING_URI },
        cacheDir: path.join(tmp, cache),
        watchIntervalMs: 100,
      });
    return {
      registry: open('cache'),
      model: `${RUN}-${test}`,
      other: () => open('other-cache'),
      cleanup: () => rm(tmp, { recursive: true, force: true }),
    };
  },
  { timeoutMs: 20_000, watchIntervalMs: 100 },
);
