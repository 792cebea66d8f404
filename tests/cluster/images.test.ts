/**
 * The images `make images` built (their references: $DRIFTLINE_CACHE/deploy/images.yml), on the local
 * docker engine, before anything is deployed:
 * - each is non-root (uid 1000), labelled with its version and git commit, and runs its program
 *   behind tini (no npx, no shell), so the program gets the signals: a service its bundle,
 *   `node --enable-source-maps dist/<service>.mjs` (scripts/build.mjs, built in the image), the jobs
 *   image `node --import tsx <entry>`;
 * - each service's command, started in a private docker network next to a broker (and Kafka for the
 *   bridge), logs its clean-stop line "stopped cleanly" and exits 0 on SIGTERM (`docker stop`);
 * - Kafka, MLflow and Elasticsearch stop on SIGTERM with their own shutdown lines;
 * - the jobs image loads its programs (a configuration error, exit 2, proves every module resolved).
 * Nothing is published on the host: the containers talk over the network; only `docker logs` is read.
 * Fails, never skips, without docker or the images.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile, chmod } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CredentialStore } from '../../broker/src/credentials.ts';
import { hashDashboardPassword } from '../../dashboard/src/auth.ts';

const run = promisify(execFile);
const CACHE = process.env.DRIFTLINE_CACHE || path.join(os.homedir(), '.cache/driftline');
const ID = randomBytes(3).toString('hex');
const NET = `driftline-imgtest-${ID}`;
const containers: string[] = [];
let dir = '';
let images: Record<string, string> = {};

async function docker(args: string[], timeoutMs = 120_000): Promise<string> {
  try {
    const { stdout } = await run('docker', args, { maxBuffer: 32 << 20, timeout: timeoutMs });
    return stdout.trim();
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`docker ${args.slice(0, 3).join(' ')} … failed: ${(e.stderr || e.message).trim()}`);
  }
}

const logsOf = async (name: string): Promise<string> => {
  try {
    const { stdout, stderr } = await run('docker', ['logs', name], { maxBuffer: 32 << 20 });
    return stdout + stderr;
  } catch (err) {
    return String(err);
  }
};

async function waitForLog(name: string, pattern: RegExp, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = await logsOf(name);
    if (pattern.test(text)) return;
    const state = await docker(['inspect', '-f', '{{.State.Status}} {{.State.ExitCode}}', name]).catch(
      () => '?',
    );
    if (state.startsWith('exited'))
      throw new Error(`${name} exited (${state}) before logging ${pattern}:\n${text.slice(-2000)}`);
    if (Date.now() > deadline)
      throw new Error(`${name}: no ${pattern} within ${timeoutMs / 1000} s:\n${text.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Starts a container of `image` on the test network (the image's own entrypoint and command unless `cmd`). */
async function start(
  name: string,
  image: string,
  env: Record<string, string>,
  opts: { mounts?: string[]; cmd?: string[] } = {},
): Promise<string> {
  const full = `dl-${ID}-${name}`;
  const args = [
    'run',
    '-d',
    '--name',
    full,
    '--network',
    NET,
    '--network-alias',
    name,
    '--read-only',
    '--tmpfs',
    '/tmp',
    '--tmpfs',
    '/app/.driftline:uid=1000,gid=1000',
  ];
  for (const [k, v] of Object.entries(env)) args.push('-e', `${k}=${v}`);
  for (const m of opts.mounts ?? []) args.push('-v', m);
  args.push(image, ...(opts.cmd ?? []));
  await docker(args);
  containers.push(full);
  return full;
}

/** docker stop (SIGTERM, then SIGKILL after `grace` s); returns the exit code and the logs. */
async function stop(name: string, grace = 60): Promise<{ code: number; logs: string; seconds: number }> {
  const t = Date.now();
  await docker(['stop', '-t', String(grace), name], (grace + 30) * 1000);
  const code = Number(await docker(['inspect', '-f', '{{.State.ExitCode}}', name]));
  return { code, logs: await logsOf(name), seconds: (Date.now() - t) / 1000 };
}

const PASSWORDS = {
  edge: 'edge-pw-imgtest',
  dashboard: 'dash-pw-imgtest',
  bridge: 'bridge-pw-imgtest',
  device: 'dev-pw-imgtest',
  inspection: 'insp-pw-imgtest',
};

