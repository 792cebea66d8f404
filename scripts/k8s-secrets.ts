/**
 * Prints the deployment's Kubernetes Secrets (a JSON `List`) from plain passwords in the environment
 * (Ansible passes them from the vault, ansible/roles/k8s_deploy): one Secret per workload, mounted only
 * into that workload's pods —
 *   broker-secrets          credentials.json: the broker's logins, salted scrypt hashes only
 *   edge-inference-secrets  EDGE_MQTT_PASSWORD, KAFKA_SASL_PASSWORD (Kafka user edge), MODEL_VERIFY_KEYS (the
 *                           public half of the model signing key: unsigned models are refused)
 *   retrainer-secrets       KAFKA_SASL_PASSWORD (Kafka user retrainer), MODEL_SIGNING_KEY (signs challengers)
 *   bootstrap-secrets       MODEL_SIGNING_KEY, for the bootstrap-champion Job (signs the first champion)
 *   kafka-bridge-secrets    BRIDGE_MQTT_PASSWORD, KAFKA_SASL_PASSWORD (Kafka user bridge)
 *   dashboard-secrets       DASHBOARD_MQTT_PASSWORD, dashboard-users.json (hashed operator login)
 *   simulator-secrets       simulator-credentials.json: the demo devices' and inspection passwords
 *   kafka-secrets           KAFKA_<USER>_PASSWORD of every SCRAM user, for the broker (created at format time)
 *   kafka-admin-secrets     KAFKA_SASL_PASSWORD of the Kafka admin, for the kafka-provision Job only
 *   smoke-secrets           device.json: the login of device smoke-000, which only the smoke test uses
 *                           (make smoke: publishes telemetry through the broker and awaits its prediction)
 * Each carries the annotation driftline.io/inputs-hash: a hash of the inputs, so Ansible re-renders
 * (new random salts) only when a vault value changed and a second deploy changes nothing.
 *   npx tsx scripts/k8s-secrets.ts [--namespace driftline] [--machines 8] [--hash-only]
 */
import { createHash } from 'node:crypto';
import { parseArgs } from 'node:util';
import { CredentialStore } from '../broker/src/credentials.ts';
import { ConfigError } from '../common/errors.ts';
import { runMain } from '../common/main.ts';
import { publicKeyOf } from '../common/model/signature.ts';
import { DEFAULT_SCRYPT, hashDashboardPassword } from '../dashboard/src/auth.ts';
import { defaultMachineIds } from '../common/scenario/scenario.ts';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

function need(env: NodeJS.ProcessEnv, name: string): string {
  const v = env[name];
  if (!v) throw new ConfigError(`${name} is required (Ansible passes it from the vault)`);
  return v;
}

/** The Secret's string data. Exported for the unit test. */
/** How the password hashes are made: the services' defaults unless a caller (a test) asks for a cheaper cost. */
export interface HashOptions {
  /** scrypt cost exponent (N = 2^cost) for the broker logins and the operator login. Default: the services'. */
  readonly scryptCost?: number;
}

