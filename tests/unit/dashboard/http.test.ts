import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../common/logging/logger.ts';
import { RegistryError } from '../../../common/registry/errors.ts';
import { loadAssets } from '../../../dashboard/src/assets.ts';
import { LoginLimiter, SessionStore, UserDirectory, type Session } from '../../../dashboard/src/auth.ts';
import { createRequestHandler, HttpError, type RollbackResult } from '../../../dashboard/src/http.ts';
import { EventStreamHub } from '../../../dashboard/src/sse.ts';
import { DashboardStore } from '../../../dashboard/src/state.ts';
import { cookieFrom, httpRequest, login, openEventStream } from '../../helpers/dashboard/http-client.ts';
import { DASHBOARD_LOGINS, testUsers } from '../../helpers/dashboard/stack.ts';

/** The dashboard's HTTP layer with fakes behind it: login, sessions, CSRF, roles, headers, the event stream. */

let server: http.Server;
let base: string;
let hub: EventStreamHub;
let store: DashboardStore;
let limiter: LoginLimiter;
const rollbacks: { user: string; reason: string; expectedVersion: string | undefined }[] = [];
let rollbackImpl: (s: Session, reason: string, expected?: string) => Promise<RollbackResult>;

beforeAll(async () => {
  const users = new UserDirectory(await testUsers());
  hub = new EventStreamHub();
  store = new DashboardStore({ modelName: 'driftline-efficiency' });
  limiter = new LoginLimiter({ maxFailures: 3, windowMs: 60_000 });
  const handler = createRequestHandler({
    users,
    sessions: new SessionStore(),
    get limiter() {
      return limiter;
    },
    hub,
    assets: await loadAssets(),
    snapshot: () => store.snapshot(),
    modelName: 'driftline-efficiency',
    rollback: (s, reason, expected) => rollbackImpl(s, reason, expected),
    logger: silentLogger(),
    secureCookies: false,
  });
  server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  hub.close();
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

beforeEach(() => {
  limiter = new LoginLimiter({ maxFailures: 3, windowMs: 60_000 });
  rollbacks.length = 0;
  rollbackImpl = async (s, reason, expectedVersion) => {
    rollbacks.push({ user: s.username, reason, expectedVersion });
    return { from: '2', to: '1', eventPublished: true };
  };
});

const json = (body: unknown): { method: string; headers: Record<string, string>; body: string } => ({
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(body),
});

describe('login required', () => {
  it('answers 401 on every API route without a session, and 302 to /login for the page', async () => {
    for (const p of ['/api/session', '/api/snapshot', '/api/events'])
      expect((await httpRequest(`${base}${p}`)).status).toBe(401);
    expect((await httpRequest(`${base}/api/model/rollback`, json({ reason: 'x' }))).status).toBe(401);
    const page = await httpRequest(`${base}/`);
    expect(page.status).toBe(302);
    expect(page.headers.location).toBe('/login');
    const forged = await httpRequest(`${base}/api/snapshot`, {
      headers: { cookie: 'driftline_session=forged-token' },
    });
    expect(forged.status).toBe(401);
  });

  it('serves the login page and the assets without a session', async () => {
    const page = await httpRequest(`${base}/login`);
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/text\/html/);
    expect(page.body).toContain('id="login-form"');
    const js = await httpRequest(`${base}/assets/login.js`);
    expect(js.headers['content-type']).toMatch(/text\/javascript/);
    const uplot = await httpRequest(`${base}/vendor/uPlot.iife.min.js`);
    expect(uplot.status).toBe(200);
    expect(uplot.body).toContain('uPlot');
    const again = await httpRequest(`${base}/vendor/uPlot.iife.min.js`, {
      headers: { 'if-none-match': uplot.headers.etag as string },
    });
    expect(again.status).toBe(304);
    expect((await httpRequest(`${base}/assets/../../package.json`)).status).toBe(404);
  });
});

describe('login', () => {
  it('sets an HttpOnly SameSite=Strict session cookie and returns role and CSRF token', async () => {
    const res = await httpRequest(`${base}/api/login`, json(DASHBOARD_LOGINS.operator));
    expect(res.status).toBe(200);
    const set = res.headers['set-cookie']?.[0] ?? '';
    expect(set).toMatch(
      /^driftline_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=\d+$/,
    );
    const body = res.json<{ username: string; role: string; csrfToken: string }>();
    expect(body).toMatchObject({ username: 'olivia', role: 'operator' });
    expect(body.csrfToken.length).toBeGreaterThan(20);
    const cookie = cookieFrom(res);
    expect((await httpRequest(`${base}/api/session`, { headers: { cookie } })).json()).toMatchObject({
      username: 'olivia',
      csrfToken: body.csrfToken,
    });
    const page = await httpRequest(`${base}/`, { headers: { cookie } });
    expect(page.status).toBe(200);
    expect(page.body).toContain('src="/assets/app.js"');
    expect((await httpRequest(`${base}/login`, { headers: { cookie } })).status).toBe(302);
  });

  it('refuses a bad password, then rate-limits the address and username (even the right password)', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await httpRequest(`${base}/api/login`, json({ username: 'olivia', password: 'wrong' }));
      expect(res.status).toBe(401);
      expect(res.headers['set-cookie']).toBeUndefined();
      expect(res.json()).toEqual({ error: 'invalid username or password' });
    }
    const limited = await httpRequest(`${base}/api/login`, json(DASHBOARD_LOGINS.operator));
    expect(limited.status).toBe(429);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    // Another user from the same address is not locked out by olivia's failures.
    expect((await httpRequest(`${base}/api/login`, json(DASHBOARD_LOGINS.viewer))).status).toBe(200);
  });

  it('refuses unknown users like wrong passwords, and malformed or cross-origin requests', async () => {
    expect((await httpRequest(`${base}/api/login`, json({ username: 'nobody', password: 'x' }))).status).toBe(
      401,
    );
    expect((await httpRequest(`${base}/api/login`, json({ username: 'olivia' }))).status).toBe(400);
    expect(
      (
        await httpRequest(`${base}/api/login`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: 'username=a&password=b',
        })
      ).status,
    ).toBe(415);
    const evil = await httpRequest(`${base}/api/login`, {
      ...json(DASHBOARD_LOGINS.operator),
      headers: { 'content-type': 'application/json', origin: 'http://evil.example' },
    });
    expect(evil.status).toBe(403);
    expect((await httpRequest(`${base}/api/login`)).status).toBe(405);
  });

  it('logout needs the CSRF token and ends the session', async () => {
    const { cookie, session } = await login(base, DASHBOARD_LOGINS.viewer);
    expect((await httpRequest(`${base}/api/logout`, { method: 'POST', headers: { cookie } })).status).toBe(
      403,
    );
    const out = await httpRequest(`${base}/api/logout`, {
      method: 'POST',
      headers: { cookie, 'x-csrf-token': session.csrfToken },
    });
    expect(out.status).toBe(200);
    expect(out.headers['set-cookie']?.[0]).toMatch(/Max-Age=0/);
    expect((await httpRequest(`${base}/api/session`, { headers: { cookie } })).status).toBe(401);
  });
});