beforeAll(async () => {
  const text = await readFile(path.join(CACHE, 'deploy/images.yml'), 'utf8').catch(() => {
    throw new Error(`${CACHE}/deploy/images.yml is missing: build the images first (make images)`);
  });
  images = Object.fromEntries(
    [...text.matchAll(/^ {2}([a-z-]+): "([^"]*)"$/gm)].map((m) => [m[1] as string, m[2] as string]),
  );
  await docker(['network', 'create', NET]);
  dir = await mkdtemp(path.join(os.tmpdir(), 'driftline-imgtest-'));
  await chmod(dir, 0o755);
  // The broker's logins (scrypt hashes), the simulator's device passwords, the dashboard's user.
  const store = await CredentialStore.open(path.join(dir, 'credentials.json'));
  await store.add({ username: 'edge', role: 'edge', password: PASSWORDS.edge });
  await store.add({ username: 'dashboard', role: 'dashboard', password: PASSWORDS.dashboard });
  await store.add({ username: 'bridge', role: 'bridge', password: PASSWORDS.bridge });
  await store.add({ username: 'inspection', role: 'inspection', password: PASSWORDS.inspection });
  await store.add({ username: 'm-000', role: 'device', machineId: 'm-000', password: PASSWORDS.device });
  await store.save();
  await writeFile(
    path.join(dir, 'simulator.json'),
    JSON.stringify({
      devices: { 'm-000': PASSWORDS.device },
      inspection: { username: 'inspection', password: PASSWORDS.inspection },
    }),
  );
  await writeFile(
    path.join(dir, 'users.json'),
    JSON.stringify([await hashDashboardPassword('operator', 'operator', 'op-pw-imgtest')]),
  );
  for (const f of ['credentials.json', 'simulator.json', 'users.json']) await chmod(path.join(dir, f), 0o644);
}, 120_000);

afterAll(async () => {
  for (const c of containers) await docker(['rm', '-f', c]).catch(() => undefined);
  await docker(['network', 'rm', NET]).catch(() => undefined);
  if (dir) await rm(dir, { recursive: true, force: true });
}, 120_000);

const SERVICES = ['broker', 'kafka-bridge', 'edge-inference', 'retrainer', 'dashboard', 'simulator', 'jobs'];

