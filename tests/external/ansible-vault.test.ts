/**
 * Ansible Vault interoperability between the `ansible-vault` npm package
 * (common/config/vault.ts, scripts/vault.ts) and the REAL Ansible CLI (Debian
 * package `ansible`: scripts/setup/system-packages.sh ansible):
 * - a file the npm package encrypts opens with `ansible-vault view|decrypt`,
 *   and Ansible loads a YAML vault written that way as variables;
 * - a file `ansible-vault encrypt` writes (format 1.1, and 1.2 with a vault id)
 *   opens with the npm package, including a YAML vault like
 *   ansible/group_vars/all/vault.yml;
 * - a wrong password is refused on both sides;
 * - `scripts/vault.ts init` writes vault.yml with a generated strong value for
 *   every key of vault.yml.example, encrypted with the password from
 *   ANSIBLE_VAULT_PASSWORD_FILE, ANSIBLE_VAULT_PASSWORD or a new file outside
 *   the repository, and never takes a password file inside the repository.
 * Fails, never skips, when the Ansible CLI is missing.
 */
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decryptVault, encryptVault } from '../../common/config/vault.ts';
import { ConfigError } from '../../common/errors.ts';
import { parseFlatYaml } from '../../scripts/vault.ts';

const run = promisify(execFile);
const EXAMPLE = path.resolve('ansible/group_vars/all/vault.yml.example');
const PASSWORD = 'correct horse battery staple ✓';

let dir = '';
let pwFile = '';
let env: NodeJS.ProcessEnv = {};

/** Runs a command; resolves with exit code and combined output (never rejects on a non-zero exit). */
async function sh(
  cmd: string,
  args: string[],
  extraEnv: NodeJS.ProcessEnv = {},
): Promise<{ code: number; out: string; stdout: string }> {
  try {
    const { stdout, stderr } = await run(cmd, args, { env: { ...env, ...extraEnv }, maxBuffer: 16 << 20 });
    return { code: 0, out: stdout + stderr, stdout };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string; message: string };
    if (typeof e.code !== 'number') throw new Error(`${cmd} could not run: ${e.message}`);
    return { code: e.code, out: `${e.stdout ?? ''}${e.stderr ?? ''}`, stdout: e.stdout ?? '' };
  }
}

const tsx = (args: string[], extraEnv: NodeJS.ProcessEnv = {}) =>
  sh(path.resolve('node_modules/.bin/tsx'), [path.resolve('scripts/vault.ts'), ...args], extraEnv);

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'driftline-vault-'));
  pwFile = path.join(dir, 'vault-pass');
  await writeFile(pwFile, `${PASSWORD}\n`, { mode: 0o600 });
  env = {
    PATH: process.env.PATH,
    HOME: dir,
    LC_ALL: 'C.UTF-8',
    ANSIBLE_LOCAL_TEMP: path.join(dir, 'ansible-tmp'),
  };
  try {
    const { stdout } = await run('ansible-vault', ['--version'], { env });
    expect(stdout).toMatch(/ansible-vault \[core \d+\.\d+/);
  } catch (err) {
    throw new Error(
      `the ansible-vault CLI is not usable (${(err as Error).message}); install it with scripts/setup/system-packages.sh ansible`,
    );
  }
}, 120_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const YAML_VAULT = [
  '# like ansible/group_vars/all/vault.yml',
  'vault_edge_mqtt_password: "edge-Zq8#x: not a comment"',
  'vault_dashboard_operator_password: "grüße-ü-✓"',
  'vault_device_password_prefix: dev-0042',
  '',
].join('\n');

describe('written by the npm package, read by the Ansible CLI', () => {
  it('ansible-vault view and decrypt give back the exact text (dotenv and multi-line)', async () => {
    const plain = 'EDGE_MQTT_PASSWORD=s3cret\nDASHBOARD_MQTT_PASSWORD="two words"\n\nunicode=grüße ✓\n';
    const file = path.join(dir, 'npm-written.env.vault');
    await writeFile(file, await encryptVault(plain, PASSWORD));
    expect((await readFile(file, 'utf8')).startsWith('$ANSIBLE_VAULT;1.1;AES256\n')).toBe(true);
    const view = await sh('ansible-vault', ['view', '--vault-password-file', pwFile, file]);
    expect(view.code, view.out).toBe(0);
    expect(view.stdout).toBe(plain);
    const out = path.join(dir, 'npm-written.decrypted');
    const dec = await sh('ansible-vault', [
      'decrypt',
      '--vault-password-file',
      pwFile,
      '--output',
      out,
      file,
    ]);
    expect(dec.code, dec.out).toBe(0);
    expect(await readFile(out, 'utf8')).toBe(plain);
  });

  it('Ansible loads a YAML vault written by the npm package as variables', async () => {
    const file = path.join(dir, 'npm-vault.yml');
    await writeFile(file, `${await encryptVault(YAML_VAULT, PASSWORD)}\n`);
    const r = await sh('ansible', [
      'localhost',
      '-c',
      'local',
      '-i',
      'localhost,',
      '-m',
      'ansible.builtin.debug',
      '-a',
      'msg={{ vault_edge_mqtt_password }}|{{ vault_dashboard_operator_password }}|{{ vault_device_password_prefix }}',
      '-e',
      `@${file}`,
      '--vault-password-file',
      pwFile,
    ]);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain('"msg": "edge-Zq8#x: not a comment|grüße-ü-✓|dev-0042"');
  });

  it('the CLI refuses a wrong password', async () => {
    const file = path.join(dir, 'npm-wrong.vault');
    await writeFile(file, await encryptVault('x=1\n', PASSWORD));
    const wrong = path.join(dir, 'wrong-pass');
    await writeFile(wrong, 'not the password\n');
    const r = await sh('ansible-vault', ['view', '--vault-password-file', wrong, file]);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/Decryption failed/);
  });
});

