/**
 * The special functions of the KS test, ported from scipy 1.17.1 and its xsf /
 * cephes C code: `binom` (`scipy.special.binom` for integers), `kstwoSf`
 * (`scipy.stats.kstwo.sf`, the two-sided one-sample KS distribution by Simard &
 * L'Ecuyer's method choice) and `smirnov` (`scipy.special.smirnov`). Each
 * follows its original step by step; `tests/unit` checks them against values
 * scipy printed.
 */

/** np.round / Python round on a float: round half to even. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const diff = x - f;
  if (diff < 0.5) return f;
  if (diff > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

// ---------------------------------------------------------------------------
// scipy.special.binom for integer 0 <= k <= n (xsf binom.h, cephes beta.h/gamma.h)
// ---------------------------------------------------------------------------

// cephes/xsf constants and coefficients, written as the shortest literal of the same double.
const MAXGAM = 171.6243769563027;
const MAXLOG = 709.782712893384;
const MINLOG = -745.1332191019412;
const SQRT2PI = 2.5066282746310007;
const LS2PI = 0.9189385332046728;
const MAXSTIR = 143.01608;
const MAXLGM = 2.556348e305;
const BETA_ASYMP_FACTOR = 1e6;

const GAMMA_P = [
  0.00016011952247675185, 0.0011913514700658638, 0.010421379756176158, 0.04763678004571372,
  0.20744822764843598, 0.4942148268014971, 1.0,
];
const GAMMA_Q = [
  -2.3158187332412014e-5, 0.0005396055804933034, -0.004456419138517973, 0.011813978522206043,
  0.035823639860549865, -0.23459179571824335, 0.0714304917030273, 1.0,
];
const GAMMA_STIR = [
  0.0007873113957930937, -0.00022954996161337813, -0.0026813261780578124, 0.0034722222160545866,
  0.08333333333334822,
];
const GAMMA_A = [
  0.0008116141674705085, -0.0005950619042843014, 0.0007936503404577169, -0.002777777777300997,
  0.08333333333333319,
];
const GAMMA_B = [
  -1378.2515256912086, -38801.631513463784, -331612.9927388712, -1162370.974927623, -1721737.0082083966,
  -853555.6642457654,
];
const GAMMA_C = [
  -351.81570143652345, -17064.210665188115, -220528.59055385445, -1139334.4436798252, -2532523.0717758294,
  -2018891.4143353277,
];

/** cephes polevl: coef[0]*x^N + ... + coef[N]. */
function polevl(x: number, coef: readonly number[], N: number): number {
  let ans = coef[0]!;
  for (let i = 1; i <= N; i++) ans = ans * x + coef[i]!;
  return ans;
}

/** cephes p1evl: like polevl with an implicit leading coefficient 1. */
function p1evl(x: number, coef: readonly number[], N: number): number {
  let ans = x + coef[0]!;
  for (let i = 1; i < N; i++) ans = ans * x + coef[i]!;
  return ans;
}

/** cephes stirf: Gamma by Stirling's formula, 33 <= x <= 172. */
function stirf(x: number): number {
  if (x >= MAXGAM) return Infinity;
  let w = 1.0 / x;
  w = 1.0 + w * polevl(w, GAMMA_STIR, 4);
  let y = Math.exp(x);
  if (x > MAXSTIR) {
    const v = Math.pow(x, 0.5 * x - 0.25);
    y = v * (v / y);
  } else {
    y = Math.pow(x, x - 0.5) / y;
  }
  return SQRT2PI * y * w;
}

/** cephes Gamma for x >= 1 (the only arguments binom uses here). */
function gammaPositive(x: number): number {
  if (x > 33.0) return stirf(x);
  let z = 1.0;
  while (x >= 3.0) {
    x -= 1.0;
    z *= x;
  }
  while (x < 2.0) {
    if (x < 1e-9) return z / ((1.0 + 0.5772156649015329 * x) * x);
    z /= x;
    x += 1.0;
  }
  if (x === 2.0) return z;
  x -= 2.0;
  return (z * polevl(x, GAMMA_P, 6)) / polevl(x, GAMMA_Q, 7);
}

