import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';

/**
 * Crash-safe file primitives (directory registry, sample store, retrainer
 * ledger, model artifacts): a reader sees either the old or the new content of
 * a file, never a mix, even when the writer dies half-way — write a temp file
 * in the same directory, fsync it, rename it over the target, fsync the
 * directory.
 */

/** A unique temp name next to `file` (same directory, so the rename stays atomic). */
export function tempSibling(file: string): string {
  return path.join(
    path.dirname(file),
    `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`,
  );
}

/** Error codes of platforms and file systems that cannot open or fsync a directory. */
const FSYNC_DIR_UNSUPPORTED = new Set(['EISDIR', 'EPERM', 'EINVAL', 'EBADF']);

/**
 * fsyncs a directory so renames and new entries in it survive a power loss.
 * Where the platform cannot (Windows, some file systems) nothing happens: the
 * rename is still atomic. Any other error is ignored too, unless `strict`.
 */
export async function fsyncDir(dir: string, options: { strict?: boolean } = {}): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch (err) {
    if (options.strict && !FSYNC_DIR_UNSUPPORTED.has((err as NodeJS.ErrnoException).code ?? '')) throw err;
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/** Writes `data` to `file` and fsyncs it (`flag` as for `fs.open`: `w`, `wx`, `a`). */
export async function writeAndSync(file: string, data: string | Uint8Array, flag = 'w'): Promise<void> {
  const handle = await open(file, flag);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Copies `from` to `to` and fsyncs the copy. */
export async function copyAndSync(from: string, to: string): Promise<void> {
  await copyFile(from, to);
  const handle = await open(to, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Options of {@link writeFileAtomic}. */
export interface AtomicWriteOptions {
  /** Create the file's directory (and its parents) first. Default false. */
  mkdir?: boolean;
  /**
   * Runs after the temp file is durable and before the rename (a test hook to
   * simulate a crash at the worst moment); if it throws, the temp file is
   * removed and `file` is untouched.
   */
  beforeRename?: (tmpFile: string) => void | Promise<void>;
}

/**
 * Replaces `file` atomically: temp file + fsync + rename + fsync of the
 * directory. A crash leaves either the old or the new content, never a mix; on
 * an error the temp file is removed.
 */
export async function writeFileAtomic(
  file: string,
  data: string | Uint8Array,
  options: AtomicWriteOptions = {},
): Promise<void> {
  const dir = path.dirname(file);
  if (options.mkdir) await mkdir(dir, { recursive: true });
  const tmp = tempSibling(file);
  try {
    await writeAndSync(tmp, data, 'wx');
    await options.beforeRename?.(tmp);
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await fsyncDir(dir);
}

/** Appends one line and fsyncs (O_APPEND: concurrent appenders never interleave within a small line). */
export async function appendLineSync(file: string, line: string): Promise<void> {
  await writeAndSync(file, line.endsWith('\n') ? line : `${line}\n`, 'a');
}

/** Parses a JSON file; undefined when it does not exist. */
export async function readJsonIfExists<T>(file: string): Promise<T | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
  return JSON.parse(text) as T;
}

/** True for a Node.js file-system error with this code. */
export function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as NodeJS.ErrnoException).code === code;
}
