import http from 'node:http';
import type { SessionInfo, Snapshot, Update } from '../../../dashboard/src/shared/view.ts';

/**
 * A small HTTP and Server-Sent Events client for the dashboard's tests: full
 * control over headers (cookies, Origin, CSRF), no redirects followed.
 */

export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  json<T = unknown>(): T;
}

export function httpRequest(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: options.method ?? 'GET', headers: options.headers ?? {} },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body,
            json: <T>() => JSON.parse(body) as T,
          });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}

/** `name=value` of the session cookie from a Set-Cookie header. */
export function cookieFrom(res: HttpResult): string {
  const set = res.headers['set-cookie']?.[0];
  if (set === undefined) throw new Error(`no Set-Cookie in the response (HTTP ${res.status}: ${res.body})`);
  return set.split(';')[0] as string;
}

export interface LoggedIn {
  cookie: string;
  session: SessionInfo;
}

export async function login(
  baseUrl: string,
  user: { username: string; password: string },
): Promise<LoggedIn> {
  const res = await httpRequest(`${baseUrl}/api/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: user.username, password: user.password }),
  });
  if (res.status !== 200) throw new Error(`login as ${user.username} failed: HTTP ${res.status} ${res.body}`);
  return { cookie: cookieFrom(res), session: res.json<SessionInfo>() };
}

export interface SseEvent {
  event: string;
  data: unknown;
}

export interface EventStream {
  readonly status: number;
  readonly events: SseEvent[];
  /** Resolves with the first event (already received or future) matching `pred`. */
  next(pred: (e: SseEvent) => boolean, timeoutMs?: number): Promise<SseEvent>;
  /** Waits until the merged snapshot + updates satisfy `pred`. */
  until(pred: (s: Snapshot) => boolean, timeoutMs?: number): Promise<Snapshot>;
  close(): void;
}

/** Applies an update to a snapshot the way the browser does. */
export function mergeUpdate(s: Snapshot, u: Update): void {
  s.serverTime = u.serverTime;
  if (u.machines)
    for (const m of u.machines) {
      const i = s.machines.findIndex((x) => x.id === m.id);
      if (i >= 0) s.machines[i] = m;
      else s.machines.push(m);
    }
  if (u.drift)
    for (const g of u.drift) {
      const i = s.drift.findIndex((x) => x.groupKey === g.groupKey);
      if (i >= 0) s.drift[i] = g;
      else s.drift.push(g);
    }
  if (u.connections) s.connections = u.connections;
  if (u.deadLetters) s.deadLetters = u.deadLetters;
  if (u.invalid) s.invalid = u.invalid;
  if (u.alarms) s.alarms = u.alarms;
  if (u.retrains) s.retrains = u.retrains;
  if (u.model) s.model = u.model;
  if (u.workers) s.pipeline.workers = u.workers;
  if (u.observedAccuracy) s.pipeline.observedAccuracy = u.observedAccuracy;
  if (u.throughput) s.pipeline.throughput.push(...u.throughput);
}

/** Opens `GET /api/events` and parses frames as they arrive. */
export function openEventStream(baseUrl: string, cookie: string | undefined): Promise<EventStream> {
  return new Promise((resolve, reject) => {
    const events: SseEvent[] = [];
    const waiters = new Set<() => void>();
    let state: Snapshot | undefined;
    const req = http.get(
      `${baseUrl}/api/events`,
      { headers: cookie === undefined ? {} : { cookie } },
      (res) => {
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buf += chunk;
          for (;;) {
            const end = buf.indexOf('\n\n');
            if (end < 0) break;
            const frame = buf.slice(0, end);
            buf = buf.slice(end + 2);
            let event = 'message';
            const data: string[] = [];
            for (const line of frame.split('\n')) {
              if (line.startsWith('event: ')) event = line.slice(7);
              else if (line.startsWith('data: ')) data.push(line.slice(6));
            }
            if (data.length === 0) continue;
            const e = { event, data: JSON.parse(data.join('\n')) as unknown };
            events.push(e);
            if (e.event === 'snapshot') state = structuredClone(e.data as Snapshot);
            else if (e.event === 'update' && state !== undefined) mergeUpdate(state, e.data as Update);
            for (const w of [...waiters]) w();
          }
        });
        const wait = <T>(probe: () => T | undefined, timeoutMs: number, what: string): Promise<T> =>
          new Promise((res2, rej2) => {
            const check = (): void => {
              const v = probe();
              if (v !== undefined) {
                waiters.delete(check);
                clearTimeout(timer);
                res2(v);
              }
            };
            const timer = setTimeout(() => {
              waiters.delete(check);
              rej2(new Error(`event stream: timed out waiting for ${what}`));
            }, timeoutMs);
            waiters.add(check);
            check();
          });
        resolve({
          status: res.statusCode ?? 0,
          events,
          next: (pred, timeoutMs = 10_000) => wait(() => events.find(pred), timeoutMs, 'an event'),
          until: (pred, timeoutMs = 10_000) =>
            wait(() => (state !== undefined && pred(state) ? state : undefined), timeoutMs, 'a state'),
          close: () => req.destroy(),
        });
      },
    );
    req.on('error', (err) => {
      if ((err as NodeJS.ErrnoException).code !== 'ECONNRESET') reject(err);
    });
  });
}