/** cephes lgam_sgn for x > 0. */
function lgamPositive(x: number): number {
  if (x < 13.0) {
    let z = 1.0;
    let p = 0.0;
    let u = x;
    while (u >= 3.0) {
      p -= 1.0;
      u = x + p;
      z *= u;
    }
    while (u < 2.0) {
      z /= u;
      p += 1.0;
      u = x + p;
    }
    if (z < 0.0) z = -z;
    if (u === 2.0) return Math.log(z);
    p -= 2.0;
    x = x + p;
    p = (x * polevl(x, GAMMA_B, 5)) / p1evl(x, GAMMA_C, 6);
    return Math.log(z) + p;
  }
  if (x > MAXLGM) return Infinity;
  if (x >= 1000.0) {
    // lgam_large_x
    const q = (x - 0.5) * Math.log(x) - x + LS2PI;
    if (x > 1.0e8) return q;
    let p = 1.0 / (x * x);
    p = ((0.0007936507936507937 * p - 0.002777777777777778) * p + 0.08333333333333333) / x;
    return q + p;
  }
  const q = (x - 0.5) * Math.log(x) - x + LS2PI;
  const p = 1.0 / (x * x);
  return q + polevl(p, GAMMA_A, 4) / x;
}

/** cephes beta(a, b) for a, b >= 1. */
function betaPositive(a: number, b: number): number {
  if (Math.abs(a) < Math.abs(b)) {
    const t = a;
    a = b;
    b = t;
  }
  if (Math.abs(a) > BETA_ASYMP_FACTOR * Math.abs(b) && a > BETA_ASYMP_FACTOR) {
    // lbeta_asymp: avoid loss of precision in lgam(a + b) - lgam(a)
    let r = lgamPositive(b);
    r -= b * Math.log(a);
    r += (b * (1 - b)) / (2 * a);
    r += (b * (1 - b) * (1 - 2 * b)) / (12 * a * a);
    r += (-b * b * (1 - b) * (1 - b)) / (12 * a * a * a);
    return Math.exp(r);
  }
  let y = a + b;
  if (Math.abs(y) > MAXGAM || Math.abs(a) > MAXGAM || Math.abs(b) > MAXGAM) {
    y = lgamPositive(y);
    y = lgamPositive(b) - y;
    y = lgamPositive(a) + y;
    if (y > MAXLOG) return Infinity;
    return Math.exp(y);
  }
  // rgamma(y) is 1/Gamma(y) for |y| > 4; binom only calls beta with a + b >= 22.
  y = 1.0 / gammaPositive(y);
  const ga = gammaPositive(a);
  const gb = gammaPositive(b);
  if (!Number.isFinite(y)) return Infinity;
  if (Math.abs(Math.abs(ga * y) - 1.0) > Math.abs(Math.abs(gb * y) - 1.0)) {
    y = gb * y;
    y *= ga;
  } else {
    y = ga * y;
    y *= gb;
  }
  return y;
}

/** `scipy.special.binom(n, k)` (xsf binom.h) for integers 0 <= k <= n. */
export function binom(n: number, k: number): number {
  let kx = k;
  if (kx > n / 2 && n > 0) kx = n - kx; // reduce by symmetry
  if (kx >= 0 && kx < 20) {
    let num = 1.0;
    let den = 1.0;
    for (let i = 1; i < 1 + kx; i++) {
      num *= i + n - kx;
      den *= i;
      if (Math.abs(num) > 1e50) {
        num /= den;
        den = 1.0;
      }
    }
    return num / den;
  }
  // general case (the n >= 1e10 * k and k > 1e8 * |n| branches cannot occur for 0 <= k <= n < 1e10)
  return 1 / (n + 1) / betaPositive(1 + n - k, 1 + k);
}

// ---------------------------------------------------------------------------
// kstwo.sf: scipy/stats/_continuous_distns.py (kstwo_gen) and scipy/stats/_ksstats.py
// ---------------------------------------------------------------------------

const E128 = 128;
const EP128 = 2 ** 128;
const EM128 = 2 ** -128;
const LOG_2PI = Math.log(2 * Math.PI);
const SQRT2PI_NP = Math.sqrt(2 * Math.PI);
const MIN_LOG = -708;
const SQRT3 = Math.sqrt(3);
const PI_SQUARED = Math.PI ** 2;
const PI_FOUR = Math.PI ** 4;
const PI_SIX = Math.PI ** 6;
const STIRLING_COEFFS = [
  -0.029550653594771242, 0.00641025641025641, -0.0019175269175269176, 0.0008417508417508417,
  -0.0005952380952380953, 0.0007936507936507937, -0.002777777777777778, 0.08333333333333333,
];

