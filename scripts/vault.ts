/**
 * The deployment's Ansible Vault: `ansible/group_vars/all/vault.yml`, every key
 * of `vault.yml.example` with a strong generated value, encrypted with Ansible
 * Vault (format 1.1, AES256; the real `ansible-vault` CLI opens it, see
 * tests/external/ansible-vault.test.ts). The playbook refuses to deploy without
 * it (ansible/tasks/check-vault.yml).
 *
 *   npx tsx scripts/vault.ts init  [--file F] [--example F] [--force]
 *   npx tsx scripts/vault.ts update [--file F] [--example F]   (adds generated values for keys the example
 *                                                               gained; existing values are kept)
 *   npx tsx scripts/vault.ts check [--file F] [--example F]
 *   npx tsx scripts/vault.ts view  [--file F]        (keys and value lengths, never values)
 *
 * The vault password, in this order (the same variables Ansible and `make deploy` read):
 * 1. ANSIBLE_VAULT_PASSWORD_FILE: a file holding it, or an executable printing it
 *    (as Ansible treats it). A plain file inside the repository is refused: the
 *    password never lives in the repository.
 * 2. ANSIBLE_VAULT_PASSWORD: the password itself (`make deploy` hands it to Ansible
 *    through scripts/ansible-vault-pass-from-env.sh).
 * 3. `init` only: a new random password written to
 *    ${XDG_CONFIG_HOME:-~/.config}/driftline/vault-password (mode 600) unless that
 *    file exists, in which case it is used; `init` prints the export line to use it.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { access, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { decryptVault, encryptVault } from '../common/config/vault.ts';
import { ConfigError } from '../common/errors.ts';
import { runMain } from '../common/main.ts';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
export const DEFAULT_VAULT_FILE = path.join(ROOT, 'ansible/group_vars/all/vault.yml');
export const DEFAULT_EXAMPLE_FILE = path.join(ROOT, 'ansible/group_vars/all/vault.yml.example');
const PLACEHOLDER = /change-me/i;

/** A strong random value: 32 random bytes, base64url (43 characters, about 256 bits). */
export function generateSecret(): string {
  return randomBytes(32).toString('base64url');
}

/** The `key: value` pairs of a flat YAML mapping (what vault.yml and its example are). */
export function parseFlatYaml(text: string, what = 'YAML'): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.replace(/\s+#.*$/, '').trimEnd();
    if (line.trim() === '' || line.trimStart().startsWith('#') || line === '---') continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*):\s*(.*)$/.exec(line);
    if (!m) throw new ConfigError(`${what} line ${i + 1} is not "key: value"`);
    let value = (m[2] ?? '').trim();
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2)
      value = JSON.parse(value) as string;
    else if (value.startsWith("'") && value.endsWith("'") && value.length >= 2)
      value = value.slice(1, -1).replace(/''/g, "'");
    out[m[1] as string] = value;
  }
  return out;
}

/** YAML text for `values` (double-quoted scalars: any character is safe). */
export function toYaml(values: Record<string, string>, header: string[]): string {
  const lines = header.map((h) => `# ${h}`);
  for (const [k, v] of Object.entries(values)) lines.push(`${k}: ${JSON.stringify(v)}`);
  return `${lines.join('\n')}\n`;
}

/** What is wrong with decrypted vault values compared with the example's keys (empty: nothing). */
export function vaultProblems(values: Record<string, string>, exampleKeys: string[]): string[] {
  const problems: string[] = [];
  const missing = exampleKeys.filter((k) => !(k in values) || values[k] === '');
  if (missing.length) problems.push(`missing or empty: ${missing.join(', ')}`);
  const placeholders = Object.entries(values)
    .filter(([, v]) => PLACEHOLDER.test(v))
    .map(([k]) => k);
  if (placeholders.length) problems.push(`still a change-me placeholder: ${placeholders.join(', ')}`);
  return problems;
}

function insideRepo(file: string): boolean {
  const rel = path.relative(ROOT, path.resolve(file));
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}

