/**
 * Prints the Kubernetes Secret `driftline-secrets` (YAML) from plain passwords in
 * the environment (Ansible passes them from the vault): the broker's credentials
 * file with salted scrypt hashes only, the dashboard users file (hashed), the
 * simulator's device passwords, and the service passwords the pods read.
 *   npx tsx scripts/k8s-secrets.ts [--namespace driftline] [--machines 8]
 */
import { parseArgs } from 'node:util';
import { CredentialStore } from '../broker/src/credentials.ts';
import { ConfigError } from '../common/errors.ts';
import { runMain } from '../common/main.ts';
import { publicKeyOf } from '../common/model/signature.ts';
import { hashDashboardPassword } from '../dashboard/src/auth.ts';
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
export async function secretData(env: NodeJS.ProcessEnv, machines: number): Promise<Record<string, string>> {
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
    const store = await CredentialStore.open(file);
    const devices: Record<string, string> = {};
    for (const id of defaultMachineIds(machines)) {
      devices[id] = `${devicePrefix}-${id}`;
      await store.add({ username: id, role: 'device', machineId: id, password: devices[id] });
    }
    await store.add({ username: 'edge', role: 'edge', password: edge });
    await store.add({ username: 'dashboard', role: 'dashboard', password: dashboard });
    await store.add({ username: 'inspection', role: 'inspection', password: inspection });
    await store.add({ username: 'retrainer', role: 'retrainer', password: retrainer });
    await store.add({ username: 'bridge', role: 'bridge', password: bridge });
    await store.save();
    const users = [await hashDashboardPassword('operator', 'operator', operator)];
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
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
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
      },
    });
    const machines = Number(values.machines);
    if (!Number.isInteger(machines) || machines < 1)
      throw new ConfigError('--machines must be a positive integer');
    const data = await secretData(process.env, machines);
    const lines = [
      'apiVersion: v1',
      'kind: Secret',
      'metadata:',
      '  name: driftline-secrets',
      `  namespace: ${values.namespace}`,
      'type: Opaque',
      'stringData:',
    ];
    for (const [k, v] of Object.entries(data)) lines.push(`  ${k}: ${JSON.stringify(v)}`);
    process.stdout.write(`${lines.join('\n')}\n`);
  });
}
