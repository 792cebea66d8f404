#!/usr/bin/env bash
# Creates the project-local Python virtualenv .venv (git-ignored) if missing and
# installs scripts/setup/requirements-test.txt into it.
#
# Idempotent and fast on a second run: a marker file inside the venv records the
# sha256 of the requirements file (and the interpreter version); when it matches,
# nothing is done. Needs only python3 (3.11+) with the venv module and pip, and
# access to PyPI.
#
# Usage: scripts/setup/python-venv.sh            (from anywhere)
#        PYTHON=python3.11 scripts/setup/python-venv.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/.venv"
req="$root/scripts/setup/requirements-test.txt"
marker="$venv/.driftline-requirements.sha256"
python="${PYTHON:-python3}"

if ! command -v "$python" >/dev/null 2>&1; then
  echo "python-venv.sh: $python not found; install Python 3.11+ first" >&2
  exit 1
fi

hash_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  else
    "$python" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"
  fi
}

pyver() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null; }
host_ver="$(pyver "$python")"
want="$(hash_of "$req") $host_ver"

# Fast path: venv present, working interpreter, same requirements as last time.
if [ -x "$venv/bin/python" ] && [ -f "$marker" ] && [ "$(cat "$marker")" = "$want" ] \
   && "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
  exit 0
fi

# (Re)create when missing, broken, or made by another Python version than $python.
if [ ! -x "$venv/bin/python" ] || [ "$(pyver "$venv/bin/python")" != "$host_ver" ]; then
  echo "python-venv.sh: creating $venv"
  rm -rf "$venv"
  if ! "$python" -m venv "$venv"; then
    echo "python-venv.sh: '$python -m venv' failed; on Debian/Ubuntu install the python3-venv package" >&2
    rm -rf "$venv"
    exit 1
  fi
fi

echo "python-venv.sh: installing $(basename "$req") into .venv"
rm -f "$marker"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip || echo "python-venv.sh: pip upgrade failed, using the bundled pip" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
"$venv/bin/python" -c 'import numpy, scipy; print("python-venv.sh: numpy", numpy.__version__, "scipy", scipy.__version__)'
echo "$want" > "$marker"