describe('rollback', () => {
  it('is refused to viewers with 403, even with their CSRF token', async () => {
    const { cookie, session } = await login(base, DASHBOARD_LOGINS.viewer);
    const res = await httpRequest(`${base}/api/model/rollback`, {
      ...json({ reason: 'bad model' }),
      headers: { 'content-type': 'application/json', cookie, 'x-csrf-token': session.csrfToken },
    });
    expect(res.status).toBe(403);
    expect(res.json()).toEqual({ error: 'rollback requires the operator role' });
    expect(rollbacks).toEqual([]);
  });

  it("needs the operator's CSRF token", async () => {
    const { cookie } = await login(base, DASHBOARD_LOGINS.operator);
    const other = await login(base, DASHBOARD_LOGINS.operator);
    for (const token of [undefined, 'wrong', other.session.csrfToken]) {
      const headers: Record<string, string> = { 'content-type': 'application/json', cookie };
      if (token !== undefined) headers['x-csrf-token'] = token;
      const res = await httpRequest(`${base}/api/model/rollback`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ reason: 'x' }),
      });
      expect(res.status).toBe(403);
    }
    expect(rollbacks).toEqual([]);
  });

  it('rolls back for an operator with CSRF token and a reason', async () => {
    const { cookie, session } = await login(base, DASHBOARD_LOGINS.operator);
    const headers = { 'content-type': 'application/json', cookie, 'x-csrf-token': session.csrfToken };
    expect(
      (
        await httpRequest(`${base}/api/model/rollback`, {
          method: 'POST',
          headers,
          body: JSON.stringify({ reason: '  ' }),
        })
      ).status,
    ).toBe(400);
    const res = await httpRequest(`${base}/api/model/rollback`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ reason: 'accuracy fell\nafter v2', expectedVersion: '2' }),
    });
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ from: '2', to: '1', eventPublished: true });
    expect(rollbacks).toEqual([{ user: 'olivia', reason: 'accuracy fell after v2', expectedVersion: '2' }]);
  });

  it('maps registry refusals to 409 and stale confirmations to their status', async () => {
    const { cookie, session } = await login(base, DASHBOARD_LOGINS.operator);
    const headers = { 'content-type': 'application/json', cookie, 'x-csrf-token': session.csrfToken };
    rollbackImpl = async () => {
      throw new RegistryError('REGISTRY_NO_PREVIOUS', 'no earlier champion');
    };
    let res = await httpRequest(`${base}/api/model/rollback`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ reason: 'x' }),
    });
    expect([res.status, res.json()]).toEqual([409, { error: 'no earlier champion' }]);
    rollbackImpl = async () => {
      throw new HttpError(409, 'the champion is v3 now');
    };
    res = await httpRequest(`${base}/api/model/rollback`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ reason: 'x', expectedVersion: '2' }),
    });
    expect(res.status).toBe(409);
  });
});

