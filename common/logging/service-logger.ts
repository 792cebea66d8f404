import { elasticsearchTransportFromEnv } from './elasticsearch-transport.ts';
import { createLogger, type Logger, type LoggerOptions } from './logger.ts';

/**
 * A service's logger: console (ECS JSON or readable lines) plus, when
 * `ELASTICSEARCH_URL` is set, the Elasticsearch shipper — no code change to switch.
 */
export function createServiceLogger(options: LoggerOptions, env: NodeJS.ProcessEnv = process.env): Logger {
  const es = elasticsearchTransportFromEnv(env, {
    name: options.service,
    ...(options.version ? { version: options.version } : {}),
  });
  return createLogger({ ...options, transports: [...(options.transports ?? []), ...(es ? [es] : [])] });
}