export function defaultPasswordFile(env: NodeJS.ProcessEnv = process.env): string {
  const config = env.XDG_CONFIG_HOME || path.join(env.HOME || os.homedir(), '.config');
  return path.join(config, 'driftline', 'vault-password');
}

/** The vault password from ANSIBLE_VAULT_PASSWORD_FILE or ANSIBLE_VAULT_PASSWORD; undefined when neither is set. */
export async function passwordFromEnv(env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const file = env.ANSIBLE_VAULT_PASSWORD_FILE;
  if (file) {
    if (await isExecutable(file)) {
      const { stdout } = await promisify(execFile)(file, [], { env });
      const pw = stdout.trim();
      if (!pw) throw new ConfigError(`ANSIBLE_VAULT_PASSWORD_FILE=${file} (a script) printed no password`);
      return pw;
    }
    if (insideRepo(file))
      throw new ConfigError(
        `ANSIBLE_VAULT_PASSWORD_FILE=${file} is inside the repository; keep the vault password outside it (e.g. ${defaultPasswordFile(env)}) or in ANSIBLE_VAULT_PASSWORD`,
      );
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new ConfigError(`ANSIBLE_VAULT_PASSWORD_FILE=${file} cannot be read: ${(err as Error).message}`);
    }
    const pw = text.trim();
    if (!pw) throw new ConfigError(`ANSIBLE_VAULT_PASSWORD_FILE=${file} is empty`);
    return pw;
  }
  return env.ANSIBLE_VAULT_PASSWORD || undefined;
}

