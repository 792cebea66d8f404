#!/usr/bin/env bash
# One command from a fresh machine to a running local cluster: docker engine, binaries,
# images, minikube, storage, metrics-server and the Driftline base images, each phase timed.
# Usage: scripts/cluster/up.sh            (idempotent; a second run takes about a minute)
# Then:  eval "$(scripts/cluster/env.sh)"; kubectl get nodes
# Env: DRIFTLINE_SKIP_BASE_IMAGES=1 skips the base images; others as in minikube.sh and lib.sh.
set -euo pipefail
LOG_TAG=up
source "$(dirname "$0")/lib.sh"
t0=$SECONDS
n0="$(wc -l <"$LOGS/timings.log" 2>/dev/null || echo 0)"
"$CLUSTER_DIR/minikube.sh" up
if [ -z "${DRIFTLINE_SKIP_BASE_IMAGES:-}" ]; then
  timed "phase base images" "$CLUSTER_DIR/base-images/build.sh"
fi
log "total: $((SECONDS - t0)) s"
echo "phase timings of this run (all runs: $LOGS/timings.log):" >&2
tail -n +"$((n0 + 1))" "$LOGS/timings.log" | grep -E 'phase|up total' | cut -f2,3 | sed 's/^/  /' >&2
printf '%s\t%s\t%ss\trc=0\n' "$(date -Iseconds)" "up.sh total" "$((SECONDS - t0))" >>"$LOGS/timings.log"
"$CLUSTER_DIR/env.sh" | tail -n 1 >&2
