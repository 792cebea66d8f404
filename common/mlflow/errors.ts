import { DriftlineError, TimeoutError, TransportError, describeError } from '../errors.ts';
import type { MlflowErrorBody } from './types.ts';

/**
 * Maps MLflow REST failures to Driftline's error hierarchy:
 *
 * - network failures, HTTP 5xx and 429 → {@link MlflowTransportError} (a retriable `TransportError`);
 * - a request past its deadline → `TimeoutError` (retriable);
 * - `RESOURCE_ALREADY_EXISTS` → {@link MlflowAlreadyExistsError};
 * - `RESOURCE_DOES_NOT_EXIST` (and a 404) → {@link MlflowNotFoundError};
 * - `INVALID_PARAMETER_VALUE` → {@link MlflowInvalidParameterError};
 * - any other 4xx (401, 403, `PERMISSION_DENIED`, …) → {@link MlflowApiError}; all non-retriable;
 * - a 2xx answer above the client's size limit → {@link MlflowResponseTooLargeError} (not retriable:
 *   the same request gets the same answer);
 * - a 2xx JSON answer whose shape does not match the endpoint's schema →
 *   {@link MlflowMalformedResponseError} (not retriable); a 2xx answer that is not JSON at all (a
 *   proxy's error page) stays a retriable {@link MlflowTransportError}.
 */

/** What every MLflow error carries besides the message. */
interface MlflowErrorDetails {
  /** MLflow's `error_code` (e.g. `RESOURCE_DOES_NOT_EXIST`), or `HTTP_<status>` when the body had none. */
  errorCode: string;
  /** HTTP status, when the server answered. */
  status?: number;
  /** `METHOD path` of the failed call. */
  endpoint: string;
}

/** A non-retriable refusal by the MLflow server (4xx). `code` is `MLFLOW_<error_code>`. */
export class MlflowApiError extends DriftlineError {
  /** MLflow's `error_code`, e.g. `INVALID_PARAMETER_VALUE`. */
  readonly errorCode: string;
  /** HTTP status of the answer. */
  readonly status: number | undefined;
  /** `METHOD path` of the failed call. */
  readonly endpoint: string;

  constructor(message: string, details: MlflowErrorDetails) {
    super(message, { code: `MLFLOW_${details.errorCode}`, retriable: false });
    this.errorCode = details.errorCode;
    this.status = details.status;
    this.endpoint = details.endpoint;
  }
}

/** `RESOURCE_ALREADY_EXISTS`: an experiment or registered model of that name exists. */
export class MlflowAlreadyExistsError extends MlflowApiError {}

/** `RESOURCE_DOES_NOT_EXIST` (or a bare 404): no such experiment, run, model, version or artifact. */
export class MlflowNotFoundError extends MlflowApiError {}

/** `INVALID_PARAMETER_VALUE`: a malformed request, or a lookup the server reports this way (an unknown alias). */
export class MlflowInvalidParameterError extends MlflowApiError {}

/** The server could not be reached or answered 5xx/429. Retriable. */
export class MlflowTransportError extends TransportError {
  /** HTTP status, absent for network failures. */
  readonly status: number | undefined;
  /** MLflow's `error_code` when the body had one. */
  readonly errorCode: string | undefined;
  /** `METHOD path` of the failed call. */
  readonly endpoint: string;
  /** True when the connection was never established, so the server cannot have acted on the request. */
  readonly notSent: boolean;

  constructor(
    message: string,
    details: { status?: number; errorCode?: string; endpoint: string; notSent?: boolean; cause?: unknown },
  ) {
    super(message, { retriable: true, cause: details.cause });
    this.status = details.status;
    this.errorCode = details.errorCode;
    this.endpoint = details.endpoint;
    this.notSent = details.notSent ?? false;
  }
}

/** An answer above the client's size limit: the transfer was aborted there. Not retriable. */
export class MlflowResponseTooLargeError extends DriftlineError {
  /** `METHOD path` of the call. */
  readonly endpoint: string;
  /** The limit, bytes. */
  readonly limitBytes: number;

