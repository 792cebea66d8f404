import { readFile } from 'node:fs/promises';
import {
  bool,
  int,
  optionalStr,
  optionalUrl,
  str,
  type ConfigOf,
  type Field,
} from '../../common/config/env.ts';
import { ConfigError } from '../../common/errors.ts';
import { DEFAULT_REGISTRY_DIR } from '../../common/registry/directory.ts';
import { parseUsers, type DashboardUser } from './auth.ts';
import { DEFAULT_MODEL_NAME } from '../../common/model/types.ts';

/** Settings of `npm run dashboard` (the all-in-one process passes the same values to `startDashboard`). */
export const dashboardConfigSpec = {
  host: str('DASHBOARD_HOST', {
    description: 'Interface the dashboard listens on (0.0.0.0 exposes it)',
    default: '127.0.0.1',
  }),
  port: int('DASHBOARD_PORT', {
    description: 'Dashboard HTTP port (0 picks a free port)',
    default: 8080,
    min: 0,
    max: 65535,
  }),
  usersFile: optionalStr('DASHBOARD_USERS_FILE', {
    description:
      'JSON file of dashboard users [{username, role, salt, hash}] (npm run dashboard -- hash-password --file …)',
  }),
  users: optionalStr('DASHBOARD_USERS', {
    description: 'Dashboard users as inline JSON, same format as the users file',
    secret: true,
  }),
  mqttUrl: str('MQTT_URL', {
    description: 'Broker URL (mqtt://, mqtts://, ws://, wss://)',
    default: 'mqtt://127.0.0.1:1883',
    pattern: /^(mqtts?|wss?):\/\/\S+$/,
    allowed: 'a URL starting with mqtt://, mqtts://, ws:// or wss://',
  }),
  mqttUsername: str('DASHBOARD_MQTT_USERNAME', {
    description: 'Broker user of the dashboard service account (role dashboard)',
    default: 'dashboard',
  }),
  mqttPassword: optionalStr('DASHBOARD_MQTT_PASSWORD', {
    description: 'Password of the dashboard service account',
    secret: true,
  }),
  mqttCaFile: optionalStr('DASHBOARD_MQTT_CA_FILE', {
    description: 'PEM CA certificate to trust for mqtts:// or wss://',
  }),
  modelName: str('MODEL_NAME', {
    description: 'Registered model to follow',
    default: DEFAULT_MODEL_NAME,
    pattern: /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/,
    allowed: 'a model name (letters, digits, _ . -)',
  }),
  registryDir: str('REGISTRY_DIR', {
    description: 'Directory registry root (used when MLFLOW_TRACKING_URI is unset)',
    default: DEFAULT_REGISTRY_DIR,
  }),
  mlflowTrackingUri: optionalUrl('MLFLOW_TRACKING_URI', {
    description: 'MLflow tracking server; when set the registry is MLflow',
    protocols: ['http:', 'https:'],
  }),
  staleAfterMs: int('DASHBOARD_STALE_AFTER_MS', {
    description: 'A machine with no message for this long is flagged stale, ms',
    default: 10_000,
    min: 1000,
    max: 86_400_000,
  }),
  stuckAfter: int('DASHBOARD_STUCK_AFTER', {
    description: 'Consecutive identical readings of a feature that flag it stuck',
    default: 20,
    min: 2,
    max: 100_000,
  }),
  updateIntervalMs: int('DASHBOARD_UPDATE_INTERVAL_MS', {
    description: 'How often changes are pushed to browsers, ms',
    default: 100,
    min: 20,
    max: 10_000,
  }),
  registryPollMs: int('DASHBOARD_REGISTRY_POLL_MS', {
    description: 'How often the model registry is read, ms',
    default: 5000,
    min: 200,
    max: 3_600_000,
  }),
  secureCookies: bool('DASHBOARD_SECURE_COOKIES', {
    description: 'Mark the session cookie Secure (set when served over HTTPS)',
    default: false,
  }),
  sessionTtlMs: int('DASHBOARD_SESSION_TTL_MS', {
    description: 'Idle time after which a login expires, ms',
    default: 8 * 3600_000,
    min: 60_000,
    max: 30 * 86_400_000,
  }),
} satisfies Record<string, Field<unknown>>;

export type DashboardConfig = ConfigOf<typeof dashboardConfigSpec>;

/**
 * The users from `DASHBOARD_USERS_FILE` and `DASHBOARD_USERS` (both may be
 * set; a username may appear in only one). Throws one readable
 * {@link ConfigError} when neither is set, a file is unreadable or an entry is invalid.
 */
export async function loadDashboardUsers(
  config: Pick<DashboardConfig, 'usersFile' | 'users'>,
): Promise<DashboardUser[]> {
  const users: DashboardUser[] = [];
  if (config.usersFile !== undefined) {
    let text: string;
    try {
      text = await readFile(config.usersFile, 'utf8');
    } catch (err) {
      throw new ConfigError(
        `DASHBOARD_USERS_FILE=${JSON.stringify(config.usersFile)} cannot be read: ${(err as Error).message}`,
      );
    }
    users.push(...parseUsers(text, `DASHBOARD_USERS_FILE ${config.usersFile}`));
  }
  if (config.users !== undefined) {
    for (const u of parseUsers(config.users, 'DASHBOARD_USERS')) {
      if (users.some((x) => x.username === u.username))
        throw new ConfigError(
          `user ${JSON.stringify(u.username)} is in both DASHBOARD_USERS_FILE and DASHBOARD_USERS`,
        );
      users.push(u);
    }
  }
  if (users.length === 0) {
    throw new ConfigError(
      'Invalid configuration: no dashboard users: set DASHBOARD_USERS_FILE or DASHBOARD_USERS (create ' +
        'entries with npm run dashboard -- hash-password --username NAME --role operator --file users.json)',
    );
  }
  return users;
}
