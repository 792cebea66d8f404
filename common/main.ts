import { ConfigError, describeError } from './errors.ts';

/**
 * Runs a service's `main`. A {@link ConfigError} prints its one readable line
 * and exits 2; any other start-up failure prints its message and exits 1.
 */
export function runMain(main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`fatal: ${describeError(err)}\n`);
    if (err instanceof Error && err.stack && process.env.LOG_LEVEL === 'debug')
      process.stderr.write(`${err.stack}\n`);
    process.exit(1);
  });
}
