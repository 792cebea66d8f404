import type http from 'node:http';
import { DriftlineError, describeError } from '../../common/errors.ts';
import { guardUnreadBody, readBody } from '../../common/http/body.ts';
import { sendJson } from '../../common/http/ops-server.ts';
import type { Logger } from '../../common/logging/logger.ts';
import type { Asset } from './assets.ts';
import { safeEqual, type LoginLimiter, type Session, type SessionStore, type UserDirectory } from './auth.ts';
import type { SessionInfo, Snapshot } from './shared/view.ts';
import type { EventStreamHub } from './sse.ts';

/**
 * The dashboard's HTTP routes: login/logout, the page and its assets, the
 * snapshot and the event stream, and the operator-only rollback. Every
 * response carries the security headers below; every API answer is `no-store`.
 */

/** Name of the session cookie. */
export const SESSION_COOKIE = 'driftline_session';

/**
 * Strict CSP: scripts, styles, connections and images only from this origin;
 * no inline script or style elements, no plugins, no framing.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=(), usb=()',
};

/** An error with the HTTP status to answer. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** What a rollback did. */
export interface RollbackResult {
  from: string | null;
  to: string;
  /**
   * False when the registry moved but the `model-rolled-back` event could not be published (the edge still
   * follows by polling).
   */
  eventPublished: boolean;
}

export interface DashboardHttpDeps {
  users: UserDirectory;
  sessions: SessionStore;
  limiter: LoginLimiter;
  hub: EventStreamHub;
  assets: Map<string, Asset>;
  snapshot(): Snapshot;
  modelName: string;
  /** Rolls the champion back; refuses (409) when `expectedVersion` is given and is no longer the champion. */
  rollback(session: Session, reason: string, expectedVersion?: string): Promise<RollbackResult>;
  logger: Logger;
  /** Add `Secure` to the cookie (set when served over HTTPS, e.g. behind a TLS proxy). */
  secureCookies: boolean;
}