describe('written by the Ansible CLI, read by the npm package', () => {
  it('ansible-vault encrypt (format 1.1) of a YAML vault', async () => {
    const file = path.join(dir, 'cli-vault.yml');
    await writeFile(file, YAML_VAULT);
    const r = await sh('ansible-vault', ['encrypt', '--vault-password-file', pwFile, file]);
    expect(r.code, r.out).toBe(0);
    const text = await readFile(file, 'utf8');
    expect(text.startsWith('$ANSIBLE_VAULT;1.1;AES256\n')).toBe(true);
    const plain = await decryptVault(text, PASSWORD);
    expect(plain).toBe(YAML_VAULT);
    expect(parseFlatYaml(plain)).toEqual({
      vault_edge_mqtt_password: 'edge-Zq8#x: not a comment',
      vault_dashboard_operator_password: 'grüße-ü-✓',
      vault_device_password_prefix: 'dev-0042',
    });
    await expect(decryptVault(text, 'not the password')).rejects.toBeInstanceOf(ConfigError);
  });

  it('ansible-vault encrypt with a vault id (format 1.2)', async () => {
    const file = path.join(dir, 'cli-vault-id.env');
    await writeFile(file, 'RETRAINER_MQTT_PASSWORD=r3t\n');
    const r = await sh('ansible-vault', ['encrypt', '--vault-id', `driftline@${pwFile}`, file]);
    expect(r.code, r.out).toBe(0);
    const text = await readFile(file, 'utf8');
    expect(text.startsWith('$ANSIBLE_VAULT;1.2;AES256;driftline\n')).toBe(true);
    expect(await decryptVault(text, PASSWORD)).toBe('RETRAINER_MQTT_PASSWORD=r3t\n');
  });
});

