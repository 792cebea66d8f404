import { hostname } from 'node:os';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { sleep } from '../util/sleep.ts';
import { RegistryError } from './errors.ts';

/**
 * A cross-process mutex on a directory: `mkdir` is atomic, so exactly one
 * process creates the lock directory; it records its pid and host inside.
 * A lock whose owner process is dead (same host) or that is older than
 * `staleMs` is broken. Held only for the few milliseconds of an alias move.
 */

/** Options of {@link withDirLock}. */
export interface DirLockOptions {
  /** Give up (with a retriable `REGISTRY_LOCKED`) after waiting this long, ms. Default 10 000. */
  timeoutMs?: number;
  /** A lock older than this is considered abandoned, ms. Default 60 000. */
  staleMs?: number;
}

interface LockOwner {
  pid: number;
  host: string;
  at: string;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function isStale(lockDir: string, staleMs: number): Promise<boolean> {
  try {
    const info = await stat(lockDir);
    if (Date.now() - info.mtimeMs > staleMs) return true;
    const owner = JSON.parse(await readFile(path.join(lockDir, 'owner.json'), 'utf8')) as LockOwner;
    return owner.host === hostname() && owner.pid !== process.pid && !processAlive(owner.pid);
  } catch {
    // Lock vanished meanwhile (just retry), or owner.json not written yet (a young lock).
    return false;
  }
}

/** Runs `fn` while holding the lock directory `lockDir`; always releases it. */
export async function withDirLock<T>(
  lockDir: string,
  fn: () => Promise<T>,
  options: DirLockOptions = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const staleMs = options.staleMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  let delay = 5;
  for (;;) {
    try {
      await mkdir(lockDir);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    if (await isStale(lockDir, staleMs)) {
      await rm(lockDir, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline)
      throw new RegistryError(
        'REGISTRY_LOCKED',
        `${lockDir} is held by another process for more than ${timeoutMs} ms`,
      );
    await sleep(delay);
    delay = Math.min(delay * 2, 100);
  }
  try {
    const owner: LockOwner = { pid: process.pid, host: hostname(), at: new Date().toISOString() };
    await writeFile(path.join(lockDir, 'owner.json'), JSON.stringify(owner));
    return await fn();
  } finally {
    await rm(lockDir, { recursive: true, force: true });
  }
}
