#!/usr/bin/env bash
# Starts, stops or reports every local service the real-server tests use.
# Each service script is idempotent: starting twice is harmless.
set -euo pipefail
cd "$(dirname "$0")/../.."
action=${1:-status}
services=()
for s in mosquitto mlflow kafka elasticsearch; do
  [ -x "scripts/services/$s.sh" ] && services+=("$s")
done
rc=0
for s in "${services[@]}"; do
  "scripts/services/$s.sh" "$action" || rc=$?
  if [ "$action" = start ] && [ $rc -ne 0 ]; then
    echo "service $s failed to start" >&2
    exit $rc
  fi
done
exit $rc
