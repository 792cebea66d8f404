import { describe, expect, it } from 'vitest';
import { CredentialStore } from '../../../broker/src/credentials.ts';
import { publicKeyOf } from '../../../common/model/signature.ts';
import { inputsHash, k8sSecrets, secretData } from '../../../scripts/k8s-secrets.ts';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

const env = {
  EDGE_MQTT_PASSWORD: 'edge-pw',
  DASHBOARD_MQTT_PASSWORD: 'dash-pw',
  INSPECTION_MQTT_PASSWORD: 'insp-pw',
  RETRAINER_MQTT_PASSWORD: 'retr-pw',
  BRIDGE_MQTT_PASSWORD: 'bridge-pw',
  DEVICE_PASSWORD_PREFIX: 'dev',
  DASHBOARD_OPERATOR_PASSWORD: 'op-pw',
  MODEL_SIGNING_KEY: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
  KAFKA_BROKER_PASSWORD: 'k-broker',
  KAFKA_CONTROLLER_PASSWORD: 'k-controller',
  KAFKA_ADMIN_PASSWORD: 'k-admin',
  KAFKA_EDGE_PASSWORD: 'k-edge',
  KAFKA_RETRAINER_PASSWORD: 'k-retrainer',
  KAFKA_BRIDGE_PASSWORD: 'k-bridge',
  KAFKA_DASHBOARD_PASSWORD: 'k-dashboard',
};

/** The services' scrypt cost in the first test; a cheap one elsewhere (the hashing is not what they check). */
const CHEAP = { scryptCost: 10 };