  constructor(endpoint: string, limitBytes: number, seenBytes: number) {
    super(
      `MLflow ${endpoint} answered more than ${limitBytes} bytes (read ${seenBytes} before aborting); refusing it`,
      { code: 'MLFLOW_RESPONSE_TOO_LARGE', retriable: false },
    );
    this.endpoint = endpoint;
    this.limitBytes = limitBytes;
  }
}

/** A JSON answer that does not have the shape the endpoint promises. Not retriable. */
export class MlflowMalformedResponseError extends DriftlineError {
  /** `METHOD path` of the call. */
  readonly endpoint: string;
  /** The first problems, `path: message`. */
  readonly issues: readonly string[];

  constructor(endpoint: string, issues: readonly string[]) {
    super(`MLflow ${endpoint} answered an unexpected shape: ${issues.slice(0, 3).join('; ')}`, {
      code: 'MLFLOW_MALFORMED_RESPONSE',
      retriable: false,
    });
    this.endpoint = endpoint;
    this.issues = issues;
  }
}

/** Parses an error body; tolerates HTML and empty answers. */
export function parseErrorBody(text: string): MlflowErrorBody {
  try {
    const parsed = JSON.parse(text) as unknown;
    if (typeof parsed === 'object' && parsed !== null) return parsed as MlflowErrorBody;
  } catch {
    // not JSON (a proxy's HTML page, an empty body)
  }
  return {};
}

/** The typed error for an HTTP answer that was not 2xx. */
export function errorFromResponse(status: number, bodyText: string, endpoint: string): DriftlineError {
  const body = parseErrorBody(bodyText);
  const errorCode = body.error_code ?? `HTTP_${status}`;
  const detail = body.message ?? bodyText.slice(0, 300).trim();
  const message = `MLflow ${endpoint} → ${status} ${errorCode}${detail ? `: ${detail}` : ''}`;
  if (status >= 500 || status === 429)
    return new MlflowTransportError(message, { status, errorCode, endpoint });
  const details = { errorCode, status, endpoint };
  if (errorCode === 'RESOURCE_ALREADY_EXISTS') return new MlflowAlreadyExistsError(message, details);
  if (errorCode === 'RESOURCE_DOES_NOT_EXIST' || status === 404)
    return new MlflowNotFoundError(message, details);
  if (errorCode === 'INVALID_PARAMETER_VALUE') return new MlflowInvalidParameterError(message, details);
  return new MlflowApiError(message, details);
}

/** True for the abort a request deadline (`AbortSignal.timeout`) causes. */
function isTimeout(err: unknown): boolean {
  return (
    err instanceof Error &&
    (err.name === 'TimeoutError' || (err.name === 'AbortError' && String(err.message).includes('timeout')))
  );
}

/** Network-level causes for which the request surely never reached the server: safe to retry even a create. */
const NOT_SENT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** The typed error for a `fetch` that threw (no HTTP answer). */
export function errorFromFetchFailure(
  err: unknown,
  endpoint: string,
  baseUrl: string,
  timeoutMs: number,
): DriftlineError {
  if (err instanceof DriftlineError) return err;
  if (isTimeout(err))
    return new TimeoutError(`MLflow ${endpoint} did not answer within ${timeoutMs} ms (${baseUrl})`);
  const cause = (err as { cause?: { code?: string } } | undefined)?.cause;
  const code = cause?.code;
  const hint = code === 'ECONNREFUSED' ? ' — is the server running? (scripts/services/mlflow.sh start)' : '';
  return new MlflowTransportError(
    `MLflow ${endpoint} failed: cannot reach ${baseUrl} (${code ?? describeError(err)})${hint}`,
    {
      endpoint,
      notSent: code !== undefined && NOT_SENT_CODES.has(code),
      cause: err,
    },
  );
}

/**
 * Whether a failed non-idempotent call (a create) may be sent again without
 * risking a duplicate: only when the server surely did not act on it (429/503
 * answers, connection never established).
 */
export function safeToResend(err: unknown): boolean {
  if (err instanceof MlflowTransportError) {
    if (err.status === 429 || err.status === 503) return true;
    return err.notSent;
  }
  return false;
}
