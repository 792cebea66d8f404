import { ConfigError } from '../errors.ts';

/**
 * Typed environment configuration.
 *
 * Each service declares its settings as a record of {@link Field}s; {@link loadConfig}
 * reads them from the environment, applies defaults and validates every value,
 * collecting all problems into one {@link ConfigError} whose message names each
 * variable and what it allows. Validators return an error string instead of throwing.
 */
export interface Field<T> {
  /** Environment variable name, e.g. `MQTT_URL`. */
  readonly env: string;
  /** One line for `.env.example` and the start-up summary. */
  readonly description: string;
  /** Kept out of logs and summaries. */
  readonly secret: boolean;
  /** The default as written in `.env.example`, or undefined when required/optional. */
  readonly defaultText: string | undefined;
  /** Parses the raw value (undefined when unset); returns the value or an error string. */
  parse(raw: string | undefined): { ok: true; value: T } | { ok: false; error: string };
}

type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

interface FieldOptions<T> {
  description: string;
  default?: T;
  secret?: boolean;
}

function field<T>(
  env: string,
  opts: FieldOptions<T>,
  allowed: string,
  convert: (raw: string) => T | undefined,
  show: (value: T) => string = String,
): Field<T> {
  return {
    env,
    description: opts.description,
    secret: opts.secret ?? false,
    defaultText: opts.default === undefined ? undefined : show(opts.default),
    parse(raw): Parsed<T> {
      if (raw === undefined || raw === '') {
        if (opts.default !== undefined) return { ok: true, value: opts.default };
        return { ok: false, error: `${env} is required (${allowed})` };
      }
      const value = convert(raw.trim());
      if (value === undefined)
        return {
          ok: false,
          error: `${env}=${JSON.stringify(opts.secret ? '***' : raw)} is invalid: expected ${allowed}`,
        };
      return { ok: true, value };
    },
  };
}

/** An integer in [min, max]. */
export function int(env: string, opts: FieldOptions<number> & { min?: number; max?: number }): Field<number> {
  const min = opts.min ?? Number.MIN_SAFE_INTEGER;
  const max = opts.max ?? Number.MAX_SAFE_INTEGER;
  return field(env, opts, `an integer from ${min} to ${max}`, (raw) => {
    if (!/^-?\d+$/.test(raw)) return undefined;
    const n = Number(raw);
    return n >= min && n <= max ? n : undefined;
  });
}

/** A finite number in [min, max]. */
export function num(env: string, opts: FieldOptions<number> & { min?: number; max?: number }): Field<number> {
  const min = opts.min ?? -Number.MAX_VALUE;
  const max = opts.max ?? Number.MAX_VALUE;
  return field(env, opts, `a number from ${min} to ${max}`, (raw) => {
    const n = Number(raw);
    return raw !== '' && Number.isFinite(n) && n >= min && n <= max ? n : undefined;
  });
}

/** `true`/`false` (also 1/0, yes/no, on/off). */
export function bool(env: string, opts: FieldOptions<boolean>): Field<boolean> {
  return field(env, opts, 'true or false', (raw) => {
    const v = raw.toLowerCase();
    if (['true', '1', 'yes', 'on'].includes(v)) return true;
    if (['false', '0', 'no', 'off'].includes(v)) return false;
    return undefined;
  });
}

/** Free text, optionally matched against a pattern. */
export function str(
  env: string,
  opts: FieldOptions<string> & { pattern?: RegExp; allowed?: string },
): Field<string> {
  return field(env, opts, opts.allowed ?? (opts.pattern ? `text matching ${opts.pattern}` : 'text'), (raw) =>
    opts.pattern && !opts.pattern.test(raw) ? undefined : raw,
  );
}

/** Optional free text: unset gives undefined. */
export function optionalStr(
  env: string,
  opts: { description: string; secret?: boolean },
): Field<string | undefined> {
  return {
    env,
    description: opts.description,
    secret: opts.secret ?? false,
    defaultText: undefined,
    parse: (raw) => ({ ok: true, value: raw === undefined || raw.trim() === '' ? undefined : raw.trim() }),
  };
}

/** Optional URL with one of the given protocols: unset gives undefined (the embedded default is used). */
export function optionalUrl(
  env: string,
  opts: { description: string; protocols: readonly string[] },
): Field<string | undefined> {
  const allowed = `a URL starting with ${opts.protocols.map((p) => `${p}//`).join(' or ')}`;
  return {
    env,
    description: opts.description,
    secret: false,
    defaultText: undefined,
    parse(raw) {
      if (raw === undefined || raw.trim() === '') return { ok: true, value: undefined };
      try {
        const u = new URL(raw.trim());
        if (opts.protocols.includes(u.protocol)) return { ok: true, value: raw.trim() };
      } catch {
        // fall through to the error below
      }
      return { ok: false, error: `${env}=${JSON.stringify(raw)} is invalid: expected ${allowed}` };
    },
  };
}

/** One of a fixed set of words. */
export function oneOf<const T extends string>(
  env: string,
  values: readonly T[],
  opts: FieldOptions<T>,
): Field<T> {
  return field(env, opts, `one of ${values.join(', ')}`, (raw) =>
    (values as readonly string[]).includes(raw) ? (raw as T) : undefined,
  );
}

/** A comma-separated list of non-empty items (e.g. `KAFKA_BROKERS=host1:9092,host2:9092`); unset gives []. */
export function list(
  env: string,
  opts: { description: string; pattern?: RegExp; allowed?: string },
): Field<string[]> {
  return {
    env,
    description: opts.description,
    secret: false,
    defaultText: undefined,
    parse(raw) {
      if (raw === undefined || raw.trim() === '') return { ok: true, value: [] };
      const items = raw.split(',').map((s) => s.trim());
      const bad = items.find((s) => s === '' || (opts.pattern !== undefined && !opts.pattern.test(s)));
      if (bad !== undefined)
        return {
          ok: false,
          error: `${env}=${JSON.stringify(raw)} is invalid: expected ${opts.allowed ?? 'a comma-separated list'}`,
        };
      return { ok: true, value: items };
    },
  };
}

export type ConfigSpec = Record<string, Field<unknown>>;
export type ConfigOf<S extends ConfigSpec> = { [K in keyof S]: S[K] extends Field<infer T> ? T : never };

/**
 * Reads and validates every field of `spec` from `env`. Throws one {@link ConfigError}
 * listing every invalid variable, e.g.
 * `Invalid configuration: MQTT_PORT="abc" is invalid: expected an integer from 1 to 65535`.
 */
export function loadConfig<S extends ConfigSpec>(spec: S, env: NodeJS.ProcessEnv = process.env): ConfigOf<S> {
  const out: Record<string, unknown> = {};
  const errors: string[] = [];
  for (const [key, f] of Object.entries(spec)) {
    const r = f.parse(env[f.env]);
    if (r.ok) out[key] = r.value;
    else errors.push(r.error);
  }
  if (errors.length > 0) throw new ConfigError(`Invalid configuration: ${errors.join('; ')}`);
  return out as ConfigOf<S>;
}

/** The configuration with secrets masked, for the start-up log line. */
export function summarizeConfig<S extends ConfigSpec>(spec: S, config: ConfigOf<S>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, f] of Object.entries(spec)) {
    const v = (config as Record<string, unknown>)[key];
    out[f.env] = f.secret && v !== undefined ? '***' : v;
  }
  return out;
}
