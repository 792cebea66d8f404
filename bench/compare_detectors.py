#!/usr/bin/env python3
"""Driftline's feature drift detector side by side with River's KSWIN and Alibi Detect's KSDrift.

All three see the very same data: bench/drift.ts writes the streams it ran its
own detector on (float32, row-major [samples, 9], FEATURES order) and its own
results into .driftline/bench/streams/ (manifest.json); this script reads them.

    scripts/setup/python-bench-venv.sh             # once: creates .venv-bench
    npx tsx bench/drift.ts                         # writes the streams + our results
    .venv-bench/bin/python bench/compare_detectors.py [--jobs 2]

Detectors
- Driftline FeatureDriftDetector, DEFAULT_DRIFT_CONFIG (the multi-scale detector), and
  its previous default (detector 'windows': tumbling 500, 2 consecutive windows), both
  run by bench/drift.ts (figures from manifest.json).
- River KSWIN, one per feature; an alarm at a sample when any feature's KSWIN
  fires there. Defaults (alpha=0.005, window_size=100, stat_size=30) and one
  tuned setting (--kswin-tuned, default alpha=1e-6, window_size=1000, stat_size=300:
  larger windows for power per test, alpha cut until false alarms are rare).
  seed = feature index, so runs are reproducible.
- Alibi Detect KSDrift: x_ref = the same 5,000-row reference, tumbling windows
  of the same 500 samples (boundaries aligned with ours), Bonferroni over the 9
  features as it does by default; p_val=0.05 (its default) and p_val=1e-3 (our
  family-wise alpha, but without our two-consecutive-windows rule). An alarm is
  dated at the last sample of the window, as ours is.

Detection delay = first alarm at or after the onset, minus the onset. KSWIN keeps
no memory beyond its window (and its RNG), so on the shift streams it starts
--kswin-warmup samples before the onset instead of at sample 0; alarms in that
warm-up are reported as pre-onset false alarms. Everything else runs the whole
stream.

Prints three markdown tables (false alarms over the 1,000,000-sample stationary
stream; delay per shifted feature for +0.5 sd and for +0.25 sd) and writes them
with the raw figures to .driftline/bench/compare.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from multiprocessing import Pool
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
STREAMS = ROOT / ".driftline" / "bench" / "streams"
OUT = ROOT / ".driftline" / "bench" / "compare.json"

KSWIN_DEFAULT = {"alpha": 0.005, "window_size": 100, "stat_size": 30}


def parse_setting(text: str) -> dict:
    out: dict = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        key = key.strip()
        if key not in ("alpha", "window_size", "stat_size"):
            raise SystemExit(f"--kswin-tuned: unknown KSWIN parameter {key!r}")
        out[key] = float(value) if key == "alpha" else int(value)
    return out


def load(name: str, n_features: int) -> np.ndarray:
    return np.fromfile(STREAMS / name, dtype="<f4").reshape(-1, n_features)


CACHE = ROOT / ".driftline" / "bench" / "kswin-cache"


def kswin_job(job: tuple) -> tuple:
    """Runs one KSWIN over one feature column; returns the alarm indices (absolute sample numbers).

    Results are cached per job (stream file + its mtime, feature, range, setting) in
    .driftline/bench/kswin-cache/, so an interrupted run resumes where it stopped.
    """
    key, file, n_features, feature, start, stop, setting, stop_at_first_after = job
    tag = f"{file}-{int((STREAMS / file).stat().st_mtime)}-f{feature}-{start}-{stop}-{stop_at_first_after}-" + "-".join(f"{k}{v:g}" for k, v in sorted(setting.items()))
    cached = CACHE / f"{tag}.json"
    if cached.exists():
        c = json.loads(cached.read_text())
        return key, feature, c["alarms"], c["cpu"], c["n"]
    warnings.filterwarnings("ignore")
    from river.drift import KSWIN

    column = load(file, n_features)[start:stop, feature].astype(np.float64).tolist()
    detector = KSWIN(seed=feature, **setting)
    alarms = []
    t0 = time.process_time()
    for i, value in enumerate(column, start=start):
        detector.update(value)
        if detector.drift_detected:
            alarms.append(i)
            if stop_at_first_after is not None and i >= stop_at_first_after:
                break
    cpu = time.process_time() - t0
    CACHE.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps({"alarms": alarms, "cpu": cpu, "n": len(column)}))
    return key, feature, alarms, cpu, len(column)


def ksdrift_windows(x_ref: np.ndarray, x: np.ndarray, window: int, p_val: float) -> list[int]:
    """Alarm sample indices (last sample of each drifting window) of Alibi Detect's KSDrift."""
    warnings.filterwarnings("ignore")
    from alibi_detect.cd import KSDrift

    cd = KSDrift(x_ref, p_val=p_val)  # correction='bonferroni' by default
    alarms = []
    for start in range(0, len(x) - window + 1, window):
        if cd.predict(x[start : start + window])["data"]["is_drift"]:
            alarms.append(start + window - 1)
    return alarms