describe('security headers', () => {
  it('sets a strict CSP and the other headers on pages, assets, API answers and errors', async () => {
    const { cookie } = await login(base, DASHBOARD_LOGINS.viewer);
    for (const [p, c] of [
      ['/login', undefined],
      ['/', cookie],
      ['/assets/app.js', undefined],
      ['/api/snapshot', cookie],
      ['/api/snapshot', undefined],
      ['/nope', undefined],
    ] as const) {
      const res = await httpRequest(`${base}${p}`, { headers: c === undefined ? {} : { cookie: c } });
      const csp = res.headers['content-security-policy'] as string;
      expect(csp, p).toContain("default-src 'self'");
      expect(csp).toContain("script-src 'self'");
      expect(csp).toContain("style-src 'self'");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).not.toContain('unsafe-inline');
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['referrer-policy']).toBe('no-referrer');
      expect(res.headers['x-frame-options']).toBe('DENY');
    }
    const api = await httpRequest(`${base}/api/snapshot`, { headers: { cookie } });
    expect(api.headers['cache-control']).toBe('no-store');
  });

  it('ships pages without inline scripts or styles', async () => {
    const { cookie } = await login(base, DASHBOARD_LOGINS.viewer);
    for (const res of [
      await httpRequest(`${base}/`, { headers: { cookie } }),
      await httpRequest(`${base}/login`),
    ]) {
      expect(res.body).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
      expect(res.body).not.toMatch(/<style|style="/);
      expect(res.body).not.toMatch(/\son[a-z]+="/);
    }
  });
});

describe('event stream', () => {
  it('sends a snapshot first, then broadcast updates', async () => {
    store.onTelemetry({
      machineId: 'm-1',
      seq: 0,
      ts: 1,
      operationMode: 'Idle',
      temperatureC: 40,
      vibrationHz: 1,
      powerKw: 2,
      networkLatencyMs: 3,
      packetLossPct: 0,
      defectRatePct: 1,
      productionSpeedUph: 100,
      maintenanceScore: 0.5,
      errorRatePct: 1,
    });
    const { cookie } = await login(base, DASHBOARD_LOGINS.viewer);
    const stream = await openEventStream(base, cookie);
    expect(stream.status).toBe(200);
    const first = await stream.next(() => true);
    expect(first.event).toBe('snapshot');
    hub.broadcast('update', { serverTime: 5, alarms: [] });
    const u = await stream.next((e) => e.event === 'update');
    expect(u.data).toEqual({ serverTime: 5, alarms: [] });
    await stream.until((s) => s.machines.some((m) => m.id === 'm-1'));
    stream.close();
    const refused = await openEventStream(base, undefined);
    expect(refused.status).toBe(401);
    refused.close();
  });
});
