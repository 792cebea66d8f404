/**
 * The npm audit gate of the Jenkinsfile's SAST stage (`npm run sast`).
 *
 *   npx tsx scripts/ci/audit-check.ts [--exceptions security/audit-exceptions.json]
 *       [--level high] [--report DIR] [--cwd DIR] [--today YYYY-MM-DD]
 *
 * Runs `npm audit --json` (every dependency, dev included: the dev tools run on
 * the Jenkins agent, which holds the vault password and the cluster
 * credentials) and fails (exit 1) when
 * - a finding at or above `--level` (default high: high and critical) is not in
 *   the exceptions file,
 * - an exception is stale: its package/advisory is no longer reported at that
 *   level (fixed, or downgraded) — delete it,
 * - an exception has expired (`expires` before today) — review it again,
 * - npm audit itself fails (no advisory endpoint, no lock file): without a
 *   report nothing is known, so the gate stays shut.
 * The exceptions file is validated first (exit 2 on a malformed entry).
 * `--report DIR` writes npm-audit.json (the raw report) and
 * audit-check.json (this evaluation) for Jenkins to archive.
 *
 * A finding is one advisory on one package: the `via` objects of npm's report
 * (the entries that are only names are the packages depending on a vulnerable
 * one, reported under that one's advisory). The advisory id is the GHSA id
 * from its URL (`https://github.com/advisories/GHSA-…`), else npm's number.
 */
import { spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';

export const SEVERITIES = ['info', 'low', 'moderate', 'high', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];

const isoDate = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'a date YYYY-MM-DD');

export const exceptionSchema = z.object({
  package: z.string().min(1),
  advisory: z
    .string()
    .regex(
      /^GHSA-[2-9cfghjmpqrvwx]{4}-[2-9cfghjmpqrvwx]{4}-[2-9cfghjmpqrvwx]{4}$|^\d+$/,
      'a GHSA id or npm advisory number',
    ),
  severity: z.enum(SEVERITIES).optional(),
  title: z.string().optional(),
  reason: z.string().min(20, 'say why the finding does not apply or cannot be fixed yet (20+ characters)'),
  acceptedBy: z.string().min(1),
  acceptedOn: isoDate,
  expires: isoDate,
});
export type AuditException = z.infer<typeof exceptionSchema>;

export const exceptionsFileSchema = z.object({
  $comment: z.union([z.string(), z.array(z.string())]).optional(),
  exceptions: z.array(exceptionSchema),
});

export interface Finding {
  package: string;
  advisory: string;
  severity: Severity;
  title: string;
  url: string | undefined;
  /** Vulnerable versions of the advisory. */
  range: string | undefined;
  /** Where the package is installed (node_modules paths). */
  nodes: string[];
}

export interface Evaluation {
  level: Severity;
  findings: Finding[];
  /** Findings at or above the level with no exception. */
  unaccepted: Finding[];
  /** Findings at or above the level covered by an exception. */
  accepted: { finding: Finding; exception: AuditException }[];
  /** Exceptions matching no finding at or above the level. */
  stale: AuditException[];
  /** Exceptions past their `expires` date. */
  expired: AuditException[];
  ok: boolean;
}

export class AuditError extends Error {}
/** The exceptions file is malformed (exit 2). */
export class ExceptionsFileError extends AuditError {}

const rank = (s: Severity): number => SEVERITIES.indexOf(s);

function advisoryId(via: { url?: unknown; source?: unknown }): string {
  const m =
    typeof via.url === 'string' ? /\/(GHSA-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4})\b/i.exec(via.url) : null;
  if (m) return m[1] as string;
  if (via.source !== undefined) return String(via.source);
  throw new AuditError(`an advisory without a GHSA url or id: ${JSON.stringify(via)}`);
}