async function readExampleKeys(example: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(example, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read the example ${example}: ${(err as Error).message}`);
  }
  const keys = Object.keys(parseFlatYaml(text, example));
  if (!keys.length) throw new ConfigError(`${example} lists no keys`);
  return keys;
}

/** Creates the encrypted vault file; returns where the password came from. */
export async function initVault(opts: {
  file: string;
  example: string;
  force: boolean;
  env?: NodeJS.ProcessEnv;
}): Promise<{ passwordSource: string; keys: string[] }> {
  const env = opts.env ?? process.env;
  const exists = await stat(opts.file).then(
    () => true,
    () => false,
  );
  if (exists && !opts.force)
    throw new ConfigError(`${opts.file} exists; pass --force to replace it (its values are lost)`);
  const keys = await readExampleKeys(opts.example);
  let password = await passwordFromEnv(env);
  let passwordSource = env.ANSIBLE_VAULT_PASSWORD_FILE
    ? `ANSIBLE_VAULT_PASSWORD_FILE=${env.ANSIBLE_VAULT_PASSWORD_FILE}`
    : 'ANSIBLE_VAULT_PASSWORD';
  if (!password) {
    const pwFile = defaultPasswordFile(env);
    password = await readFile(pwFile, 'utf8').then(
      (t) => t.trim() || undefined,
      () => undefined,
    );
    if (!password) {
      password = generateSecret();
      await mkdir(path.dirname(pwFile), { recursive: true, mode: 0o700 });
      await writeFile(pwFile, `${password}\n`, { mode: 0o600, flag: 'wx' });
      passwordSource = `${pwFile} (new)`;
    } else passwordSource = pwFile;
  }
  const values = Object.fromEntries(keys.map((k) => [k, generateSecret()]));
  const plain = toYaml(values, [
    `Driftline deployment secrets, generated by scripts/vault.ts init on ${new Date().toISOString().slice(0, 10)}.`,
    'Edit with: ansible-vault edit ansible/group_vars/all/vault.yml',
  ]);
  const encrypted = `${await encryptVault(plain, password)}\n`;
  await mkdir(path.dirname(opts.file), { recursive: true });
  const tmp = `${opts.file}.tmp-${process.pid}`;
  await writeFile(tmp, encrypted, { mode: 0o600 });
  await rename(tmp, opts.file);
  return { passwordSource, keys };
}

/**
 * Adds a generated value for every key of the example the vault lacks (or has empty), keeping every
 * existing value, and re-encrypts it with the same password. Returns the keys added (none: the file is
 * left untouched).
 */
export async function updateVault(opts: {
  file: string;
  example: string;
  env?: NodeJS.ProcessEnv;
}): Promise<string[]> {
  const env = opts.env ?? process.env;
  const values = await readVault(opts.file, env);
  const keys = await readExampleKeys(opts.example);
  const added = keys.filter((k) => !(k in values) || values[k] === '');
  if (added.length === 0) return [];
  for (const k of added) values[k] = generateSecret();
  const password = (await passwordFromEnv(env)) as string;
  const plain = toYaml(values, [
    `Driftline deployment secrets; ${added.length} generated by scripts/vault.ts update on ${new Date().toISOString().slice(0, 10)}.`,
    'Edit with: ansible-vault edit ansible/group_vars/all/vault.yml',
  ]);
  const encrypted = `${await encryptVault(plain, password)}\n`;
  const tmp = `${opts.file}.tmp-${process.pid}`;
  await writeFile(tmp, encrypted, { mode: 0o600 });
  await rename(tmp, opts.file);
  return added;
}

/** Reads and decrypts the vault file (it must be Ansible-Vault encrypted). */
export async function readVault(
  file: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Record<string, string>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new ConfigError(`${file} is missing: create it with npx tsx scripts/vault.ts init`);
  }
  if (!text.startsWith('$ANSIBLE_VAULT;'))
    throw new ConfigError(`${file} is not encrypted with Ansible Vault: ansible-vault encrypt ${file}`);
  const password = await passwordFromEnv(env);
  if (!password)
    throw new ConfigError('no vault password: set ANSIBLE_VAULT_PASSWORD_FILE or ANSIBLE_VAULT_PASSWORD');
  return parseFlatYaml(await decryptVault(text, password), file);
}

/** Decrypts and checks the vault file; throws a ConfigError naming every problem. */
export async function checkVault(opts: {
  file: string;
  example: string;
  env?: NodeJS.ProcessEnv;
}): Promise<Record<string, string>> {
  const values = await readVault(opts.file, opts.env ?? process.env);
  const problems = vaultProblems(values, await readExampleKeys(opts.example));
  if (problems.length) throw new ConfigError(`${opts.file}: ${problems.join('; ')}`);
  return values;
}

function isMain(): boolean {
  return (
    process.argv[1] !== undefined &&
    path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)
  );
}

if (isMain()) {
  runMain(async () => {
    const [command, ...rest] = process.argv.slice(2);
    const { values } = parseArgs({
      args: rest,
      options: {
        file: { type: 'string', default: DEFAULT_VAULT_FILE },
        example: { type: 'string', default: DEFAULT_EXAMPLE_FILE },
        force: { type: 'boolean', default: false },
      },
      strict: true,
    });
    if (command === 'init') {
      const { passwordSource, keys } = await initVault({
        file: values.file,
        example: values.example,
        force: values.force,
      });
      process.stdout.write(
        `wrote ${values.file}: ${keys.length} generated secrets (${keys.join(', ')}), Ansible Vault AES256; password from ${passwordSource}\n`,
      );
      if (!process.env.ANSIBLE_VAULT_PASSWORD_FILE && !process.env.ANSIBLE_VAULT_PASSWORD)
        process.stdout.write(`use it with: export ANSIBLE_VAULT_PASSWORD_FILE=${defaultPasswordFile()}\n`);
    } else if (command === 'update') {
      const added = await updateVault({ file: values.file, example: values.example });
      process.stdout.write(
        added.length === 0
          ? `${values.file}: every key of the example has a value; nothing changed\n`
          : `${values.file}: added generated values for ${added.join(', ')} (existing values kept)\n`,
      );
    } else if (command === 'check') {
      const v = await checkVault({ file: values.file, example: values.example });
      process.stdout.write(`${values.file}: encrypted, ${Object.keys(v).length} values, no placeholder\n`);
    } else if (command === 'view') {
      for (const [k, val] of Object.entries(await readVault(values.file)))
        process.stdout.write(`${k}: ${PLACEHOLDER.test(val) ? val : `<${val.length} characters>`}\n`);
    } else {
      throw new ConfigError(
        'usage: npx tsx scripts/vault.ts init|update|check|view [--file F] [--example F] [--force]',
      );
    }
  });
}