/** Reads one cookie from the Cookie header. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function sessionCookie(token: string, maxAgeS: number, secure: boolean): string {
  return `${SESSION_COOKIE}=${token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeS}${secure ? '; Secure' : ''}`;
}

function isSameOrigin(req: http.IncomingMessage): boolean {
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return false;
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  const host = req.headers.host;
  return host !== undefined && (origin === `http://${host}` || origin === `https://${host}`);
}

async function readJson(req: http.IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  const type = req.headers['content-type'] ?? '';
  if (!/^application\/json\b/i.test(type)) throw new HttpError(415, 'expected application/json');
  let body: Buffer;
  try {
    body = await readBody(req, limit);
  } catch (err) {
    throw new HttpError((err as { status?: number }).status ?? 400, 'request body too large or unreadable');
  }
  let data: unknown;
  try {
    data = JSON.parse(body.toString('utf8'));
  } catch {
    throw new HttpError(400, 'request body is not JSON');
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data))
    throw new HttpError(400, 'request body must be a JSON object');
  return data as Record<string, unknown>;
}

/** Builds the request handler of the dashboard server. */
export function createRequestHandler(deps: DashboardHttpDeps): http.RequestListener {
  const { sessions, logger } = deps;
  const sessionOf = (
    req: http.IncomingMessage,
  ): { token: string | undefined; session: Session | undefined } => {
    const token = readCookie(req.headers.cookie, SESSION_COOKIE);
    return { token, session: sessions.get(token) };
  };

  const sendAsset = (req: http.IncomingMessage, res: http.ServerResponse, a: Asset): void => {
    const headers = { 'content-type': a.contentType, etag: a.etag, 'cache-control': 'no-cache' };
    if (req.headers['if-none-match'] === a.etag) {
      res.writeHead(304, headers).end();
      return;
    }
    res.writeHead(200, { ...headers, 'content-length': a.body.byteLength });
    res.end(req.method === 'HEAD' ? undefined : a.body);
  };

  const redirect = (res: http.ServerResponse, location: string): void => {
    res.writeHead(302, { location, 'cache-control': 'no-store' }).end();
  };

  const unauthorized = (res: http.ServerResponse): void => sendJson(res, 401, { error: 'login required' });

  async function login(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (!isSameOrigin(req)) throw new HttpError(403, 'cross-origin request refused');
    const body = await readJson(req, 4096);
    const username = body.username;
    const password = body.password;
    if (
      typeof username !== 'string' ||
      typeof password !== 'string' ||
      username.length === 0 ||
      username.length > 64 ||
      password.length > 1024
    ) {
      throw new HttpError(400, 'expected {"username": string, "password": string}');
    }
    const address = req.socket.remoteAddress ?? 'unknown';
    // The attempt takes its slot before scrypt runs: parallel guesses are limited like sequential ones.
    const attempt = deps.limiter.reserve(address, username);
    if (!attempt.ok) {
      const wait = attempt.retryAfterS;
      logger.warn('dashboard login refused: too many failed attempts', {
        action: 'login',
        outcome: 'failure',
        reason: 'rate_limited',
        address,
      });
      res.setHeader('retry-after', String(wait));
      return sendJson(res, 429, { error: `too many failed logins; try again in ${wait} s` });
    }
    let user: Awaited<ReturnType<UserDirectory['verify']>>;
    try {
      user = await deps.users.verify(username, password);
    } catch (err) {
      attempt.cancel();
      throw err;
    }
    if (user === undefined) {
      attempt.fail();
      logger.warn('dashboard login failed', { action: 'login', outcome: 'failure', address });
      return sendJson(res, 401, { error: 'invalid username or password' });
    }
    attempt.succeed();
    const { token, session } = sessions.create(user);
    logger.info('dashboard login', {
      action: 'login',
      outcome: 'success',
      user: user.username,
      role: user.role,
    });
    res.setHeader(
      'set-cookie',
      sessionCookie(token, Math.floor(sessions.idleTtl / 1000), deps.secureCookies),
    );
    const info: SessionInfo = {
      username: session.username,
      role: session.role,
      csrfToken: session.csrfToken,
      modelName: deps.modelName,
    };
    sendJson(res, 200, info);
  }

  function requireCsrf(req: http.IncomingMessage, session: Session): void {
    if (!isSameOrigin(req)) throw new HttpError(403, 'cross-origin request refused');
    const header = req.headers['x-csrf-token'];
    if (typeof header !== 'string' || !safeEqual(header, session.csrfToken))
      throw new HttpError(403, 'missing or invalid CSRF token');
  }

  async function rollback(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    session: Session,
  ): Promise<void> {
    if (session.role !== 'operator') throw new HttpError(403, 'rollback requires the operator role');
    requireCsrf(req, session);
    const body = await readJson(req, 8192);
    const reason =
      typeof body.reason === 'string' ? body.reason.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim() : ''; // eslint-disable-line no-control-regex
    if (reason.length === 0 || reason.length > 500)
      throw new HttpError(400, 'a reason of 1-500 characters is required');
    const expected = body.expectedVersion;
    if (
      expected !== undefined &&
      (typeof expected !== 'string' || expected.length === 0 || expected.length > 128)
    )
      throw new HttpError(400, 'expectedVersion must be a version string');
    const result = await deps.rollback(session, reason, expected);
    sendJson(res, 200, result);
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
    const url = new URL(req.url ?? '/', 'http://localhost');
    const p = url.pathname;
    const method = req.method ?? 'GET';
    const get = method === 'GET' || method === 'HEAD';

    if (p === '/healthz' && get) return sendJson(res, 200, { status: 'ok' });

    if (p === '/' || p === '/index.html') {
      if (!get) throw new HttpError(405, 'method not allowed');
      if (sessionOf(req).session === undefined) return redirect(res, '/login');
      const a = deps.assets.get('/index.html');
      if (a === undefined) throw new HttpError(500, 'page missing');
      res.setHeader('cache-control', 'no-store');
      return sendAsset(req, res, a);
    }
    if (p === '/login') {
      if (!get) throw new HttpError(405, 'method not allowed');
      if (sessionOf(req).session !== undefined) return redirect(res, '/');
      const a = deps.assets.get('/login.html');
      if (a === undefined) throw new HttpError(500, 'page missing');
      return sendAsset(req, res, a);
    }
    if (p.startsWith('/assets/') || p.startsWith('/vendor/')) {
      const a = deps.assets.get(p);
      if (a === undefined || !get) return sendJson(res, 404, { error: 'not found' });
      return sendAsset(req, res, a);
    }

    if (p === '/api/login') {
      if (method !== 'POST') throw new HttpError(405, 'method not allowed');
      return login(req, res);
    }

    if (p.startsWith('/api/')) {
      const { token, session } = sessionOf(req);
      if (session === undefined) return unauthorized(res);
      switch (p) {
        case '/api/session': {
          if (!get) throw new HttpError(405, 'method not allowed');
          const info: SessionInfo = {
            username: session.username,
            role: session.role,
            csrfToken: session.csrfToken,
            modelName: deps.modelName,
          };
          return sendJson(res, 200, info);
        }
        case '/api/logout': {
          if (method !== 'POST') throw new HttpError(405, 'method not allowed');
          requireCsrf(req, session);
          sessions.destroy(token);
          deps.hub.closeSession(session.id);
          res.setHeader('set-cookie', sessionCookie('', 0, deps.secureCookies));
          logger.info('dashboard logout', { action: 'logout', user: session.username });
          return sendJson(res, 200, { ok: true });
        }
        case '/api/snapshot':
          if (!get) throw new HttpError(405, 'method not allowed');
          return sendJson(res, 200, deps.snapshot());
        case '/api/events':
          if (!get) throw new HttpError(405, 'method not allowed');
          return deps.hub.open(req, res, session.id, deps.snapshot());
        case '/api/model/rollback':
          if (method !== 'POST') throw new HttpError(405, 'method not allowed');
          return rollback(req, res, session);
        default:
          return sendJson(res, 404, { error: 'not found' });
      }
    }
    sendJson(res, 404, { error: 'not found' });
  }

  return (req, res) => {
    // A body the route answers without reading is discarded, within bounds (common/http/body.ts).
    guardUnreadBody(req, res);
    handle(req, res).catch((err: unknown) => {
      let status = 500;
      let message = 'internal error';
      if (err instanceof HttpError) {
        status = err.status;
        message = err.message;
      } else if (err instanceof DriftlineError) {
        status =
          err.code === 'REGISTRY_NO_PREVIOUS' || err.code === 'REGISTRY_STATE'
            ? 409
            : err.code === 'REGISTRY_NOT_FOUND'
              ? 404
              : 502;
        message = err.message;
      }
      if (status >= 500)
        logger.error('dashboard request failed', {
          method: req.method,
          path: req.url,
          err: describeError(err),
        });
      if (res.headersSent) {
        res.end();
        return;
      }
      sendJson(res, status, { error: message });
    });
  };
}
