import { PerformanceObserver, constants as perf, monitorEventLoopDelay } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

/**
 * Request/response over the IPC channel of a forked benchmark process: the
 * parent sends `{ id, cmd, args }`, the child answers `{ id, ok, value | error }`.
 * Each role (`broker`, `publisher`, `subscriber`, `edge`, `bridge`, `kafka-counter`)
 * is one file in this folder that calls {@link serve}.
 */

type Handler = (args: unknown) => Promise<unknown> | unknown;

interface Request {
  id: number;
  cmd: string;
  args?: unknown;
}

interface Response {
  id: number;
  ok: boolean;
  value?: unknown;
  error?: string;
}

/**
 * What may make a latency tail in this process, since the last `pauses` request: garbage-collection
 * pauses, and how late the event loop ran its timers (blocked by work, GC, or waiting for a CPU).
 */
export interface Pauses {
  /** Young-generation collections (scavenges): count, total and longest pause, ms. */
  minor: { count: number; totalMs: number; maxMs: number };
  /** Mark-sweep-compact and the rest. */
  major: { count: number; totalMs: number; maxMs: number };
  /** Event-loop delay (perf_hooks.monitorEventLoopDelay, 10 ms resolution), ms. */
  loopDelay: { p50: number; p99: number; max: number };
}

function watchPauses(): () => Pauses {
  const empty = (): Pauses => ({
    minor: { count: 0, totalMs: 0, maxMs: 0 },
    major: { count: 0, totalMs: 0, maxMs: 0 },
    loopDelay: { p50: 0, p99: 0, max: 0 },
  });
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  let pauses = empty();
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind;
      const p = kind === perf.NODE_PERFORMANCE_GC_MINOR ? pauses.minor : pauses.major;
      p.count++;
      p.totalMs += e.duration;
      p.maxMs = Math.max(p.maxMs, e.duration);
    }
  }).observe({ entryTypes: ['gc'] });
  return () => {
    const r = pauses;
    pauses = empty();
    const ms = (x: number): number => Math.round(x * 10) / 10;
    for (const p of [r.minor, r.major]) {
      p.totalMs = ms(p.totalMs);
      p.maxMs = ms(p.maxMs);
    }
    r.loopDelay = {
      p50: ms(loop.percentile(50) / 1e6),
      p99: ms(loop.percentile(99) / 1e6),
      max: ms(loop.max / 1e6),
    };
    loop.reset();
    return r;
  };
}

/**
 * Child side: answers the parent's requests with `handlers`; `exit` ends the process after answering;
 * `pauses` answers (and restarts) the process's {@link Pauses}.
 */
export function serve(handlers: Record<string, Handler>): void {
  if (!process.send) throw new Error('a benchmark role runs as a forked child (bench/pipeline.ts)');
  const pauses = watchPauses();
  process.on('message', (raw: unknown) => {
    const req = raw as Request;
    const reply = (r: Omit<Response, 'id'>): void => {
      process.send?.({ id: req.id, ...r });
    };
    if (req.cmd === 'exit') {
      reply({ ok: true });
      setTimeout(() => process.exit(0), 50);
      return;
    }
    const h = req.cmd === 'pauses' ? pauses : handlers[req.cmd];
    if (!h) {
      reply({ ok: false, error: `unknown command ${req.cmd}` });
      return;
    }
    Promise.resolve()
      .then(() => h(req.args))
      .then(
        (value) => reply({ ok: true, value }),
        (err: unknown) =>
          reply({ ok: false, error: err instanceof Error ? (err.stack ?? err.message) : String(err) }),
      );
  });
  // The parent went away: nothing left to measure.
  process.on('disconnect', () => process.exit(0));
}

/** A forked role, as the parent sees it. */
export interface Role {
  readonly name: string;
  readonly pid: number;
  request<T = unknown>(cmd: string, args?: unknown, timeoutMs?: number): Promise<T>;
  /** Asks the child to exit; kills it after a grace period. */
  close(): Promise<void>;
}

const here = path.dirname(fileURLToPath(import.meta.url));

/** CPU profiles of the children go to this directory when set (`BENCH_CPU_PROF_DIR`). */
function profileArgs(name: string): string[] {
  const dir = process.env.BENCH_CPU_PROF_DIR;
  if (!dir) return [];
  const only = process.env.BENCH_CPU_PROF_ROLES?.split(',');
  if (only && !only.some((r) => name.startsWith(r))) return [];
  // One directory per role: tsx's loader thread writes a profile of its own (Node's default names keep both).
  return ['--cpu-prof', `--cpu-prof-dir=${path.join(dir, `${name}-${Date.now()}`)}`];
}

