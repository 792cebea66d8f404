import { DriftlineError } from '../errors.ts';

/** Why a registry operation was refused. */
export type RegistryErrorCode =
  /** The model or version does not exist. */
  | 'REGISTRY_NOT_FOUND'
  /** `rollback` found no earlier champion to go back to. */
  | 'REGISTRY_NO_PREVIOUS'
  /** The operation is not allowed in the version's state (promote a rejected version, reject the champion). */
  | 'REGISTRY_STATE'
  /** A name or version string is malformed. */
  | 'REGISTRY_INVALID'
  /** Another process holds the registry lock for too long. */
  | 'REGISTRY_LOCKED'
  /** The registry's storage refuses writes: permissions, a read-only file system, a file where a directory is expected. */
  | 'REGISTRY_STORAGE_DENIED'
  /** The registry's storage is full (disk, quota, or the process's file-size limit). */
  | 'REGISTRY_STORAGE_FULL';

/**
 * A registry operation was refused. Retriable: `REGISTRY_LOCKED` (the other process finishes) and
 * `REGISTRY_STORAGE_FULL` (space may be freed); the others need a change by someone first.
 */
export class RegistryError extends DriftlineError {
  constructor(code: RegistryErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, {
      code,
      retriable: code === 'REGISTRY_LOCKED' || code === 'REGISTRY_STORAGE_FULL',
      cause: options.cause,
    });
  }
}

const STORAGE_FULL = new Set(['ENOSPC', 'EDQUOT', 'EFBIG']);
const STORAGE_DENIED = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOTDIR']);

/**
 * A file-system error met while writing the registry at `where`, as a typed {@link RegistryError}
 * (`REGISTRY_STORAGE_FULL` or `REGISTRY_STORAGE_DENIED`) whose message says what failed and what to do;
 * any other error is returned as it is.
 */
export function storageError(err: unknown, doing: string, where: string): unknown {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (typeof code !== 'string' || err instanceof RegistryError) return err;
  const detail = err instanceof Error ? err.message : String(err);
  if (STORAGE_FULL.has(code))
    return new RegistryError(
      'REGISTRY_STORAGE_FULL',
      `${doing}: the model registry ${where} is full (${detail}); free space and retry`,
      { cause: err },
    );
  if (STORAGE_DENIED.has(code))
    return new RegistryError(
      'REGISTRY_STORAGE_DENIED',
      `${doing}: the model registry ${where} is not writable (${detail}); fix its permissions or REGISTRY_DIR`,
      { cause: err },
    );
  return err;
}

/** Registered model names: letters, digits, `.`, `_`, `-`; no path separators. */
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** Registry versions: positive integers without leading zeros. */
const VERSION_RE = /^[1-9][0-9]{0,8}$/;

/** Throws `REGISTRY_INVALID` unless `name` is a safe model name (it becomes a directory name). */
export function assertModelName(name: string): void {
  if (!NAME_RE.test(name) || name.includes('..')) {
    throw new RegistryError(
      'REGISTRY_INVALID',
      `invalid model name ${JSON.stringify(name)}: use letters, digits, '.', '_' and '-'`,
    );
  }
}

/** Throws `REGISTRY_INVALID` unless `version` is the string of a positive integer. */
export function assertVersion(version: string): void {
  if (!VERSION_RE.test(version)) {
    throw new RegistryError(
      'REGISTRY_INVALID',
      `invalid version ${JSON.stringify(version)}: expected a positive integer such as "3"`,
    );
  }
}
