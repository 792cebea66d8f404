import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DASHBOARD_LOGINS, startDashboardStack, type DashboardStack } from '../helpers/dashboard/stack.ts';
import { launchChromium, signIn, watchPage, type PageProblems } from './helpers/dashboard-browser.ts';
import { startProxy, type CuttableProxy } from './helpers/dashboard-proxy.ts';
import { scriptedSource, type DashboardDataSource } from './helpers/dashboard-source.ts';

/**
 * The dashboard in a real browser (Debian's Chromium via playwright-core):
 * log in, machines appear, a drift is highlighted with its alarm, the retrain
 * and the new champion appear without a reload, a machine id made of HTML
 * stays text, an operator rolls back, a viewer cannot, and the page shows a
 * lost connection and recovers with a fresh snapshot. The data comes from
 * {@link DashboardDataSource} (scripted today; the real pipeline later).
 * Screenshots go to test-results/dashboard-e2e/.
 */

const SHOTS = path.resolve('test-results/dashboard-e2e');
const XSS_ID = '<img src=x onerror=alert(1)>';
const MACHINES = [...Array.from({ length: 12 }, (_, i) => `press-${String(i + 1).padStart(2, '0')}`), XSS_ID];

let stack: DashboardStack;
let source: DashboardDataSource;
let proxy: CuttableProxy;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let problems: PageProblems;

/**
 * Playwright's locator assertions live in @playwright/test; with playwright-core we poll through vitest's
 * expect.poll.
 */
const T = { timeout: 15_000, interval: 50 };
const text = (l: Locator): Promise<string> => l.textContent().then((t) => t ?? '');
const classes = (l: Locator): Promise<string> => l.getAttribute('class').then((c) => c ?? '');

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

async function tab(name: 'drift' | 'fleet' | 'model' | 'pipeline'): Promise<void> {
  await page.click(`a[data-tab="${name}"]`);
  await page.waitForSelector(`body[data-tab="${name}"]`);
}

beforeAll(async () => {
  await mkdir(SHOTS, { recursive: true });
  browser = await launchChromium();
  stack = await startDashboardStack({ dashboard: { staleAfterMs: 4000, updateIntervalMs: 100 } });
  await stack.dashboard.ready;
  proxy = await startProxy(stack.dashboard.url);
  source = await scriptedSource(stack, { machineIds: MACHINES, windowSize: 120, tickMs: 200 });
  await source.start();
  context = await browser.newContext({ viewport: { width: 1440, height: 1000 } });
  page = await context.newPage();
  problems = watchPage(page);
});

afterAll(async () => {
  await context?.close();
  await browser?.close();
  await source?.close();
  await proxy?.close();
  await stack?.close();
});

