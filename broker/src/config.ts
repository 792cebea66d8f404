import { readFile } from 'node:fs/promises';
import { ConfigError } from '../../common/errors.ts';
import { bool, int, optionalStr, str, type ConfigOf, type Field } from '../../common/config/env.ts';
import { brokerLimits, type BrokerLimits, type BrokerTlsOptions } from './broker.ts';
import type { LoginGuardOptions } from './login-guard.ts';

/** A port (0 = pick a free one) or `off` to disable the listener (null). */
export function portOrOff(env: string, opts: { description: string; default: number }): Field<number | null> {
  return {
    env,
    description: `${opts.description} (0 picks a free port, "off" disables)`,
    secret: false,
    defaultText: String(opts.default),
    parse(raw) {
      if (raw === undefined || raw.trim() === '') return { ok: true, value: opts.default };
      const v = raw.trim().toLowerCase();
      if (v === 'off' || v === 'none' || v === 'disabled') return { ok: true, value: null };
      if (/^\d+$/.test(v) && Number(v) <= 65535) return { ok: true, value: Number(v) };
      return {
        ok: false,
        error: `${env}=${JSON.stringify(raw)} is invalid: expected a port from 0 to 65535 or off`,
      };
    },
  };
}

/** Settings of `npm run broker` (and the broker part of `npm start`). */
export const brokerConfigSpec = {
  host: str('BROKER_HOST', {
    description: 'Interface the MQTT, WebSocket, TLS and ops listeners bind to (0.0.0.0 for all)',
    default: '127.0.0.1',
  }),
  port: int('BROKER_PORT', {
    description: 'MQTT over TCP port (0 picks a free port)',
    default: 1883,
    min: 0,
    max: 65535,
  }),
  wsPort: portOrOff('BROKER_WS_PORT', {
    description: 'MQTT over WebSocket port for the dashboard',
    default: 8083,
  }),
  httpPort: portOrOff('BROKER_HTTP_PORT', {
    description: 'Port of /healthz, /readyz and Prometheus /metrics',
    default: 9101,
  }),
  credentialsFile: str('BROKER_CREDENTIALS_FILE', {
    description: 'JSON file of users and salted scrypt hashes (npm run credentials)',
    default: '.driftline/credentials.json',
  }),
  tlsKeyFile: optionalStr('BROKER_TLS_KEY_FILE', {
    description: 'PEM private key; with BROKER_TLS_CERT_FILE enables the mqtts listener',
  }),
  tlsCertFile: optionalStr('BROKER_TLS_CERT_FILE', {
    description: 'PEM certificate chain; with BROKER_TLS_KEY_FILE enables the mqtts listener',
  }),
  tlsPort: int('BROKER_TLS_PORT', {
    description: 'MQTT over TLS port, used when TLS is enabled',
    default: 8883,
    min: 0,
    max: 65535,
  }),
  credentialsReloadMs: int('BROKER_CREDENTIALS_RELOAD_MS', {
    description: 'How often the credentials file is checked for changes and reloaded, ms (0 disables)',
    default: 2000,
    min: 0,
    max: 3_600_000,
  }),
  scryptCost: int('BROKER_SCRYPT_COST', {
    description: 'scrypt cost of new password hashes as log2(N): 15 = 32 MiB and ~50-100 ms per check',
    default: 15,
    min: 10,
    max: 20,
  }),
  authCacheTtlMs: int('BROKER_AUTH_CACHE_TTL_MS', {
    description: 'How long a successful login is cached to absorb reconnect storms, ms (0 disables)',
    default: 60_000,
    min: 0,
    max: 3_600_000,
  }),
  deviceSubscribeOwn: bool('BROKER_DEVICE_SUBSCRIBE_OWN', {
    description: 'Devices may subscribe to their own factory/<id>/#',
    default: true,
  }),
  maxPacketBytesPreLogin: int('BROKER_MAX_PACKET_BYTES_PRELOGIN', {
    description:
      'Largest MQTT packet before the login succeeded (the CONNECT and its will), bytes; a bigger one closes the connection as its header arrives',
    default: 8192,
    min: 128,
    max: 268_435_460,
  }),
  maxPacketBytesDevice: int('BROKER_MAX_PACKET_BYTES_DEVICE', {
    description:
      'Largest MQTT packet from a device or inspection station after login, bytes (their payloads are also capped at 4096 bytes)',
    default: 8192,
    min: 256,
    max: 268_435_460,
  }),
  maxPacketBytesService: int('BROKER_MAX_PACKET_BYTES_SERVICE', {
    description:
      'Largest MQTT packet from the edge, bridge, dashboard, retrainer and admin after login, bytes',
    default: 262_144,
    min: 256,
    max: 268_435_460,
  }),
  maxQueuedPerClient: int('BROKER_MAX_QUEUED_PER_CLIENT', {
    description:
      'QoS 1 messages queued per persistent session (offline or not acknowledging); beyond, new ones are dropped and counted',
    default: 10_000,
    min: 1,
    max: 65_535,
  }),
  authMaxConcurrent: int('BROKER_AUTH_MAX_CONCURRENT', {
    description: 'Password checks (scrypt) running at once',
    default: 4,
    min: 1,
    max: 64,
  }),
  authMaxQueued: int('BROKER_AUTH_MAX_QUEUED', {
    description:
      'Password checks waiting at once (served round-robin by client address); beyond, CONNACK 3 (server unavailable)',
    default: 256,
    min: 0,
    max: 100_000,
  }),
  loginFailureWindowMs: int('BROKER_LOGIN_FAILURE_WINDOW_MS', {
    description: 'Window of the failed-login limits, ms',
    default: 60_000,
    min: 1000,
    max: 86_400_000,
  }),
  loginMaxFailuresPerAddress: int('BROKER_LOGIN_MAX_FAILURES_PER_ADDRESS', {
    description:
      'Failed (or pending) logins per client address within the window; beyond, CONNACK 3 without a password check',
    default: 30,
    min: 1,
    max: 1_000_000,
  }),
  loginMaxFailuresPerUsername: int('BROKER_LOGIN_MAX_FAILURES_PER_USERNAME', {
    description:
      'Failed (or pending) logins per username within the window; beyond, CONNACK 3 without a password check',
    default: 10,
    min: 1,
    max: 1_000_000,
  }),
} satisfies Record<string, Field<unknown>>;

