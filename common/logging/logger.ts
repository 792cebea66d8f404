import winston from 'winston';
import type Transport from 'winston-transport';
import { ConfigError } from '../errors.ts';

/** Options for {@link createLogger}. */
export interface LoggerOptions {
  /** ECS `service.name`, e.g. `edge-inference`. */
  service: string;
  /** ECS `service.version`. */
  version?: string;
  /** Minimum level: error, warn, info, debug. Default `LOG_LEVEL` or info. */
  level?: string;
  /** `json` (ECS), `pretty` (one readable line), or `auto`: pretty on a TTY, JSON otherwise. */
  format?: 'json' | 'pretty' | 'auto';
  /** Also append ECS JSON lines to this file. */
  file?: string;
  /** Extra transports (e.g. the Elasticsearch shipper). */
  transports?: Transport[];
  /** Stream for console output; default stdout. */
  stream?: NodeJS.WritableStream;
}

export type Logger = winston.Logger;

const ECS_VERSION = '8.11.0';

/** The levels a logger takes (winston's npm levels; the documented ones are error, warn, info, debug). */
const LEVELS: readonly string[] = Object.keys(winston.config.npm.levels);

function isFormat(mode: string): mode is NonNullable<LoggerOptions['format']> {
  return mode === 'json' || mode === 'pretty' || mode === 'auto';
}

/** Fields callers pass that map to ECS names. */
const FIELD_MAP: Record<string, string> = {
  correlationId: 'trace.id',
  machineId: 'labels.machine_id',
  modelVersion: 'labels.model_version',
  action: 'event.action',
  outcome: 'event.outcome',
  reason: 'event.reason',
  durationMs: 'event.duration_ms',
};

function setPath(target: Record<string, unknown>, dotted: string, value: unknown): void {
  const parts = dotted.split('.');
  let node = target;
  for (let i = 0; i < parts.length - 1; i++) {
    const key = parts[i] as string;
    const existing = node[key];
    if (typeof existing !== 'object' || existing === null || Array.isArray(existing)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[parts[parts.length - 1] as string] = value;
}

/** Turns a winston info object into an ECS document. Exported for the Elasticsearch transport and tests. */
export function toEcs(
  info: Record<string, unknown>,
  service: { name: string; version?: string },
): Record<string, unknown> {
  const { level, message, timestamp, stack, err, ...rest } = info as Record<string, unknown> & {
    level: string;
  };
  const doc: Record<string, unknown> = {
    '@timestamp': typeof timestamp === 'string' ? timestamp : new Date().toISOString(),
    'log.level': level,
    message,
    ecs: { version: ECS_VERSION },
    service: { name: service.name, ...(service.version ? { version: service.version } : {}) },
  };
  for (const [key, value] of Object.entries(rest)) {
    if (typeof key === 'symbol' || value === undefined) continue;
    if (key === 'service' && typeof value === 'string') continue;
    const mapped = FIELD_MAP[key];
    if (mapped) setPath(doc, mapped, value);
    else if (key.includes('.')) setPath(doc, key, value);
    else setPath(doc, `driftline.${key}`, value);
  }
  const error = err instanceof Error ? err : undefined;
  if (error || typeof stack === 'string') {
    doc.error = { message: error?.message ?? message, type: error?.name, stack_trace: error?.stack ?? stack };
  }
  return doc;
}

/**
 * A winston logger: ECS JSON lines when stdout is not a TTY (or `format: 'json'`),
 * readable lines on a TTY. Use `logger.child({ correlationId })` to carry a
 * correlation id (ECS `trace.id`) through a flow.
 */
export function createLogger(options: LoggerOptions): Logger {
  const service = { name: options.service, version: options.version };
  const level = options.level ?? process.env.LOG_LEVEL ?? 'info';
  const mode = options.format ?? process.env.LOG_FORMAT ?? 'auto';
  // A level winston does not know logged nothing at all, and an unknown format was JSON: both silently.
  const problems = [
    ...(LEVELS.includes(level)
      ? []
      : [`LOG_LEVEL=${JSON.stringify(level)} is invalid: expected error, warn, info or debug`]),
    ...(isFormat(mode)
      ? []
      : [`LOG_FORMAT=${JSON.stringify(mode)} is invalid: expected json, pretty or auto`]),
  ];
  if (problems.length > 0 || !isFormat(mode))
    throw new ConfigError(`Invalid configuration: ${problems.join('; ')}`);
  const stream = options.stream ?? process.stdout;
  const pretty = mode === 'pretty' || (mode === 'auto' && (stream as NodeJS.WriteStream).isTTY === true);

  const ecsFormat = winston.format((info) => {
    const doc = toEcs(info as unknown as Record<string, unknown>, service);
    (info as unknown as Record<symbol, unknown>)[Symbol.for('message')] = JSON.stringify(doc);
    return info;
  });
  const prettyFormat = winston.format.printf((info) => {
    const {
      level,
      message,
      timestamp,
      service: _s,
      ...rest
    } = info as Record<string, unknown> & { level: string };
    const extras = Object.entries(rest)
      .filter(([k]) => typeof k === 'string')
      .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
      .join(' ');
    const time = typeof timestamp === 'string' ? timestamp.slice(11, 23) : '';
    return `${time} ${level.padEnd(5)} [${options.service}] ${String(message)}${extras ? `  ${extras}` : ''}`;
  });

  const transports: Transport[] = [
    new winston.transports.Stream({
      stream,
      format: pretty
        ? winston.format.combine(winston.format.timestamp(), prettyFormat)
        : winston.format.combine(winston.format.timestamp(), ecsFormat()),
    }),
  ];
  if (options.file) {
    transports.push(
      new winston.transports.File({
        filename: options.file,
        format: winston.format.combine(winston.format.timestamp(), ecsFormat()),
      }),
    );
  }
  if (options.transports) transports.push(...options.transports);

  return winston.createLogger({
    level,
    defaultMeta: { service: options.service },
    transports,
    exitOnError: false,
  });
}

/** A logger that writes nothing; for tests and library defaults. */
export function silentLogger(): Logger {
  return winston.createLogger({
    silent: true,
    transports: [new winston.transports.Console({ silent: true })],
  });
}