describe('dashboard in Chromium', () => {
  it('requires a login, then shows the machines as they report', async () => {
    await signIn(page, proxy.url, DASHBOARD_LOGINS.operator);
    await tab('fleet');
    await page.waitForFunction(
      (n) => document.querySelectorAll('#fleet-rows tr').length >= n,
      MACHINES.length,
    );
    await expect
      .poll(() => text(page.locator('#fleet-rows tr', { hasText: 'press-07' }).locator('td').nth(1)), T)
      .toBe('OK');
    await expect.poll(() => text(page.locator('#user-name')), T).toBe('olivia');
    await shot('01-fleet-after-login');
  });

  it('renders a machine id made of HTML as text: no element is created and no script runs', async () => {
    const cell = page.locator('#fleet-rows td', { hasText: XSS_ID });
    await expect.poll(() => cell.count(), T).toBe(1);
    await expect.poll(() => cell.isVisible(), T).toBe(true);
    expect(await cell.textContent()).toBe(XSS_ID);
    expect(await page.locator('img').count()).toBe(0);
    expect(problems.dialogs).toEqual([]);
    expect(problems.errors).toEqual([]);
    expect(problems.consoleErrors).toEqual([]); // CSP violations would be reported here
    await shot('01b-html-machine-id');
  });

  it('highlights the drifted feature, shows the alarm, then the retrain and the new champion without a reload', async () => {
    await page.evaluate(() => ((window as unknown as { __noReload: boolean }).__noReload = true));
    await tab('drift');
    await expect.poll(() => text(page.locator('#kpi-champion')), T).toBe('v1');
    await page.waitForSelector('#feature-rows tr[data-feature="temperatureC"]:not(.drifted)');
    // A few undrifted windows first, so the sparklines show the change.
    await expect
      .poll(async () => Number(/window #(\d+)/.exec(await text(page.locator('#drift-meta')))?.[1] ?? 0), {
        timeout: 30_000,
        interval: 100,
      })
      .toBeGreaterThanOrEqual(6);
    expect(await page.locator('#feature-rows tr.drifted').count()).toBe(0);
    const { requestId } = await source.drift('temperatureC', 25);
    expect(requestId).toMatch(/^[0-9a-f]{64}$/);
    const row = page.locator('#feature-rows tr[data-feature="temperatureC"]');
    await expect.poll(() => classes(row), T).toMatch(/drifted/);
    await expect.poll(() => text(row.locator('td').last()), T).toBe('DRIFT');
    await expect.poll(() => page.locator('#feature-rows tr.drifted').count(), T).toBe(1);
    await expect.poll(() => text(page.locator('#drift-summary')), T).toBe('1 feature drifted');
    const alarm = page.locator('#alarm-rows tr').first();
    await expect.poll(() => text(alarm), T).toContain('covariate');
    await expect.poll(() => text(alarm), T).toContain('temperatureC D=');
    await expect.poll(() => text(alarm), T).toContain('retrain requested');
    await expect.poll(() => page.locator('#drift-feature').inputValue(), T).toBe('temperatureC');
    await shot('02-drift-alarm');

    const { version } = await source.retrain();
    expect(version).toBe('2');
    await expect.poll(() => text(alarm), T).toContain('promoted v2');
    await expect.poll(() => text(alarm), T).toContain('F1 0.921 vs 0.744');
    await expect.poll(() => text(page.locator('#kpi-champion')), T).toBe('v2');
    await expect.poll(() => classes(row), T).not.toMatch(/drifted/);
    await shot('03-drift-after-retrain');

    await tab('model');
    await expect.poll(() => text(page.locator('#model-champion')), T).toBe('v2');
    const retrain = page.locator('#retrain-rows tr').first();
    await expect.poll(() => text(retrain), T).toContain('promoted v2');
    await expect.poll(() => text(retrain), T).toContain('v1 · acc 0.781 · F1 0.744');
    await expect.poll(() => text(retrain), T).toContain('v2 · acc 0.934 · F1 0.921');
    await expect.poll(() => text(page.locator('#version-rows tr').first()), T).toContain('champion');
    await expect.poll(() => text(page.locator('#model-backend')), T).toBe('tfjs-node');
    await expect.poll(() => text(page.locator('#model-serving')), T).toContain('v2');
    await shot('04-model');
    expect(await page.evaluate(() => (window as unknown as { __noReload?: boolean }).__noReload)).toBe(true);
  });

  it('flags stale and faulty machines and counts dead letters by reason', async () => {
    await source.stuckSensor('press-04', 'vibrationHz', 2.5);
    await source.badReadings('press-09', 3);
    const c = await stack.publisher();
    await c.publishAsync(
      'factory/press-99/telemetry',
      JSON.stringify({
        machineId: 'press-99',
        seq: 0,
        ts: Date.now(),
        operationMode: 'Idle',
        temperatureC: 48,
        vibrationHz: 1.2,
        powerKw: 3.1,
        networkLatencyMs: 6,
        packetLossPct: 0.2,
        defectRatePct: 1.4,
        productionSpeedUph: 120,
        maintenanceScore: 0.7,
        errorRatePct: 1.1,
      }),
      { qos: 1 },
    );
    await tab('fleet');
    const status = (id: string) =>
      page
        .locator('#fleet-rows tr', { has: page.locator('td.mono', { hasText: new RegExp(`^${id}$`) }) })
        .locator('.status-cell');
    await expect.poll(() => text(status('press-04')), T).toBe('Faulty');
    await expect.poll(() => text(status('press-09')), T).toBe('Faulty');
    await expect.poll(() => text(status('press-99')), T).toBe('Stale');
    await expect.poll(() => text(page.locator('#attention-rows')), T).toContain('vibrationHz stuck at 2.5');
    await expect.poll(() => text(page.locator('#deadletter-reasons')), T).toContain('out_of_range');
    await expect.poll(() => text(page.locator('#fleet-deadletters')), T).toBe('3');
    await shot('05-fleet-health');
  });

  it('lets an operator roll the champion back behind a confirmation', async () => {
    await tab('model');
    await expect.poll(() => page.locator('#rollback-open').isEnabled(), T).toBe(true);
    await page.click('#rollback-open');
    await expect.poll(() => page.locator('#rollback-dialog').isVisible(), T).toBe(true);
    await expect.poll(() => text(page.locator('#rollback-text')), T).toContain('v2');
    await page.click('#rollback-confirm'); // no reason yet
    await expect.poll(() => text(page.locator('#rollback-error')), T).toBe('Please give a reason.');
    await page.fill('#rollback-reason', 'live accuracy dropped after the promotion');
    await page.click('#rollback-confirm');
    await expect.poll(() => text(page.locator('#toast')), T).toContain('v2 → v1');
    await expect.poll(() => text(page.locator('#model-champion')), T).toBe('v1');
    await expect.poll(() => text(page.locator('#alias-rows tr').first()), T).toContain('rollback');
    await expect.poll(() => text(page.locator('#alias-rows tr').first()), T).toContain('dashboard:olivia');
    // The (scripted) edge follows the model-rolled-back event the dashboard published.
    await expect.poll(() => text(page.locator('#model-serving')), T).toBe('Serving on 1 edge worker: v1');
    await shot('06-model-rolled-back');
    expect((await stack.registry.getChampion('driftline-efficiency'))?.version).toBe('1');
  });

  it('does not offer the rollback to a viewer', async () => {
    const viewerContext = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    const viewerPage = await viewerContext.newPage();
    try {
      await signIn(viewerPage, proxy.url, DASHBOARD_LOGINS.viewer);
      await viewerPage.click('a[data-tab="model"]');
      await expect.poll(() => viewerPage.locator('#rollback-open').isDisabled(), T).toBe(true);
      await expect
        .poll(() => text(viewerPage.locator('#rollback-hint')), T)
        .toBe('Rollback needs the operator role.');
      await expect.poll(() => text(viewerPage.locator('#user-role')), T).toBe('viewer');
      await viewerPage.screenshot({ path: path.join(SHOTS, '06b-model-viewer.png'), fullPage: true });
    } finally {
      await viewerContext.close();
    }
  });

  it('shows that it is reconnecting when the server is unreachable, then resumes with a fresh snapshot', async () => {
    await tab('pipeline');
    const before = await page.evaluate(
      () => (window as unknown as { __driftline: { snapshots: number } }).__driftline.snapshots,
    );
    await proxy.cut();
    await page.waitForSelector('body[data-stream="reconnecting"]');
    await expect.poll(() => page.locator('#banner').isVisible(), T).toBe(true);
    await expect.poll(() => text(page.locator('#stream-status')), T).toBe('Reconnecting…');
    await shot('07-reconnecting');
    await proxy.restore();
    await page.waitForSelector('body[data-stream="live"]', { timeout: 20_000 });
    await expect.poll(() => page.locator('#banner').isHidden(), T).toBe(true);
    const after = await page.evaluate(
      () => (window as unknown as { __driftline: { snapshots: number } }).__driftline.snapshots,
    );
    expect(after).toBe(before + 1);

    await stack.restartBroker();
    await expect.poll(() => text(page.locator('#broker-status')), T).toMatch(/Broker (reconnecting…|error)/);
    await expect.poll(() => text(page.locator('#broker-status')), T).toBe('Broker connected');
    await shot('08-pipeline');
    expect(problems.dialogs).toEqual([]);
    expect(problems.errors).toEqual([]);
  });
});