/**
 * `scipy.stats.kstwo.sf(x, n)`: the rv_continuous wrapper (NaN for an invalid n,
 * 1 at or below the support's lower end 0.5/n, 0 at or above 1) around
 * `_kolmogn(n, x, cdf=False)`.
 */
export function kstwoSf(x: number, n: number): number {
  if (!(n >= 1 && n === Math.round(n))) return NaN;
  if (Number.isNaN(x)) return NaN;
  if (x <= 0.5 / n) return 1.0;
  if (!(x < 1.0)) return 0.0;
  return kolmogn(n, x, false);
}

function clipProb(p: number): number {
  return p < 0 ? 0 : p > 1 ? 1 : p;
}

function selectAndClip(cdfprob: number, sfprob: number, cdf: boolean): number {
  return clipProb(cdf ? cdfprob : sfprob);
}

/** `_log_nfactorial_div_n_pow_n(n)`: log(n!/n^n) by Stirling with n*log(n) removed. */
function logNfactorialDivNPowN(n: number): number {
  const rn = 1.0 / n;
  return Math.log(n) / 2 - n + LOG_2PI / 2 + rn * polevl(rn / n, STIRLING_COEFFS, STIRLING_COEFFS.length - 1);
}

/** ldexp without intermediate overflow/underflow of 2**e. */
function ldexp(x: number, e: number): number {
  while (e > 1000) {
    x *= 2 ** 1000;
    e -= 1000;
  }
  while (e < -1000) {
    x *= 2 ** -1000;
    e += 1000;
  }
  return x * 2 ** e;
}

/**
 * `_kolmogn(n, x, cdf)` (Simard & L'Ecuyer 2011): CDF or SF of the two-sided
 * one-sample KS statistic D_n, choosing between the exact and approximate methods
 * exactly as scipy does.
 */
function kolmogn(n: number, x: number, cdf: boolean): number {
  if (Number.isNaN(n)) return n;
  if (Math.trunc(n) !== n || n <= 0) return NaN;
  if (x >= 1.0) return selectAndClip(1.0, 0.0, cdf);
  if (x <= 0.0) return selectAndClip(0.0, 1.0, cdf);
  const t = n * x;
  if (t <= 1.0) {
    // Ruben-Gambino: 1/2n <= x <= 1/n
    if (t <= 0.5) return selectAndClip(0.0, 1.0, cdf);
    let prob: number;
    if (n <= 140) {
      prob = 1;
      const c = 2 * t - 1;
      for (let i = 1; i <= n; i++) prob *= i * (1.0 / n) * c;
    } else {
      prob = Math.exp(logNfactorialDivNPowN(n) + n * Math.log(2 * t - 1));
    }
    return selectAndClip(prob, 1.0 - prob, cdf);
  }
  if (t >= n - 1) {
    // Ruben-Gambino
    const prob = 2 * Math.pow(1.0 - x, n);
    return selectAndClip(1 - prob, prob, cdf);
  }
  if (x >= 0.5) {
    // Exact: 2 * smirnov
    const prob = 2 * smirnov(n, x);
    return selectAndClip(1.0 - prob, prob, cdf);
  }
  const nxsquared = t * x;
  if (n <= 140) {
    if (nxsquared <= 0.754693) {
      const prob = kolmognDMTW(n, x);
      return selectAndClip(prob, 1.0 - prob, cdf);
    }
    if (nxsquared <= 4) {
      const prob = kolmognPomeranz(n, x);
      return selectAndClip(prob, 1.0 - prob, cdf);
    }
    // Miller approximation of 2*smirnov
    const prob = 2 * smirnov(n, x);
    return selectAndClip(1.0 - prob, prob, cdf);
  }
  // Split CDF and SF as they have different cutoffs on nxsquared.
  if (!cdf) {
    if (nxsquared >= 370.0) return 0.0;
    if (nxsquared >= 2.2) return clipProb(2 * smirnov(n, x));
    // Fall through and compute the SF as 1.0-CDF
  }
  let cdfprob: number;
  if (nxsquared >= 18.0) cdfprob = 1.0;
  else if (n <= 100000 && n * Math.pow(x, 1.5) <= 1.4) cdfprob = kolmognDMTW(n, x);
  else cdfprob = kolmognPelzGood(n, x);
  return selectAndClip(cdfprob, 1.0 - cdfprob, cdf);
}

