/**
 * The services as the images and `npm start` run them: built into one module each by
 * scripts/build.mjs and started with plain `node --enable-source-maps` (no tsx). Each bundle loads
 * its whole module graph, validates its configuration with the one-line error, finds the project's
 * files from dist/ (package.json for the version), and maps a stack trace back to the TypeScript.
 * Built into a folder of its own under dist/, removed afterwards.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VERSION } from '../../../common/version.ts';
import { runProcess, type ProcessResult } from '../../helpers/run-process.ts';

const run = promisify(execFile);
const OUT = `dist/.test-${process.pid}-build`;
const SERVICES = [
  'broker',
  'kafka-bridge',
  'edge-inference',
  'retrainer',
  'dashboard',
  'simulator',
  'driftline',
];

/** Runs a bundle of OUT with `env` added; its exit code and output (never throws on a non-zero exit). */
const node = (args: string[], env: NodeJS.ProcessEnv = {}): Promise<ProcessResult> =>
  runProcess(process.execPath, ['--enable-source-maps', ...args], {
    env: { ...process.env, ...env },
    timeoutMs: 30_000,
  });

beforeAll(async () => {
  const { stdout } = await run(process.execPath, ['scripts/build.mjs', '--outdir', OUT]);
  expect(stdout).toMatch(/^built .*driftline\.mjs in [\d.]+ s\n$/);
}, 60_000);
afterAll(() => rm(OUT, { recursive: true, force: true }));

describe('the built services (scripts/build.mjs)', () => {
  it('builds one module and its source map per service, and the training thread beside them', () => {
    for (const name of [...SERVICES, 'train-worker']) {
      expect(existsSync(path.join(OUT, `${name}.mjs`)), name).toBe(true);
      expect(existsSync(path.join(OUT, `${name}.mjs.map`)), name).toBe(true);
    }
  });

  it('each service loads on plain node and refuses a bad setting with one line, exit 2', async () => {
    const runs = await Promise.all(
      SERVICES.map((name) => node([path.join(OUT, `${name}.mjs`)], { LOG_LEVEL: 'loud', KAFKA_BROKERS: '' })),
    );
    for (const [i, name] of SERVICES.entries()) {
      const r = runs[i] as Awaited<ReturnType<typeof node>>;
      expect(r.code, `${name}: ${r.stderr}`).toBe(2);
      // The bridge and the dashboard stop first at what they cannot run without; the rest at LOG_LEVEL.
      expect(r.stderr, name).toMatch(/^Invalid configuration: [^\n]+\n$/);
      if (!['kafka-bridge', 'dashboard'].includes(name))
        expect(r.stderr, name).toContain('LOG_LEVEL="loud" is invalid: expected error, warn, info or debug');
    }
  });

  it('the all-in-one reads the project from dist/: --help, and the version in a start-up failure', async () => {
    const help = await node([path.join(OUT, 'driftline.mjs'), 'start', '--help']);
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/^usage: npm start -- /);
    const bad = await node([path.join(OUT, 'driftline.mjs'), 'start', '--rate=-3']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('--rate="-3" is invalid: expected a positive number\n');
    // A flag parseArgs cannot take is a configuration error too: one line, then the usage; exit 2.
    const dash = await node([path.join(OUT, 'driftline.mjs'), 'start', '--rate', '-3']);
    expect(dash.code).toBe(2);
    expect(dash.stderr).toMatch(
      /^Option '--rate' argument is ambiguous\. [^\n]+ use '--rate=-XYZ'\.\nusage: npm start -- /,
    );
    expect(VERSION).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('maps a stack trace back to the TypeScript sources', async () => {
    // Nothing listens on port 1: the simulator fails to connect; LOG_LEVEL=debug prints the stack.
    const r = await node([path.join(OUT, 'simulator.mjs')], {
      MQTT_URL: 'mqtt://127.0.0.1:1',
      LOG_LEVEL: 'debug',
    });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/^fatal: TransportError: /);
    expect(r.stderr).toMatch(/simulator\/src\/[\w-]+\.ts:\d+:\d+/);
  });

  it('refuses an unknown bundle and an output folder outside the project, exit 2', async () => {
    const unknown = await node(['scripts/build.mjs', '--outdir', OUT, 'nope']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^build: unknown bundle nope \(one of: broker kafka-bridge /);
    const outside = await node(['scripts/build.mjs', '--outdir', '../elsewhere', 'broker']);
    expect(outside.code).toBe(2);
    expect(outside.stderr).toMatch(/^build: --outdir must name a folder inside /);
  });
});
