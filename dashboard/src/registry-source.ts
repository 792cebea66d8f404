import { describeError } from '../../common/errors.ts';
import type { Logger } from '../../common/logging/logger.ts';
import type { ModelRegistry } from '../../common/registry/types.ts';
import type { DashboardStore } from './state.ts';

export interface RegistrySourceOptions {
  registry: ModelRegistry;
  modelName: string;
  store: DashboardStore;
  logger: Logger;
  /** Poll interval, ms. Default 5000. */
  intervalMs?: number;
}

export interface RegistrySource {
  /** Reads champion, versions and alias history now (coalesced with a poll in flight). */
  refresh(): Promise<void>;
  close(): void;
}

/**
 * Keeps the store's model view in step with the registry: polls champion,
 * versions and history, and refreshes at once after a model event or a
 * rollback. Failures set the registry connection to `error` and are retried on
 * the next poll; the last good view stays on screen.
 */
export function startRegistrySource(options: RegistrySourceOptions): RegistrySource {
  const { registry, modelName, store, logger } = options;
  let inFlight: Promise<void> | undefined;
  let again = false;
  let closed = false;
  let lastError = '';

  const readOnce = async (): Promise<void> => {
    try {
      const [champion, versions, history] = await Promise.all([
        registry.getChampion(modelName),
        registry.listVersions(modelName),
        registry.history(modelName),
      ]);
      if (closed) return;
      store.setRegistry(champion, versions, history);
      lastError = '';
    } catch (err) {
      const text = describeError(err);
      if (text !== lastError)
        logger.warn('dashboard cannot read the model registry; retrying', {
          err: text,
          registry: registry.kind,
        });
      lastError = text;
      store.setConnection('registry', 'error', text);
    }
  };

  const refresh = (): Promise<void> => {
    if (inFlight !== undefined) {
      // A change may have landed after the running read started: read once more afterwards.
      again = true;
      return inFlight;
    }
    inFlight = (async () => {
      do {
        again = false;
        await readOnce();
      } while (again && !closed);
    })().finally(() => {
      inFlight = undefined;
    });
    return inFlight;
  };

  const timer = setInterval(() => void refresh(), options.intervalMs ?? 5000);
  timer.unref();
  void refresh();
  return {
    refresh,
    close() {
      closed = true;
      clearInterval(timer);
    },
  };
}
