import type { Logger } from '../../common/logging/logger.ts';

/**
 * Tells the person at the terminal where the dashboard is and, when `npm
 * start` generated the operator's password, what it is. The password goes to
 * the terminal only, never to the logger: log lines may be shipped to
 * Elasticsearch (ELASTICSEARCH_URL) and kept there.
 */
export function announceDashboard(o: {
  log: Logger;
  terminal: (text: string) => void;
  url: string;
  /** The operator password generated for this run, if any. */
  generatedPassword: string | undefined;
}): void {
  o.log.info(
    `dashboard: ${o.url}${o.generatedPassword === undefined ? '' : '  (user "operator", password generated for this run and shown on the terminal, not in the logs; set DASHBOARD_USERS_FILE to choose your own)'}`,
    { action: 'dashboard-started', url: o.url, generatedPassword: o.generatedPassword !== undefined },
  );
  if (o.generatedPassword !== undefined)
    o.terminal(
      `\n  Dashboard ${o.url}\n  user "operator", password "${o.generatedPassword}" (generated for this run; printed here only)\n\n`,
    );
}
