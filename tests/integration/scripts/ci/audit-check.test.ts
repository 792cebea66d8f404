/**
 * The npm audit gate of the SAST stage (scripts/ci/audit-check.ts) with the
 * real npm client: `npm audit --json` runs on a fixture project (a lock file,
 * no node_modules) against a stub registry on 127.0.0.1 that serves the bulk
 * advisory endpoint and the packuments npm asks for. The advisories are real
 * GHSA ids; which ones the stub reports is up to each test. Checked: the gate
 * fails on an unaccepted high/critical finding (dev dependencies included),
 * passes when each one is accepted, fails on a stale or expired exception, on a
 * malformed exceptions file and when the advisory endpoint fails. Two runs are
 * the command as its own process, as CI runs it; the others vary only the
 * exceptions and the day, so they run it in this process (`auditCheck`) on the
 * report the real npm gave for the fixture.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  auditCheck,
  evaluate,
  findingsOf,
  parseExceptions,
  runNpmAudit,
  type AuditException,
} from '../../../../scripts/ci/audit-check.ts';
import { runProcess } from '../../../helpers/run-process.ts';

interface Advisory {
  id: number;
  url: string;
  title: string;
  severity: string;
  vulnerable_versions: string;
}
const ADVISORIES: Record<string, Advisory[]> = {
  minimist: [
    {
      id: 1096799,
      url: 'https://github.com/advisories/GHSA-xvch-5gv4-984h',
      title: 'Prototype Pollution in minimist',
      severity: 'critical',
      vulnerable_versions: '>=1.0.0 <1.2.6',
    },
  ],
  lodash: [
    {
      id: 1096305,
      url: 'https://github.com/advisories/GHSA-35jh-r3h4-6jhm',
      title: 'Command Injection in lodash',
      severity: 'high',
      vulnerable_versions: '<4.17.21',
    },
  ],
  ms: [
    {
      id: 1094419,
      url: 'https://github.com/advisories/GHSA-w9mr-4mfr-499f',
      title: 'Vercel ms Inefficient Regular Expression Complexity vulnerability',
      severity: 'moderate',
      vulnerable_versions: '<2.0.0',
    },
  ],
};
const VERSIONS: Record<string, string[]> = {
  minimist: ['1.2.5', '1.2.8'],
  lodash: ['4.17.20', '4.17.21'],
  ms: ['1.0.0', '2.1.3'],
};

let server: http.Server;
let registry = '';
let bulkStatus = 200;
let root = '';
let project = '';
const requests: string[] = [];

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'driftline-audit-'));
  project = path.join(root, 'project');
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') body = zlib.gunzipSync(body);
      requests.push(`${req.method} ${req.url} ${body.toString()}`);
      res.setHeader('content-type', 'application/json');
      if (req.method === 'POST' && req.url === '/-/npm/v1/security/advisories/bulk') {
        if (bulkStatus !== 200) {
          res.statusCode = bulkStatus;
          res.end();
          return;
        }
        const asked = JSON.parse(body.toString()) as Record<string, string[]>;
        res.end(JSON.stringify(Object.fromEntries(Object.keys(asked).map((n) => [n, ADVISORIES[n] ?? []]))));
        return;
      }
      const name = decodeURIComponent((req.url ?? '/').slice(1));
      const versions = VERSIONS[name];
      if (req.method === 'GET' && versions) {
        res.end(
          JSON.stringify({
            name,
            'dist-tags': { latest: versions.at(-1) },
            versions: Object.fromEntries(
              versions.map((v) => [
                v,
                { name, version: v, dist: { tarball: `${registry}/${name}/-/${name}-${v}.tgz` } },
              ]),
            ),
          }),
        );
        return;
      }
      res.statusCode = 404;
      res.end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  registry = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  await mkdir(project, { recursive: true });
  const pkg = {
    name: 'audit-fixture',
    version: '1.0.0',
    dependencies: { minimist: '1.2.5', ms: '1.0.0' },
    devDependencies: { lodash: '4.17.20' },
  };
  await writeFile(path.join(project, 'package.json'), JSON.stringify(pkg));
  await writeFile(
    path.join(project, 'package-lock.json'),
    JSON.stringify({
      name: 'audit-fixture',
      version: '1.0.0',
      lockfileVersion: 3,
      requires: true,
      packages: {
        '': pkg,
        'node_modules/minimist': { version: '1.2.5' },
        'node_modules/ms': { version: '1.0.0' },
        'node_modules/lodash': { version: '4.17.20', dev: true },
      },
    }),
  );
});

afterAll(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  if (root) await rm(root, { recursive: true, force: true });
});

const CRITICAL: AuditException = {
  package: 'minimist',
  advisory: 'GHSA-xvch-5gv4-984h',
  severity: 'critical',
  reason: 'fixture: only parses our own fixed arguments, never untrusted input',
  acceptedBy: 'ci-test',
  acceptedOn: '2026-01-10',
  expires: '2026-04-10',
};
const HIGH: AuditException = {
  package: 'lodash',
  advisory: 'GHSA-35jh-r3h4-6jhm',
  reason: 'fixture: dev-only, template() is never called with input from outside',
  acceptedBy: 'ci-test',
  acceptedOn: '2026-01-10',
  expires: '2026-04-10',
};

let run = 0;
/** The environment npm runs in: this stub as its registry, a cache of its own, no npm_* of the parent run. */
function npmEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k)) env[k] = v;
  return Object.assign(env, {
    npm_config_registry: registry,
    npm_config_cache: path.join(root, 'npm-cache'),
  });
}

