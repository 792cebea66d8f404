#!/usr/bin/env bash
# A local MLflow tracking server + model registry for Driftline (the MLflow
# registry backend, common/mlflow/*, and tests/external/mlflow.test.ts).
#
# Usage: scripts/services/mlflow.sh start|stop|status|restart
#
#   start    installs MLflow (scripts/setup/requirements-mlflow.txt) into the
#            project-local virtualenv .services/mlflow/venv if needed, then runs
#            `mlflow server` in the background on 127.0.0.1:${MLFLOW_PORT:-5055}
#            with a SQLite backend store and the artifact proxy (--serve-artifacts)
#            storing files under .services/mlflow/artifacts; waits until /health
#            answers. Starting an already running server is a no-op.
#   stop     TERM, wait up to 20 s, then KILL the whole process group.
#   status   prints running/stopped; exit code 0 when running, 1 otherwise.
#
# Environment:
#   MLFLOW_PORT            port to listen on (default 5055; when unset it is taken
#                          from MLFLOW_TRACKING_URI if that names a 127.0.0.1/localhost port)
#   MLFLOW_START_TIMEOUT   seconds to wait for /health (default 120)
#   MLFLOW_WORKERS         uvicorn worker processes (default 1: two cores here, SQLite store)
#   PYTHON                 interpreter used to create the venv (default python3, 3.11+)
#
# Files (all under the git-ignored .services/):
#   .services/mlflow/venv          virtualenv (marker file = sha256 of the requirements)
#   .services/cache/pip            wheelhouse (wheels-<req hash>/): a recreated venv installs offline
#   .services/mlflow/mlflow.db     backend + registry store (SQLite)
#   .services/mlflow/artifacts     artifact store behind the proxy
#   .services/mlflow/mlflow.pid    pid of the server (leader of its own process group)
#   .services/logs/mlflow.log      server log
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
base="$root/.services/mlflow"
venv="$base/venv"
req="$root/scripts/setup/requirements-mlflow.txt"
marker="$venv/.driftline-requirements.sha256"
pip_cache="$root/.services/cache/pip"
log_dir="$root/.services/logs"
log="$log_dir/mlflow.log"
pid_file="$base/mlflow.pid"
python="${PYTHON:-python3}"

port_from_uri() {
  # http://127.0.0.1:5055 -> 5055 (only for loopback URIs; others are not ours to start)
  local uri="${MLFLOW_TRACKING_URI:-}"
  if [[ "$uri" =~ ^https?://(127\.0\.0\.1|localhost)(:([0-9]+))?/?$ ]]; then
    echo "${BASH_REMATCH[3]:-80}"
  fi
}

port="${MLFLOW_PORT:-$(port_from_uri)}"
port="${port:-5055}"
url="http://127.0.0.1:$port"
timeout_s="${MLFLOW_START_TIMEOUT:-120}"
workers="${MLFLOW_WORKERS:-1}"

log_msg() { echo "mlflow.sh: $*"; }
# shellcheck source=lib.sh
. "$root/scripts/services/lib.sh"

hash_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  else
    "$python" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"
  fi
}

healthy() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsS -m 3 "$url/health" >/dev/null 2>&1
  else
    "$python" - "$url/health" <<'EOF' >/dev/null 2>&1
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=3).read()
EOF
  fi
}


ensure_venv() {
  if ! command -v "$python" >/dev/null 2>&1; then
    echo "mlflow.sh: $python not found; install Python 3.11+ first" >&2
    exit 1
  fi
  local want
  want="$(hash_of "$req") $("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  if [ -x "$venv/bin/mlflow" ] && [ -f "$marker" ] && [ "$(cat "$marker")" = "$want" ]; then
    return 0
  fi
  mkdir -p "$pip_cache"
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
    log_msg "creating $venv"
    rm -rf "$venv"
    "$python" -m venv "$venv"
  fi
  # Wheels are kept in a wheelhouse keyed by the requirements' hash: pip's own
  # HTTP cache is not reliable here (responses may be marked uncacheable), so a
  # recreated venv installs offline from the wheelhouse in seconds.
  local wheelhouse
  wheelhouse="$pip_cache/wheels-py$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-$(hash_of "$req" | cut -c1-16)"
  if [ ! -f "$wheelhouse/.complete" ]; then
    log_msg "downloading wheels for $(basename "$req") into $wheelhouse"
    rm -rf "$wheelhouse"
    "$venv/bin/python" -m pip wheel --quiet --disable-pip-version-check --cache-dir "$pip_cache/http" -w "$wheelhouse" -r "$req"
    touch "$wheelhouse/.complete"
  fi
  log_msg "installing $(basename "$req") into $venv from $wheelhouse"
  rm -f "$marker"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-index --find-links "$wheelhouse" -r "$req"
  log_msg "installed: $("$venv/bin/mlflow" --version 2>/dev/null || echo '?')"
  echo "$want" > "$marker"
}

do_status() {
  local pid
  if pid="$(read_pid)" && healthy; then
    echo "mlflow: running (pid $pid, $url)"
    return 0
  fi
  if healthy; then
    echo "mlflow: running ($url, not started by this script: no pid file)"
    return 0
  fi
  if pid="$(read_pid)"; then
    echo "mlflow: starting or unhealthy (pid $pid, $url/health does not answer)"
    return 1
  fi
  echo "mlflow: stopped"
  return 1
}

do_start() {
  if healthy; then
    log_msg "already running at $url"
    return 0
  fi
  if read_pid >/dev/null; then
    log_msg "a previous server (pid $(read_pid)) is not healthy; stopping it first"
    do_stop
  fi
  ensure_venv
  mkdir -p "$base/artifacts" "$log_dir"
  log_msg "starting mlflow server on $url (log $log)"
  # setsid: the server and its workers get their own process group, so `stop`
  # can signal all of them through the group id (= the pid we record).
  # --allowed-hosts: MLflow 3.x validates the Host header (DNS-rebinding guard).
  # --workers 1: the uvicorn default is 4; two cores and a SQLite store here.
  # No telemetry (no network here) and no background job runner (GenAI scoring
  # jobs Driftline does not use; it would spawn extra huey processes).
  (
    cd "$base"
    export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"
    nohup setsid "$venv/bin/mlflow" server \
      --host 127.0.0.1 --port "$port" \
      --workers "$workers" \
      --backend-store-uri "sqlite:///$base/mlflow.db" \
      --serve-artifacts --artifacts-destination "$base/artifacts" \
      --allowed-hosts "127.0.0.1:$port,localhost:$port,127.0.0.1,localhost" \
      >>"$log" 2>&1 </dev/null &
    echo $! > "$pid_file"
  )
  local pid deadline
  pid="$(cat "$pid_file")"
  deadline=$(( $(date +%s) + timeout_s ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    if healthy; then
      log_msg "ready at $url (pid $pid, mlflow $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("mlflow"))' 2>/dev/null || echo '?'))"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "mlflow.sh: server exited during start-up; last log lines:" >&2
      tail -n 40 "$log" >&2 || true
      rm -f "$pid_file"
      exit 1
    fi
    sleep 1
  done
  echo "mlflow.sh: $url/health did not answer within ${timeout_s}s; last log lines:" >&2
  tail -n 40 "$log" >&2 || true
  do_stop || true
  exit 1
}

do_stop() { stop_service 20; }

case "${1:-}" in
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
  restart) do_stop; do_start ;;
  *)
    echo "usage: $0 start|stop|status|restart" >&2
    exit 2
    ;;
esac
