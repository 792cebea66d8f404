import type { Logger } from '../logging/logger.ts';
import { MlflowRegistry } from './mlflow.ts';
import { DEFAULT_REGISTRY_DIR, DirectoryRegistry } from './directory.ts';
import type { ModelRegistry } from './types.ts';

/**
 * Picks the registry from configuration, so services switch with an
 * environment variable and no code change: MLflow when a tracking URI is set
 * (`MLFLOW_TRACKING_URI`), the embedded directory registry otherwise.
 */

/** Options of {@link createRegistry}. */
export interface CreateRegistryOptions {
  /**
   * MLflow tracking server URL. Default: `MLFLOW_TRACKING_URI` from `env`; empty means "use the directory
   * registry".
   */
  mlflowTrackingUri?: string;
  /** Root of the directory registry (used when no tracking URI is set). Default `.driftline/registry`. */
  registryDir?: string;
  /** Where the MLflow registry caches downloaded artifacts. Default `.driftline/cache/mlflow`. */
  mlflowCacheDir?: string;
  /** MLflow experiment for runs the registry creates. Default `driftline`. */
  mlflowExperiment?: string;
  /** Logger handed to the registry. */
  logger?: Logger;
  /** Environment for the defaults (`MLFLOW_TRACKING_URI`, credentials). Default `process.env`. */
  env?: NodeJS.ProcessEnv;
}

/** The configured registry: `MlflowRegistry` when a tracking URI is set, else `DirectoryRegistry`. */
export function createRegistry(options: CreateRegistryOptions = {}): ModelRegistry {
  const env = options.env ?? process.env;
  const trackingUri = options.mlflowTrackingUri ?? env.MLFLOW_TRACKING_URI;
  if (trackingUri !== undefined && trackingUri.trim() !== '') {
    return new MlflowRegistry({
      clientOptions: { trackingUri: trackingUri.trim(), env },
      ...(options.mlflowCacheDir !== undefined ? { cacheDir: options.mlflowCacheDir } : {}),
      ...(options.mlflowExperiment !== undefined ? { experiment: options.mlflowExperiment } : {}),
      ...(options.logger ? { logger: options.logger } : {}),
    });
  }
  return new DirectoryRegistry({
    root: options.registryDir ?? DEFAULT_REGISTRY_DIR,
    ...(options.logger ? { logger: options.logger } : {}),
  });
}
