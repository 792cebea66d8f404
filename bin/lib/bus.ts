import { busConfigSpec, busOptionsFromConfig, createBus } from '../../common/bus/factory.ts';
import type { EventBus } from '../../common/bus/types.ts';
import { loadConfig } from '../../common/config/env.ts';
import type { Logger } from '../../common/logging/logger.ts';

/** The event bus of the all-in-one process: Kafka when KAFKA_BROKERS is set, else the in-process bus. */
export async function createBusFromEnv(env: NodeJS.ProcessEnv, logger: Logger): Promise<EventBus> {
  const config = loadConfig(busConfigSpec, env);
  return createBus(busOptionsFromConfig(config, { clientId: 'driftline-start', logger }));
}
