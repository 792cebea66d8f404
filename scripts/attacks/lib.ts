import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CredentialStore } from '../../broker/src/credentials.ts';
import type { Role } from '../../broker/src/acl.ts';

/**
 * Helpers of the attack scripts: a real `npm run broker` process (its own
 * pid, so its RSS is the broker's alone) on free loopback ports with a
 * throw-away credentials file, and small measuring utilities. Nothing here
 * is used by the services.
 */

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface AttackUser {
  username: string;
  password: string;
  role: Role;
  machineId?: string;
}

export interface BrokerProcess {
  readonly pid: number;
  readonly port: number;
  readonly httpPort: number;
  /** The broker's credentials file (for `npm run credentials -- … --file`). */
  readonly credentialsFile: string;
  readonly child: ChildProcess;
  /** Resident set size of the broker process, MiB (from /proc). */
  rssMiB(): Promise<number>;
  /** True while the process runs. */
  alive(): boolean;
  /** The broker's log so far (stdout + stderr). */
  log(): string;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Starts `broker/src/main.ts` with `node --import tsx` and waits until its MQTT port answers. */
export async function startBrokerProcess(options: {
  users: AttackUser[];
  env?: Record<string, string>;
  scryptCost?: number;
}): Promise<BrokerProcess> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'driftline-attack-'));
  const file = path.join(dir, 'credentials.json');
  const store = await CredentialStore.open(file, { scryptCost: options.scryptCost ?? 15 });
  for (const u of options.users) await store.add(u);
  await store.save();
  const port = await freePort();
  const httpPort = await freePort();
  let output = '';
  const child = spawn(process.execPath, ['--import', 'tsx', 'broker/src/main.ts'], {
    cwd: ROOT,
    env: {
      ...process.env,
      BROKER_HOST: '127.0.0.1',
      BROKER_PORT: String(port),
      BROKER_WS_PORT: 'off',
      BROKER_HTTP_PORT: String(httpPort),
      BROKER_CREDENTIALS_FILE: file,
      BROKER_SCRYPT_COST: String(options.scryptCost ?? 15),
      LOG_LEVEL: 'warn',
      ELASTICSEARCH_URL: '',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (b: Buffer) => (output += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (output += b.toString()));
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`broker exited during start-up:\n${output}`);
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (up) break;
    if (Date.now() > deadline) throw new Error(`broker did not listen within 60 s:\n${output}`);
    await sleep(200);
  }
  const pid = child.pid as number;
  return {
    pid,
    port,
    httpPort,
    credentialsFile: file,
    child,
    rssMiB: () => rssMiB(pid),
    alive: () => child.exitCode === null && child.signalCode === null,
    log: () => output,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** VmRSS of a process, MiB. */
export async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(status);
  return m ? Number(m[1]) / 1024 : NaN;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Parses `--name value` flags into a record (numbers stay strings). */
export function flags(argv = process.argv.slice(2)): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (!a.startsWith('--')) continue;
    const next = argv[i + 1];
    if (next === undefined || next.startsWith('--')) out[a.slice(2)] = 'true';
    else {
      out[a.slice(2)] = next;
      i++;
    }
  }
  return out;
}

/** Prints one result line as JSON (what RELIABILITY.md quotes). */
export function report(name: string, result: Record<string, unknown>): void {
  console.log(JSON.stringify({ attack: name, ...result }));
}
