import { randomBytes } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSystem, type RunningSystem } from '../../bin/lib/start.ts';
import { createLogger, type Logger } from '../../common/logging/logger.ts';
import { hashDashboardPassword } from '../../dashboard/src/auth.ts';
import { launchChromium, signIn, watchPage, type PageProblems } from './helpers/dashboard-browser.ts';

/**
 * The dashboard in a real browser on the REAL pipeline: `startSystem` (what
 * `npm start` runs: embedded broker, simulator, edge worker, retrainer,
 * dashboard) plays scenarios/e2e-drift.json at 500 msg/s. An operator logs in,
 * sees the machines report, then — without reloading the page — the drift
 * panel highlights vibrationHz, the alarm appears in the timeline, and the
 * retrain and the new champion v2 appear in the model view. Screenshots and
 * the system's log go to test-results/dashboard-live/; with
 * UPDATE_DOCS_SCREENSHOTS=1 (`make docs-screenshots`) the final drift, fleet and
 * model screenshots replace docs/dashboard-*.png.
 */

const SHOTS = path.resolve('test-results/dashboard-live');
const DOCS = path.resolve('docs');
const SCENARIO = path.resolve('scenarios/e2e-drift.json');
const MACHINES = ['m-000', 'm-001', 'm-002', 'm-003'];
const DRIFTED = 'vibrationHz';
const USER = { username: 'olga', password: randomBytes(18).toString('base64url') };

let stateRoot: string;
let logStream: WriteStream;
let system: RunningSystem | undefined;
let browser: Browser | undefined;
let context: BrowserContext | undefined;
let page: Page;
let problems: PageProblems;
const started = Date.now();

/**
 * Playwright's locator assertions live in @playwright/test; with playwright-core we poll through vitest's
 * expect.poll.
 */
const T = { timeout: 20_000, interval: 100 };
/** Waits on the pipeline itself: detection, retraining, promotion. */
const SLOW = { timeout: 120_000, interval: 100 };
const text = (l: Locator): Promise<string> => l.textContent().then((t) => t ?? '');
const classes = (l: Locator): Promise<string> => l.getAttribute('class').then((c) => c ?? '');
const elapsed = (): string => `${((Date.now() - started) / 1000).toFixed(1)} s`;

async function shot(name: string): Promise<void> {
  // Viewport-sized, like the docs images (1440 x 1000).
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
  logStream.write(`---- screenshot ${name} at ${elapsed()}\n`);
}

async function tab(name: 'drift' | 'fleet' | 'model' | 'pipeline'): Promise<void> {
  await page.click(`a[data-tab="${name}"]`);
  await page.waitForSelector(`body[data-tab="${name}"]`);
}

function fleetRow(id: string): Locator {
  return page.locator('#fleet-rows tr', { has: page.locator('td.mono', { hasText: new RegExp(`^${id}$`) }) });
}

beforeAll(async () => {
  await rm(SHOTS, { recursive: true, force: true });
  await mkdir(SHOTS, { recursive: true });
  stateRoot = await mkdtemp(path.join(tmpdir(), 'driftline-live-'));
  logStream = createWriteStream(path.join(SHOTS, 'system.log'));
  const loggers = new Map<string, Logger>();
  const loggerFor = (service: string): Logger => {
    let l = loggers.get(service);
    if (l === undefined) {
      l = createLogger({ service, format: 'pretty', stream: logStream, level: 'info' });
      loggers.set(service, l);
    }
    return l;
  };
  // The browser first: the simulator starts as soon as startSystem returns.
  browser = await launchChromium();
  context = await browser.newContext({ viewport: { width: 1440, height: 1000 } });
  page = await context.newPage();
  problems = watchPage(page);

  const operator = await hashDashboardPassword(USER.username, 'operator', USER.password);
  // Only what the run needs: no MQTT_URL, KAFKA_BROKERS, MLFLOW_TRACKING_URI or REGISTRY_DIR from the
  // caller's environment, so every service is the embedded default.
  const env: NodeJS.ProcessEnv = {
    DASHBOARD_USERS: JSON.stringify([operator]),
    BROKER_PORT: '0',
    BROKER_WS_PORT: '0',
    BROKER_HTTP_PORT: 'off',
    EDGE_HTTP_PORT: '0',
    DASHBOARD_PORT: '0',
    RETRAINER_HTTP_PORT: '0',
  };
  // The first run trains the bootstrap model into .driftline/bootstrap/ (10-40 s); later runs reuse it.
  system = await startSystem({
    scenarioFile: SCENARIO,
    totalRate: 500,
    exitAfterPhases: false,
    stateDir: path.join(stateRoot, 'state'),
    dashboard: true,
    loggerFor,
    env,
  });
  logStream.write(
    `---- system started at ${elapsed()}: dashboard ${system.dashboardUrl ?? '-'}, MQTT ${system.mqttUrl}\n`,
  );
}, 240_000);

