import type { Browser, Page } from 'playwright-core';
import { ScriptedPipeline } from '../tests/helpers/dashboard/feed.ts';
import { login } from '../tests/helpers/dashboard/http-client.ts';
import {
  DASHBOARD_LOGINS,
  startDashboardStack,
  TEST_MODEL,
  type DashboardStack,
} from '../tests/helpers/dashboard/stack.ts';
import { launchChromium } from '../tests/external/helpers/dashboard-browser.ts';

/**
 * Dashboard figures (`npm run bench -- dashboard`), in Debian's Chromium on
 * localhost with 50 machines reporting (broker, bus, registry and dashboard in
 * this process; data from the scripted pipeline):
 *
 * - first render: ms from navigation start until the page has drawn the first
 *   snapshot (`window.__driftline.firstRenderMs`, set after the first frame that
 *   rendered it), for the drift view and the fleet view (50 rows), median and
 *   max of several fresh page loads; plus first contentful paint;
 * - live load: the server pushes 20 updates per second (updateIntervalMs 50)
 *   while 50 machines publish; over a few seconds on the fleet view: updates
 *   received, frames drawn, render time per frame (p50/p95/max), the interval
 *   between animation frames (p50/p95, frames over 50 ms), long tasks, and the
 *   cumulative layout shift (0 means no jank from moving content). The broker,
 *   the publishers and the dashboard share the machine's CPUs with the browser.
 */

const MACHINES = 50;
const LOADS = 7;
const LIVE_SECONDS = 8;

interface PageStats {
  firstRenderMs: number | null;
  frames: number;
  updates: number;
  snapshots: number;
  renderMs: number[];
}

/** Counts layout shifts and long tasks that start after \`window.__perf.since\` (set when the live phase begins). */
const INSTRUMENT = `
  window.__perf = { since: Infinity, cls: 0, longTasks: 0, longTaskMs: 0 };
  new PerformanceObserver((l) => { for (const e of l.getEntries()) if (!e.hadRecentInput && e.startTime >= window.__perf.since) window.__perf.cls += e.value; }).observe({ type: 'layout-shift', buffered: true });
  new PerformanceObserver((l) => { for (const e of l.getEntries()) if (e.startTime >= window.__perf.since) { window.__perf.longTasks++; window.__perf.longTaskMs += e.duration; } }).observe({ type: 'longtask', buffered: true });
  window.__frames = [];
  let last = 0;
  const loop = (t) => { if (last > 0 && t >= window.__perf.since) window.__frames.push(t - last); last = t; requestAnimationFrame(loop); };
  requestAnimationFrame(loop);
`;

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] as number;
}

const r1 = (x: number): number => Math.round(x * 10) / 10;
const r3 = (x: number): number => Math.round(x * 1000) / 1000;

async function loadOnce(
  browser: Browser,
  stack: DashboardStack,
  cookie: string,
  hash: string,
  expectRows: number,
): Promise<{ firstRenderMs: number; fcpMs: number | null }> {
  const context = await browser.newContext({ viewport: { width: 1440, height: 1000 } });
  const [name, value] = cookie.split('=') as [string, string];
  await context.addCookies([{ name, value, url: stack.dashboard.url }]);
  const page = await context.newPage();
  try {
    await page.goto(`${stack.dashboard.url}/${hash}`);
    await page.waitForSelector('body[data-rendered="true"]');
    if (expectRows > 0) {
      const rows = await page.locator('#fleet-rows tr').count();
      if (rows < expectRows) throw new Error(`first render showed ${rows} machines, expected ${expectRows}`);
    }
    const stats = (await page.evaluate(
      () => (window as unknown as { __driftline: PageStats }).__driftline,
    )) as PageStats;
    const fcp = await page.evaluate(
      () => performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null,
    );
    return { firstRenderMs: stats.firstRenderMs ?? Number.NaN, fcpMs: fcp };
  } finally {
    await context.close();
  }
}

