import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Aedes, type AuthenticateError } from 'aedes';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateMessage, validateObject } from '../../../common/schema/telemetry.ts';
import { generateStream } from '../../../common/scenario/generator.ts';
import { formatJsonlLine } from '../../../simulator/src/jsonl.ts';
import { loadScenarioFile } from '../../../common/scenario/scenario.ts';

/** `npm run simulate` as users run it: JSON-lines output, publishing to a broker, and graceful shutdown. */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'sim-cli-'));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Spawns the CLI: through `npx tsx` as documented, or (`direct`) as one
 * `node --import tsx` process, as the Dockerfile runs it, so signals reach it.
 */
function simulate(
  args: string[],
  options: {
    env?: NodeJS.ProcessEnv;
    direct?: boolean;
    onStart?: (kill: (signal: NodeJS.Signals) => void) => void;
  } = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const [command, prefix] = options.direct ? [process.execPath, ['--import', 'tsx']] : ['npx', ['tsx']];
    const child = spawn(command, [...prefix, 'simulator/src/cli.ts', ...args], {
      cwd: ROOT,
      env: { ...process.env, LOG_FORMAT: 'json', LOG_LEVEL: 'info', ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    options.onStart?.((signal) => child.kill(signal));
  });
}

const users: Record<string, string> = {
  'cli-a': 'pa',
  'cli-b': 'pb',
  'm-000': 'p0',
  'm-001': 'p1',
  inspector: 'pi',
  observer: 'po',
};
let url = '';
let closeBroker: () => Promise<void> = async () => undefined;

beforeAll(async () => {
  const broker = await Aedes.createBroker({
    authenticate(_client, username, password, done) {
      if (username !== undefined && users[username] === password?.toString()) return done(null, true);
      done(
        Object.assign(new Error('bad username or password'), { returnCode: 4 }) as AuthenticateError,
        false,
      );
    },
  });
  const server = createServer(broker.handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`;
  closeBroker = async () => {
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  writeFileSync(
    join(dir, 'credentials.json'),
    JSON.stringify({
      devices: { 'cli-a': 'pa', 'cli-b': 'pb', 'm-000': 'p0', 'm-001': 'p1' },
      inspection: { username: 'inspector', password: 'pi' },
    }),
  );
});

afterAll(async () => {
  await closeBroker();
  rmSync(dir, { recursive: true, force: true });
});

/** Subscribes to the telemetry and labels of the given machines. */
async function observe(
  machines: string[],
): Promise<{ client: MqttClient; telemetry: string[]; labels: string[] }> {
  const client = await mqtt.connectAsync(url, {
    clientId: `observer-${machines.join('-')}`,
    username: 'observer',
    password: 'po',
    protocolVersion: 4,
    reconnectPeriod: 0,
  });
  const telemetry: string[] = [];
  const labels: string[] = [];
  client.on('message', (topic, payload) => {
    const kind = topic.endsWith('/label') ? 'label' : 'telemetry';
    const r = validateMessage(kind, topic, payload);
    if (!r.ok) throw new Error(`invalid ${topic}: ${r.detail}`);
    (kind === 'label' ? labels : telemetry).push(payload.toString());
  });
  await client.subscribeAsync(
    machines.flatMap((m) => [`factory/${m}/telemetry`, `factory/${m}/label`]),
    { qos: 1 },
  );
  return { client, telemetry, labels };
}

async function waitFor(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe.concurrent('simulator CLI', () => {
  it('--out writes the stream as JSON lines, identical to the generator', async () => {
    const out = join(dir, 'stream.jsonl');
    const samples = 20_100; // the 20,000 baseline samples and the first 100 of bearing-wear
    const run = await simulate([
      '--scenario-file',
      'scenarios/sudden-shift.json',
      '--out',
      out,
      '--max-samples',
      String(samples),
      '--rate',
      '10',
    ]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const lines = readFileSync(out, 'utf8').trimEnd().split('\n');
    expect(lines).toHaveLength(samples);
    // --rate sets the sample clock: 10 Hz per machine × 4 machines = one sample every 25 ms.
    const expected: string[] = [];
    for (const s of generateStream(await loadScenarioFile(join(ROOT, 'scenarios/sudden-shift.json')), {
      intervalMs: 25,
    })) {
      expected.push(formatJsonlLine(s));
      if (expected.length === samples) break;
    }
    expect(lines.length === expected.length && lines.every((l, i) => l === expected[i])).toBe(true);
    const phases: Record<string, number> = {};
    lines.forEach((line, i) => {
      const record = JSON.parse(line) as { telemetry: { ts: number }; label: unknown; phase: string };
      if (i === 0) expect(Object.keys(record)).toEqual(['telemetry', 'label', 'phase']);
      expect(record.telemetry.ts).toBe(1_700_000_000_000 + 25 * i);
      if (!validateObject('telemetry', record.telemetry).ok || !validateObject('label', record.label).ok)
        expect.fail(`invalid line ${i}: ${line}`);
      phases[record.phase] = (phases[record.phase] ?? 0) + 1;
    });
    expect(phases).toEqual({ baseline: 20_000, 'bearing-wear': 100 });
    const log = run.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { message: string; service: { name: string; version: string } });
    expect(log[0]).toMatchObject({ message: 'simulator starting', service: { name: 'simulator' } });
    expect(log[0]?.service.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(log.some((l) => l.message === 'stream written')).toBe(true);
  });

  it('refuses a bad scenario file with one line naming the field (exit 2)', async () => {
    const file = join(dir, 'bad.json');
    writeFileSync(
      file,
      JSON.stringify({
        seed: 1,
        machines: 2,
        phases: [
          { name: 'a', samples: 5 },
          { name: 'b', samples: 5, features: { vibrationHz: { mul: 'x' } } },
        ],
      }),
    );
    const run = await simulate(['--scenario-file', file, '--out', join(dir, 'never.jsonl')], {
      direct: true,
    });
    expect(run.code).toBe(2);
    expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(run.stderr).toMatch(
      /bad\.json: invalid scenario: phases\[1\]\.features\.vibrationHz\.mul: expected a number/,
    );
  });

  it('publishes a scenario to the broker and exits when done', async () => {
    const file = join(dir, 'publish.json');
    writeFileSync(
      file,
      JSON.stringify({
        seed: 2,
        machines: 2,
        machineIds: ['cli-a', 'cli-b'],
        phases: [{ name: 'only', samples: 200 }],
      }),
    );
    const observer = await observe(['cli-a', 'cli-b']);
    const run = await simulate(
      ['--scenario-file', file, '--rate', 'max', '--label-delay-ms', '100', '--mqtt-url', url],
      {
        env: { SIMULATOR_CREDENTIALS_FILE: join(dir, 'credentials.json') },
        direct: true,
      },
    );
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    await waitFor(
      () => observer.telemetry.length === 200 && observer.labels.length === 200,
      10_000,
      'all messages',
    );
    await observer.client.endAsync();
    expect(run.stdout).toContain('"message":"scenario complete"');
    expect(run.stdout).toContain('"message":"simulator stopped"');
  });

  it('runs the default profile until SIGTERM, then flushes labels and exits 0', async () => {
    const observer = await observe(['m-000', 'm-001']);
    const run = await simulate(
      [
        '--machines',
        '2',
        '--rate',
        '20',
        '--label-delay-ms',
        '30000',
        '--mqtt-url',
        url,
        '--credentials-file',
        join(dir, 'credentials.json'),
      ],
      {
        direct: true,
        onStart: (kill) => {
          // Generous: a loaded 2-core machine starts tsx in seconds. On a timeout the run is stopped all
          // the same and the assertions below say what was missing (no unhandled rejection).
          void waitFor(() => observer.telemetry.length >= 10, 60_000, 'telemetry').then(
            () => kill('SIGTERM'),
            () => kill('SIGTERM'),
          );
        },
      },
    );
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('"message":"shutting down: draining in-flight work"');
    await waitFor(
      () => observer.labels.length === observer.telemetry.length,
      10_000,
      'labels flushed on shutdown',
    );
    await observer.client.endAsync();
    expect(observer.labels.length).toBeGreaterThanOrEqual(10);
  }, 120_000);
});

// Not concurrent with the runs above: two simulators of the same machines would take each other's MQTT sessions.
describe('simulator CLI ops server', () => {
  it('serves /healthz, /readyz and /metrics with SIMULATOR_HTTP_PORT while publishing', async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = createServer();
      probe.listen(0, '127.0.0.1', () => {
        const p = (probe.address() as AddressInfo).port;
        probe.close(() => resolve(p));
      });
    });
    // Its own observer client id (observe() derives it from the machines): m-001 only.
    const observer = await observe(['m-001']);
    let scraped = { health: 0, ready: 0, metrics: '' };
    const run = await simulate(
      [
        '--machines',
        '2',
        '--rate',
        '20',
        '--mqtt-url',
        url,
        '--credentials-file',
        join(dir, 'credentials.json'),
      ],
      {
        direct: true,
        env: { SIMULATOR_HTTP_PORT: String(port) },
        onStart: (kill) => {
          void waitFor(() => observer.telemetry.length >= 5, 60_000, 'telemetry')
            .then(async () => {
              const base = `http://127.0.0.1:${port}`;
              scraped = {
                health: (await fetch(`${base}/healthz`)).status,
                ready: (await fetch(`${base}/readyz`)).status,
                metrics: await (await fetch(`${base}/metrics`)).text(),
              };
            })
            .catch(() => undefined) // `scraped` stays unset: the assertions below fail and say so
            .finally(() => kill('SIGTERM'));
        },
      },
    );
    await observer.client.endAsync();
    expect(run.code).toBe(0);
    expect(scraped.health).toBe(200);
    expect(scraped.ready).toBe(200);
    expect(scraped.metrics).toMatch(/driftline_simulator_published_total\{kind="telemetry"\} [1-9]/);
    expect(scraped.metrics).toContain('driftline_simulator_phase_info{phase=');
  }, 120_000);
});
