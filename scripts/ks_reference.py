#!/usr/bin/env python3
"""Reference side of tests/external/ks-scipy.test.ts: scipy.stats.ks_2samp.

Reads one JSON document on stdin (values are numbers or the strings "inf"/"-inf"):
    {"cases": [{"x": [...], "y": [...], "alternative": "two-sided"|"less"|"greater",
                "method": "auto"|"exact"|"asymp"}, ...]}
and writes one JSON document on stdout:
    {"scipy": "<version>", "numpy": "<version>",
     "results": [{"statistic": float, "pvalue": float|null, "statistic_location": float|null,
                  "statistic_sign": 1|-1, "method": "exact"|"asymp"}, ...]}

"method" is the method scipy actually used: 'auto' resolved with scipy's own rule
(exact when max(n1, n2) <= 10000) and any exact -> asymp switch, detected from the
RuntimeWarning scipy emits when it switches. NaN (and +/-inf) are written as null
since JSON has no NaN; +/-inf locations are written as the strings "inf"/"-inf".

Run it with the project virtualenv: .venv/bin/python scripts/ks_reference.py
(create it with scripts/setup/python-venv.sh).
"""
import json
import math
import sys
import warnings

import numpy as np
import scipy
from scipy import stats

MAX_AUTO_N = 10000  # scipy's MAX_AUTO_N in ks_2samp


def _num(v):
    v = float(v)
    if math.isnan(v):
        return None
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def run_case(case):
    # values are numbers, or the strings "inf" / "-inf" (JSON has no infinities)
    x = np.asarray([float(v) for v in case["x"]], dtype=np.float64)
    y = np.asarray([float(v) for v in case["y"]], dtype=np.float64)
    alternative = case.get("alternative", "two-sided")
    method = case.get("method", "auto")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = stats.ks_2samp(x, y, alternative=alternative, method=method)
    # scipy warns "... Switching to 'asymp'." / "... Switching to method=asymp."
    switched = any(
        issubclass(w.category, RuntimeWarning) and "Switching to" in str(w.message) for w in caught
    )
    if method == "auto":
        used = "exact" if max(len(x), len(y)) <= MAX_AUTO_N else "asymp"
    else:
        used = method
    if used == "exact" and switched:
        used = "asymp"
    return {
        "statistic": _num(res.statistic),
        "pvalue": _num(res.pvalue),
        "statistic_location": _num(res.statistic_location),
        "statistic_sign": None if math.isnan(float(res.statistic_sign)) else int(res.statistic_sign),
        "method": used,
    }


def main():
    doc = json.load(sys.stdin)
    results = [run_case(c) for c in doc["cases"]]
    json.dump(
        {"scipy": scipy.__version__, "numpy": np.__version__, "results": results},
        sys.stdout,
        allow_nan=False,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
