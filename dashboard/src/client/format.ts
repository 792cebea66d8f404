/** Number and time formatting for the dashboard (fixed widths, tabular digits). */

export const DASH = '—';

export function num(v: number | null | undefined, digits = 2): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return DASH;
  return v.toFixed(digits);
}

/**
 * A latency in ms in at most four characters, so three of them fit one KPI card: one decimal below 10 ms,
 * whole ms below 1 s, then thousands ("1.8k", "18k", "180k"); a loaded machine reaches seconds.
 */
export function latencyMs(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return DASH;
  if (v < 9.95) return v.toFixed(1);
  if (v < 999.5) return v.toFixed(0);
  if (v < 9_950) return `${(v / 1000).toFixed(1)}k`;
  if (v < 999_500) return `${(v / 1000).toFixed(0)}k`;
  return '>1M';
}

/** Compact numbers for sensor readings: 3 significant digits, up to 2 decimals. */
export function reading(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return DASH;
  const a = Math.abs(v);
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

/** p-values span many orders of magnitude: scientific below 1e-3. */
export function pvalue(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return DASH;
  if (v === 0) return '0';
  if (v < 1e-3) return v.toExponential(1);
  return v.toFixed(3);
}

export function pct(v: number | null | undefined, digits = 1): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return DASH;
  return `${(v * 100).toFixed(digits)}%`;
}

export function rate(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return DASH;
  if (v >= 1000) return `${(v / 1000).toFixed(1)}k`;
  if (v >= 100) return v.toFixed(0);
  return v.toFixed(1);
}

export function count(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return DASH;
  return v.toLocaleString('en-US');
}

function two(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** HH:MM:SS in local time. */
export function clock(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return DASH;
  const d = new Date(ms);
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

/** `MMM D HH:MM` for older events. */
export function dateTime(ms: number | string | null | undefined): string {
  if (ms === null || ms === undefined) return DASH;
  const d = new Date(ms);
  if (Number.isNaN(d.getTime())) return DASH;
  const month = d.toLocaleString('en-US', { month: 'short' });
  return `${month} ${d.getDate()} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

/** "4 s ago", "3 min ago", "2 h ago". */
export function ago(deltaMs: number): string {
  if (!Number.isFinite(deltaMs)) return DASH;
  const s = Math.max(0, Math.round(deltaMs / 1000));
  if (s < 60) return `${s} s ago`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ago`;
  const hours = Math.floor(m / 60);
  if (hours < 48) return `${hours} h ago`;
  return `${Math.floor(hours / 24)} d ago`;
}

/** "v3", or the dash. */
export function version(v: string | null | undefined): string {
  return v === null || v === undefined || v === '' ? DASH : `v${v}`;
}

/** Natural order for machine ids (m-2 before m-10). */
export const collator = new Intl.Collator('en', { numeric: true, sensitivity: 'base' });
