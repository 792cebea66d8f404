import { randomBytes } from 'node:crypto';
import { copyFile, open, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';

/**
 * Crash-safe file primitives for the directory registry: a reader sees either
 * the old or the new content of a file, never a mix, even when the writer dies
 * half-way (write to a temp file in the same directory, fsync, rename, fsync the
 * directory).
 */

/** A unique temp name next to `file` (same directory, so rename stays atomic). */
export function tempSibling(file: string): string {
  return path.join(
    path.dirname(file),
    `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`,
  );
}

/** fsyncs a directory so a rename inside it survives a power loss. Best effort where unsupported. */
export async function fsyncDir(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch {
    // Some filesystems refuse fsync on directories; the rename is still atomic.
  } finally {
    await handle?.close();
  }
}

/** Writes `data` to `file` and fsyncs it. */
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

/**
 * Replaces `file` atomically: temp file + fsync + rename + fsync of the directory.
 * `beforeRename` runs after the temp file is durable and before the rename (a
 * test hook to simulate a crash at the worst moment); if it throws, the temp
 * file is removed and `file` is untouched.
 */
export async function writeFileAtomic(
  file: string,
  data: string | Uint8Array,
  beforeRename?: (tmpFile: string) => void | Promise<void>,
): Promise<void> {
  const tmp = tempSibling(file);
  try {
    await writeAndSync(tmp, data, 'wx');
    await beforeRename?.(tmp);
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await fsyncDir(path.dirname(file));
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
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return JSON.parse(text) as T;
}
