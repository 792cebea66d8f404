/**
 * The deploy playbook refuses to run without proper secrets
 * (ansible/tasks/check-vault.yml, imported by ansible/deploy.yml), run for real
 * with `ansible-playbook deploy.yml --tags vault-check` on a copy of ansible/
 * whose group_vars/all/vault.yml each test sets up (the repository's own
 * vault.yml, if any, is never touched). Refused, with a readable message: no
 * vault.yml (even with vault.yml.example next to it), a vault.yml that is not
 * encrypted, one with a change-me value, one lacking a key of the example; no
 * or a wrong vault password stops Ansible itself. Accepted: the file
 * `scripts/vault.ts init` writes, with the password from
 * ANSIBLE_VAULT_PASSWORD_FILE (as Jenkins passes it) or from
 * ANSIBLE_VAULT_PASSWORD through scripts/ansible-vault-pass-from-env.sh.
 * Fails, never skips, without ansible-playbook (scripts/setup/system-packages.sh ansible).
 */
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encryptVault } from '../../common/config/vault.ts';

const run = promisify(execFile);
const PASSWORD = 'vault-check-test-password';

let root = '';
let pwFile = '';
let baseEnv: NodeJS.ProcessEnv = {};
let copies = 0;

async function sh(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await run(cmd, args, {
      cwd: opts.cwd,
      env: { ...baseEnv, ...opts.env },
      maxBuffer: 16 << 20,
    });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string; message: string };
    if (typeof e.code !== 'number') throw new Error(`${cmd} could not run: ${e.message}`);
    return { code: e.code, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

/** A fresh copy of ansible/ with `vault` (text) as group_vars/all/vault.yml, or none. */
async function ansibleCopy(vault: string | undefined): Promise<string> {
  copies += 1;
  const dir = path.join(root, `ansible-${copies}`);
  await cp(path.resolve('ansible'), dir, {
    recursive: true,
    filter: (src) => path.basename(src) !== 'vault.yml' && path.basename(src) !== '.vault-pass',
  });
  if (vault !== undefined)
    await writeFile(path.join(dir, 'group_vars/all/vault.yml'), vault, { mode: 0o600 });
  return dir;
}

async function check(
  vault: string | undefined,
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; out: string }> {
  const dir = await ansibleCopy(vault);
  return sh('ansible-playbook', ['deploy.yml', '--tags', 'vault-check'], { cwd: dir, env });
}

async function exampleWith(replace: (text: string) => string): Promise<string> {
  return replace(await readFile(path.resolve('ansible/group_vars/all/vault.yml.example'), 'utf8'));
}

const withPassword = (): NodeJS.ProcessEnv => ({ ANSIBLE_VAULT_PASSWORD_FILE: pwFile });

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'driftline-vault-check-'));
  pwFile = path.join(root, 'vault-pass');
  await writeFile(pwFile, `${PASSWORD}\n`, { mode: 0o600 });
  baseEnv = {
    PATH: process.env.PATH,
    HOME: root,
    LC_ALL: 'C.UTF-8',
    ANSIBLE_LOCAL_TEMP: path.join(root, 'ansible-tmp'),
    ANSIBLE_NOCOLOR: '1',
  };
  const v = await sh('ansible-playbook', ['--version']);
  if (v.code !== 0)
    throw new Error(
      `ansible-playbook is not usable (${v.out.trim()}); install it with scripts/setup/system-packages.sh ansible`,
    );
}, 120_000);

afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

