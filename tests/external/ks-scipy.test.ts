/**
 * Agreement of common/stats/ks.ts with real scipy.stats.ks_2samp.
 *
 * A seeded PRNG generates a few hundred cases (sizes 1..20000, ties, equal and
 * unequal sizes, every alternative and method); all of them go to one
 * `.venv/bin/python scripts/ks_reference.py` process, and every result is compared:
 * statistic within 1e-12, exact p-values within 1e-9 relative (or 1e-12 absolute),
 * asymptotic p-values within 1e-6 absolute, and the same location, sign and method.
 *
 * Needs the project virtualenv: `scripts/setup/python-venv.sh`. Fails (never skips)
 * without it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ks2samp, ks2sampSorted, SortedSample } from '../../common/stats/ks.ts';
import type { KsAlternative, KsMethod, KsResult } from '../../common/stats/ks.ts';
import { Rng } from '../../common/util/rng.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const python = path.join(root, '.venv', 'bin', 'python');
const script = path.join(root, 'scripts', 'ks_reference.py');
const requirements = path.join(root, 'scripts', 'setup', 'requirements-test.txt');

const STAT_TOL = 1e-12;
const EXACT_REL_TOL = 1e-9;
const EXACT_ABS_TOL = 1e-12;
const ASYMP_ABS_TOL = 1e-6;

interface Case {
  x: number[];
  y: number[];
  alternative: KsAlternative;
  method: KsMethod;
  label: string;
}

interface ScipyResult {
  statistic: number;
  pvalue: number | null;
  statistic_location: number | 'inf' | '-inf' | null;
  statistic_sign: 1 | -1 | null;
  method: 'exact' | 'asymp';
}

type Kind = 'normal' | 'int' | 'rounded' | 'few' | 'exp';
const KINDS: readonly Kind[] = ['normal', 'int', 'rounded', 'few', 'exp'];
const ALTERNATIVES: readonly KsAlternative[] = ['two-sided', 'less', 'greater'];
const METHODS: readonly KsMethod[] = ['auto', 'exact', 'asymp'];

function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[rng.int(items.length)] as T;
}

function sample(rng: Rng, n: number, kind: Kind, shift: number): number[] {
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    switch (kind) {
      case 'normal':
        out[i] = rng.normal(shift, 1);
        break;
      case 'int': // integer-valued: many ties
        out[i] = Math.round(rng.normal(shift * 3, 3));
        break;
      case 'rounded': // one decimal: ties
        out[i] = Math.round(rng.normal(shift, 1) * 10) / 10;
        break;
      case 'few': // five distinct values: heavy ties
        out[i] = rng.int(5) + (rng.next() < shift / 2 ? 1 : 0);
        break;
      case 'exp':
        out[i] = -Math.log(1 - rng.next()) * (1 + shift);
        break;
    }
  }
  return out;
}

function size(rng: Rng, lo: number, hi: number): number {
  // log-uniform in [lo, hi]
  return Math.min(
    hi,
    Math.max(lo, Math.round(Math.exp(Math.log(lo) + rng.next() * (Math.log(hi) - Math.log(lo))))),
  );
}

function makeCases(): Case[] {
  const rng = new Rng(20240611);
  const cases: Case[] = [];
  const add = (
    label: string,
    n1: number,
    n2: number,
    method?: KsMethod,
    alternative?: KsAlternative,
    equalSizes = false,
  ): void => {
    const kind = pick(rng, KINDS);
    const shift = pick(rng, [0, 0, 0, 0.1, 0.3, 1]);
    const m2 = equalSizes ? n1 : n2;
    const x = sample(rng, n1, kind, 0);
    // sometimes the second sample repeats the first (identical samples, statistic 0)
    const y = rng.next() < 0.05 && m2 === n1 ? x.slice() : sample(rng, m2, kind, shift);
    cases.push({
      x,
      y,
      alternative: alternative ?? pick(rng, ALTERNATIVES),
      method: method ?? pick(rng, METHODS),
      label: `${label} ${kind} shift=${shift}`,
    });
  };
  // tiny and small samples: every branch of the exact code, ties, size 1
  for (let i = 0; i < 70; i++)
    add('tiny', 1 + rng.int(12), 1 + rng.int(12), undefined, undefined, rng.next() < 0.3);
  for (let i = 0; i < 120; i++)
    add('small', size(rng, 2, 80), size(rng, 2, 80), undefined, undefined, rng.next() < 0.25);
  for (let i = 0; i < 70; i++)
    add('medium', size(rng, 80, 1500), size(rng, 80, 1500), undefined, undefined, rng.next() < 0.2);
  // drift-detector shapes: a large reference against small windows
  for (let i = 0; i < 12; i++) add('window', 5000, pick(rng, [50, 100, 500, 1000, 2000]));
  // up to MAX_AUTO_N: 'auto' is exact
  for (let i = 0; i < 12; i++)
    add(
      'big',
      size(rng, 1500, 10000),
      size(rng, 1500, 10000),
      pick(rng, ['auto', 'auto', 'exact'] as const),
      undefined,
      rng.next() < 0.3,
    );
  // above MAX_AUTO_N: 'auto' is asymp
  for (let i = 0; i < 8; i++) add('large', 10001 + rng.int(10000), size(rng, 1000, 20000), 'auto');
  add('large-equal', 20000, 20000, 'asymp', 'two-sided');
  add('large-exact-equal', 15000, 15000, 'exact', 'two-sided');
  add('large-exact', 12000, 3000, 'exact', 'two-sided');
  add('large-exact-onesided', 12000, 3000, 'exact', 'greater');
  // scipy's NaN corner: two samples of size 1 with the two-sided asymptotic p-value
  cases.push({ x: [1], y: [2], alternative: 'two-sided', method: 'asymp', label: 'one-vs-one' });
  cases.push({ x: [0.5], y: [0.5], alternative: 'two-sided', method: 'asymp', label: 'one-vs-one-tie' });
  // a statistic exactly at a half-integer multiple for np.round's half-to-even
  cases.push({
    x: [1, 2, 3, 4, 5],
    y: [1.5, 2.5, 3.5, 4.5, 5.5],
    alternative: 'two-sided',
    method: 'asymp',
    label: 'half-even',
  });
  // infinities are valid data
  cases.push({
    x: [-Infinity, 0, 1, 2],
    y: [0.5, 1.5, Infinity],
    alternative: 'two-sided',
    method: 'auto',
    label: 'infinities',
  });
  return cases;
}

function runScipy(cases: Case[]): { scipy: string; numpy: string; results: ScipyResult[] } {
  if (!existsSync(python)) {
    throw new Error(
      `${python} is missing: run scripts/setup/python-venv.sh to create the project virtualenv with scipy`,
    );
  }
  // JSON has no infinities: send them as the strings scripts/ks_reference.py turns back into floats
  const enc = (v: number): number | string => (Number.isFinite(v) ? v : v > 0 ? 'inf' : '-inf');
  const input = JSON.stringify({
    cases: cases.map((c) => ({
      x: c.x.map(enc),
      y: c.y.map(enc),
      alternative: c.alternative,
      method: c.method,
    })),
  });
  const proc = spawnSync(python, [script], { input, maxBuffer: 256 * 1024 * 1024, encoding: 'utf8' });
  if (proc.error)
    throw new Error(
      `could not run ${python} ${script}: ${proc.error.message}; run scripts/setup/python-venv.sh`,
    );
  if (proc.status !== 0) {
    throw new Error(
      `scripts/ks_reference.py exited ${proc.status}: ${proc.stderr.slice(-2000)}\n(run scripts/setup/python-venv.sh)`,
    );
  }
  return JSON.parse(proc.stdout) as { scipy: string; numpy: string; results: ScipyResult[] };
}

function fromJson(v: number | 'inf' | '-inf' | null): number {
  if (v === null) return NaN;
  if (v === 'inf') return Infinity;
  if (v === '-inf') return -Infinity;
  return v;
}

describe('ks2samp agrees with scipy.stats.ks_2samp', () => {
  it('matches statistic, p-value, location, sign and method on seeded random cases', () => {
    const cases = makeCases();
    const started = performance.now();
    const ref = runScipy(cases);
    const pythonSeconds = (performance.now() - started) / 1000;

    const pinned = /^scipy==(\S+)/m.exec(readFileSync(requirements, 'utf8'))?.[1];
    expect(
      ref.scipy,
      'the venv scipy differs from scripts/setup/requirements-test.txt: run scripts/setup/python-venv.sh',
    ).toBe(pinned);
    expect(ref.results).toHaveLength(cases.length);

    const failures: string[] = [];
    let maxStatDev = 0;
    let maxExactAbs = 0;
    let maxExactRel = 0;
    let maxAsympAbs = 0;
    let nExact = 0;
    let nAsymp = 0;
    let nFallback = 0;
    let nAutoAsymp = 0;
    const jsStarted = performance.now();
    for (let i = 0; i < cases.length; i++) {
      const c = cases[i] as Case;
      const s = ref.results[i] as ScipyResult;
      const r: KsResult = ks2samp(c.x, c.y, { alternative: c.alternative, method: c.method });
      const tag = `#${i} ${c.label} n1=${c.x.length} n2=${c.y.length} ${c.alternative} ${c.method}`;
      // the SortedSample path must give the identical result
      const rs = ks2sampSorted(new SortedSample(c.x), c.y, { alternative: c.alternative, method: c.method });
      if (
        !Object.is(rs.pvalue, r.pvalue) ||
        rs.statistic !== r.statistic ||
        rs.statisticLocation !== r.statisticLocation
      ) {
        failures.push(`${tag}: ks2sampSorted differs from ks2samp`);
      }
      if (r.method !== s.method) failures.push(`${tag}: method ${r.method}, scipy ${s.method}`);
      if (s.method === 'exact') nExact++;
      else nAsymp++;
      if (c.method === 'exact' && s.method === 'asymp') nFallback++;
      if (c.method === 'auto' && s.method === 'asymp') nAutoAsymp++;

      const statDev = Math.abs(r.statistic - s.statistic);
      maxStatDev = Math.max(maxStatDev, statDev);
      if (!(statDev <= STAT_TOL)) failures.push(`${tag}: statistic ${r.statistic}, scipy ${s.statistic}`);
      const loc = fromJson(s.statistic_location);
      if (!Object.is(r.statisticLocation, loc) && r.statisticLocation !== loc) {
        failures.push(`${tag}: location ${r.statisticLocation}, scipy ${loc}`);
      }
      if (r.statisticSign !== s.statistic_sign)
        failures.push(`${tag}: sign ${r.statisticSign}, scipy ${s.statistic_sign}`);

      const p = fromJson(s.pvalue);
      if (Number.isNaN(p) || Number.isNaN(r.pvalue)) {
        if (!(Number.isNaN(p) && Number.isNaN(r.pvalue)))
          failures.push(`${tag}: pvalue ${r.pvalue}, scipy ${p}`);
        continue;
      }
      const abs = Math.abs(r.pvalue - p);
      if (s.method === 'exact') {
        maxExactAbs = Math.max(maxExactAbs, abs);
        if (p !== 0) maxExactRel = Math.max(maxExactRel, abs / Math.abs(p));
        if (!(abs <= Math.max(EXACT_ABS_TOL, EXACT_REL_TOL * Math.abs(p))))
          failures.push(`${tag}: exact pvalue ${r.pvalue}, scipy ${p}`);
      } else {
        maxAsympAbs = Math.max(maxAsympAbs, abs);
        if (!(abs <= ASYMP_ABS_TOL)) failures.push(`${tag}: asymp pvalue ${r.pvalue}, scipy ${p}`);
      }
    }
    const jsSeconds = (performance.now() - jsStarted) / 1000;
    console.log(
      `ks-scipy: ${cases.length} cases against scipy ${ref.scipy} (numpy ${ref.numpy}): ` +
        `${nExact} exact, ${nAsymp} asymp (${nAutoAsymp} by 'auto' above 10000, ${nFallback} exact->asymp fallbacks); ` +
        `max |statistic dev| ${maxStatDev.toExponential(2)}; ` +
        `exact max abs dev ${maxExactAbs.toExponential(2)}, max rel dev ${maxExactRel.toExponential(2)}; ` +
        `asymp max abs dev ${maxAsympAbs.toExponential(2)}; python ` +
        `${pythonSeconds.toFixed(1)} s, TypeScript ${jsSeconds.toFixed(1)} s (both paths)`,
    );
    expect(failures, failures.slice(0, 20).join('\n')).toEqual([]);
    // the generated mix must reach every regime it is meant to cover
    expect(nExact).toBeGreaterThan(100);
    expect(nAsymp).toBeGreaterThan(50);
    expect(nAutoAsymp).toBeGreaterThanOrEqual(8);
  });
});
