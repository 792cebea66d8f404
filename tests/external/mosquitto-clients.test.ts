import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../common/logging/logger.ts';
import { startBroker, type RunningBroker } from '../../broker/src/broker.ts';
import { CredentialStore } from '../../broker/src/credentials.ts';

/**
 * Interop: Debian's mosquitto_pub / mosquitto_sub (package mosquitto-clients)
 * against the aedes broker started in this process. The clients run as child
 * processes asynchronously, so the in-process broker keeps serving them.
 */

const USERS = {
  dev1: { username: 'dev-m1', password: 'pw-dev-m1', role: 'device', machineId: 'm1' },
  dev2: { username: 'dev-m2', password: 'pw-dev-m2', role: 'device', machineId: 'm2' },
  edge: { username: 'edge', password: 'pw-edge', role: 'edge' },
} as const;
type User = (typeof USERS)[keyof typeof USERS];

const MISSING =
  'mosquitto_pub/mosquitto_sub not found: run scripts/setup/system-packages.sh ' +
  '(installs the Debian package mosquitto-clients)';

let broker: RunningBroker;
const children = new Set<ChildProcess>();
let registry: Registry;
let seq = 0;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function which(bin: string): Promise<boolean> {
  return new Promise((resolve) =>
    execFile('sh', ['-c', `command -v ${bin}`], (err) => resolve(err === null)),
  );
}

function auth(user: User | undefined, password?: string): string[] {
  return user === undefined ? [] : ['-u', user.username, '-P', password ?? user.password];
}

