import { describe, expect, it } from 'vitest';
import { CredentialStore } from '../../../broker/src/credentials.ts';
import { publicKeyOf } from '../../../common/model/signature.ts';
import { secretData } from '../../../scripts/k8s-secrets.ts';
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
};

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
    ).toEqual(['bridge', 'dashboard', 'edge', 'inspection', 'm-000', 'm-001', 'm-002', 'retrainer']);
    const sim = JSON.parse(data['simulator-credentials.json'] ?? '{}') as { devices: Record<string, string> };
    expect(sim.devices['m-001']).toBe('dev-m-001');
  });

  it('gives the retrainer the model signing key and the edge only its public half', async () => {
    const data = await secretData(env, 1);
    expect(data.MODEL_SIGNING_KEY).toBe(env.MODEL_SIGNING_KEY);
    expect(data.MODEL_VERIFY_KEYS).toBe(publicKeyOf(env.MODEL_SIGNING_KEY));
    expect(data.MODEL_VERIFY_KEYS).not.toBe(env.MODEL_SIGNING_KEY);
    await expect(secretData({ ...env, MODEL_SIGNING_KEY: 'not-a-key' }, 1)).rejects.toThrow(
      /MODEL_SIGNING_KEY is not an Ed25519 private key/,
    );
  });

  it('refuses to run without a vault value', async () => {
    await expect(secretData({ ...env, EDGE_MQTT_PASSWORD: '' }, 1)).rejects.toThrow(/EDGE_MQTT_PASSWORD/);
  });
});
