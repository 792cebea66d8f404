import type Transport from 'winston-transport';

/**
 * Extra log transports of the all-in-one process, chosen by env: today none
 * (console, plus LOG_FILE through the logger); the Elasticsearch shipper plugs in here.
 */
export interface LogTransports {
  forService(service: string): Transport[];
  close(): Promise<void>;
}

export async function loggerTransportsFromEnv(_env: NodeJS.ProcessEnv): Promise<LogTransports> {
  return { forService: () => [], close: async () => undefined };
}
