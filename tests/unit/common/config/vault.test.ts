import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { applyVaultEnv, decryptVault, encryptVault, parseDotenv } from '../../../../common/config/vault.ts';
import { ConfigError } from '../../../../common/errors.ts';

describe('vault secrets', () => {
  it('parses dotenv lines with comments and quotes', () => {
    expect(parseDotenv('# comment\nA=1\nexport B="two words"\nC=\'x=y\'\n\n')).toEqual({
      A: '1',
      B: 'two words',
      C: 'x=y',
    });
    expect(() => parseDotenv('not a pair')).toThrow(ConfigError);
  });

  it('round-trips through Ansible Vault 1.1 and refuses a wrong password', async () => {
    const vault = await encryptVault('EDGE_MQTT_PASSWORD=s3cret\n', 'pw');
    expect(vault.startsWith('$ANSIBLE_VAULT;1.1;AES256')).toBe(true);
    expect(await decryptVault(vault, 'pw')).toBe('EDGE_MQTT_PASSWORD=s3cret\n');
    await expect(decryptVault(vault, 'wrong')).rejects.toBeInstanceOf(ConfigError);
  });

  it('fills unset variables from the vault file and leaves set ones alone', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'vault-'));
    const file = path.join(dir, 'secrets.env.vault');
    const pwFile = path.join(dir, 'pw');
    await writeFile(
      file,
      await encryptVault('EDGE_MQTT_PASSWORD=from-vault\nDASHBOARD_MQTT_PASSWORD=dash\n', 'pw'),
    );
    await writeFile(pwFile, 'pw\n');
    const env: NodeJS.ProcessEnv = {
      DRIFTLINE_VAULT_FILE: file,
      DRIFTLINE_VAULT_PASSWORD_FILE: pwFile,
      DASHBOARD_MQTT_PASSWORD: 'explicit',
    };
    expect(await applyVaultEnv(env)).toEqual(['EDGE_MQTT_PASSWORD']);
    expect(env.EDGE_MQTT_PASSWORD).toBe('from-vault');
    expect(env.DASHBOARD_MQTT_PASSWORD).toBe('explicit');
  });

  it('says clearly what is missing', async () => {
    await expect(applyVaultEnv({ DRIFTLINE_VAULT_FILE: '/nonexistent' })).rejects.toThrow(
      /DRIFTLINE_VAULT_PASSWORD/,
    );
    await expect(
      applyVaultEnv({ DRIFTLINE_VAULT_FILE: '/nonexistent', DRIFTLINE_VAULT_PASSWORD: 'x' }),
    ).rejects.toThrow(/cannot be read/);
    expect(await applyVaultEnv({})).toEqual([]);
  });
});