export async function secretData(
  env: NodeJS.ProcessEnv,
  machines: number,
  hashing: HashOptions = {},
): Promise<Record<string, string>> {
  const edge = need(env, 'EDGE_MQTT_PASSWORD');
  const dashboard = need(env, 'DASHBOARD_MQTT_PASSWORD');
  const inspection = need(env, 'INSPECTION_MQTT_PASSWORD');
  const retrainer = need(env, 'RETRAINER_MQTT_PASSWORD');
  const bridge = need(env, 'BRIDGE_MQTT_PASSWORD');
  const devicePrefix = need(env, 'DEVICE_PASSWORD_PREFIX');
  const operator = need(env, 'DASHBOARD_OPERATOR_PASSWORD');
  const signingKey = need(env, 'MODEL_SIGNING_KEY');
  const verifyKey = publicKeyOf(signingKey);
  const dir = await mkdtemp(path.join(tmpdir(), 'driftline-secrets-'));
  try {
    const file = path.join(dir, 'credentials.json');
    const store = await CredentialStore.open(
      file,
      hashing.scryptCost !== undefined ? { scryptCost: hashing.scryptCost } : {},
    );
    const devices: Record<string, string> = {};
    for (const id of defaultMachineIds(machines)) {
      devices[id] = `${devicePrefix}-${id}`;
      await store.add({ username: id, role: 'device', machineId: id, password: devices[id] });
    }
    const smokePassword = `${devicePrefix}-${SMOKE_DEVICE}`;
    await store.add({
      username: 'smoke-000',
      role: 'device',
      machineId: 'smoke-000',
      password: smokePassword,
    });
    await store.add({ username: 'edge', role: 'edge', password: edge });
    await store.add({ username: 'dashboard', role: 'dashboard', password: dashboard });
    await store.add({ username: 'inspection', role: 'inspection', password: inspection });
    await store.add({ username: 'retrainer', role: 'retrainer', password: retrainer });
    await store.add({ username: 'bridge', role: 'bridge', password: bridge });
    await store.save();
    const users = [
      await hashDashboardPassword(
        'operator',
        'operator',
        operator,
        hashing.scryptCost !== undefined ? { N: 2 ** hashing.scryptCost, r: 8, p: 1 } : DEFAULT_SCRYPT,
      ),
    ];
    return {
      'credentials.json': await readFile(file, 'utf8'),
      'dashboard-users.json': JSON.stringify(users),
      'simulator-credentials.json': JSON.stringify({
        devices,
        inspection: { username: 'inspection', password: inspection },
      }),
      EDGE_MQTT_PASSWORD: edge,
      DASHBOARD_MQTT_PASSWORD: dashboard,
      BRIDGE_MQTT_PASSWORD: bridge,
      // The retrainer signs models with the private key; edge workers verify with the public one.
      MODEL_SIGNING_KEY: signingKey,
      MODEL_VERIFY_KEYS: verifyKey,
      [SMOKE_PASSWORD_KEY]: smokePassword,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The device the smoke test logs in as (its own machine id: the simulator never plays it). */
export const SMOKE_DEVICE = 'smoke-000';
const SMOKE_PASSWORD_KEY = 'smoke-device-password';

/** The Kafka users whose SCRAM passwords the vault holds (docs/kafka-security.md). */
export const KAFKA_USERS = [
  'broker',
  'controller',
  'admin',
  'edge',
  'retrainer',
  'bridge',
  'dashboard',
] as const;

/** The environment variables the Secrets are rendered from (Ansible sets each from the vault). */
export const SECRET_INPUTS = [
  'EDGE_MQTT_PASSWORD',
  'DASHBOARD_MQTT_PASSWORD',
  'INSPECTION_MQTT_PASSWORD',
  'RETRAINER_MQTT_PASSWORD',
  'BRIDGE_MQTT_PASSWORD',
  'DEVICE_PASSWORD_PREFIX',
  'DASHBOARD_OPERATOR_PASSWORD',
  'MODEL_SIGNING_KEY',
  ...KAFKA_USERS.map((u) => `KAFKA_${u.toUpperCase()}_PASSWORD`),
] as const;

/** Version of the Secrets' layout: part of the inputs hash, so a new layout is rendered once. */
const LAYOUT = 'per-workload-v3';

/** A hash of every input (values included) and the machine count: equal hashes render equal Secrets. */
export function inputsHash(env: NodeJS.ProcessEnv, machines: number): string {
  const h = createHash('sha256').update(`${LAYOUT}\0${machines}\0`);
  for (const name of SECRET_INPUTS) h.update(`${name}=${need(env, name)}\0`);
  return h.digest('hex').slice(0, 32);
}

export interface K8sSecret {
  apiVersion: 'v1';
  kind: 'Secret';
  metadata: {
    name: string;
    namespace: string;
    labels: Record<string, string>;
    annotations: Record<string, string>;
  };
  type: 'Opaque';
  stringData: Record<string, string>;
}

/** The deployment's Secrets, one per workload (see the module comment). */
export async function k8sSecrets(
  env: NodeJS.ProcessEnv,
  machines: number,
  namespace: string,
  hashing: HashOptions = {},
): Promise<K8sSecret[]> {
  const kafka: Record<string, string> = {};
  for (const u of KAFKA_USERS)
    kafka[`KAFKA_${u.toUpperCase()}_PASSWORD`] = need(env, `KAFKA_${u.toUpperCase()}_PASSWORD`);
  const data = await secretData(env, machines, hashing);
  const hash = inputsHash(env, machines);
  const secret = (name: string, workload: string, stringData: Record<string, string>): K8sSecret => ({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name,
      namespace,
      labels: { 'app.kubernetes.io/part-of': 'driftline', 'app.kubernetes.io/name': workload },
      annotations: { 'driftline.io/inputs-hash': hash, 'driftline.io/rendered-by': 'scripts/k8s-secrets.ts' },
    },
    type: 'Opaque',
    stringData,
  });
  return [
    secret('broker-secrets', 'broker', { 'credentials.json': data['credentials.json'] as string }),
    secret('edge-inference-secrets', 'edge-inference', {
      EDGE_MQTT_PASSWORD: data.EDGE_MQTT_PASSWORD as string,
      KAFKA_SASL_PASSWORD: kafka.KAFKA_EDGE_PASSWORD as string,
      MODEL_VERIFY_KEYS: data.MODEL_VERIFY_KEYS as string,
    }),
    secret('retrainer-secrets', 'retrainer', {
      KAFKA_SASL_PASSWORD: kafka.KAFKA_RETRAINER_PASSWORD as string,
      MODEL_SIGNING_KEY: data.MODEL_SIGNING_KEY as string,
    }),
    secret('bootstrap-secrets', 'bootstrap-champion', {
      MODEL_SIGNING_KEY: data.MODEL_SIGNING_KEY as string,
    }),
    secret('kafka-bridge-secrets', 'kafka-bridge', {
      BRIDGE_MQTT_PASSWORD: data.BRIDGE_MQTT_PASSWORD as string,
      KAFKA_SASL_PASSWORD: kafka.KAFKA_BRIDGE_PASSWORD as string,
    }),
    secret('dashboard-secrets', 'dashboard', {
      DASHBOARD_MQTT_PASSWORD: data.DASHBOARD_MQTT_PASSWORD as string,
      'dashboard-users.json': data['dashboard-users.json'] as string,
    }),
    secret('simulator-secrets', 'simulator', {
      'simulator-credentials.json': data['simulator-credentials.json'] as string,
    }),
    secret('kafka-secrets', 'kafka', kafka),
    secret('kafka-admin-secrets', 'kafka-provision', {
      KAFKA_SASL_PASSWORD: kafka.KAFKA_ADMIN_PASSWORD as string,
    }),
    secret('smoke-secrets', 'smoke-test', {
      'device.json': JSON.stringify({
        username: SMOKE_DEVICE,
        machineId: SMOKE_DEVICE,
        password: data[SMOKE_PASSWORD_KEY] as string,
      }),
    }),
  ];
}

function isMain(): boolean {
  return (
    process.argv[1] !== undefined &&
    path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)
  );
}

if (isMain()) {
  runMain(async () => {
    const { values } = parseArgs({
      options: {
        namespace: { type: 'string', default: 'driftline' },
        machines: { type: 'string', default: '8' },
        'hash-only': { type: 'boolean', default: false },
      },
    });
    const machines = Number(values.machines);
    if (!Number.isInteger(machines) || machines < 1)
      throw new ConfigError('--machines must be a positive integer');
    if (values['hash-only']) {
      process.stdout.write(`${inputsHash(process.env, machines)}\n`);
      return;
    }
    const items = await k8sSecrets(process.env, machines, values.namespace);
    process.stdout.write(`${JSON.stringify({ apiVersion: 'v1', kind: 'List', items })}\n`);
  });
}