/** Runs mosquitto_pub to completion (asynchronously: the broker lives in this process). */
function pub(
  user: User | undefined,
  topic: string,
  message: string,
  opts: { qos?: 0 | 1; password?: string } = {},
): Promise<Result> {
  const args = [
    '-h',
    '127.0.0.1',
    '-p',
    String(broker.port),
    '-i',
    `pub-${++seq}`,
    ...auth(user, opts.password),
    '-t',
    topic,
    '-m',
    message,
    '-q',
    String(opts.qos ?? 1),
  ];
  return new Promise((resolve) => {
    execFile('mosquitto_pub', args, { encoding: 'utf8', timeout: 10_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * Starts mosquitto_sub (verbose: "topic payload" lines) and resolves once the
 * broker has granted its subscription; `done` resolves when it exits.
 */
async function sub(
  user: User,
  topic: string,
  opts: { count: number; clientId?: string; persistent?: boolean; waitForSuback?: boolean },
): Promise<{ done: Promise<Result>; stop(): Promise<void> }> {
  const clientId = opts.clientId ?? `sub-${++seq}`;
  const subscribed = new Promise<void>((resolve) => {
    const onSubscribe = (subs: { topic: string; qos: number }[], client: { id: string }): void => {
      if (client.id === clientId && subs.some((s) => s.topic === topic && s.qos === 1)) {
        broker.aedes.off('subscribe', onSubscribe);
        resolve();
      }
    };
    broker.aedes.on('subscribe', onSubscribe);
  });
  const args = [
    '-h',
    '127.0.0.1',
    '-p',
    String(broker.port),
    '-i',
    clientId,
    ...auth(user),
    '-t',
    topic,
    '-q',
    '1',
    '-v',
    '-C',
    String(opts.count),
    '-W',
    '10',
  ];
  if (opts.persistent === true) args.push('-c');
  const child = spawn('mosquitto_sub', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<Result>((resolve) =>
    child.once('exit', (code) => resolve({ code: code ?? -1, stdout, stderr })),
  );
  // SIGKILL: mosquitto_sub sometimes ignores SIGTERM while busy, and a dropped
  // connection (no DISCONNECT) is exactly the "edge worker went away" case anyway.
  const stop = (): Promise<void> => {
    const gone = disconnected(clientId);
    child.kill('SIGKILL');
    return gone;
  };
  if (opts.waitForSuback === false) return { done, stop };
  await Promise.race([
    subscribed,
    done.then((r) =>
      Promise.reject(new Error(`mosquitto_sub exited before subscribing: ${r.code} ${r.stderr}`)),
    ),
  ]);
  return { done, stop };
}

/** Resolves when the broker has noticed that `clientId` left. */
function disconnected(clientId: string): Promise<void> {
  return new Promise((resolve) => {
    const onDisconnect = (client: { id: string }): void => {
      if (client.id !== clientId) return;
      broker.aedes.off('clientDisconnect', onDisconnect);
      resolve();
    };
    broker.aedes.on('clientDisconnect', onDisconnect);
  });
}

async function denials(): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === 'driftline_broker_acl_denials_total');
  const values = (m?.values ?? []) as { value: number; labels: Record<string, string | number> }[];
  return values
    .filter((v) => v.labels.action === 'publish' && v.labels.role === 'device')
    .reduce((a, v) => a + v.value, 0);
}

let clientsInstalled = false;

beforeAll(async () => {
  const [hasPub, hasSub] = await Promise.all([which('mosquitto_pub'), which('mosquitto_sub')]);
  clientsInstalled = hasPub && hasSub;
  const credentials = CredentialStore.inMemory({ scryptCost: 10 });
  for (const u of Object.values(USERS)) await credentials.add(u, { persist: false });
  registry = new Registry();
  broker = await startBroker({ port: 0, wsPort: null, credentials, logger: silentLogger(), registry });
});

// Checked per test so that every test fails (never skips) when the clients are missing.
beforeEach(() => {
  if (!clientsInstalled) throw new Error(MISSING);
});

afterEach(() => {
  for (const child of children) child.kill('SIGKILL');
});

afterAll(async () => {
  await broker?.close();
});

describe('mosquitto clients against the aedes broker', () => {
  it('a device publishes with mosquitto_pub and a QoS 1 mosquitto_sub (edge) receives it', async () => {
    const s = await sub(USERS.edge, 'factory/+/telemetry', { count: 1 });
    const p = await pub(USERS.dev1, 'factory/m1/telemetry', '{"seq":1}', { qos: 1 });
    expect(p).toEqual({ code: 0, stdout: '', stderr: '' });
    const r = await s.done;
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('factory/m1/telemetry {"seq":1}\n');
  });

  it('refuses a wrong password: mosquitto_pub exits 4 (bad user name or password)', async () => {
    const p = await pub(USERS.dev1, 'factory/m1/telemetry', 'x', { password: 'wrong' });
    expect(p.code).toBe(4);
    expect(p.stderr).toMatch(/bad user name or password/);
  });

  it('refuses an anonymous client: mosquitto_pub exits 5 (not authorised)', async () => {
    const p = await pub(undefined, 'factory/m1/telemetry', 'x');
    expect(p.code).toBe(5);
    expect(p.stderr).toMatch(/not authori[sz]ed/);
  });

  it('refuses a cross-machine publish: the connection is dropped (exit 7) and nothing is delivered', async () => {
    const before = await denials();
    const s = await sub(USERS.edge, 'factory/+/telemetry', { count: 1 });
    const spoof = await pub(USERS.dev1, 'factory/m2/telemetry', 'spoofed', { qos: 1 });
    expect(spoof.code).toBe(7); // MOSQ_ERR_CONN_LOST: no PUBACK, the broker closed the connection
    expect(spoof.stderr).toMatch(/connection was lost/);
    const genuine = await pub(USERS.dev2, 'factory/m2/telemetry', 'genuine', { qos: 1 });
    expect(genuine.code).toBe(0);
    const r = await s.done;
    expect(r.stdout).toBe('factory/m2/telemetry genuine\n');
    expect(await denials()).toBe(before + 1);
  });

  it('keeps QoS 1 messages for a persistent mosquitto_sub session (-c) while it is away', async () => {
    const clientId = `edge-persistent-${++seq}`;
    const first = await sub(USERS.edge, 'factory/+/telemetry', { count: 100, clientId, persistent: true });
    await first.stop();
    await first.done;
    for (let i = 1; i <= 3; i++)
      expect((await pub(USERS.dev1, 'factory/m1/telemetry', `away-${i}`, { qos: 1 })).code).toBe(0);
    // The queued messages may arrive before its new SUBSCRIBE is handled, so do not wait for the SUBACK.
    const again = await sub(USERS.edge, 'factory/+/telemetry', {
      count: 3,
      clientId,
      persistent: true,
      waitForSuback: false,
    });
    const r = await again.done;
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      'factory/m1/telemetry away-1\nfactory/m1/telemetry away-2\nfactory/m1/telemetry away-3\n',
    );
  });
});