/** The findings of an `npm audit --json` report (auditReportVersion 2, npm 7 and later). */
export function findingsOf(report: unknown): Finding[] {
  const r = report as { auditReportVersion?: unknown; vulnerabilities?: unknown; error?: unknown };
  if (
    r === null ||
    typeof r !== 'object' ||
    typeof r.vulnerabilities !== 'object' ||
    r.vulnerabilities === null
  ) {
    const e = report as { message?: unknown; error?: { summary?: unknown; detail?: unknown } };
    const why = [e?.message, e?.error?.summary, e?.error?.detail].filter((x) => typeof x === 'string' && x);
    throw new AuditError(
      `npm audit gave no report${why.length ? `: ${why.join(' — ')}` : ''} (is the registry's advisory endpoint reachable?)`,
    );
  }
  if (r.auditReportVersion !== 2)
    throw new AuditError(
      `unsupported npm audit report version ${JSON.stringify(r.auditReportVersion)} (expected 2)`,
    );
  const out = new Map<string, Finding>();
  for (const vuln of Object.values(r.vulnerabilities as Record<string, unknown>)) {
    const v = vuln as { name?: string; via?: unknown[]; nodes?: string[] };
    for (const via of v.via ?? []) {
      if (typeof via !== 'object' || via === null) continue; // a dependent of a vulnerable package
      const a = via as { name?: string; title?: string; url?: string; severity?: string; range?: string };
      const severity = (SEVERITIES as readonly string[]).includes(a.severity ?? '')
        ? (a.severity as Severity)
        : 'high';
      const finding: Finding = {
        package: a.name ?? v.name ?? '?',
        advisory: advisoryId(a),
        severity,
        title: a.title ?? '',
        url: a.url,
        range: a.range,
        nodes: [...(v.nodes ?? [])],
      };
      const key = `${finding.package}\u0000${finding.advisory}`;
      const seen = out.get(key);
      if (seen) seen.nodes = [...new Set([...seen.nodes, ...finding.nodes])].sort();
      else out.set(key, finding);
    }
  }
  return [...out.values()].sort(
    (x, y) => rank(y.severity) - rank(x.severity) || x.package.localeCompare(y.package),
  );
}

