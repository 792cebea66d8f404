import { describeError } from '../../common/errors.ts';
import { BUS_TOPICS, type EventBus, type Subscription } from '../../common/bus/types.ts';
import { parseModelEvent, parseRetrainRequest, type ModelEvent } from '../../common/events/schemas.ts';
import type { Logger } from '../../common/logging/logger.ts';
import type { DashboardStore } from './state.ts';

/** Consumer group of the dashboard on every bus topic it reads. */
export const DASHBOARD_BUS_GROUP = 'dashboard';

export interface BusSourceOptions {
  bus: EventBus;
  store: DashboardStore;
  logger: Logger;
  /** Called after a valid model event was stored (the registry view is refreshed then). */
  onModelEvent?: (event: ModelEvent) => void;
}

export interface BusSource {
  close(): Promise<void>;
}

/**
 * Reads retrain requests and model events (group `dashboard`, from the
 * earliest retained message, so a restarted dashboard shows the recent
 * history) and folds the valid ones into the store. Handlers never throw: a bad
 * event is counted as invalid, not dead-lettered by the bus on our behalf.
 */
export async function startBusSource(options: BusSourceOptions): Promise<BusSource> {
  const { bus, store, logger } = options;
  const subs: Subscription[] = [];
  try {
    subs.push(
      await bus.subscribe(
        BUS_TOPICS.retrainRequests,
        { group: DASHBOARD_BUS_GROUP, fromBeginning: true },
        async (m) => {
          const r = parseRetrainRequest(m.value);
          if (r.ok) store.onRetrainRequest(r.value);
          else store.onInvalid('bus', 'invalid_retrain_request');
        },
      ),
    );
    subs.push(
      await bus.subscribe(
        BUS_TOPICS.modelEvents,
        { group: DASHBOARD_BUS_GROUP, fromBeginning: true },
        async (m) => {
          const r = parseModelEvent(m.value);
          if (!r.ok) return store.onInvalid('bus', 'invalid_model_event');
          store.onModelEvent(r.value);
          try {
            options.onModelEvent?.(r.value);
          } catch (err) {
            logger.warn('model event hook failed', { err: describeError(err) });
          }
        },
      ),
    );
    store.setConnection('bus', 'connected', '');
  } catch (err) {
    store.setConnection('bus', 'error', describeError(err));
    await Promise.all(subs.map((s) => s.close()));
    throw err;
  }
  return {
    async close() {
      await Promise.all(subs.map((s) => s.close()));
      store.setConnection('bus', 'closed', '');
    },
  };
}
