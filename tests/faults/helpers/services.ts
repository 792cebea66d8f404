import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';

/**
 * Runs `scripts/services/<name>.sh <command>` (the same scripts `make test` uses) and returns its exit code
 * and output. The fault tests stop, restart and reconfigure the real servers only through them.
 */
export async function service(
  name: 'mosquitto' | 'kafka' | 'mlflow' | 'elasticsearch',
  command: 'start' | 'stop' | 'restart' | 'status',
  env: Record<string, string> = {},
): Promise<{ code: number; output: string }> {
  const script = path.resolve('scripts/services', `${name}.sh`);
  try {
    const { stdout, stderr } = await promisify(execFile)(script, [command], {
      env: { ...process.env, ...env },
      timeout: 180_000,
    });
    return { code: 0, output: `${stdout}${stderr}` };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    if (command === 'status') return { code: e.code ?? 1, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
    throw new Error(`scripts/services/${name}.sh ${command} failed: ${e.stdout ?? ''}${e.stderr ?? ''}`, {
      cause: err,
    });
  }
}

/** Polls `cond` every 20 ms until it holds; throws naming `what` after `timeoutMs`. */
export async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Resolves once `value()` has not changed for `quietMs` (what is still in flight has arrived). */
export async function settled(value: () => number, quietMs: number, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last = value();
  let since = Date.now();
  while (Date.now() - since < quietMs) {
    if (Date.now() > until) return;
    await new Promise((r) => setTimeout(r, 50));
    const now = value();
    if (now !== last) {
      last = now;
      since = Date.now();
    }
  }
}
