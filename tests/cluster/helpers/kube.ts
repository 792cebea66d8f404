/**
 * kubectl for the cluster suites (vitest.cluster.config.ts): the kubectl on PATH and the KUBECONFIG of
 * the environment (`make` puts scripts/cluster/env.sh's first), port-forwards on 127.0.0.1 only, and a
 * Prometheus text parser. Every helper throws with kubectl's own message: these suites fail, never skip.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const NAMESPACE = process.env.DRIFTLINE_NAMESPACE || 'driftline';

/** Runs kubectl; returns stdout. */
export async function kubectl(
  args: string[],
  opts: { input?: string; timeoutMs?: number } = {},
): Promise<string> {
  if (opts.input !== undefined) {
    return new Promise((resolve, reject) => {
      const child = spawn('kubectl', args, { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.on('error', reject);
      child.on('close', (code) =>
        code === 0 ? resolve(out) : reject(new Error(`kubectl ${args.join(' ')} → ${code}: ${err.trim()}`)),
      );
      child.stdin.end(opts.input);
    });
  }
  try {
    const { stdout } = await run('kubectl', args, {
      maxBuffer: 64 << 20,
      timeout: opts.timeoutMs ?? 120_000,
    });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`kubectl ${args.join(' ')} failed: ${(e.stderr || e.message).trim()}`);
  }
}

/** kubectl -n NAMESPACE … -o json, parsed. */
export async function kubeJson<T = Record<string, unknown>>(args: string[]): Promise<T> {
  return JSON.parse(await kubectl(['-n', NAMESPACE, ...args, '-o', 'json'])) as T;
}

export interface PortForward {
  /** The local port on 127.0.0.1. */
  port: number;
  url: string;
  close(): void;
}

const forwards = new Set<ChildProcess>();
process.once('exit', () => {
  for (const f of forwards) f.kill();
});

/**
 * `kubectl port-forward TARGET :REMOTE` on 127.0.0.1 (a free local port), resolved once kubectl says
 * "Forwarding from 127.0.0.1:N".
 */
export async function portForward(target: string, remotePort: number): Promise<PortForward> {
  const child = spawn(
    'kubectl',
    ['-n', NAMESPACE, 'port-forward', '--address', '127.0.0.1', target, `:${remotePort}`],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  forwards.add(child);
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      child.kill();
      reject(
        new Error(`kubectl port-forward ${target} :${remotePort}: no "Forwarding from" within 30 s: ${out}`),
      );
    }, 30_000);
    const onData = (d: Buffer): void => {
      out += d.toString();
      const m = /Forwarding from 127\.0\.0\.1:(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`kubectl port-forward ${target} :${remotePort} exited (${code}): ${out.trim()}`));
    });
  });
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    close: () => {
      child.kill();
      forwards.delete(child);
    },
  };
}

/** One sample of a Prometheus text exposition. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses Prometheus text format (no exemplars, no escapes beyond \" in label values). */
export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1] as string] = (l[2] as string).replace(/\\"/g, '"');
    out.push({ name: m[1] as string, labels, value: Number(m[4]) });
  }
  return out;
}

/** The sum of every sample named `name` whose labels include `match`. */
export function metric(samples: Sample[], name: string, match: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}

/** GET a URL with a timeout; returns status and text. */
export async function get(url: string, timeoutMs = 10_000): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  return { status: res.status, text: await res.text() };
}

/** Polls `probe` until it returns a value (not undefined), or throws after `timeoutMs` naming `what`. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
  everyMs = 2000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(
        `${what}: not within ${Math.round(timeoutMs / 1000)} s${last ? ` (last error: ${String(last)})` : ''}`,
      );
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
