# shellcheck shell=bash disable=SC2034
# Shared settings and helpers of scripts/cluster/*.sh (sourced, not run).
#
# Env vars (all optional):
#   DRIFTLINE_CACHE      cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/driftline); this tree uses
#                        $DRIFTLINE_CACHE/cluster for binaries, rootfs tarballs, build modules, logs
#   K8S_VERSION          Kubernetes version built and started (default v1.34.4)
#   MINIKUBE_VERSION     minikube built when none is usable on PATH (default v1.37.0)
#   DRIFTLINE_PROFILE    minikube profile name (default minikube)

CLUSTER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$CLUSTER_DIR/../.." && pwd)"
CACHE_ROOT="${DRIFTLINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/driftline}"
CACHE="$CACHE_ROOT/cluster"
BIN="$CACHE/bin"            # every binary built here; env.sh prepends it to PATH
LOGS="$CACHE/logs"
STATE="$CACHE/state"        # pid files, stamps
mkdir -p "$BIN" "$LOGS" "$STATE"

K8S_VERSION="${K8S_VERSION:-v1.34.4}"
K8S_STAGING_VERSION="v0.${K8S_VERSION#v1.}"          # v1.34.4 -> v0.34.4
MINIKUBE_VERSION="${MINIKUBE_VERSION:-v1.37.0}"
# Tags kubeadm v1.34.4 uses (minikube v1.37 has no table for v1.34.4 and asks the cached kubeadm:
# `kubeadm config images list`; build-binaries.sh checks). ETCD_VERSION: module built for ETCD_TAG.
ETCD_VERSION="${ETCD_VERSION:-v3.6.5}"
ETCD_TAG="${ETCD_TAG:-3.6.5-0}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.12.1}"
PAUSE_TAG="${PAUSE_TAG:-3.10.1}"
CRICTL_VERSION="${CRICTL_VERSION:-v1.34.0}"
METRICS_SERVER_VERSION="${METRICS_SERVER_VERSION:-v0.8.0}"
LOCAL_PATH_VERSION="${LOCAL_PATH_VERSION:-v0.0.30}"   # the only version the Go proxy serves
PROFILE="${DRIFTLINE_PROFILE:-minikube}"
KICBASE_TAG="${KICBASE_TAG:-driftline/kicbase:${MINIKUBE_VERSION}-local}"
DEBIAN_SUITE="${DEBIAN_SUITE:-bookworm}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"

log() { printf '[%s %s] %s\n' "$(date +%H:%M:%S)" "${LOG_TAG:-cluster}" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# timed LABEL CMD...: runs CMD, logs and records how long it took (in $LOGS/timings.log).
timed() {
  local label="$1"; shift
  local t0=$SECONDS rc=0
  # Not `"$@" || rc=$?`: that would switch off set -e inside the whole call tree.
  set +e; (set -e; "$@"); rc=$?; set -e
  local dt=$((SECONDS - t0))
  log "$label: ${dt}s$([ $rc -ne 0 ] && echo " (FAILED rc=$rc)")"
  printf '%s\t%s\t%ss\trc=%s\n' "$(date -Iseconds)" "$label" "$dt" "$rc" >>"$LOGS/timings.log"
  return $rc
}

# apt_install PKG...: installs the Debian packages that are missing (apt-get update once per run).
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  if [ -z "${_APT_UPDATED:-}" ]; then $SUDO apt-get update -qq; _APT_UPDATED=1; fi
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

docker_ok() { docker info >/dev/null 2>&1; }

# image_exists REF: the docker image is present locally.
image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# content_hash DIR [EXTRA...]: hash of every file in DIR (names, modes, bytes) and EXTRA strings.
content_hash() {
  local dir="$1"; shift
  { (cd "$dir" && find . -type f -printf '%p %m\n' | LC_ALL=C sort && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 cat)
    printf '%s\n' "$@"; } | sha256sum | cut -c1-16
}
# build_image TAG DIR [BUILD_ARG=VALUE...]: docker build DIR as TAG unless TAG has the same content.
build_image() {
  local tag="$1" dir="$2"; shift 2
  local h args=() a
  h="$(content_hash "$dir" "$@")"
  if [ "$(docker image inspect -f '{{index .Config.Labels "driftline.content"}}' "$tag" 2>/dev/null)" = "$h" ]; then
    log "$tag: up to date"; return 0
  fi
  for a in "$@"; do args+=(--build-arg "$a"); done
  log "building $tag"
  local blog
  blog="$LOGS/docker-build-$(tr '/:' '__' <<<"$tag").log"
  if ! docker build --label "driftline.content=$h" "${args[@]}" -t "$tag" "$dir" >"$blog" 2>&1; then
    tail -n 25 "$blog" >&2
    die "docker build of $tag failed (log $blog)"
  fi
}
# The kubectl callers should use: the one built here, else a usable one on PATH.
kubectl_bin() {
  if [ -x "$BIN/kubectl" ]; then echo "$BIN/kubectl"; else command -v kubectl; fi
}
minikube_bin() {
  if [ -x "$BIN/minikube" ]; then echo "$BIN/minikube"; else command -v minikube; fi
}
