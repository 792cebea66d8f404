import { readFile } from 'node:fs/promises';
import { Vault } from 'ansible-vault';
import { ConfigError } from '../errors.ts';

/**
 * Secrets from an Ansible Vault file.
 *
 * The deployment keeps service passwords (MQTT service accounts, dashboard
 * users, MLflow tokens) in one Ansible-Vault-encrypted dotenv file
 * (`ansible/group_vars/all/secrets.env.vault`). Ansible turns it into a
 * Kubernetes Secret for the cluster; on a host without a cluster a service
 * reads it directly: set `DRIFTLINE_VAULT_FILE` and `DRIFTLINE_VAULT_PASSWORD_FILE`
 * and {@link applyVaultEnv} fills in every variable that is not already set.
 */

/** Parses dotenv text: `KEY=value` lines, `#` comments, optional single or double quotes. */
export function parseDotenv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    // eslint-disable-next-line security/detect-unsafe-regex -- flagged for `(?:export\s+)?` (a quantifier in an optional group), which cannot backtrack: every part is anchored by a different character class, so matching is linear in the line length; lines come from the operator's own vault file.
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!m) throw new ConfigError(`vault secrets line ${i + 1} is not KEY=value`);
    let value = m[2] ?? '';
    if (
      value.length >= 2 &&
      ((value.startsWith('"') && value.endsWith('"')) || (value.startsWith("'") && value.endsWith("'")))
    )
      value = value.slice(1, -1);
    out[m[1] as string] = value;
  }
  return out;
}

/** Decrypts Ansible Vault text (format 1.1 or 1.2, AES256). Wrong password → ConfigError. */
export async function decryptVault(vaultText: string, password: string): Promise<string> {
  try {
    const text = await new Vault({ password }).decrypt(vaultText, undefined);
    if (text === undefined) throw new Error('vault id did not match');
    return text;
  } catch (err) {
    throw new ConfigError(
      `cannot decrypt the vault: ${(err as Error).message} (wrong password or not an Ansible Vault file)`,
    );
  }
}

/** Encrypts text as Ansible Vault 1.1 (what `ansible-vault encrypt` writes). */
export async function encryptVault(plainText: string, password: string): Promise<string> {
  return new Vault({ password }).encrypt(plainText, '');
}

/**
 * When `DRIFTLINE_VAULT_FILE` is set, decrypts it with the password in
 * `DRIFTLINE_VAULT_PASSWORD_FILE` (or `DRIFTLINE_VAULT_PASSWORD`) and copies each
 * variable into `env` unless already set there. Returns the names applied
 * (never the values).
 */
export async function applyVaultEnv(env: NodeJS.ProcessEnv = process.env): Promise<string[]> {
  const file = env.DRIFTLINE_VAULT_FILE;
  if (!file) return [];
  let password = env.DRIFTLINE_VAULT_PASSWORD;
  if (env.DRIFTLINE_VAULT_PASSWORD_FILE) {
    try {
      password = (await readFile(env.DRIFTLINE_VAULT_PASSWORD_FILE, 'utf8')).trim();
    } catch (err) {
      throw new ConfigError(
        `DRIFTLINE_VAULT_PASSWORD_FILE=${JSON.stringify(env.DRIFTLINE_VAULT_PASSWORD_FILE)} ` +
          `cannot be read: ${(err as Error).message}`,
      );
    }
  }
  if (!password)
    throw new ConfigError(
      'DRIFTLINE_VAULT_FILE is set but neither DRIFTLINE_VAULT_PASSWORD_FILE nor DRIFTLINE_VAULT_PASSWORD is',
    );
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(
      `DRIFTLINE_VAULT_FILE=${JSON.stringify(file)} cannot be read: ${(err as Error).message}`,
    );
  }
  const vars = parseDotenv(await decryptVault(text, password));
  const applied: string[] = [];
  for (const [k, v] of Object.entries(vars)) {
    if (env[k] === undefined || env[k] === '') {
      env[k] = v;
      applied.push(k);
    }
  }
  return applied;
}
