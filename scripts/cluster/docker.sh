#!/usr/bin/env bash
# Docker engine for the local cluster: uses a working one, else installs and starts one.
#
# Usage: scripts/cluster/docker.sh start|stop|status
#   start   if `docker info` already answers, does nothing (your own engine is used as it is).
#           Otherwise installs what is missing from Debian (docker.io containerd runc
#           containernetworking-plugins iptables conntrack debootstrap jq ...), installs the OCI
#           runtime wrapper (runc-wrapper.sh -> /usr/local/bin/driftline-runc) and merges
#           /etc/docker/daemon.json (default-runtime = the wrapper, cgroupfs driver, nofile
#           ulimits), starts dockerd in the background and waits until `docker info` answers.
#   stop    stops the dockerd this script started (pid file); never one it did not start.
#   status  prints whether docker answers, and who started it.
# Env: DRIFTLINE_CACHE (see lib.sh), DOCKER_WAIT (seconds to wait for dockerd, default 60),
#      DOCKER_NOFILE (default ulimit nofile for containers, default 20000).
# Files: $CACHE/state/dockerd.pid, $CACHE/logs/dockerd.log
set -euo pipefail
LOG_TAG=docker
source "$(dirname "$0")/lib.sh"

pid_file="$STATE/dockerd.pid"
dockerd_log="$LOGS/dockerd.log"
WRAPPER=/usr/local/bin/driftline-runc
NOFILE="${DOCKER_NOFILE:-$(ulimit -Hn)}"
[ "$NOFILE" = unlimited ] && NOFILE=1048576
[ "$NOFILE" -gt 1048576 ] && NOFILE=1048576

our_pid() {
  local pid
  pid="$(cat "$pid_file" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

install_packages() {
  apt_install docker.io containerd runc containernetworking-plugins iptables conntrack \
    debootstrap jq python3-kubernetes ca-certificates procps
}

install_wrapper() {
  if ! cmp -s "$CLUSTER_DIR/runc-wrapper.sh" "$WRAPPER" 2>/dev/null; then
    $SUDO install -m 0755 "$CLUSTER_DIR/runc-wrapper.sh" "$WRAPPER"
    log "installed runtime wrapper $WRAPPER"
  fi
}

write_daemon_json() {
  local ours current merged
  ours="$(jq -n --arg w "$WRAPPER" --argjson n "$NOFILE" '{
    "runtimes": {"driftline-runc": {"path": $w}},
    "default-runtime": "driftline-runc",
    "exec-opts": ["native.cgroupdriver=cgroupfs"],
    "default-ulimits": {"nofile": {"Name": "nofile", "Hard": $n, "Soft": $n}}
  }')"
  $SUDO mkdir -p /etc/docker
  current='{}'
  if [ -s /etc/docker/daemon.json ]; then
    current="$(jq . /etc/docker/daemon.json)" || die "/etc/docker/daemon.json is not valid JSON; fix it first"
  fi
  # Merge: keep every key of the existing file; ours wins for the keys above, and exec-opts
  # keeps other options but replaces any earlier native.cgroupdriver.
  merged="$(jq -n --argjson a "$current" --argjson b "$ours" '
    ($a * $b) | ."exec-opts" = ((($a."exec-opts" // []) | map(select(startswith("native.cgroupdriver") | not))) + $b."exec-opts")')"
  if [ "$(jq -S . <<<"$current")" != "$(jq -S . <<<"$merged")" ]; then
    [ -s /etc/docker/daemon.json ] && $SUDO cp /etc/docker/daemon.json "/etc/docker/daemon.json.bak.$(date +%s)"
    printf '%s\n' "$merged" | $SUDO tee /etc/docker/daemon.json >/dev/null
    log "wrote /etc/docker/daemon.json"
  fi
}

start() {
  if docker_ok; then
    if our_pid >/dev/null; then log "dockerd (pid $(our_pid), started by this script) answers"; else log "docker answers already: using it as it is"; fi
    return 0
  fi
  timed "docker: packages" install_packages
  install_wrapper
  write_daemon_json
  if pgrep -x dockerd >/dev/null && ! our_pid >/dev/null; then
    die "a dockerd runs that does not answer \`docker info\` and was not started by this script; check it"
  fi
  if ! our_pid >/dev/null; then
    log "starting dockerd (log $dockerd_log)"
    # setsid: its own session, so it outlives the calling shell; ulimit as high as allowed.
    (ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
     exec setsid $SUDO dockerd --pidfile /var/run/docker.pid >>"$dockerd_log" 2>&1 </dev/null) &
    echo $! >"$pid_file"
  fi
  local wait="${DOCKER_WAIT:-60}"
  for ((i = 0; i < wait * 2; i++)); do
    docker_ok && { log "dockerd up (pid $(our_pid)) in $((i / 2)) s"; return 0; }
    our_pid >/dev/null || { tail -n 30 "$dockerd_log" >&2; die "dockerd exited"; }
    sleep 0.5
  done
  tail -n 30 "$dockerd_log" >&2
  die "dockerd did not answer within ${wait}s"
}

stop() {
  local pid
  if ! pid="$(our_pid)"; then
    rm -f "$pid_file"
    log "no dockerd started by this script runs"
    return 0
  fi
  log "stopping dockerd pid $pid"
  kill -TERM "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  rm -f "$pid_file"
  log "stopped"
}

status() {
  if docker_ok; then
    local v
    v="$(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?')"
    if our_pid >/dev/null; then echo "docker: running (server $v, dockerd pid $(our_pid) started by docker.sh)"
    else echo "docker: running (server $v, not started by docker.sh)"; fi
    echo "docker runtime: $(docker info --format '{{.DefaultRuntime}}' 2>/dev/null)"
  else
    echo "docker: not answering"
    return 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
esac
