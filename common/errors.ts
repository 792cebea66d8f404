/**
 * Error hierarchy shared by every Driftline service.
 *
 * Every error says whether retrying the same operation can succeed
 * (`retriable`); `common/util/retry.ts` is the one place that acts on it.
 */
export class DriftlineError extends Error {
  /** A stable machine-readable code, e.g. `CONFIG_INVALID`. */
  readonly code: string;
  /** True when the same call may succeed if tried again later. */
  readonly retriable: boolean;

  constructor(message: string, options: { code: string; retriable: boolean; cause?: unknown }) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = options.code;
    this.retriable = options.retriable;
  }
}

/** A configuration value is missing or malformed. Never retriable. */
export class ConfigError extends DriftlineError {
  constructor(message: string) {
    super(message, { code: 'CONFIG_INVALID', retriable: false });
  }
}

/** Input crossing a process boundary failed validation. Never retriable. */
export class ValidationError extends DriftlineError {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message, { code: 'VALIDATION_FAILED', retriable: false });
    this.reason = reason;
  }
}

/** A remote system (broker, bus, registry, log store) did not answer or refused for now. */
export class TransportError extends DriftlineError {
  constructor(message: string, options: { retriable?: boolean; cause?: unknown } = {}) {
    super(message, { code: 'TRANSPORT', retriable: options.retriable ?? true, cause: options.cause });
  }
}

/** A model artifact failed its checksum or is incompatible with this worker. */
export class ArtifactError extends DriftlineError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { code: 'ARTIFACT_INVALID', retriable: false, cause: options.cause });
  }
}

/** An operation ran past its time limit. Retriable: the next attempt may be faster. */
export class TimeoutError extends DriftlineError {
  constructor(message: string) {
    super(message, { code: 'TIMEOUT', retriable: true });
  }
}

/** True when `err` says it may succeed on a later attempt. Unknown errors are not retried. */
export function isRetriable(err: unknown): boolean {
  return err instanceof DriftlineError ? err.retriable : false;
}

/** A readable one-line description of any thrown value. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}