describe('the images make images built', () => {
  it('every image the manifests name has a reference and exists', async () => {
    for (const name of [...SERVICES, 'kafka', 'mlflow', 'elasticsearch']) {
      expect(images[name], `images.yml: ${name}`).toMatch(/^driftline\/[a-z-]+:\S+$/);
      await docker(['image', 'inspect', images[name] as string]);
    }
  });

  it('service images: uid 1000, tini → node on the built service (no npx, no tsx), OCI version and revision labels', async () => {
    const head = (await run('git', ['rev-parse', 'HEAD'])).stdout.trim();
    for (const name of SERVICES) {
      const cfg = JSON.parse(
        await docker(['image', 'inspect', '-f', '{{json .Config}}', images[name] as string]),
      ) as {
        User: string;
        Entrypoint: string[] | null;
        Cmd: string[];
        Labels: Record<string, string>;
        Healthcheck?: { Test: string[] };
        StopSignal?: string;
      };
      expect(cfg.User, name).toBe('1000:1000');
      expect(cfg.Entrypoint, name).toEqual(['/usr/bin/tini', '--']);
      expect(cfg.Cmd, name).toEqual(
        name === 'jobs'
          ? ['node', '--import', 'tsx', 'jobs/src/kafka-provision.ts']
          : ['node', '--enable-source-maps', `dist/${name}.mjs`],
      );
      expect(cfg.Cmd.join(' '), name).not.toMatch(/npx|npm|sh -c/);
      expect(cfg.StopSignal, name).toBe('SIGTERM');
      expect(cfg.Labels['org.opencontainers.image.version'], name).toMatch(/^\d+\.\d+\.\d+/);
      expect(
        cfg.Labels['org.opencontainers.image.revision'],
        `${name}: built from this commit (make images)`,
      ).toMatch(new RegExp(`^${head}(-dirty)?$`));
      // An HTTP health check where the service has an ops port; the bridge and simulator are probed by
      // Kubernetes on their opt-in ops ports, the jobs run to completion.
      if (['broker', 'edge-inference', 'retrainer', 'dashboard'].includes(name))
        expect(cfg.Healthcheck?.Test.join(' '), name).toMatch(/healthz/);
    }
  });

  it('each service stops cleanly on SIGTERM: "stopped cleanly", exit 0', async () => {
    const mounts = [`${dir}:/etc/driftline:ro`];
    // Kafka (PLAINTEXT here) for the bridge; the broker for everything that speaks MQTT.
    const kafka = await start('kafka', images.kafka as string, {
      KAFKA_ADVERTISED_HOST: 'kafka',
      KAFKA_SASL: 'none',
      KAFKA_AUTO_CREATE_TOPICS: 'true',
    });
    const broker = await start(
      'broker',
      images.broker as string,
      { BROKER_CREDENTIALS_FILE: '/etc/driftline/credentials.json' },
      { mounts },
    );
    await waitForLog(broker, /"broker ready"/, 120_000);
    await waitForLog(kafka, /Kafka Server started/, 180_000);
    const started: Record<string, string> = {
      'kafka-bridge': await start('bridge', images['kafka-bridge'] as string, {
        MQTT_URL: 'mqtt://broker:1883',
        BRIDGE_MQTT_PASSWORD: PASSWORDS.bridge,
        KAFKA_BROKERS: 'kafka:9092',
        BRIDGE_HTTP_HOST: '0.0.0.0',
      }),
      'edge-inference': await start('edge', images['edge-inference'] as string, {
        MQTT_URL: 'mqtt://broker:1883',
        EDGE_MQTT_PASSWORD: PASSWORDS.edge,
        EDGE_CLIENT_ID: 'edge-imgtest',
      }),
      retrainer: await start('retrainer', images.retrainer as string, {}),
      dashboard: await start(
        'dashboard',
        images.dashboard as string,
        {
          MQTT_URL: 'ws://broker:8083/mqtt',
          DASHBOARD_MQTT_PASSWORD: PASSWORDS.dashboard,
          DASHBOARD_USERS_FILE: '/etc/driftline/users.json',
        },
        { mounts },
      ),
      simulator: await start(
        'simulator',
        images.simulator as string,
        {
          MQTT_URL: 'mqtt://broker:1883',
          SIMULATOR_CREDENTIALS_FILE: '/etc/driftline/simulator.json',
          SIMULATOR_MACHINES: '1',
        },
        { mounts },
      ),
    };
    const ready: Record<string, RegExp> = {
      'kafka-bridge': /"kafka bridge ops server listening"/,
      'edge-inference': /"ingest: mqtt"/,
      retrainer: /"retrainer started"/,
      dashboard: /dashboard listening on/,
      simulator: /"simulator starting"/,
    };
    for (const [name, c] of Object.entries(started)) await waitForLog(c, ready[name] as RegExp, 180_000);
    // Let them settle (connections made, first messages flowing), then SIGTERM each.
    await new Promise((r) => setTimeout(r, 5000));
    const results: string[] = [];
    for (const [name, c] of [...Object.entries(started), ['broker', broker] as const]) {
      const r = await stop(c, name === 'retrainer' ? 140 : 30);
      const clean = /"message":"stopped cleanly"/.test(r.logs);
      results.push(`${name}: exit ${r.code}, ${clean ? 'stopped cleanly' : 'NO clean-stop line'}`);
      if (!clean || r.code !== 0) process.stderr.write(`---- ${name} logs\n${r.logs.slice(-3000)}\n`);
      else process.stdout.write(`${name}: stopped cleanly in ${r.seconds.toFixed(1)} s\n`);
    }
    expect(results).toEqual([...Object.keys(started), 'broker'].map((n) => `${n}: exit 0, stopped cleanly`));
    const k = await stop(kafka, 60);
    expect(k.logs).toMatch(/shut down completed/);
  }, 600_000);

  it('MLflow and Elasticsearch stop on SIGTERM with their shutdown lines', async () => {
    const mlflow = await start('mlflow', images.mlflow as string, {}, {});
    const es = await start('elasticsearch', images.elasticsearch as string, {});
    await waitForLog(mlflow, /Application startup complete/, 240_000);
    await waitForLog(es, /node started/, 240_000);
    const m = await stop(mlflow, 30);
    expect(m.logs).toMatch(/Finished server process|Shutting down/);
    expect(m.code).toBe(0);
    const e = await stop(es, 60);
    expect(e.logs).toMatch(/\] closed/);
  }, 600_000);

  it('the jobs image loads its programs (a configuration error, exit 2, after every import resolved)', async () => {
    for (const [program, pattern] of [
      ['jobs/src/bootstrap-champion.ts', /MLFLOW_TRACKING_URI is required/],
      ['jobs/src/kafka-provision.ts', /KAFKA_BROKERS is required/],
    ] as const) {
      const name = `dl-${ID}-jobs-${path.basename(program, '.ts')}`;
      containers.push(name);
      const code = await run('docker', [
        'run',
        '--name',
        name,
        '--network',
        NET,
        '--read-only',
        '--tmpfs',
        '/tmp',
        images.jobs as string,
        'node',
        '--import',
        'tsx',
        program,
      ]).then(
        () => 0,
        (err: { code?: number }) => err.code ?? -1,
      );
      expect(code, program).toBe(2);
      expect(await logsOf(name), program).toMatch(pattern);
    }
  }, 180_000);
});
