import type { Logger } from '../../common/logging/logger.ts';

/**
 * Ships what the logger still buffers before a Job's process exits: the Elasticsearch transport sends in
 * batches (every ELASTICSEARCH_FLUSH_MS), and a Job ends right after its last line. Never rejects.
 */
export async function flushLogs(logger: Logger): Promise<void> {
  await Promise.all(
    logger.transports.map(async (t) => {
      const close = (t as { close?: () => unknown }).close;
      if (typeof close === 'function') await Promise.resolve(close.call(t)).catch(() => undefined);
    }),
  );
}
