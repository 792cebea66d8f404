import type { Logger } from '../logging/logger.ts';

/**
 * Runs `stop` once on SIGINT or SIGTERM (drain, commit, close), then exits.
 * A second signal, or `stop` taking longer than `timeoutMs`, exits at once.
 */
export function onShutdown(
  logger: Logger,
  stop: (signal: string) => Promise<void>,
  timeoutMs = 15_000,
): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn('second signal: exiting now', { signal });
      process.exit(130);
    }
    stopping = true;
    logger.info('shutting down: draining in-flight work', { signal, action: 'shutdown' });
    const timer = setTimeout(() => {
      logger.error('shutdown timed out; exiting', { timeoutMs });
      process.exit(1);
    }, timeoutMs);
    timer.unref();
    stop(signal).then(
      () => {
        logger.info('stopped cleanly', { action: 'shutdown', outcome: 'success' });
        process.exitCode = 0;
        setTimeout(() => process.exit(0), 100).unref();
      },
      (err: unknown) => {
        logger.error('shutdown failed', { err });
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
}