/** Parses and validates the exceptions file's text. */
export function parseExceptions(text: string, file = 'exceptions file'): AuditException[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ExceptionsFileError(`${file} is not JSON: ${(err as Error).message}`);
  }
  const parsed = exceptionsFileSchema.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`);
    throw new ExceptionsFileError(`${file} is invalid:\n  ${issues.join('\n  ')}`);
  }
  const seen = new Set<string>();
  for (const e of parsed.data.exceptions) {
    const key = `${e.package}\u0000${e.advisory}`;
    if (seen.has(key)) throw new ExceptionsFileError(`${file} lists ${e.package} ${e.advisory} twice`);
    seen.add(key);
  }
  return parsed.data.exceptions;
}

/** Compares the findings with the exceptions; `today` is YYYY-MM-DD (UTC). */
export function evaluate(
  findings: Finding[],
  exceptions: AuditException[],
  level: Severity,
  today: string,
): Evaluation {
  const gated = findings.filter((f) => rank(f.severity) >= rank(level));
  const byKey = new Map(exceptions.map((e) => [`${e.package}\u0000${e.advisory}`, e]));
  const unaccepted: Finding[] = [];
  const accepted: Evaluation['accepted'] = [];
  const used = new Set<AuditException>();
  for (const f of gated) {
    const e = byKey.get(`${f.package}\u0000${f.advisory}`);
    if (e) {
      accepted.push({ finding: f, exception: e });
      used.add(e);
    } else unaccepted.push(f);
  }
  const stale = exceptions.filter((e) => !used.has(e));
  const expired = exceptions.filter((e) => e.expires < today);
  return {
    level,
    findings,
    unaccepted,
    accepted,
    stale,
    expired,
    ok: unaccepted.length === 0 && stale.length === 0 && expired.length === 0,
  };
}

/** A readable summary of an evaluation (what the Jenkins console shows). */
export function formatEvaluation(ev: Evaluation, exceptionsFile: string): string {
  const lines: string[] = [];
  const counts = SEVERITIES.map((s) => `${ev.findings.filter((f) => f.severity === s).length} ${s}`).join(
    ', ',
  );
  lines.push(`npm audit: ${ev.findings.length} advisories (${counts}); gate: ${ev.level} and above`);
  const show = (f: Finding): string =>
    `  ${f.severity.padEnd(8)} ${f.package} ${f.advisory} ${f.title}${f.range ? ` (${f.range})` : ''}${f.nodes.length ? ` at ${f.nodes.join(', ')}` : ''}`;
  for (const { finding, exception } of ev.accepted)
    lines.push(
      `accepted: ${show(finding).trim()} — ${exception.reason} (${exception.acceptedBy}, ${exception.acceptedOn}, until ${exception.expires})`,
    );
  if (ev.unaccepted.length) {
    lines.push(`FAIL: ${ev.unaccepted.length} finding(s) at ${ev.level} or above not in ${exceptionsFile}:`);
    for (const f of ev.unaccepted) lines.push(show(f));
    lines.push(
      `  fix them (npm audit fix, or update the dependency), or add an exception with package, advisory, reason, acceptedBy, acceptedOn and expires`,
    );
  }
  if (ev.stale.length) {
    lines.push(
      `FAIL: ${ev.stale.length} stale exception(s) in ${exceptionsFile} (no longer reported at ${ev.level} or above; delete them):`,
    );
    for (const e of ev.stale)
      lines.push(`  ${e.package} ${e.advisory} (accepted by ${e.acceptedBy} on ${e.acceptedOn})`);
  }
  if (ev.expired.length) {
    lines.push(
      `FAIL: ${ev.expired.length} expired exception(s) in ${exceptionsFile} (review, then renew or fix):`,
    );
    for (const e of ev.expired) lines.push(`  ${e.package} ${e.advisory} expired ${e.expires}`);
  }
  if (ev.ok) lines.push('OK: no finding at the gate without an accepted, current exception');
  return lines.join('\n');
}

/** Runs `npm audit --json` in `cwd` and returns the parsed report (npm exits 1 on findings: not an error here). */
export async function runNpmAudit(cwd: string, env: NodeJS.ProcessEnv = process.env): Promise<unknown> {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>(
    (resolve, reject) => {
      const child = spawn(npm, ['audit', '--json'], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      child.once('error', reject);
      child.once('close', (c) => resolve({ code: c ?? -1, stdout, stderr }));
    },
  );
  try {
    return JSON.parse(stdout);
  } catch {
    throw new AuditError(
      `npm audit (exit ${code}) printed no JSON report: ${(stderr || stdout).trim().split('\n').slice(-5).join(' | ')}`,
    );
  }
}

function isMain(): boolean {
  return (
    process.argv[1] !== undefined &&
    path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)
  );
}

/** Where {@link auditCheck} writes and how it gets the report (the defaults: the process's streams, npm). */
export interface AuditCheckIo {
  /** Runs `npm audit --json` in a folder; default {@link runNpmAudit}. */
  runAudit?: (cwd: string) => Promise<unknown>;
  stdout?: (text: string) => void;
  stderr?: (text: string) => void;
}

/**
 * The command: reads the options in `argv` (as `process.argv.slice(2)`), runs the audit, writes the
 * verdict, and returns the exit code: 0 nothing at the gate without a current exception, 1 a finding, a
 * stale or expired exception, or no report, 2 a malformed exceptions file (npm is not asked).
 */
export async function auditCheck(argv: string[], io: AuditCheckIo = {}): Promise<number> {
  const stdout = io.stdout ?? ((t: string) => void process.stdout.write(t));
  const stderr = io.stderr ?? ((t: string) => void process.stderr.write(t));
  try {
    return await check(argv, io.runAudit ?? ((cwd) => runNpmAudit(cwd)), stdout);
  } catch (err) {
    stderr(`audit-check: ${err instanceof Error ? err.message : String(err)}\n`);
    return err instanceof ExceptionsFileError ? 2 : 1;
  }
}

async function check(
  argv: string[],
  runAudit: (cwd: string) => Promise<unknown>,
  stdout: (text: string) => void,
): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      exceptions: { type: 'string', default: 'security/audit-exceptions.json' },
      level: { type: 'string', default: 'high' },
      report: { type: 'string' },
      cwd: { type: 'string', default: '.' },
      today: { type: 'string' },
    },
    strict: true,
  });
  const level = values.level as Severity;
  if (!SEVERITIES.includes(level)) throw new AuditError(`--level must be one of ${SEVERITIES.join(', ')}`);
  const today = values.today ?? new Date().toISOString().slice(0, 10);
  const exceptionsFile = values.exceptions;
  let text: string;
  try {
    text = await readFile(exceptionsFile, 'utf8');
  } catch (err) {
    throw new AuditError(`cannot read ${exceptionsFile}: ${(err as Error).message}`);
  }
  const exceptions = parseExceptions(text, exceptionsFile);
  const report = await runAudit(path.resolve(values.cwd));
  if (values.report) {
    await mkdir(values.report, { recursive: true });
    await writeFile(path.join(values.report, 'npm-audit.json'), `${JSON.stringify(report, null, 2)}\n`);
  }
  const ev = evaluate(findingsOf(report), exceptions, level, today);
  if (values.report)
    await writeFile(path.join(values.report, 'audit-check.json'), `${JSON.stringify(ev, null, 2)}\n`);
  stdout(`${formatEvaluation(ev, exceptionsFile)}\n`);
  return ev.ok ? 0 : 1;
}

if (isMain()) void auditCheck(process.argv.slice(2)).then((code) => process.exit(code));