function matmul(A: Float64Array, B: Float64Array, m: number): Float64Array {
  const C = new Float64Array(m * m);
  for (let i = 0; i < m; i++) {
    const ri = i * m;
    for (let k = 0; k < m; k++) {
      const aik = A[ri + k]!;
      if (aik === 0) continue;
      const rk = k * m;
      for (let j = 0; j < m; j++) C[ri + j]! += aik * B[rk + j]!;
    }
  }
  return C;
}

/**
 * `_kolmogn_DMTW(n, d, cdf=True)`: Pr(D_n <= d) by Durbin's matrix algorithm in
 * the Marsaglia–Tsang–Wang form (k-th row of (n!/n^n) * H^n, with rescaling).
 */
function kolmognDMTW(n: number, d: number): number {
  if (d >= 1.0) return 1.0;
  const nd = n * d;
  if (nd <= 0.5) return 0.0;
  const k = Math.ceil(nd);
  const h = k - nd;
  const m = 2 * k - 1;
  let H: Float64Array = new Float64Array(m * m);
  const v = new Float64Array(m);
  const w = new Float64Array(m);
  let fac = 1.0;
  for (let j = 1; j <= m; j++) {
    v[j - 1] = 1.0 - Math.pow(h, j);
    w[j - 1] = fac;
    fac /= j;
    v[j - 1]! *= fac;
  }
  const tt = Math.pow(Math.max(2 * h - 1.0, 0), m) - 2 * Math.pow(h, m);
  v[m - 1] = (1.0 + tt) * fac;
  for (let i = 1; i < m; i++) {
    for (let r = i - 1; r < m; r++) H[r * m + i] = w[r - (i - 1)]!;
  }
  for (let r = 0; r < m; r++) H[r * m] = v[r]!;
  for (let c = 0; c < m; c++) H[(m - 1) * m + c] = v[m - 1 - c]!;

  let Hpwr: Float64Array = new Float64Array(m * m);
  for (let i = 0; i < m; i++) Hpwr[i * m + i] = 1;
  let nn = n;
  let expnt = 0;
  let Hexpnt = 0;
  const kk = (k - 1) * m + (k - 1);
  while (nn > 0) {
    if (nn % 2) {
      Hpwr = matmul(Hpwr, H, m);
      expnt += Hexpnt;
    }
    H = matmul(H, H, m);
    Hexpnt *= 2;
    if (Math.abs(H[kk]!) > EP128) {
      for (let i = 0; i < H.length; i++) H[i]! /= EP128;
      Hexpnt += E128;
    }
    nn = Math.floor(nn / 2);
  }
  let p = Hpwr[kk]!;
  // Multiply by n!/n^n
  for (let i = 1; i <= n; i++) {
    p = (i * p) / n;
    if (Math.abs(p) < EM128) {
      p *= EP128;
      expnt -= E128;
    }
  }
  if (expnt !== 0) p = ldexp(p, expnt);
  return clipProb(p);
}

/** `_pomeranz_compute_j1j2(i, n, ll, ceilf, roundf)`: the interval endpoints for row i. */
function pomeranzJ1J2(i: number, n: number, ll: number, ceilf: number, roundf: number): [number, number] {
  let j1: number;
  let j2: number;
  if (i === 0) {
    j1 = -ll - ceilf - 1;
    j2 = ll + ceilf - 1;
  } else {
    const ip1div2 = Math.floor((i + 1) / 2);
    const ip1mod2 = (i + 1) % 2;
    if (ip1mod2 === 0) {
      if (ip1div2 === n + 1) {
        j1 = n - ll - ceilf - 1;
        j2 = n + ll + ceilf - 1;
      } else {
        j1 = ip1div2 - 1 - ll - roundf - 1;
        j2 = ip1div2 + ll - 1 + ceilf - 1;
      }
    } else {
      j1 = ip1div2 - 1 - ll - 1;
      j2 = ip1div2 + ll + roundf - 1;
    }
  }
  return [Math.max(j1 + 2, 0), Math.min(j2, n)];
}

/** Python slice bounds: returns [start, stop) clipped to [0, len]. */
function pySlice(len: number, start: number, stop: number): [number, number] {
  if (start < 0) start = Math.max(start + len, 0);
  if (stop < 0) stop = Math.max(stop + len, 0);
  start = Math.min(start, len);
  stop = Math.min(stop, len);
  return [start, Math.max(start, stop)];
}