def false_alarm_budget(n: int, w: int, alpha: float, n_features: int, references: int, seed: int = 12345) -> dict:
    """The conditional false-alarm rates behind DEFAULT_DRIFT_CONFIG (common/drift/feature-drift.ts).

    The reference sample is fixed for a champion's lifetime, so windows are
    independent only given it. For `references` random U(0,1) references of size
    n this computes exactly p_f = P(the exact two-sided KS test of a window of w
    iid U(0,1) draws against that reference rejects at alpha / n_features): the
    window's ECDF must leave the band reference ECDF +/- D_crit, a non-crossing
    probability computed by a Poisson dynamic programme over the n + 1 reference
    intervals (conditioned on w points in total). The test is distribution-free,
    so U(0,1) covers every continuous feature.
    """
    import math

    from scipy.stats import poisson
    from scipy.stats._stats_py import _attempt_exact_2kssamp  # scipy's own exact p-value (private; scipy 1.17)

    g = math.gcd(n, w)
    lcm = n * w // g
    target = alpha / n_features
    lo, hi = 1, lcm
    while lo < hi:  # smallest lattice h whose exact p-value is <= target
        mid = (lo + hi) // 2
        if _attempt_exact_2kssamp(n, w, g, mid / lcm, "two-sided")[2] <= target:
            hi = mid
        else:
            lo = mid + 1
    k = lo
    a, b = lcm // w, lcm // n
    counts = np.arange(w + 1)
    rng = np.random.default_rng(seed)
    rates = []
    for _ in range(references):
        edges = np.concatenate(([0.0], np.sort(rng.uniform(size=n)), [1.0]))
        q = np.zeros(w + 1)
        q[0] = 1.0
        for i, length in enumerate(np.diff(edges)):
            q[counts * a <= i * b - k] = 0.0  # |N/w - i/n| < D  <=>  |N*a - i*b| < k (integers)
            q = np.convolve(q, poisson.pmf(np.arange(0, 64), w * length))[: w + 1]
            q[counts * a >= i * b + k] = 0.0
        rates.append(1.0 - q[w] / poisson.pmf(w, w))
    p = np.array(rates)
    windows = 1_000_000 // w
    same = n_features * float(np.mean(p**2))
    anyf = same + n_features * (n_features - 1) * float(np.mean(p)) ** 2
    return {
        "n": n,
        "w": w,
        "alphaFamily": alpha,
        "alphaFeature": target,
        "criticalD": k / lcm,
        "exactPAtCritical": _attempt_exact_2kssamp(n, w, g, k / lcm, "two-sided")[2],
        "references": references,
        "meanP": float(np.mean(p)),
        "meanP2": float(np.mean(p**2)),
        "p95": float(np.quantile(p, 0.95)),
        "maxP": float(np.max(p)),
        "expectedFalseAlarmsPer1e6SameFeature": (windows - 1) * same,
        "expectedFalseAlarmsPer1e6AnyFeature": (windows - 1) * anyf,
        "expectedFalseAlarmsPer1e6SingleWindow": windows * n_features * float(np.mean(p)),
    }


def first_after(alarms: list[int], onset: int) -> int | None:
    return next((a for a in sorted(alarms) if a >= onset), None)


