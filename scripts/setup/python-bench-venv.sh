#!/usr/bin/env bash
# Creates the benchmark virtualenv .venv-bench (git-ignored) if missing and
# installs bench/requirements.txt into it: River and Alibi Detect for
# bench/compare_detectors.py. Separate from .venv (scripts/setup/python-venv.sh),
# because alibi-detect needs numpy < 2 while .venv pins numpy 2.
#
# Idempotent and fast on a second run: a marker file inside the venv records the
# sha256 of the requirements file and the interpreter version; when it matches,
# nothing is done. Needs python3 (3.11) with the venv module and pip, and
# access to PyPI. Installs about 600 MB (alibi-detect pulls opencv, scikit-image,
# transformers, numba; no tensorflow or torch).
#
# Usage: scripts/setup/python-bench-venv.sh            (from anywhere)
#        PYTHON=python3.11 scripts/setup/python-bench-venv.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/.venv-bench"
req="$root/bench/requirements.txt"
marker="$venv/.driftline-requirements.sha256"
python="${PYTHON:-python3}"

if ! command -v "$python" >/dev/null 2>&1; then
  echo "python-bench-venv.sh: $python not found; install Python 3.11 first" >&2
  exit 1
fi

hash_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  else
    "$python" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"
  fi
}

want="$(hash_of "$req") $("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"

# Fast path: venv present, working interpreter, same requirements as last time.
if [ -x "$venv/bin/python" ] && [ -f "$marker" ] && [ "$(cat "$marker")" = "$want" ] \
   && "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
  exit 0
fi

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
  echo "python-bench-venv.sh: creating $venv"
  rm -rf "$venv"
  "$python" -m venv "$venv"
fi

echo "python-bench-venv.sh: installing $(basename "$req") into .venv-bench"
rm -f "$marker"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip || echo "python-bench-venv.sh: pip upgrade failed, using the bundled pip" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
"$venv/bin/python" -c 'import numpy, scipy, river, alibi_detect; print("python-bench-venv.sh: numpy", numpy.__version__, "scipy", scipy.__version__, "river", river.__version__, "alibi-detect", alibi_detect.__version__)' 2>/dev/null
echo "$want" > "$marker"
