#!/usr/bin/env bash
# OCI runtime wrapper for sandboxes without CAP_SYS_RESOURCE in the bounding set (gVisor-like
# sandboxes, some rootless setups). Installed by docker.sh as docker's default runtime and by
# build-images.sh as the node image's /usr/sbin/runc.
#   create/run --bundle DIR : rewrites DIR/config.json, dropping CAP_SYS_RESOURCE from every
#                             capability set and raising a negative oomScoreAdj to 0
#   exec --process FILE     : drops CAP_SYS_RESOURCE from FILE's capabilities
# then execs the real runc (REAL_RUNC, default /usr/bin/runc or /usr/sbin/runc.real) unchanged.
set -euo pipefail
REAL_RUNC="${REAL_RUNC:-}"
if [ -z "$REAL_RUNC" ]; then
  for c in /usr/sbin/runc.real /usr/bin/runc.real /usr/bin/runc /usr/sbin/runc; do
    if [ -x "$c" ] && [ "$(readlink -f "$c")" != "$(readlink -f "$0")" ]; then REAL_RUNC="$c"; break; fi
  done
fi
bundle="" process=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --bundle | -b) bundle="${args[$((i + 1))]:-}" ;;
    --bundle=*) bundle="${args[$i]#--bundle=}" ;;
    --process | -p) process="${args[$((i + 1))]:-}" ;;
    --process=*) process="${args[$i]#--process=}" ;;
  esac
done
fix() { # fix FILE JQ_FILTER
  local tmp
  tmp="$(mktemp "$1.XXXXXX")"
  if jq "$2" "$1" >"$tmp"; then cat "$tmp" >"$1"; fi
  rm -f "$tmp"
}
if [ -n "$bundle" ] && [ -f "$bundle/config.json" ]; then
  fix "$bundle/config.json" '
    (if .process.capabilities then .process.capabilities |= with_entries(.value |= (if type == "array" then map(select(. != "CAP_SYS_RESOURCE")) else . end)) else . end)
    | (if (.process.oomScoreAdj // 0) < 0 then .process.oomScoreAdj = 0 else . end)'
fi
if [ -n "$process" ] && [ -f "$process" ]; then
  fix "$process" '(if .capabilities then .capabilities |= with_entries(.value |= (if type == "array" then map(select(. != "CAP_SYS_RESOURCE")) else . end)) else . end)'
fi
exec "$REAL_RUNC" "$@"
