import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { build } from 'esbuild';
import { projectPath } from '../../common/paths.ts';

/**
 * The browser side of the dashboard, held in memory: the TypeScript client
 * (`dashboard/src/client/`) bundled once per process with esbuild's JS API,
 * the static files of `dashboard/public/`, and the charting library (uPlot)
 * served from its npm package through fixed routes. Nothing comes from a CDN:
 * the page works offline.
 */

export interface Asset {
  body: Buffer;
  contentType: string;
  /** Strong ETag (sha256 prefix). */
  etag: string;
}

const publicDir = projectPath('dashboard', 'public');
const clientDir = projectPath('dashboard', 'src', 'client');

function asset(body: Buffer | string, contentType: string): Asset {
  const buf = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  return {
    body: buf,
    contentType,
    etag: `"${createHash('sha256').update(buf).digest('base64url').slice(0, 27)}"`,
  };
}

/** Directory of the installed uPlot package's built files. */
export function uplotDistDir(): string {
  const require = createRequire(import.meta.url);
  return path.dirname(require.resolve('uplot'));
}

async function buildClient(): Promise<Map<string, Asset>> {
  const result = await build({
    entryPoints: { app: path.join(clientDir, 'app.ts'), login: path.join(clientDir, 'login.ts') },
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    sourcemap: false,
    write: false,
    outdir: '/assets',
    logLevel: 'silent',
    legalComments: 'none',
  });
  const out = new Map<string, Asset>();
  for (const file of result.outputFiles)
    out.set(
      `/assets/${path.basename(file.path)}`,
      asset(Buffer.from(file.contents), 'text/javascript; charset=utf-8'),
    );
  return out;
}

async function loadAll(): Promise<Map<string, Asset>> {
  const assets = await buildClient();
  const file = async (rel: string): Promise<Buffer> => readFile(path.join(publicDir, rel));
  assets.set('/index.html', asset(await file('index.html'), 'text/html; charset=utf-8'));
  assets.set('/login.html', asset(await file('login.html'), 'text/html; charset=utf-8'));
  assets.set('/assets/app.css', asset(await file('app.css'), 'text/css; charset=utf-8'));
  assets.set('/assets/favicon.svg', asset(await file('favicon.svg'), 'image/svg+xml'));
  const uplot = uplotDistDir();
  assets.set(
    '/vendor/uPlot.iife.min.js',
    asset(await readFile(path.join(uplot, 'uPlot.iife.min.js')), 'text/javascript; charset=utf-8'),
  );
  assets.set(
    '/vendor/uPlot.min.css',
    asset(await readFile(path.join(uplot, 'uPlot.min.css')), 'text/css; charset=utf-8'),
  );
  return assets;
}

let cached: Promise<Map<string, Asset>> | undefined;

/**
 * Every asset by URL path. Built once per process and shared by every
 * dashboard in it; a failed build is not cached (the next call retries).
 */
export function loadAssets(): Promise<Map<string, Asset>> {
  cached ??= loadAll().catch((err: unknown) => {
    cached = undefined;
    throw err;
  });
  return cached;
}