/** `_kolmogn_Pomeranz(n, x, cdf=True)`: Pr(D_n <= x) by Pomeranz's recursion (1974). */
function kolmognPomeranz(n: number, x: number): number {
  const t = n * x;
  const ll = Math.floor(t);
  const f = 1.0 * (t - ll);
  const g = Math.min(f, 1.0 - f);
  const ceilf = f > 0 ? 1 : 0;
  const roundf = f > 0.5 ? 1 : 0;
  const npwrs = 2 * (ll + 1);
  const gpower = new Float64Array(npwrs);
  const twogpower = new Float64Array(npwrs);
  const onem2gpower = new Float64Array(npwrs);
  gpower[0] = 1.0;
  twogpower[0] = 1.0;
  onem2gpower[0] = 1.0;
  let expnt = 0;
  const gOverN = g / n;
  const twoGOverN = (2 * g) / n;
  const oneMinusTwoGOverN = (1 - 2 * g) / n;
  for (let m = 1; m < npwrs; m++) {
    gpower[m] = (gpower[m - 1]! * gOverN) / m;
    twogpower[m] = (twogpower[m - 1]! * twoGOverN) / m;
    onem2gpower[m] = (onem2gpower[m - 1]! * oneMinusTwoGOverN) / m;
  }
  let V0 = new Float64Array(npwrs);
  let V1 = new Float64Array(npwrs);
  V1[0] = 1;
  let V0s = 0;
  let V1s = 0;
  const conv = new Float64Array(2 * npwrs);
  let [j1, j2] = pomeranzJ1J2(0, n, ll, ceilf, roundf);
  for (let i = 1; i < 2 * n + 2; i++) {
    const k1 = j1;
    const tmp = V0;
    V0 = V1;
    V1 = tmp;
    const tmps = V0s;
    V0s = V1s;
    V1s = tmps;
    V1.fill(0.0);
    [j1, j2] = pomeranzJ1J2(i, n, ll, ceilf, roundf);
    const pwrs = i === 1 || i === 2 * n + 1 ? gpower : i % 2 ? twogpower : onem2gpower;
    const ln2 = j2 - k1 + 1;
    if (ln2 > 0) {
      // conv = np.convolve(V0[k1 - V0s:k1 - V0s + ln2], pwrs[:ln2])
      const [a0, a1] = pySlice(npwrs, k1 - V0s, k1 - V0s + ln2);
      const [, b1] = pySlice(npwrs, 0, ln2);
      const la = a1 - a0;
      const lb = b1;
      const lc = la + lb - 1;
      conv.fill(0, 0, Math.max(lc, 0));
      for (let p = 0; p < la; p++) {
        const ap = V0[a0 + p]!;
        if (ap === 0) continue;
        for (let q = 0; q < lb; q++) conv[p + q]! += ap * pwrs[q]!;
      }
      const convStart = j1 - k1;
      const convLen = j2 - j1 + 1;
      const [c0, c1] = pySlice(Math.max(lc, 0), convStart, convStart + convLen);
      for (let p = 0; p < c1 - c0; p++) V1[p] = conv[c0 + p]!;
      // Scale to avoid underflow.
      let vmax = -Infinity;
      for (let p = 0; p < npwrs; p++) if (V1[p]! > vmax) vmax = V1[p]!;
      if (vmax > 0 && vmax < EM128) {
        for (let p = 0; p < npwrs; p++) V1[p]! *= EP128;
        expnt -= E128;
      }
      V1s = V0s + j1 - k1;
    }
  }
  // multiply by n!
  const idx = n - V1s;
  let ans = V1[idx < 0 ? idx + npwrs : idx]!;
  for (let m = 1; m <= n; m++) {
    if (Math.abs(ans) > EP128) {
      ans *= EM128;
      expnt += E128;
    }
    ans *= m;
  }
  if (expnt !== 0) ans = ldexp(ans, expnt);
  return clipProb(ans);
}

/**
 * `_kolmogn_PelzGood(n, x, cdf=True)`: the Pelz–Good (1976) approximation to
 * Pr(D_n <= x), the Li-Chien/Korolyuk expansion transformed for small z.
 */