describe('scripts/vault.ts', () => {
  it('init writes an encrypted vault.yml with a strong value for every key of the example; the CLI opens it', async () => {
    const file = path.join(dir, 'init', 'vault.yml');
    const r = await tsx(['init', '--file', file], { ANSIBLE_VAULT_PASSWORD_FILE: pwFile });
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain(`password from ANSIBLE_VAULT_PASSWORD_FILE=${pwFile}`);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const view = await sh('ansible-vault', ['view', '--vault-password-file', pwFile, file]);
    expect(view.code, view.out).toBe(0);
    const values = parseFlatYaml(view.stdout);
    const exampleKeys = Object.keys(parseFlatYaml(await readFile(EXAMPLE, 'utf8')));
    expect(exampleKeys.length).toBeGreaterThanOrEqual(7);
    expect(Object.keys(values)).toEqual(exampleKeys);
    for (const v of Object.values(values)) {
      expect(v).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(v).not.toMatch(/change-me/);
    }
    expect(new Set(Object.values(values)).size).toBe(exampleKeys.length);
    // The values never reach the output.
    for (const v of Object.values(values)) expect(r.out).not.toContain(v);
    const check = await tsx(['check', '--file', file], { ANSIBLE_VAULT_PASSWORD_FILE: pwFile });
    expect(check.code, check.out).toBe(0);
    const again = await tsx(['init', '--file', file], { ANSIBLE_VAULT_PASSWORD_FILE: pwFile });
    expect(again.code).toBe(2);
    expect(again.out).toMatch(/exists; pass --force/);
  });

  it('update adds generated values for keys the example gained, keeps every existing value, and the CLI opens it', async () => {
    const file = path.join(dir, 'update', 'vault.yml');
    const oldExample = path.join(dir, 'update', 'old-example.yml');
    await mkdir(path.dirname(file), { recursive: true });
    const keys = Object.keys(parseFlatYaml(await readFile(EXAMPLE, 'utf8')));
    // A vault made from an older example: without the last three keys.
    await writeFile(
      oldExample,
      keys
        .slice(0, -3)
        .map((k) => `${k}: change-me`)
        .join('\n') + '\n',
    );
    const init = await tsx(['init', '--file', file, '--example', oldExample], {
      ANSIBLE_VAULT_PASSWORD_FILE: pwFile,
    });
    expect(init.code, init.out).toBe(0);
    const before = parseFlatYaml(
      (await sh('ansible-vault', ['view', '--vault-password-file', pwFile, file])).stdout,
    );
    const check = await tsx(['check', '--file', file], { ANSIBLE_VAULT_PASSWORD_FILE: pwFile });
    expect(check.code).toBe(2);
    expect(check.out).toContain(`missing or empty: ${keys.slice(-3).join(', ')}`);
    const up = await tsx(['update', '--file', file], { ANSIBLE_VAULT_PASSWORD_FILE: pwFile });
    expect(up.code, up.out).toBe(0);
    expect(up.out).toContain(
      `added generated values for ${keys.slice(-3).join(', ')} (existing values kept)`,
    );
    const after = parseFlatYaml(
      (await sh('ansible-vault', ['view', '--vault-password-file', pwFile, file])).stdout,
    );
    expect(Object.keys(after)).toEqual(keys);
    for (const k of keys.slice(0, -3)) expect(after[k], k).toBe(before[k]);
    for (const k of keys.slice(-3)) expect(after[k], k).toMatch(/^[A-Za-z0-9_-]{43}$/);
    for (const v of Object.values(after)) expect(up.out).not.toContain(v);
    expect((await tsx(['check', '--file', file], { ANSIBLE_VAULT_PASSWORD_FILE: pwFile })).code).toBe(0);
    const again = await tsx(['update', '--file', file], { ANSIBLE_VAULT_PASSWORD_FILE: pwFile });
    expect(again.out).toContain('every key of the example has a value; nothing changed');
  });

  it('takes the password from ANSIBLE_VAULT_PASSWORD, or creates one outside the repository', async () => {
    const fromEnv = path.join(dir, 'env', 'vault.yml');
    const r = await tsx(['init', '--file', fromEnv], { ANSIBLE_VAULT_PASSWORD: 'pw-from-env' });
    expect(r.code, r.out).toBe(0);
    expect(await decryptVault(await readFile(fromEnv, 'utf8'), 'pw-from-env')).toMatch(
      /^vault_edge_mqtt_password: "/m,
    );
    // Ansible gets the same password from the environment through the helper script.
    const view = await sh('ansible-vault', ['view', fromEnv], {
      ANSIBLE_VAULT_PASSWORD: 'pw-from-env',
      ANSIBLE_VAULT_PASSWORD_FILE: path.resolve('scripts/ansible-vault-pass-from-env.sh'),
    });
    expect(view.code, view.out).toBe(0);
    expect(view.stdout).toMatch(/^vault_device_password_prefix: "/m);

    const config = path.join(dir, 'xdg');
    const fresh = path.join(dir, 'fresh', 'vault.yml');
    const made = await tsx(['init', '--file', fresh], { XDG_CONFIG_HOME: config });
    expect(made.code, made.out).toBe(0);
    const created = path.join(config, 'driftline', 'vault-password');
    expect(made.out).toContain(`export ANSIBLE_VAULT_PASSWORD_FILE=${created}`);
    expect((await stat(created)).mode & 0o777).toBe(0o600);
    const cli = await sh('ansible-vault', ['view', '--vault-password-file', created, fresh]);
    expect(cli.code, cli.out).toBe(0);
  });

  it('refuses a password file inside the repository, and check names placeholders', async () => {
    const inRepo = path.resolve('.services', `vault-pass-test-${process.pid}`);
    await mkdir(path.dirname(inRepo), { recursive: true });
    await writeFile(inRepo, 'pw\n');
    try {
      const r = await tsx(['init', '--file', path.join(dir, 'never.yml')], {
        ANSIBLE_VAULT_PASSWORD_FILE: inRepo,
      });
      expect(r.code).toBe(2);
      expect(r.out).toMatch(/is inside the repository/);
      await expect(stat(path.join(dir, 'never.yml'))).rejects.toMatchObject({ code: 'ENOENT' });
    } finally {
      await rm(inRepo, { force: true });
    }
    const placeholder = path.join(dir, 'placeholder.yml');
    await copyFile(EXAMPLE, placeholder);
    const enc = await sh('ansible-vault', ['encrypt', '--vault-password-file', pwFile, placeholder]);
    expect(enc.code, enc.out).toBe(0);
    const check = await tsx(['check', '--file', placeholder], { ANSIBLE_VAULT_PASSWORD_FILE: pwFile });
    expect(check.code).toBe(2);
    expect(check.out).toMatch(/still a change-me placeholder: vault_edge_mqtt_password, /);
    expect(check.out).not.toMatch(/change-me-edge/);
  });
});
