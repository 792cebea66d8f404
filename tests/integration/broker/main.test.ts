import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectMqtt } from '../../../common/mqtt/connect.ts';
import { CredentialStore } from '../../../broker/src/credentials.ts';

/** `npm run broker` as a process: config errors, start-up log, credentials reload, graceful SIGTERM. */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const MAIN = path.join(ROOT, 'broker/src/main.ts');

let dir: string;
let file: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'driftline-broker-main-'));
  file = path.join(dir, 'credentials.json');
  const store = await CredentialStore.open(file, { scryptCost: 10 });
  await store.add({ username: 'edge', role: 'edge', password: 'pw-edge' });
  await store.save();
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function start(env: Record<string, string>): {
  child: ChildProcessWithoutNullStreams;
  lines: Record<string, unknown>[];
  stderr: () => string;
  exited: Promise<number | null>;
} {
  // node --import tsx rather than the tsx CLI: one process, so signals reach main.ts directly.
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      LOG_FORMAT: 'json',
      BROKER_CREDENTIALS_FILE: file,
      ...env,
    },
  });
  const lines: Record<string, unknown>[] = [];
  let buf = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
    }
  });
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, lines, stderr: () => err, exited };
}

async function until<T>(get: () => T | undefined, what: string, ms = 8000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = get();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('npm run broker', () => {
  it('exits 2 with one readable line on a bad setting', async () => {
    const p = start({ BROKER_PORT: 'abc' });
    expect(await p.exited).toBe(2);
    expect(p.stderr()).toBe(
      'Invalid configuration: BROKER_PORT="abc" is invalid: expected an integer from 0 to 65535\n',
    );
  });

  it('logs its config, serves logins, reloads changed credentials and stops cleanly on SIGTERM', async () => {
    const p = start({
      BROKER_PORT: '0',
      BROKER_WS_PORT: 'off',
      BROKER_HTTP_PORT: '0',
      BROKER_SCRYPT_COST: '10',
      BROKER_CREDENTIALS_RELOAD_MS: '50',
    });
    try {
      const ready = await until(() => p.lines.find((l) => l.message === 'broker ready'), 'the ready line');
      const first = p.lines[0] as {
        message: string;
        service: { name: string; version: string };
        driftline: { config: Record<string, unknown> };
      };
      expect(first.message).toBe('starting broker');
      expect(first.service).toEqual({
        name: 'broker',
        version: expect.stringMatching(/^\d+\.\d+\.\d+/) as unknown,
      });
      expect(first.driftline.config).toMatchObject({
        BROKER_HOST: '127.0.0.1',
        BROKER_PORT: 0,
        BROKER_WS_PORT: null,
        BROKER_CREDENTIALS_FILE: file,
      });
      const { mqttUrl, httpPort } = (ready as { driftline: { mqttUrl: string; httpPort: number } }).driftline;
      expect(mqttUrl).toMatch(/^mqtt:\/\/127\.0\.0\.1:\d+$/);
      expect((await fetch(`http://127.0.0.1:${httpPort}/healthz`)).status).toBe(200);

      const edge = await connectMqtt({
        url: mqttUrl,
        clientId: 'main-edge',
        username: 'edge',
        password: 'pw-edge',
        reconnectPeriodMs: 0,
      });
      await edge.endAsync();

      // A user added to the file (as the CLI does) can log in without a restart.
      const store = await CredentialStore.open(file, { scryptCost: 10 });
      await store.add({ username: 'late', role: 'dashboard', password: 'pw-late' });
      await store.save();
      await until(() => p.lines.find((l) => l.message === 'credentials reloaded'), 'the reload');
      const late = await connectMqtt({
        url: mqttUrl,
        clientId: 'late-2',
        username: 'late',
        password: 'pw-late',
        reconnectPeriodMs: 0,
      });
      await late.endAsync();

      p.child.kill('SIGTERM');
      expect(await p.exited).toBe(0);
      expect(p.lines.map((l) => l.message)).toEqual(
        expect.arrayContaining([
          'shutting down: draining in-flight work',
          'broker stopped',
          'stopped cleanly',
        ]),
      );
      expect(JSON.stringify(p.lines)).not.toContain('pw-edge');
    } finally {
      p.child.kill('SIGKILL');
    }
  });
});