function kolmognPelzGood(n: number, x: number): number {
  if (x <= 0.0) return 0.0;
  if (x >= 1.0) return 1.0;
  const z = Math.sqrt(n) * x;
  const zsquared = z ** 2;
  const zthree = z ** 3;
  const zfour = z ** 4;
  const zsix = z ** 6;
  const qlog = -PI_SQUARED / 8 / zsquared;
  if (qlog < MIN_LOG) return 0.0;
  let q = Math.exp(qlog);

  const k1a = -zsquared;
  const k1b = PI_SQUARED / 4;
  const k2a = 6 * zsix + 2 * zfour;
  const k2b = ((2 * zfour - 5 * zsquared) * PI_SQUARED) / 4;
  const k2c = (PI_FOUR * (1 - 2 * zsquared)) / 16;
  const k3d = (PI_SIX * (5 - 30 * zsquared)) / 64;
  const k3c = (PI_FOUR * (-60 * zsquared + 212 * zfour)) / 16;
  const k3b = (PI_SQUARED * (135 * zfour - 96 * zsix)) / 4;
  const k3a = -30 * zsix - 90 * z ** 8;

  let K0 = 0;
  let K1 = 0;
  let K2 = 0;
  let K3 = 0;
  // Horner scheme for sum c_i q^(i^2), reduced to a sum over odd integers
  const maxk = Math.ceil((16 * z) / Math.PI);
  for (let k = maxk; k > 0; k--) {
    const m = 2 * k - 1;
    const msquared = m ** 2;
    const mfour = m ** 4;
    const msix = m ** 6;
    const qpower = Math.pow(q, 8 * k);
    K0 = K0 * qpower + 1.0;
    K1 = K1 * qpower + (k1a + k1b * msquared);
    K2 = K2 * qpower + (k2a + k2b * msquared + k2c * mfour);
    K3 = K3 * qpower + (k3a + k3b * msquared + k3c * mfour + k3d * msix);
  }
  K0 = (K0 * q * SQRT2PI_NP) / z;
  K1 = (K1 * q * SQRT2PI_NP) / (6 * zfour);
  K2 = (K2 * q * SQRT2PI_NP) / (72 * z ** 7);
  K3 = (K3 * q * SQRT2PI_NP) / (6480 * z ** 10);

  // The other sum over all integers k
  q = Math.exp(-PI_SQUARED / 2 / zsquared);
  const sqrt3z = SQRT3 * z;
  let s2 = 0;
  let s3 = 0;
  for (let k = maxk; k > 0; k--) {
    const ksq = k ** 2;
    const kspi = Math.PI * k;
    const qp = Math.pow(q, ksq);
    s2 += ksq * qp;
    s3 += (sqrt3z + kspi) * (sqrt3z - kspi) * ksq * qp;
  }
  K2 += s2 * ((PI_SQUARED * SQRT2PI_NP) / (-36 * zthree));
  K3 += s3 * ((PI_SQUARED * SQRT2PI_NP) / (216 * zsix));
  K1 /= Math.pow(n, 0.5);
  K2 /= Math.pow(n, 1.0);
  K3 /= Math.pow(n, 1.5);
  return 0 + K0 + K1 + K2 + K3;
}

// ---------------------------------------------------------------------------
// scipy.special.smirnov (xsf cephes/kolmogorov.h, _smirnov)
// ---------------------------------------------------------------------------

const SMIRNOV_MAX_COMPUTE_N = 1000000;
const SM_UPPER_MAX_TERMS = 3;
const SM_UPPERSUM_MIN_N = 10;
const EPS = Number.EPSILON;

/** Veltkamp split constant for Dekker's exact product. */
const SPLITTER = 134217729; // 2^27 + 1

/** n*x = nxfl + alpha with 0 <= alpha < 1, computed exactly (modNX). */
function modNX(n: number, x: number): { nxfl: number; alpha: number; nx: number } {
  const hi = n * x;
  // Dekker two-product error term
  const ca = SPLITTER * n;
  const ah = ca - (ca - n);
  const al = n - ah;
  const cb = SPLITTER * x;
  const bh = cb - (cb - x);
  const bl = x - bh;
  const lo = ah * bh - hi + ah * bl + al * bh + al * bl;
  let nxfl = Math.floor(hi);
  let alpha = hi - nxfl + lo;
  if (alpha < 0) {
    nxfl -= 1;
    alpha += 1;
  }
  if (alpha >= 1) {
    nxfl += 1;
    alpha -= 1;
  }
  return { nxfl, alpha, nx: hi + lo };
}