afterAll(async () => {
  await context?.close().catch(() => undefined);
  await browser?.close().catch(() => undefined);
  await system?.stop();
  logStream?.write(`---- stopped at ${elapsed()}\n`);
  await new Promise<void>((resolve) => (logStream ? logStream.end(resolve) : resolve()));
  if (stateRoot) await rm(stateRoot, { recursive: true, force: true });
}, 60_000);

describe('dashboard in Chromium on the real pipeline', () => {
  it('logs an operator in and shows the simulated machines reporting', async () => {
    const url = system?.dashboardUrl;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    await signIn(page, url as string, USER);
    await page.evaluate(() => ((window as unknown as { __marker: string }).__marker = 'set-after-login'));
    await expect.poll(() => text(page.locator('#user-name')), T).toBe(USER.username);
    await expect.poll(() => text(page.locator('#user-role')), T).toBe('operator');
    await tab('fleet');
    await page.waitForFunction(
      (n) => document.querySelectorAll('#fleet-rows tr').length >= n,
      MACHINES.length,
      { timeout: 30_000 },
    );
    expect(await page.locator('#fleet-rows tr').count()).toBe(MACHINES.length);
    for (const id of MACHINES) {
      await expect.poll(() => text(fleetRow(id).locator('.status-cell')), T).toBe('OK');
      await expect.poll(() => text(fleetRow(id).locator('td').nth(3)), T).toMatch(/^(Low|Medium|High)$/);
    }
    await expect.poll(() => text(page.locator('#fleet-total')), T).toBe('4');
    await expect.poll(() => text(page.locator('#fleet-live')), T).toBe('4');
    await expect.poll(() => text(page.locator('#kpi-champion')), T).toBe('v1');
    await expect.poll(async () => Number(await text(page.locator('#kpi-rate'))), T).toBeGreaterThan(100);
    await shot('01-fleet-after-login');
  });

  it('highlights the drifted feature and shows the alarm in the timeline', async () => {
    await tab('drift');
    await expect.poll(() => page.locator('#drift-group').inputValue(), T).toBe('all');
    const row = page.locator(`#feature-rows tr[data-feature="${DRIFTED}"]`);
    await expect.poll(() => classes(row), SLOW).toMatch(/\bdrifted\b/);
    logStream.write(`---- ${DRIFTED} highlighted at ${elapsed()}\n`);
    await expect.poll(() => text(row.locator('td').last()), T).toBe('DRIFT');
    expect(Number(await text(row.locator('td').nth(1)))).toBeGreaterThan(
      Number(await text(row.locator('td').nth(2))),
    );
    await expect.poll(() => text(page.locator('#drift-summary')), T).toMatch(/^\d+ features? drifted$/);
    // The feature chart follows the most drifted feature.
    await expect.poll(() => page.locator('#drift-feature').inputValue(), T).toBe(DRIFTED);
    const alarm = page.locator('#alarm-rows tr', { hasText: `${DRIFTED} D=` }).last();
    await expect.poll(() => text(alarm), SLOW).toContain('covariate');
    await expect.poll(() => text(alarm), T).toMatch(/retrain requested|promoted v2/);
    await expect.poll(() => page.locator('#alarms-empty').isHidden(), T).toBe(true);
    await expect
      .poll(async () => Number(await text(page.locator('#kpi-alarms'))), T)
      .toBeGreaterThanOrEqual(1);
    await shot('02-drift-alarm');
  }, 180_000);

  it('shows the retrain and the new champion v2 without a reload', async () => {
    const alarm = page
      .locator('#alarm-rows tr', { hasText: `${DRIFTED} D=` })
      .filter({ hasText: 'promoted v2' });
    await expect.poll(() => alarm.count(), SLOW).toBeGreaterThanOrEqual(1);
    logStream.write(`---- promoted v2 in the alarm timeline at ${elapsed()}\n`);
    await expect.poll(() => text(alarm.first()), T).toMatch(/v2 live · F1 \d\.\d{3} vs \d\.\d{3}/);
    await expect.poll(() => text(page.locator('#kpi-champion')), T).toMatch(/^v([2-9]|\d{2,})$/);
    await shot('03-drift-after-retrain');

    // The fleet while the drifted stream still flows (the scenario ends about 30 s after v2).
    await tab('fleet');
    for (const id of MACHINES)
      await expect.poll(() => text(fleetRow(id).locator('.status-cell')), T).toBe('OK');
    await expect.poll(() => text(page.locator('#fleet-live')), T).toBe('4');
    // vibrationHz (column 7) is drawn from 2.1-7.0 Hz after the shift instead of 0.1-5.0.
    await shot('04-fleet');

    await tab('model');
    const retrain = page.locator('#retrain-rows tr', { hasText: 'promoted v2' });
    await expect.poll(() => retrain.count(), T).toBe(1);
    await expect.poll(() => text(retrain), T).toContain('covariate');
    await expect.poll(() => text(retrain), T).toContain(DRIFTED);
    await expect.poll(() => text(retrain), T).toMatch(/v1 · acc \d\.\d{3} · F1 \d\.\d{3}/);
    await expect.poll(() => text(retrain), T).toMatch(/v2 · acc \d\.\d{3} · F1 \d\.\d{3}/);
    await expect.poll(() => text(retrain), T).toContain('beats champion');
    const champion = await text(page.locator('#model-champion'));
    expect(champion).toMatch(/^v([2-9]|\d{2,})$/);
    const v2 = page.locator('#version-rows tr', { has: page.locator('td', { hasText: /^v2$/ }) });
    await expect.poll(() => text(v2.locator('td').nth(1)), T).toMatch(/^(champion|retired)$/);
    // The retrainer records holdout_accuracy / holdout_macro_f1, the bootstrap accuracy / macroF1: both are shown.
    expect(await text(v2.locator('td').nth(3))).toMatch(/^0\.\d{3}$/);
    expect(await text(v2.locator('td').nth(4))).toMatch(/^0\.\d{3}$/);
    await expect.poll(() => text(v2.locator('td').last()), T).toBe('retrainer');
    await expect.poll(() => text(page.locator('#alias-rows')), T).toContain('v1 → v2');
    // The edge worker hot-swapped: it serves the champion the page shows.
    await expect
      .poll(async () => text(page.locator('#model-serving')), T)
      .toMatch(/^Serving on 1 edge worker: v\d+$/);
    await expect
      .poll(
        async () =>
          (await text(page.locator('#model-serving'))).endsWith(
            `: ${await text(page.locator('#model-champion'))}`,
          ),
        T,
      )
      .toBe(true);
    await expect.poll(() => text(page.locator('#model-backend')), T).not.toBe('—');
    await shot('05-model');

    await tab('pipeline');
    await expect.poll(() => text(page.locator('#worker-rows tr').first()), T).toContain('driftline-edge-');
    await expect.poll(() => text(page.locator('#conn-rows')), T).toContain('connected');
    // Real latencies (tens to hundreds of ms here; seconds on a loaded machine, shown as 1.8k) fit their KPI
    // card instead of ending in an ellipsis.
    await expect
      .poll(() => text(page.locator('#pipe-latency')), T)
      .toMatch(/^[\d.]+k? · [\d.]+k? · [\d.]+k?$/);
    const fit = await page
      .locator('#pipe-latency')
      .evaluate((el) => ({ text: el.textContent, scroll: el.scrollWidth, client: el.clientWidth }));
    logStream.write(`---- latency KPI ${JSON.stringify(fit)}\n`);
    expect(fit.scroll, `latency KPI "${fit.text ?? ''}" overflows its card`).toBeLessThanOrEqual(fit.client);
    await shot('06-pipeline');

    await tab('drift');
    await shot('07-drift-final');

    expect(await page.evaluate(() => (window as unknown as { __marker?: string }).__marker)).toBe(
      'set-after-login',
    );
    const stats = await page.evaluate(
      () => (window as unknown as { __driftline: { snapshots: number; updates: number } }).__driftline,
    );
    logStream.write(
      `---- page: ${stats.snapshots} snapshot(s), ${stats.updates} updates, no reload; done at ${elapsed()}\n`,
    );
    expect(problems.errors).toEqual([]);
    expect(problems.consoleErrors).toEqual([]);
    expect(problems.dialogs).toEqual([]);
    // The README's screenshots come from this run only when asked (`make docs-screenshots`): a test run
    // leaves the working tree as it found it (CI's test-once stamp needs a clean tree).
    if (process.env.UPDATE_DOCS_SCREENSHOTS === '1') {
      await copyFile(path.join(SHOTS, '02-drift-alarm.png'), path.join(DOCS, 'dashboard-drift.png'));
      await copyFile(path.join(SHOTS, '04-fleet.png'), path.join(DOCS, 'dashboard-fleet.png'));
      await copyFile(path.join(SHOTS, '05-model.png'), path.join(DOCS, 'dashboard-model.png'));
    }
  }, 180_000);
});