describe('ansible-playbook deploy.yml refuses to run without proper secrets', () => {
  it('refuses a missing vault.yml and does not fall back to vault.yml.example', async () => {
    const r = await check(undefined, withPassword());
    expect(r.code, r.out).not.toBe(0);
    expect(r.out).toMatch(/REFUSING TO DEPLOY: \S+\/group_vars\/all\/vault\.yml is missing/);
    expect(r.out).toContain("The example's values are never used");
    expect(r.out).not.toContain('Check that minikube');
  }, 120_000);

  it('refuses a vault.yml that is not encrypted, even with real-looking values', async () => {
    const plain = await exampleWith((t) => t.replace(/change-me-[a-z]+/g, 'Str0ng-Value-xyz'));
    const r = await check(plain, withPassword());
    expect(r.code, r.out).not.toBe(0);
    expect(r.out).toMatch(/REFUSING TO DEPLOY: \S+vault\.yml is not encrypted with Ansible Vault/);
  }, 120_000);

  it('refuses change-me values, naming the keys and never the values', async () => {
    const text = await exampleWith((t) =>
      t.replace(/change-me-[a-z]+/g, (m) => (m === 'change-me-operator' ? m : 'Str0ng-Value-xyz')),
    );
    const r = await check(await encryptVault(text, PASSWORD), withPassword());
    expect(r.code, r.out).not.toBe(0);
    expect(r.out).toMatch(/still has change-me placeholders in\s+vault_dashboard_operator_password\./);
    expect(r.out).not.toContain('Str0ng-Value-xyz');
  }, 120_000);

  it('refuses a vault that lacks a key of the example', async () => {
    const text = await exampleWith((t) =>
      t.replace(/^vault_bridge_mqtt_password:.*\n/m, '').replace(/change-me-[a-z]+/g, 'Str0ng-Value-xyz'),
    );
    const r = await check(await encryptVault(text, PASSWORD), withPassword());
    expect(r.code, r.out).not.toBe(0);
    expect(r.out).toMatch(/lacks vault_bridge_mqtt_password/);
  }, 120_000);

  it('stops without the vault password or with a wrong one', async () => {
    const good = await exampleWith((t) => t.replace(/change-me-[a-z]+/g, 'Str0ng-Value-xyz'));
    const encrypted = await encryptVault(good, PASSWORD);
    const none = await check(encrypted);
    expect(none.code, none.out).not.toBe(0);
    expect(none.out).toContain('Attempting to decrypt but no vault secrets found');
    const wrongFile = path.join(root, 'wrong-pass');
    await writeFile(wrongFile, 'not-the-password\n');
    const wrong = await check(encrypted, { ANSIBLE_VAULT_PASSWORD_FILE: wrongFile });
    expect(wrong.code, wrong.out).not.toBe(0);
    expect(wrong.out).toMatch(/Decryption failed/);
  }, 120_000);

  it('accepts the vault scripts/vault.ts init writes, with the password from a file or from the environment', async () => {
    const dir = await ansibleCopy(undefined);
    const vaultFile = path.join(dir, 'group_vars/all/vault.yml');
    const init = await sh(
      path.resolve('node_modules/.bin/tsx'),
      [path.resolve('scripts/vault.ts'), 'init', '--file', vaultFile],
      { env: withPassword() },
    );
    expect(init.code, init.out).toBe(0);
    const r = await sh('ansible-playbook', ['deploy.yml', '--tags', 'vault-check'], {
      cwd: dir,
      env: withPassword(),
    });
    expect(r.code, r.out).toBe(0);
    const keys = (await readFile(path.resolve('ansible/group_vars/all/vault.yml.example'), 'utf8'))
      .split('\n')
      .filter((l) => /^vault_\w+:/.test(l)).length;
    expect(keys).toBeGreaterThanOrEqual(15);
    expect(r.out).toMatch(new RegExp(`vault\\.yml: encrypted, ${keys} values, no placeholder`));
    expect(r.out).toMatch(/failed=0/);
    // Only the check ran: the deploy tasks are not tagged vault-check.
    expect(r.out).not.toContain('Check that minikube');
    const fromEnv = await sh('ansible-playbook', ['deploy.yml', '--tags', 'vault-check'], {
      cwd: dir,
      env: {
        ANSIBLE_VAULT_PASSWORD: PASSWORD,
        ANSIBLE_VAULT_PASSWORD_FILE: path.resolve('scripts/ansible-vault-pass-from-env.sh'),
      },
    });
    expect(fromEnv.code, fromEnv.out).toBe(0);
  }, 120_000);
});