describe('k8s secrets', () => {
  it('holds only hashes in the broker credentials and dashboard users, and logs in with the vault passwords', async () => {
    const data = await secretData(env, 3);
    const creds = data['credentials.json'] ?? '';
    for (const pw of ['edge-pw', 'dash-pw', 'insp-pw', 'retr-pw', 'bridge-pw', 'dev-m-000'])
      expect(creds).not.toContain(pw);
    expect(data['dashboard-users.json']).not.toContain('op-pw');
    const dir = await mkdtemp(path.join(tmpdir(), 'secrets-test-'));
    const file = path.join(dir, 'credentials.json');
    await writeFile(file, creds);
    const store = await CredentialStore.open(file);
    expect(
      store
        .list()
        .map((u) => u.username)
        .sort(),
    ).toEqual([
      'bridge',
      'dashboard',
      'edge',
      'inspection',
      'm-000',
      'm-001',
      'm-002',
      'retrainer',
      'smoke-000',
    ]);
    const sim = JSON.parse(data['simulator-credentials.json'] ?? '{}') as { devices: Record<string, string> };
    expect(sim.devices['m-001']).toBe('dev-m-001');
    // The services' own cost (the broker's default, 2^15), and the vault passwords log in.
    const stored = JSON.parse(creds) as { users: { password: { params: { N: number } } }[] };
    expect(stored.users.map((u) => u.password.params.N)).toEqual(stored.users.map(() => 2 ** 15));
    expect((await store.verify('edge', 'edge-pw'))?.role).toBe('edge');
    expect((await store.verify('m-002', 'dev-m-002'))?.machineId).toBe('m-002');
    expect(await store.verify('edge', 'dash-pw')).toBeUndefined();
  });

  it('gives the retrainer the model signing key and the edge only its public half', async () => {
    const data = await secretData(env, 1, CHEAP);
    expect(data.MODEL_SIGNING_KEY).toBe(env.MODEL_SIGNING_KEY);
    expect(data.MODEL_VERIFY_KEYS).toBe(publicKeyOf(env.MODEL_SIGNING_KEY));
    expect(data.MODEL_VERIFY_KEYS).not.toBe(env.MODEL_SIGNING_KEY);
    await expect(secretData({ ...env, MODEL_SIGNING_KEY: 'not-a-key' }, 1, CHEAP)).rejects.toThrow(
      /MODEL_SIGNING_KEY is not an Ed25519 private key/,
    );
  });

  it('refuses to run without a vault value', async () => {
    await expect(secretData({ ...env, EDGE_MQTT_PASSWORD: '' }, 1, CHEAP)).rejects.toThrow(
      /EDGE_MQTT_PASSWORD/,
    );
  });

  it('gives each workload its own Secret, holding only what that workload reads', async () => {
    const secrets = await k8sSecrets(env, 2, 'plant-7', CHEAP);
    const byName = Object.fromEntries(secrets.map((x) => [x.metadata.name, x.stringData]));
    expect(Object.keys(byName).sort()).toEqual([
      'bootstrap-secrets',
      'broker-secrets',
      'dashboard-secrets',
      'edge-inference-secrets',
      'kafka-admin-secrets',
      'kafka-bridge-secrets',
      'kafka-secrets',
      'retrainer-secrets',
      'simulator-secrets',
      'smoke-secrets',
    ]);
    expect(JSON.parse(byName['smoke-secrets']?.['device.json'] ?? '{}')).toEqual({
      username: 'smoke-000',
      machineId: 'smoke-000',
      password: 'dev-smoke-000',
    });
    for (const x of secrets) expect(x.metadata.namespace).toBe('plant-7');
    const verifyKey = publicKeyOf(env.MODEL_SIGNING_KEY);
    expect(byName['edge-inference-secrets']).toEqual({
      EDGE_MQTT_PASSWORD: 'edge-pw',
      KAFKA_SASL_PASSWORD: 'k-edge',
      MODEL_VERIFY_KEYS: verifyKey,
    });
    expect(byName['retrainer-secrets']).toEqual({
      KAFKA_SASL_PASSWORD: 'k-retrainer',
      MODEL_SIGNING_KEY: env.MODEL_SIGNING_KEY,
    });
    expect(byName['bootstrap-secrets']).toEqual({ MODEL_SIGNING_KEY: env.MODEL_SIGNING_KEY });
    // The private signing key reaches only the retrainer and the bootstrap Job.
    const signers = secrets
      .filter((x) => Object.values(x.stringData).includes(env.MODEL_SIGNING_KEY))
      .map((x) => x.metadata.name);
    expect(signers.sort()).toEqual(['bootstrap-secrets', 'retrainer-secrets']);
    expect(byName['kafka-bridge-secrets']).toEqual({
      BRIDGE_MQTT_PASSWORD: 'bridge-pw',
      KAFKA_SASL_PASSWORD: 'k-bridge',
    });
    expect(byName['kafka-admin-secrets']).toEqual({ KAFKA_SASL_PASSWORD: 'k-admin' });
    expect(Object.keys(byName['kafka-secrets'] ?? {}).sort()).toEqual(
      ['ADMIN', 'BRIDGE', 'BROKER', 'CONTROLLER', 'DASHBOARD', 'EDGE', 'RETRAINER'].map(
        (u) => `KAFKA_${u}_PASSWORD`,
      ),
    );
    // The admin password reaches only the Kafka broker and the provisioning Job.
    const holders = secrets
      .filter((x) => Object.values(x.stringData).includes('k-admin'))
      .map((x) => x.metadata.name);
    expect(holders.sort()).toEqual(['kafka-admin-secrets', 'kafka-secrets']);
  });

  it('marks every Secret with a hash of its inputs: stable across renders, different when a value changes', async () => {
    const a = await k8sSecrets(env, 2, 'driftline', CHEAP);
    const b = await k8sSecrets(env, 2, 'driftline', CHEAP);
    // New random salts every render …
    expect(a[0]?.stringData['credentials.json']).not.toBe(b[0]?.stringData['credentials.json']);
    // … but the same inputs hash, which is what Ansible compares before rendering again.
    const hashes = new Set([...a, ...b].map((x) => x.metadata.annotations['driftline.io/inputs-hash']));
    expect([...hashes]).toEqual([inputsHash(env, 2)]);
    expect(inputsHash({ ...env, KAFKA_EDGE_PASSWORD: 'rotated' }, 2)).not.toBe(inputsHash(env, 2));
    expect(inputsHash({ ...env, MODEL_SIGNING_KEY: 'B'.repeat(43) }, 2)).not.toBe(inputsHash(env, 2));
    expect(inputsHash(env, 3)).not.toBe(inputsHash(env, 2));
    expect(() => inputsHash({ ...env, KAFKA_ADMIN_PASSWORD: '' }, 2)).toThrow(/KAFKA_ADMIN_PASSWORD/);
  });
});
