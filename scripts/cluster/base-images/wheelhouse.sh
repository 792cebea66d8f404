#!/usr/bin/env bash
# Downloads Python wheels on the host into a wheelhouse directory, for a `docker build` that
# cannot (or should not) reach PyPI: COPY the directory in and
#   pip install --no-index --find-links /wheels -r requirements.txt
# The wheels are chosen for the base-python image (CPython 3.11, manylinux x86_64), not for
# the host's Python. Already-downloaded wheels are kept, so a second run is quick.
#
# Usage: scripts/cluster/base-images/wheelhouse.sh OUT_DIR (-r REQUIREMENTS_FILE | SPEC)...
#   e.g. wheelhouse.sh build/mlflow-wheels mlflow==3.17.2
# Env: WHEEL_PYTHON_VERSION (default 3.11), WHEEL_PLATFORM (default manylinux2014_x86_64),
#      PIP (default: python3 -m pip).
set -euo pipefail
out="${1:?usage: wheelhouse.sh OUT_DIR (-r FILE | SPEC)...}"; shift
[ $# -gt 0 ] || { echo "usage: wheelhouse.sh OUT_DIR (-r FILE | SPEC)..." >&2; exit 2; }
mkdir -p "$out"
read -r -a pip <<<"${PIP:-python3 -m pip}"
pyver="${WHEEL_PYTHON_VERSION:-3.11}"
plat="${WHEEL_PLATFORM:-manylinux2014_x86_64}"
t0=$SECONDS
# --platform with --only-binary: the resolver picks wheels for the image's Python and libc,
# whatever the host runs. manylinux_2_17 (2014) and later tags up to glibc 2.36 (bookworm).
plats=(--platform "$plat")
for g in 2_28 2_31 2_34 2_35 2_36; do plats+=(--platform "manylinux_${g}_x86_64"); done
"${pip[@]}" download --disable-pip-version-check --dest "$out" --only-binary=:all: \
  --python-version "$pyver" --implementation cp "${plats[@]}" --platform linux_x86_64 --platform any "$@"
echo "wheelhouse $out: $(find "$out" -name '*.whl' | wc -l) wheels, $(du -sh "$out" | cut -f1), $((SECONDS - t0)) s" >&2
