import type Transport from 'winston-transport';
import {
  elasticsearchTransportFromEnv,
  type ElasticsearchTransport,
} from '../../common/logging/elasticsearch-transport.ts';
import { VERSION } from '../../common/version.ts';

/**
 * Extra log transports of the all-in-one process, chosen by env: the
 * Elasticsearch shipper (one per service, so `service.name` is right) when
 * `ELASTICSEARCH_URL` is set; nothing otherwise.
 */
export interface LogTransports {
  forService(service: string): Transport[];
  /** Flushes and closes every shipper (with its own deadline). */
  close(): Promise<void>;
}

export async function loggerTransportsFromEnv(env: NodeJS.ProcessEnv): Promise<LogTransports> {
  const cache = new Map<string, ElasticsearchTransport>();
  return {
    forService(service) {
      let t = cache.get(service);
      if (!t) {
        t = elasticsearchTransportFromEnv(env, { name: service, version: VERSION });
        if (!t) return [];
        cache.set(service, t);
      }
      return [t];
    },
    close: async () => {
      await Promise.all([...cache.values()].map((t) => t.close()));
    },
  };
}
