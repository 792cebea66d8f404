#!/usr/bin/env bash
# Tells whether a `docker build` on this machine reaches Debian's packages, the npm registry
# and PyPI from inside its RUN steps (each answer is one tiny build FROM the base images).
# Usage: scripts/cluster/base-images/check-build-network.sh      (needs the base images built)
# Prints one line per registry: reachable / NOT reachable, and exits 0 either way.
set -euo pipefail
LOG_TAG="build-net"
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"
docker_ok || die "docker does not answer"
try() { # try LABEL BASE COMMAND
  local d
  d="$(mktemp -d)"
  printf 'FROM %s\nUSER root\nRUN %s\n' "$2" "$3" >"$d/Dockerfile"
  if docker build --no-cache -q "$d" >"$d/out" 2>&1; then echo "$1: reachable from docker build"
  else echo "$1: NOT reachable from docker build ($(tail -n 2 "$d/out" | tr '\n' ' '))"; fi
  docker image prune -f >/dev/null 2>&1 || true
  rm -rf "$d"
}
try "Debian packages (apt-get)" driftline/base-python:3 "apt-get update -qq && apt-get install -y -qq --no-install-recommends hello >/dev/null && hello"
try "npm registry (npm install)" driftline/base-node:20 "cd /tmp && npm init -y >/dev/null && npm install --no-audit --no-fund is-number@7.0.0 && node -e 'require(\"is-number\")'"
try "PyPI (pip install)" driftline/base-python:3 "pip install --no-cache-dir six==1.16.0 && python -c 'import six'"
