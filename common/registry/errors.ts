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
  | 'REGISTRY_LOCKED';

/** A registry operation was refused. Never retriable except `REGISTRY_LOCKED`. */
export class RegistryError extends DriftlineError {
  constructor(code: RegistryErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, { code, retriable: code === 'REGISTRY_LOCKED', cause: options.cause });
  }
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