/**
 * `scipy.special.smirnov(n, x)`: Pr(D_n^+ >= x), the one-sided one-sample KS survival
 * function, by the Birnbaum–Tingey/Smirnov sums (lower or upper, as xsf `_smirnov`
 * chooses), with the same special cases and early termination. Terms are computed in
 * the log domain rather than double-double arithmetic.
 */
export function smirnov(n: number, x: number): number {
  if (!(n > 0 && x >= 0.0 && x <= 1.0)) return NaN;
  if (n === 1) return 1 - x;
  if (x === 0.0) return 1.0;
  if (x === 1.0) return 0.0;
  const { nxfl, alpha } = modNX(n, x);
  let n1mxfl = n - nxfl - (alpha === 0 ? 0 : 1);
  let n1mxceil = n - nxfl;
  // If alpha is 0, don't include the last term in either the lower or upper summations.
  if (alpha === 0) {
    n1mxfl -= 1;
    n1mxceil += 1;
  }
  // Special case: x <= 1/n
  if (nxfl === 0 || (nxfl === 1 && alpha === 0)) {
    const t = Math.exp((n - 1) * Math.log1p(x));
    return 1 - x * t;
  }
  // Special case: x is so big, the sf underflows double64
  if (-2 * n * x * x < MINLOG) return 0;
  // Special case: x >= 1 - 1/n
  if (nxfl >= n - 1) return Math.exp(n * Math.log1p(-x));
  // Special case: n is so big, take too long to compute
  if (n > SMIRNOV_MAX_COMPUTE_N) {
    const logp = -Math.pow(6.0 * n * x + 1, 2) / 18.0 / n;
    if (logp < -Math.LN2) return Math.exp(logp);
    return 1 - -Math.expm1(logp);
  }
  const nUpperTerms = n - n1mxceil + 1;
  const useUpperSum =
    (nUpperTerms <= 1 && x < 0.5) ||
    (n >= SM_UPPERSUM_MIN_N && nUpperTerms <= SM_UPPER_MAX_TERMS && x <= 0.5 / Math.sqrt(n));

  let start = 0;
  let step = 1;
  let nTerms = n1mxfl + 1;
  const vmid = Math.floor(n / 2);
  let ajSum: number;
  if (useUpperSum) {
    start = n;
    step = -1;
    nTerms = n - n1mxceil + 1;
    ajSum = Math.exp((n - 1) * Math.log1p(x)); // (1 + x)^(n - 1)
  } else {
    ajSum = Math.exp(n * Math.log1p(-x)) / x; // (1 - x)^n / x
  }
  // Binomial coefficient C(n, j) = cman * 2^cexp, updated like xsf updateBinomial.
  let cman = n; // C(n, 1)
  let cexp = 0;
  for (let j = 1; j < nTerms; j++) {
    const v = start + j * step;
    // A_v = C(n, v) * (1 - x - v/n)^(n - v) * (x + v/n)^(v - 1), with n*x = nxfl + alpha
    const logC = Math.log(cman) + cexp * Math.LN2;
    const t2x = (n - v - nxfl - alpha) / n;
    const t1x = (v + nxfl + alpha) / n;
    let aj: number;
    if (t2x === 0) {
      aj = n - v === 0 ? Math.exp(logC + (v - 1) * Math.log(t1x)) : 0;
    } else {
      const logAbs = logC + (n - v) * Math.log(Math.abs(t2x)) + (v - 1) * Math.log(t1x);
      aj = Math.exp(logAbs);
      if (t2x < 0 && (n - v) % 2 === 1) aj = -aj;
    }
    if (Number.isFinite(aj) && aj !== 0) ajSum += aj;
    // Safe to terminate early?
    if (aj !== 0) {
      if (4 * (nTerms - j) * Math.abs(aj) < EPS * ajSum && j !== nTerms - 1) break;
    } else if (j > vmid) {
      break;
    }
    cman *= (n - j) / (j + 1);
    if (cman > 2 ** 600) {
      cman *= 2 ** -600;
      cexp += 600;
    } else if (cman < 2 ** -600) {
      cman *= 2 ** 600;
      cexp -= 600;
    }
  }
  const prob = x * ajSum;
  const sf = step < 0 ? 1 - prob : prob;
  return clipProb(sf);
}