export type BrokerConfig = ConfigOf<typeof brokerConfigSpec>;

/** The broker's packet and queue limits from its config. */
export function limitsFromConfig(config: BrokerConfig): BrokerLimits {
  return brokerLimits({
    preLogin: config.maxPacketBytesPreLogin,
    device: config.maxPacketBytesDevice,
    service: config.maxPacketBytesService,
    maxQueuedPerClient: config.maxQueuedPerClient,
  });
}

/** The broker's login limits from its config. */
export function loginGuardFromConfig(config: BrokerConfig): Partial<LoginGuardOptions> {
  return {
    maxConcurrent: config.authMaxConcurrent,
    maxQueued: config.authMaxQueued,
    windowMs: config.loginFailureWindowMs,
    maxFailuresPerAddress: config.loginMaxFailuresPerAddress,
    maxFailuresPerUsername: config.loginMaxFailuresPerUsername,
  };
}

/**
 * Reads the TLS key and certificate named by the config. Undefined when TLS is
 * off; a {@link ConfigError} when only one file is set or a file cannot be read.
 */
export async function loadTls(
  config: Pick<BrokerConfig, 'tlsKeyFile' | 'tlsCertFile' | 'tlsPort'>,
): Promise<BrokerTlsOptions | undefined> {
  const { tlsKeyFile, tlsCertFile } = config;
  if (tlsKeyFile === undefined && tlsCertFile === undefined) return undefined;
  if (tlsKeyFile === undefined || tlsCertFile === undefined) {
    throw new ConfigError(
      'Invalid configuration: BROKER_TLS_KEY_FILE and BROKER_TLS_CERT_FILE must be set together',
    );
  }
  const read = async (env: string, file: string): Promise<Buffer> => {
    try {
      return await readFile(file);
    } catch (err) {
      throw new ConfigError(
        `Invalid configuration: ${env}=${JSON.stringify(file)} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
  };
  return {
    port: config.tlsPort,
    key: await read('BROKER_TLS_KEY_FILE', tlsKeyFile),
    cert: await read('BROKER_TLS_CERT_FILE', tlsCertFile),
  };
}
