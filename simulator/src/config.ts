import { int, oneOf, optionalStr, str, type ConfigOf, type Field } from '../../common/config/env.ts';
import { PROFILE_NAMES } from '../../common/scenario/profiles.ts';
import { MAX_MACHINES } from '../../common/scenario/scenario.ts';

/** Telemetry messages per second per machine, or `max`: as fast as the broker accepts. */
export type Rate = number | 'max';

/** Parses `max` or a positive number (at most 100,000 per machine); undefined when invalid. */
export function parseRate(raw: string): Rate | undefined {
  const v = raw.trim().toLowerCase();
  if (v === 'max') return 'max';
  const n = Number(v);
  return v !== '' && Number.isFinite(n) && n > 0 && n <= 100_000 ? n : undefined;
}

const RATE_ALLOWED = 'a number of messages per second per machine above 0 and at most 100000, or max';

/** A {@link Rate} read from the environment. */
export function rateField(env: string, opts: { description: string; default: Rate }): Field<Rate> {
  return {
    env,
    description: opts.description,
    secret: false,
    defaultText: String(opts.default),
    parse(raw) {
      if (raw === undefined || raw.trim() === '') return { ok: true, value: opts.default };
      const value = parseRate(raw);
      return value === undefined
        ? { ok: false, error: `${env}=${JSON.stringify(raw)} is invalid: expected ${RATE_ALLOWED}` }
        : { ok: true, value };
    },
  };
}

export const simulatorConfigSpec = {
  mqttUrl: str('MQTT_URL', {
    description: 'Broker URL the simulated machines publish to',
    default: 'mqtt://127.0.0.1:1883',
    pattern: /^(mqtts?|wss?):\/\/\S+$/,
    allowed: 'a URL starting with mqtt://, mqtts://, ws:// or wss://',
  }),
  machines: int('SIMULATOR_MACHINES', {
    description: 'Machines simulated without a scenario file',
    default: 4,
    min: 1,
    max: MAX_MACHINES,
  }),
  rateHz: rateField('SIMULATOR_RATE_HZ', {
    description: 'Telemetry messages per second per machine, or max',
    default: 2,
  }),
  labelDelayMs: int('SIMULATOR_LABEL_DELAY_MS', {
    description: "Delay before a sample's label is published, ms",
    default: 2000,
    min: 0,
    max: 3_600_000,
  }),
  credentialsFile: optionalStr('SIMULATOR_CREDENTIALS_FILE', {
    description: 'JSON file with device and inspection passwords (unset: connect without passwords)',
  }),
  scenarioFile: optionalStr('SIMULATOR_SCENARIO_FILE', {
    description: 'Drift scenario to play (unset: the default profile forever)',
  }),
  profile: oneOf('SIMULATOR_PROFILE', PROFILE_NAMES, {
    description: 'Profile played without a scenario file',
    default: 'seed',
  }),
  httpPort: int('SIMULATOR_HTTP_PORT', {
    description: 'Port of /healthz, /readyz and Prometheus /metrics while publishing (0: no such server)',
    default: 0,
    min: 0,
    max: 65535,
  }),
  httpHost: str('SIMULATOR_HTTP_HOST', {
    description: 'Interface of the SIMULATOR_HTTP_PORT server (0.0.0.0 for all)',
    default: '127.0.0.1',
  }),
  seed: int('SIMULATOR_SEED', {
    description: 'Seed of the stream played without a scenario file',
    default: 1,
    min: 0,
    max: 2 ** 32 - 1,
  }),
} as const;

export type SimulatorConfig = ConfigOf<typeof simulatorConfigSpec>;
