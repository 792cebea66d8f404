#!/usr/bin/env bash
# `make buildtestup`: from a checkout to Driftline running on Minikube, tested, each phase timed.
#   1. test     make test (skipped when it already passed for this very commit on this machine: the
#               stamp `make test-once` writes; SKIP_TEST=1 skips it while iterating)
#   2. cluster  scripts/cluster/up.sh: Minikube started or reused, metrics-server, base images
#   3. images   every image built (scripts/images/build.sh), loaded into the node, then the image test
#               (tests/cluster/images.test.ts: non-root, labels, SIGTERM → "stopped cleanly")
#   4. vault    ansible/group_vars/all/vault.yml created with generated secrets when absent (said so),
#               keys the example gained added (scripts/vault.ts init / update); never example values
#   5. deploy   ansible-playbook deploy.yml (kubernetes.core, waits for every phase)
#   6. smoke    tests/cluster/deploy.test.ts (second run changed=0, --check, dry-run=server, securityContext,
#               HPA) and tests/cluster/smoke.test.ts (device → prediction, /readyz, the healing loop in
#               the cluster, logs in Elasticsearch)
# Leaves the cluster up and prints where to look; `make down` removes it.
# Env: SKIP_TEST=1, BUILDTESTUP_TIMEOUT_S (a hard limit for the whole run, default none), DRIFTLINE_CACHE,
#      ANSIBLE_VAULT_PASSWORD_FILE / ANSIBLE_VAULT_PASSWORD (default: ~/.config/driftline/vault-password).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"
CACHE_ROOT="${DRIFTLINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/driftline}"
LOG_DIR="$CACHE_ROOT/deploy/logs"
mkdir -p "$LOG_DIR"
TIMINGS="$CACHE_ROOT/deploy/timings.log"
t_start=$SECONDS
summary=()

say() { printf '\n\033[1m[buildtestup %s] %s\033[0m\n' "$(date +%H:%M:%S)" "$*"; }
phase() {
  local name="$1"; shift
  say "phase $name"
  local t=$SECONDS rc=0
  set +e; (set -e; "$@"); rc=$?; set -e
  local dt=$((SECONDS - t))
  summary+=("$(printf '%-8s %5d s%s' "$name" "$dt" "$([ $rc -ne 0 ] && echo "  FAILED (exit $rc)")")")
  printf '%s\t%s\t%ss\trc=%s\n' "$(date -Iseconds)" "buildtestup $name" "$dt" "$rc" >>"$TIMINGS"
  if [ $rc -ne 0 ]; then
    print_summary
    say "phase $name failed (exit $rc)"
    exit $rc
  fi
}
print_summary() {
  echo
  echo "buildtestup phases (this run; all runs in $TIMINGS):"
  printf '  %s\n' "${summary[@]}"
  printf '  %-8s %5d s\n' total "$((SECONDS - t_start))"
}

if [ -n "${BUILDTESTUP_TIMEOUT_S:-}" ]; then
  ( sleep "$BUILDTESTUP_TIMEOUT_S"
    echo "buildtestup: TIMEOUT after ${BUILDTESTUP_TIMEOUT_S} s — stopping (phase timings so far: $TIMINGS)" >&2
    kill -TERM -- -$$ 2>/dev/null || kill -TERM $$ ) &
  watchdog=$!
  trap 'kill $watchdog 2>/dev/null || true' EXIT
fi

# The vault password: the environment's, else the file scripts/vault.ts keeps outside the repository.
default_pw="${XDG_CONFIG_HOME:-$HOME/.config}/driftline/vault-password"
if [ -z "${ANSIBLE_VAULT_PASSWORD_FILE:-}" ] && [ -z "${ANSIBLE_VAULT_PASSWORD:-}" ]; then
  export ANSIBLE_VAULT_PASSWORD_FILE="$default_pw"
fi

if [ -n "${SKIP_TEST:-}" ]; then
  summary+=("test     skipped (SKIP_TEST=1)")
else
  phase test make --no-print-directory test-once
fi
phase cluster scripts/cluster/up.sh
# kubectl and minikube of the cluster first on PATH, KUBECONFIG set.
eval "$(scripts/cluster/env.sh)"
phase images make --no-print-directory images
vault_phase() {
  local vault=ansible/group_vars/all/vault.yml
  if [ ! -f "$vault" ]; then
    echo "No $vault: creating one with generated secrets (scripts/vault.ts init); the vault password is in" \
      "${ANSIBLE_VAULT_PASSWORD_FILE:-ANSIBLE_VAULT_PASSWORD}, outside the repository."
    # Only the password file's location is passed on: a new one is created there when missing.
    if [ "${ANSIBLE_VAULT_PASSWORD_FILE:-}" = "$default_pw" ] && [ ! -e "$default_pw" ]; then
      env -u ANSIBLE_VAULT_PASSWORD_FILE npx tsx scripts/vault.ts init
    else
      npx tsx scripts/vault.ts init
    fi
  else
    npx tsx scripts/vault.ts update
  fi
  npx tsx scripts/vault.ts check
}
phase vault vault_phase
phase deploy make --no-print-directory deploy
phase smoke make --no-print-directory smoke
print_summary
cat <<EOF

Driftline is up on Minikube (namespace driftline); the cluster stays up (make down removes it).
  eval "\$(scripts/cluster/env.sh)"; kubectl -n driftline get pods
  Dashboard: kubectl -n driftline port-forward svc/dashboard 8080:8080  →  http://127.0.0.1:8080
             user operator; password: vault_dashboard_operator_password in ansible/group_vars/all/vault.yml
             (ansible-vault view ansible/group_vars/all/vault.yml, password file ${ANSIBLE_VAULT_PASSWORD_FILE:-\$ANSIBLE_VAULT_PASSWORD})
  MLflow:    kubectl -n driftline port-forward svc/mlflow 5000:5000  →  http://127.0.0.1:5000
  Logs:      kubectl -n driftline port-forward svc/elasticsearch 9200:9200  →  edge-mlops-YYYY.MM.DD
  Smoke-test timings: $ROOT/test-results/cluster/smoke.json
EOF