def fmt(v, missing: str = "none") -> str:
    if v is None:
        return missing
    if isinstance(v, float):
        return f"{v:.3g}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="worker processes for KSWIN (default 2)")
    ap.add_argument("--kswin-tuned", default="alpha=1e-6,window_size=1000,stat_size=300", help="tuned KSWIN setting")
    ap.add_argument("--stationary-samples", type=int, default=None, help="run only the first N stationary samples (default: all)")
    ap.add_argument("--kswin-warmup", type=int, default=2_000, help="KSWIN samples before the onset on shift streams")
    ap.add_argument("--kswin-horizon", type=int, default=10_000, help="KSWIN samples after the onset on shift streams (no alarm within: 'none')")
    ap.add_argument("--skip-kswin", action="store_true")
    ap.add_argument("--skip-ksdrift", action="store_true")
    ap.add_argument("--false-alarm-budget", type=int, metavar="REFERENCES", default=None,
                    help="only recompute the false-alarm budget of the defaults (n=5,000, w=500, alpha=1e-3, 9 features) over this many random references, and exit")
    args = ap.parse_args()

    if args.false_alarm_budget is not None:
        print(json.dumps(false_alarm_budget(5_000, 500, 1e-3, 9, args.false_alarm_budget), indent=2))
        return 0

    manifest_path = STREAMS / "manifest.json"
    if not manifest_path.exists():
        print(f"{manifest_path} not found: run `npx tsx bench/drift.ts` first", file=sys.stderr)
        return 2
    manifest = json.loads(manifest_path.read_text())
    features = manifest["features"]
    nf = len(features)
    window = manifest["ours"]["config"]["windowSize"]
    x_ref = load(manifest["reference"]["file"], nf)
    stationary_n = manifest["stationary"]["samples"] if args.stationary_samples is None else min(args.stationary_samples, manifest["stationary"]["samples"])
    settings = {"KSWIN default": KSWIN_DEFAULT, "KSWIN tuned": {**KSWIN_DEFAULT, **parse_setting(args.kswin_tuned)}}

    results: dict = {"stationarySamples": stationary_n, "detectors": {}}
    quarter = manifest.get("quarterShifts", [])
    full_run = stationary_n == manifest["stationary"]["samples"]
    results["detectors"]["Driftline (ours)"] = {
        "settings": manifest["ours"].get("settings", "DEFAULT_DRIFT_CONFIG"),
        "stationaryAlarms": manifest["ours"]["stationaryAlarms"] if full_run else None,
        "delays": {s["feature"]: s["delay"] for s in manifest["shifts"]},
        "delaysQuarter": {s["feature"]: s["delay"] for s in quarter},
        "preOnsetAlarms": {s["feature"]: s["alarmsBeforeOnset"] + sum(q["alarmsBeforeOnset"] for q in quarter if q["feature"] == s["feature"]) for s in manifest["shifts"]},
    }
    if "windowsEngine" in manifest["ours"]:
        w = manifest["ours"]["windowsEngine"]
        results["detectors"]["Driftline before (windows)"] = {
            "settings": w["settings"],
            "stationaryAlarms": w["stationaryAlarms"] if full_run else None,
            "delays": {s["feature"]: s["windowsDelay"] for s in manifest["shifts"]},
            "delaysQuarter": {s["feature"]: s["windowsDelay"] for s in quarter},
            "preOnsetAlarms": {s["feature"]: s["windowsAlarmsBeforeOnset"] + sum(q["windowsAlarmsBeforeOnset"] for q in quarter if q["feature"] == s["feature"]) for s in manifest["shifts"]},
        }

    if not args.skip_ksdrift:
        from importlib.metadata import version

        for p_val in (0.05, 1e-3):
            name = f"KSDrift p_val={p_val:g}"
            t0 = time.process_time()
            quiet = ksdrift_windows(x_ref, load(manifest["stationary"]["file"], nf)[:stationary_n], window, p_val)
            delays, pre, dq = {}, {}, {}
            for s in manifest["shifts"] + quarter:
                alarms = ksdrift_windows(x_ref, load(s["file"], nf), window, p_val)
                a = first_after(alarms, s["onset"])
                (dq if s in quarter else delays)[s["feature"]] = None if a is None else a - s["onset"]
                pre[s["feature"]] = pre.get(s["feature"], 0) + sum(1 for x in alarms if x < s["onset"])
            results["detectors"][name] = {
                "settings": f"alibi-detect {version('alibi-detect')}, x_ref 5,000, window {window} tumbling, Bonferroni, p_val={p_val:g}",
                "stationaryAlarms": len(quiet),
                "delays": delays,
                "delaysQuarter": dq,
                "preOnsetAlarms": pre,
                "cpuSeconds": round(time.process_time() - t0, 1),
            }
            print(f"{name}: {len(quiet)} alarms on {stationary_n:,} stationary samples", file=sys.stderr)

    if not args.skip_kswin:
        from importlib.metadata import version

        jobs = []
        for name, setting in settings.items():
            for f in range(nf):
                jobs.append(((name, "stationary"), manifest["stationary"]["file"], nf, f, 0, stationary_n, setting, None))
            for s in manifest["shifts"] + quarter:
                start = max(0, s["onset"] - args.kswin_warmup)
                tag = s["feature"] if s in manifest["shifts"] else f"quarter:{s['feature']}"
                for f in range(nf):
                    jobs.append(((name, tag), s["file"], nf, f, start, min(s["samples"], s["onset"] + args.kswin_horizon), setting, s["onset"]))
        # Long jobs first so the pool stays busy.
        jobs.sort(key=lambda j: -(j[5] - j[4]) if j[7] is None else 0)
        per: dict = {}
        cpu: dict = {}
        t0 = time.time()
        with Pool(args.jobs) as pool:
            for done, (key, feature, alarms, secs, n) in enumerate(pool.imap_unordered(kswin_job, jobs), start=1):
                per.setdefault(key, {})[feature] = alarms
                cpu[key[0]] = cpu.get(key[0], 0.0) + secs
                if key[1] == "stationary":
                    print(f"[{done}/{len(jobs)} {time.time() - t0:.0f}s] {key[0]} {features[feature]}: {len(alarms)} alarms on {n:,} samples ({secs / n * 1e6:.0f} us/sample)", file=sys.stderr)
        for name, setting in settings.items():
            quiet = per[(name, "stationary")]
            any_feature = sorted(set().union(*quiet.values()))
            delays, own, pre, dq, ownq = {}, {}, {}, {}, {}
            for s in manifest["shifts"] + quarter:
                is_q = s not in manifest["shifts"]
                cols = per[(name, f"quarter:{s['feature']}" if is_q else s["feature"])]
                onset = s["onset"]
                firsts = [first_after(cols[f], onset) for f in range(nf)]
                hits = [a for a in firsts if a is not None]
                (dq if is_q else delays)[s["feature"]] = None if not hits else min(hits) - onset
                shifted = firsts[features.index(s["feature"])]
                (ownq if is_q else own)[s["feature"]] = None if shifted is None else shifted - onset
                pre[s["feature"]] = pre.get(s["feature"], 0) + len({a for f in range(nf) for a in cols[f] if a < onset})
            results["detectors"][name] = {
                "settings": f"river {version('river')} KSWIN({', '.join(f'{k}={v:g}' for k, v in setting.items())}) per feature, any feature",
                "stationaryAlarms": len(any_feature),
                "stationaryAlarmsPerFeature": {features[f]: len(quiet[f]) for f in range(nf)},
                "delays": delays,
                "delaysOwnFeature": own,
                "delaysQuarter": dq,
                "delaysQuarterOwnFeature": ownq,
                "preOnsetAlarms": pre,
                "preOnsetWindow": args.kswin_warmup,
                "cpuSeconds": round(cpu[name], 1),
            }

    # ---- tables ----
    names = list(results["detectors"].keys())
    AFTER = manifest["shifts"][0]["samples"] - manifest["shifts"][0]["onset"]
    lines = [f"### False alarms on the stationary stream ({stationary_n:,} samples, seed profile)", ""]
    lines.append("| detector | settings | alarms |")
    lines.append("| --- | --- | ---: |")
    for n in names:
        d = results["detectors"][n]
        lines.append(f"| {n} | {d['settings']} | {fmt(d['stationaryAlarms'], 'n/a (full run only)')} |")
    def delay_table(title: str, key: str, own_key: str, shifts: list) -> None:
        nonlocal lines
        lines += [
            "",
            title,
            "",
            f"'none': no alarm within the stream ({AFTER:,} samples after the onset) for ours and KSDrift, within --kswin-horizon ({args.kswin_horizon:,}) for KSWIN. "
            "'(own: …)': the shifted feature's own KSWIN, when another feature's fired first.",
            "",
        ]
        lines.append("| shifted feature | " + " | ".join(names) + " |")
        lines.append("| --- | " + " | ".join("---:" for _ in names) + " |")
        worst = {n: 0 for n in names}
        for s in shifts:
            cells = []
            for n in names:
                d = results["detectors"][n]
                v = d.get(key, {}).get(s["feature"])
                worst[n] = None if v is None or worst[n] is None else max(worst[n], v)
                cell = fmt(v)
                own = d.get(own_key, {}).get(s["feature"], v)
                if own != v:
                    cell += f" (own: {fmt(own)})"
                cells.append(cell)
            lines.append(f"| {s['feature']} | " + " | ".join(cells) + " |")
        lines.append("| **worst of the nine** | " + " | ".join(fmt(worst[n]) for n in names) + " |")

    delay_table(
        f"### Detection delay, +0.5 sd in one feature at sample {manifest['shifts'][0]['onset']:,} (samples from onset to the first alarm at or after it; goal <= 600)",
        "delays", "delaysOwnFeature", manifest["shifts"])
    if quarter:
        delay_table(
            f"### Detection delay, +0.25 sd in one feature at sample {quarter[0]['onset']:,} (goal <= 3,000)",
            "delaysQuarter", "delaysQuarterOwnFeature", quarter)
    pre_row = []
    for n in names:
        d = results["detectors"][n]
        total = sum(d["preOnsetAlarms"].values())
        span = d.get("preOnsetWindow")
        pre_row.append(f"{total:,}" + (f" (in {span:,}/stream)" if span else ""))
    lines.append(f"| alarms before onset, {len(manifest['shifts']) + len(quarter)} streams | " + " | ".join(pre_row) + " |")
    table = "\n".join(lines)
    print(table)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({**results, "markdown": table}, indent=2))
    print(f"\n(written to {OUT.relative_to(ROOT)})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