async function liveLoad(page: Page, pipeline: ScriptedPipeline): Promise<Record<string, number>> {
  await page.evaluate(() => {
    const d = (window as unknown as { __driftline: PageStats }).__driftline;
    d.renderMs.length = 0;
    d.frames = 0;
    d.updates = 0;
    const p = (
      window as unknown as { __perf: { since: number; cls: number; longTasks: number; longTaskMs: number } }
    ).__perf;
    p.since = performance.now();
    p.cls = 0;
    p.longTasks = 0;
    p.longTaskMs = 0;
  });
  const started = Date.now();
  let published = 0;
  while (Date.now() - started < LIVE_SECONDS * 1000) {
    const tick = Date.now();
    await pipeline.publishSamples(MACHINES); // every machine, 20 times a second
    published += MACHINES;
    const wait = 50 - (Date.now() - tick);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  const seconds = (Date.now() - started) / 1000;
  await new Promise((r) => setTimeout(r, 300));
  const stats = (await page.evaluate(
    () => (window as unknown as { __driftline: PageStats }).__driftline,
  )) as PageStats;
  const perf = (await page.evaluate(
    () => (window as unknown as { __perf: { cls: number; longTasks: number; longTaskMs: number } }).__perf,
  )) as {
    cls: number;
    longTasks: number;
    longTaskMs: number;
  };
  const frames = (await page.evaluate(
    () => (window as unknown as { __frames: number[] }).__frames,
  )) as number[];
  return {
    seconds: r1(seconds),
    frameIntervalMsP50: r1(pct(frames, 50)),
    frameIntervalMsP95: r1(pct(frames, 95)),
    framesOver50Ms: frames.filter((f) => f > 50).length,
    frameSamples: frames.length,
    telemetryPerSec: r1(published / seconds),
    updatesPerSec: r1(stats.updates / seconds),
    framesPerSec: r1(stats.frames / seconds),
    renderMsP50: r3(pct(stats.renderMs, 50)),
    renderMsP95: r3(pct(stats.renderMs, 95)),
    renderMsMax: r3(Math.max(...stats.renderMs)),
    longTasks: perf.longTasks,
    longTaskMs: r1(perf.longTaskMs),
    cumulativeLayoutShift: r3(perf.cls),
  };
}

/** The figures printed by bench/run.ts. */
export async function run(): Promise<Record<string, unknown>> {
  const stack = await startDashboardStack({ dashboard: { updateIntervalMs: 50 } });
  let browser: Browser | undefined;
  try {
    await stack.dashboard.ready;
    const client = await stack.publisher();
    const ids = Array.from({ length: MACHINES }, (_, i) => `m-${String(i).padStart(3, '0')}`);
    const pipeline = new ScriptedPipeline({
      client,
      bus: stack.bus,
      machineIds: ids,
      modelName: TEST_MODEL,
      championVersion: '1',
      windowSize: 250,
    });
    await pipeline.publishSamples(MACHINES * 20); // 4 drift windows with histograms, every machine seen
    await pipeline.publishStatus();
    await new Promise((r) => setTimeout(r, 500));
    const { cookie } = await login(stack.dashboard.url, DASHBOARD_LOGINS.viewer);
    browser = await launchChromium();
    // One warm-up load (Chromium's own start-up, the server's first asset read), then measured loads.
    await loadOnce(browser, stack, cookie, '#fleet', MACHINES);
    const views: Record<string, unknown> = {};
    for (const [view, rows] of [
      ['drift', 0],
      ['fleet', MACHINES],
    ] as const) {
      const first: number[] = [];
      const fcp: number[] = [];
      for (let i = 0; i < LOADS; i++) {
        const r = await loadOnce(browser, stack, cookie, `#${view}`, rows);
        first.push(r.firstRenderMs);
        if (r.fcpMs !== null) fcp.push(r.fcpMs);
      }
      views[view] = {
        firstRenderMsMedian: r1(pct(first, 50)),
        firstRenderMsMax: r1(Math.max(...first)),
        firstContentfulPaintMsMedian: r1(pct(fcp, 50)),
        loads: LOADS,
      };
    }
    const context = await browser.newContext({ viewport: { width: 1440, height: 1000 } });
    const [name, value] = cookie.split('=') as [string, string];
    await context.addCookies([{ name, value, url: stack.dashboard.url }]);
    await context.addInitScript(INSTRUMENT);
    const page = await context.newPage();
    await page.goto(`${stack.dashboard.url}/#fleet`);
    await page.waitForSelector('body[data-rendered="true"]');
    const live = await liveLoad(page, pipeline);
    await context.close();
    return { machines: MACHINES, firstRender: views, liveFleetAt20UpdatesPerSec: live };
  } finally {
    await browser?.close();
    await stack.close();
  }
}
