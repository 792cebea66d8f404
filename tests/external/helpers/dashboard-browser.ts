import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';

/**
 * Debian's Chromium driven by playwright-core (no downloaded browsers: never
 * `npx playwright install`). Missing Chromium fails with a clear message.
 */

export const CHROMIUM_PATH = '/usr/bin/chromium';

export const CHROMIUM_MISSING = `Chromium not found at ${CHROMIUM_PATH}: install Debian's package with scripts/setup/system-packages.sh chromium (do not run npx playwright install)`;

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) throw new Error(CHROMIUM_MISSING);
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

/** What went wrong on a page: uncaught errors, console errors (CSP violations show up here), JS dialogs. */
export interface PageProblems {
  errors: string[];
  consoleErrors: string[];
  dialogs: string[];
}

/** Records problems and dismisses any JS dialog (an XSS payload's alert would land here). */
export function watchPage(page: Page): PageProblems {
  const p: PageProblems = { errors: [], consoleErrors: [], dialogs: [] };
  page.on('pageerror', (e) => p.errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') p.consoleErrors.push(m.text());
  });
  page.on('dialog', (d) => {
    p.dialogs.push(`${d.type()}: ${d.message()}`);
    void d.dismiss();
  });
  return p;
}

/** Signs in through the login form and waits for the first render of the live page. */
export async function signIn(
  page: Page,
  baseUrl: string,
  user: { username: string; password: string },
): Promise<void> {
  await page.goto(`${baseUrl}/`);
  await page.waitForURL(/\/login$/);
  await page.fill('#username', user.username);
  await page.fill('#password', user.password);
  await Promise.all([page.waitForURL(`${baseUrl}/`), page.click('#login-submit')]);
  await page.waitForSelector('body[data-stream="live"][data-rendered="true"]');
}