/** Writes `exceptions` to a file of its own; returns the command's arguments for it. */
async function argsFor(exceptions: unknown, today: string): Promise<{ args: string[]; report: string }> {
  run += 1;
  const file = path.join(root, `exceptions-${run}.json`);
  await writeFile(file, typeof exceptions === 'string' ? exceptions : JSON.stringify({ exceptions }));
  const report = path.join(root, `report-${run}`);
  return {
    args: ['--exceptions', file, '--cwd', project, '--report', report, '--today', today],
    report,
  };
}

/** The command as CI runs it: its own node process, which runs the real `npm audit`. */
async function checkProcess(exceptions: unknown, today = '2026-02-01') {
  const { args, report } = await argsFor(exceptions, today);
  const { code, out } = await runProcess(
    process.execPath,
    ['--import', 'tsx', path.resolve('scripts/ci/audit-check.ts'), ...args],
    { env: npmEnv() },
  );
  return { code, out, report };
}

let npmReport: Promise<unknown> | undefined;
/**
 * The command in this process, on the report the real `npm audit` gives for the fixture (asked once and
 * shared: the tests below vary only the exceptions and the day). `asked` counts the audits it wanted.
 */
async function check(exceptions: unknown, today = '2026-02-01') {
  const { args } = await argsFor(exceptions, today);
  let out = '';
  let asked = 0;
  const code = await auditCheck(args, {
    runAudit: (cwd) => {
      asked += 1;
      return (npmReport ??= runNpmAudit(cwd, npmEnv()));
    },
    stdout: (t) => void (out += t),
    stderr: (t) => void (out += t),
  });
  return { code, out, asked };
}

describe('npm audit gate with the real npm client, as its own process', () => {
  it('fails on unaccepted high and critical findings, dev dependencies included, not on moderate ones', async () => {
    const { code, out, report } = await checkProcess([]);
    expect(code, out).toBe(1);
    expect(out).toMatch(/FAIL: 2 finding\(s\) at high or above/);
    expect(out).toMatch(/critical\s+minimist GHSA-xvch-5gv4-984h Prototype Pollution in minimist/);
    expect(out).toMatch(/high\s+lodash GHSA-35jh-r3h4-6jhm/);
    expect(out).not.toMatch(/^\s+moderate\s+ms/m);
    expect(out).toMatch(/3 advisories \(0 info, 0 low, 1 moderate, 1 high, 1 critical\)/);
    // npm really asked the stub for every installed package, dev dependency included.
    const bulk = requests.find((r) => r.startsWith('POST /-/npm/v1/security/advisories/bulk'));
    expect(bulk).toContain('"lodash":["4.17.20"]');
    const raw = JSON.parse(await readFile(path.join(report, 'npm-audit.json'), 'utf8')) as {
      auditReportVersion: number;
    };
    expect(raw.auditReportVersion).toBe(2);
    const ev = JSON.parse(await readFile(path.join(report, 'audit-check.json'), 'utf8')) as { ok: boolean };
    expect(ev.ok).toBe(false);
  }, 120_000);

  it('fails closed when the advisory endpoint fails', async () => {
    bulkStatus = 405;
    try {
      const { code, out } = await checkProcess([]);
      expect(code, out).toBe(1);
      expect(out).toMatch(/npm audit gave no report: 405 Method Not Allowed - POST .*advisories\/bulk/);
    } finally {
      bulkStatus = 200;
    }
  }, 120_000);
});