/**
 * `bench/pipeline/<file>.ts` built into one module, `dist/bench/<file>.mjs`, the way scripts/build.mjs
 * builds the services (packages external, source map), so the role runs on plain node as the images
 * run the services. Under dist/, so the code finds the project root above it (common/paths.ts).
 */
async function builtRole(file: string): Promise<string> {
  const outfile = path.resolve(here, '../../dist/bench', `${file}.mjs`);
  // Imported here, not at the top: every role loads this module, and the edge's memory is measured.
  const [{ build }, { BUNDLE_OPTIONS }] = await Promise.all([
    import('esbuild'),
    import('../../scripts/build.mjs'),
  ]);
  // The services' settings (scripts/build.mjs), so the bench's edge runs built as the edge image does.
  await build({ ...BUNDLE_OPTIONS, entryPoints: [path.join(here, `${file}.ts`)], outfile });
  return outfile;
}

/**
 * Forks `bench/pipeline/<file>.ts` as `name` and waits until it listens: under tsx, or with `built`
 * from its bundle on plain node (`--enable-source-maps`, as the service images run).
 */
export async function spawnRole(
  file: string,
  name: string,
  options: { env?: NodeJS.ProcessEnv; heapMb?: number; built?: boolean } = {},
): Promise<Role> {
  const entry = options.built ? await builtRole(file) : path.join(here, `${file}.ts`);
  const child: ChildProcess = fork(entry, [], {
    execArgv: [...(options.built ? ['--enable-source-maps'] : ['--import', 'tsx']), ...profileArgs(name)],
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let next = 1;
  const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let exited: Error | undefined;
  child.on('message', (raw: unknown) => {
    const res = raw as Response;
    const w = waiting.get(res.id);
    if (!w) return;
    waiting.delete(res.id);
    if (res.ok) w.resolve(res.value);
    else w.reject(new Error(`${name}: ${res.error ?? 'failed'}`));
  });
  child.on('exit', (code, signal) => {
    exited = new Error(`${name} exited (code ${code ?? '-'}, signal ${signal ?? '-'})`);
    for (const w of waiting.values()) w.reject(exited);
    waiting.clear();
  });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', () => resolve());
    child.once('error', reject);
  });
  const role: Role = {
    name,
    pid: child.pid ?? -1,
    request<T>(cmd: string, args?: unknown, timeoutMs = 120_000): Promise<T> {
      if (exited) return Promise.reject(exited);
      const id = next++;
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(id);
          reject(new Error(`${name}: ${cmd} timed out after ${timeoutMs} ms`));
        }, timeoutMs);
        waiting.set(id, {
          resolve: (v) => {
            clearTimeout(timer);
            resolve(v as T);
          },
          reject: (e) => {
            clearTimeout(timer);
            reject(e);
          },
        });
        child.send({ id, cmd, args } satisfies Request);
      });
    },
    async close() {
      if (exited) return;
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      await role.request('exit', undefined, 5000).catch(() => undefined);
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await gone;
      clearTimeout(timer);
    },
  };
  return role;
}

/** CPU seconds (user + system) and resident memory of this process. */
export function selfUsage(): {
  cpuSeconds: number;
  rssMb: number;
  heapUsedMb: number;
  heapTotalMb: number;
  externalMb: number;
  arrayBuffersMb: number;
} {
  const c = process.cpuUsage();
  const m = process.memoryUsage();
  const mb = (bytes: number): number => Math.round((bytes / 2 ** 20) * 10) / 10;
  return {
    cpuSeconds: (c.user + c.system) / 1e6,
    rssMb: mb(m.rss),
    heapUsedMb: mb(m.heapUsed),
    // What RSS is made of: the V8 heap, memory outside it (WebAssembly memory, Buffers).
    heapTotalMb: mb(m.heapTotal),
    externalMb: mb(m.external),
    arrayBuffersMb: mb(m.arrayBuffers),
  };
}

/**
 * {@link selfUsage} after a full garbage collection and `settleMs` of idling: what the process holds
 * live (heap used) and what RSS it keeps once the load has stopped. `gc` is reached without
 * `--expose-gc` on the command line (the flag set at run time, the function taken from a new context).
 */
export async function settledUsage(settleMs: number): Promise<ReturnType<typeof selfUsage>> {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  await new Promise((resolve) => setTimeout(resolve, settleMs));
  gc();
  return selfUsage();
}
