# Shared helpers of scripts/services/*.sh. The caller sets `pid_file` and defines `log_msg`.

# Prints the pid in $pid_file when that process is alive; fails otherwise.
read_pid() {
  [ -f "$pid_file" ] || return 1
  local pid
  pid="$(cat "$pid_file" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

# stop_service GRACE_SECONDS: TERM to the service's process group (its leader when there
# is no group), KILL after GRACE_SECONDS, then clean up the pid file. Harmless when stopped.
stop_service() {
  local grace="${1:-30}" pid
  if ! pid="$(read_pid)"; then
    rm -f "$pid_file"
    log_msg "not running"
    return 0
  fi
  log_msg "stopping pid $pid"
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 $((grace * 2))); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    log_msg "still alive after ${grace} s; sending KILL"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  # Children left in the group (the leader may exit first) are cleaned up too.
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$pid_file"
  log_msg "stopped"
}