describe('npm audit gate on the real npm report, exceptions and days varied', () => {
  it('passes when every finding at the gate has a current exception', async () => {
    const { code, out } = await check([CRITICAL, HIGH]);
    expect(code, out).toBe(0);
    expect(out).toMatch(
      /accepted: critical minimist GHSA-xvch-5gv4-984h .*ci-test, 2026-01-10, until 2026-04-10/,
    );
    expect(out).toMatch(/accepted: high\s+lodash GHSA-35jh-r3h4-6jhm/);
    expect(out).toContain('OK: no finding at the gate');
  }, 120_000);

  it('fails on a stale exception (nothing reported for it any more, or only below the gate)', async () => {
    const gone = { ...HIGH, package: 'left-pad', advisory: 'GHSA-2x7j-ggqx-2p8m' };
    const moderate = { ...HIGH, package: 'ms', advisory: 'GHSA-w9mr-4mfr-499f' };
    const { code, out } = await check([CRITICAL, HIGH, gone, moderate]);
    expect(code, out).toBe(1);
    expect(out).toMatch(/FAIL: 2 stale exception\(s\)/);
    expect(out).toMatch(/^\s+left-pad GHSA-2x7j-ggqx-2p8m/m);
    expect(out).toMatch(/^\s+ms GHSA-w9mr-4mfr-499f/m);
    expect(out).not.toMatch(/FAIL: \d+ finding/);
  }, 120_000);

  it('fails on an expired exception', async () => {
    const { code, out } = await check([CRITICAL, HIGH], '2026-04-11');
    expect(code, out).toBe(1);
    expect(out).toMatch(/FAIL: 2 expired exception\(s\)/);
    expect(out).toMatch(/minimist GHSA-xvch-5gv4-984h expired 2026-04-10/);
  }, 120_000);

  it('refuses a malformed exceptions file (exit 2) before asking npm', async () => {
    const bad = await check([{ package: 'minimist', advisory: 'GHSA-xvch-5gv4-984h', reason: 'ok' }]);
    expect(bad.code, bad.out).toBe(2);
    expect(bad.out).toMatch(/is invalid:/);
    expect(bad.out).toMatch(/exceptions\.0\.reason: say why/);
    expect(bad.out).toMatch(/exceptions\.0\.acceptedBy/);
    expect(bad.asked).toBe(0);
    const notJson = await check('{ not json');
    expect(notJson.code).toBe(2);
    expect(notJson.asked).toBe(0);
  });
});

describe('reading an npm audit report', () => {
  it('takes the advisories, not the packages that merely depend on a vulnerable one', () => {
    const findings = findingsOf({
      auditReportVersion: 2,
      vulnerabilities: {
        mkdirp: { name: 'mkdirp', severity: 'critical', via: ['minimist'], nodes: ['node_modules/mkdirp'] },
        minimist: {
          name: 'minimist',
          severity: 'critical',
          via: [
            {
              source: 1,
              name: 'minimist',
              title: 'a',
              url: 'https://github.com/advisories/GHSA-xvch-5gv4-984h',
              severity: 'critical',
            },
            { source: 2, name: 'minimist', title: 'b', severity: 'low' },
          ],
          nodes: ['node_modules/minimist'],
        },
      },
    });
    expect(findings.map((f) => [f.package, f.advisory, f.severity])).toEqual([
      ['minimist', 'GHSA-xvch-5gv4-984h', 'critical'],
      ['minimist', '2', 'low'],
    ]);
    const ev = evaluate(findings, [], 'critical', '2026-01-01');
    expect(ev.unaccepted).toHaveLength(1);
    expect(() => findingsOf({ auditReportVersion: 1, advisories: {} })).toThrow(/no report/);
    expect(() => parseExceptions(JSON.stringify({ exceptions: [CRITICAL, CRITICAL] }))).toThrow(/twice/);
  });
});
