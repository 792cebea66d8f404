import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** A Driftline service started as its own OS process (`node --import tsx <main>`), JSON logs parsed. */
export interface ServiceProcess {
  readonly child: ChildProcessWithoutNullStreams;
  /** Every JSON log line so far. */
  readonly lines: Record<string, unknown>[];
  /** stderr so far (and stdout lines that were not JSON). */
  readonly stderr: () => string;
  /** Resolves with the exit code (null when killed by a signal) and the signal. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The first log line whose message matches, once it is there. */
  line(message: RegExp, timeoutMs: number): Promise<Record<string, unknown>>;
}

/**
 * Starts `main` (a path relative to the repository root) with only `env` and PATH/HOME: no setting leaks in
 * from the test's environment (ports of other runs, Elasticsearch, Kafka).
 */
export function startService(main: string, env: Record<string, string>): ServiceProcess {
  // node --import tsx rather than the tsx CLI: one process, so a signal reaches main.ts itself.
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, main)], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', LOG_FORMAT: 'json', ...env },
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
      if (line.trim() === '') continue;
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        err += `${line}\n`;
      }
    }
  });
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  let gone = false;
  void exited.then(() => (gone = true));
  return {
    child,
    lines,
    stderr: () => err,
    exited,
    async line(message, timeoutMs) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const found = lines.find((l) => typeof l.message === 'string' && message.test(l.message));
        if (found) return found;
        if (gone || Date.now() > until)
          throw new Error(
            `${main}: no log line matching ${String(message)} (${gone ? 'exited' : 'timed out'}); stderr: ${err.slice(-2000)}`,
          );
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

/** Prometheus text → value of an unlabelled sample, or the sum over a labelled family; NaN when absent. */
export function metricValue(text: string, name: string): number {
  let sum = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (!(rest.startsWith(' ') || rest.startsWith('{'))) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(value)) {
      sum += value;
      found = true;
    }
  }
  return found ? sum : Number.NaN;
}
