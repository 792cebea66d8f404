#!/usr/bin/env bash
# The local Minikube cluster's lifecycle.
#
# Usage: scripts/cluster/minikube.sh up|stop|down|status|load IMAGE...|images
#   up      brings the cluster up, building what is missing, and reuses a running one; offline, a
#           stale profile (node container or its kubeconfigs gone) is deleted first, and a failed start
#           is retried once on a fresh node (online, your profile is never deleted). Phases
#           (each timed): docker engine (docker.sh), binaries (build-binaries.sh), node images
#           (build-node-images.sh), minikube start, storage + metrics-server, metrics ready.
#           Offline mode (no usable minikube of yours): minikube is started with the locally
#           built kicbase and binaries, `--preload=false --cni=bridge --install-addons=false`;
#           storage is rancher's local-path-provisioner, default StorageClass "standard"
#           (hostPath under /opt/local-path-provisioner in the node); metrics-server is
#           installed with --kubelet-insecure-tls; `up` waits until `kubectl top nodes` answers.
#           Online mode (your own minikube and docker work): plain `minikube start` with your
#           minikube, its default storage class and its metrics-server add-on.
#   stop    stops the cluster (keeps it; `up` starts it again in about a minute)
#   down    deletes the cluster (the caches under $DRIFTLINE_CACHE stay)
#   status  docker, minikube and kubectl state
#   load IMAGE...  copies local docker images into the node's containerd (docker save |
#           ctr import via docker exec), skipping those already there with the same image ID
#   images  lists the images in the node
# Env: DRIFTLINE_CLUSTER_MODE auto|offline|online (default auto), DRIFTLINE_PROFILE (minikube
#      profile, default minikube), MINIKUBE_CPUS (default 2), MINIKUBE_MEMORY (default 9g),
#      MINIKUBE_DISK (default 40g), MINIKUBE_HOME (default ~/.minikube), KUBECONFIG (default
#      ~/.kube/config), UP_WAIT (seconds to wait for metrics, default 300), and lib.sh's.
set -euo pipefail
LOG_TAG=minikube
source "$(dirname "$0")/lib.sh"

MODE="${DRIFTLINE_CLUSTER_MODE:-auto}"
CPUS="${MINIKUBE_CPUS:-2}"
MEMORY="${MINIKUBE_MEMORY:-9g}"
DISK="${MINIKUBE_DISK:-40g}"
MK_HOME="${MINIKUBE_HOME:-$HOME/.minikube}"
export KUBECONFIG="${KUBECONFIG:-$HOME/.kube/config}"
export MINIKUBE_WANTUPDATENOTIFICATION=false MINIKUBE_IN_STYLE=false
MANIFESTS="$CLUSTER_DIR/manifests"

# Which minikube and kubectl: the user's when they work (online mode), else the built ones.
user_minikube() {
  local m
  m="$(command -v minikube 2>/dev/null)" || return 1
  [ "$(readlink -f "$m")" = "$(readlink -f "$BIN/minikube")" ] && return 1   # ours (env.sh's link)
  "$m" version --short >/dev/null 2>&1 || return 1
  echo "$m"
}
# A kubectl on PATH within one minor version of K8S_VERSION, else ours.
user_kubectl() {
  local k v want
  k="$(command -v kubectl 2>/dev/null)" || return 1
  [ "$(readlink -f "$k")" = "$(readlink -f "$BIN/kubectl")" ] && return 1
  v="$("$k" version --client -o json 2>/dev/null | jq -r '.clientVersion.minor' | tr -dc 0-9)" || return 1
  want="${K8S_VERSION#v1.}"; want="${want%%.*}"
  [ -n "$v" ] && [ $((v - want)) -le 1 ] && [ $((want - v)) -le 1 ] || return 1
  echo "$k"
}
decide_mode() {
  if [ "$MODE" = auto ]; then
    if docker_ok && user_minikube >/dev/null; then MODE=online; else MODE=offline; fi
  fi
  if [ "$MODE" = online ]; then MK="$(user_minikube)" || die "online mode needs a working minikube on PATH"
  else MK="$BIN/minikube"; fi
  KC="$(user_kubectl || echo "$BIN/kubectl")"
}
mk() { "$MK" -p "$PROFILE" "$@"; }
kc() { "$KC" --context "$PROFILE" "$@"; }

running() {
  [ -x "${MK:-}" ] || return 1
  local s
  s="$(mk status -o json 2>/dev/null || true)"
  [ "$(jq -r '.Host // empty' <<<"$s" 2>/dev/null)" = Running ] &&
    [ "$(jq -r '.APIServer // empty' <<<"$s" 2>/dev/null)" = Running ]
}

binaries_into_minikube_cache() {
  local d="$MK_HOME/cache/linux/amd64/$K8S_VERSION" b
  mkdir -p "$d"
  for b in kubeadm kubelet kubectl; do
    cmp -s "$BIN/$b" "$d/$b" 2>/dev/null || cp -f "$BIN/$b" "$d/$b"
  done
}

start_offline() {
  binaries_into_minikube_cache
  mk config set WantUpdateNotification false >/dev/null 2>&1 || true
  mk start --driver=docker --force --base-image="$KICBASE_TAG" --kubernetes-version="$K8S_VERSION" \
    --container-runtime=containerd --preload=false --cni=bridge --install-addons=false \
    --cpus="$CPUS" --memory="$MEMORY" --disk-size="$DISK" --interactive=false \
    --wait=apiserver,system_pods,node_ready
}
# stale_node: a node that cannot start again, because it lost half of itself: its container is gone
# while minikube keeps the profile or docker keeps the node's /var volume (dockerd lost its containers,
# or a delete was cut short), or the container was made anew over an old /var volume, so /var holds a
# cluster (certificates, etcd) whose kubeconfigs under /etc/kubernetes are gone. minikube then takes its
# restart path and waits 6 minutes for a kubelet that fails on "bootstrap-kubelet.conf: no such file".
file_in_node() { docker cp "$PROFILE:$1" - >/dev/null 2>&1; }
stale_node() {
  if ! docker container inspect "$PROFILE" >/dev/null 2>&1; then
    [ -d "$MK_HOME/profiles/$PROFILE" ] || docker volume inspect "$PROFILE" >/dev/null 2>&1
    return
  fi
  file_in_node /var/lib/minikube/certs/ca.crt && ! file_in_node /etc/kubernetes/admin.conf
}
# start: offline, a stale node is deleted first and a start that fails is retried once on a fresh node.
# Online the profile may be the user's own cluster: it is never deleted here, the error is theirs to read.
start() {
  [ "$MODE" = offline ] || { start_online; return; }
  if stale_node; then
    log "profile $PROFILE is stale (node container or its kubeconfigs gone): deleting it first"
    mk delete >/dev/null 2>&1 || true
  fi
  start_offline && return 0
  log "minikube start failed: deleting profile $PROFILE and starting once more on a fresh node"
  mk delete >/dev/null 2>&1 || true
  start_offline
}
start_online() {
  mk start --driver=docker --kubernetes-version="$K8S_VERSION" --cpus="$CPUS" --memory="$MEMORY" \
    --addons=metrics-server,storage-provisioner,default-storageclass --interactive=false
}

# node_image_ids: "ref id" for every image in the node's containerd (k8s.io namespace).
node_image_ids() {
  docker exec "$PROFILE" crictl images -o json 2>/dev/null |
    jq -r '.images[] | .id as $id | (.repoTags // [])[] | "\(.) \($id)"'
}
# normalized REF: docker.io/library/... form used by containerd.
normalized() {
  local r="$1"
  [[ "$r" == *:* ]] || r="$r:latest"
  case "${r%%/*}" in
    *.* | *:* | localhost) echo "$r" ;;
    *) if [[ "$r" == */* ]]; then echo "docker.io/$r"; else echo "docker.io/library/$r"; fi ;;
  esac
}
load() {
  [ $# -gt 0 ] || die "usage: minikube.sh load IMAGE..."
  docker exec "$PROFILE" true 2>/dev/null || die "node container $PROFILE is not running (docker driver needed for load)"
  local have todo=() img id nid
  have="$(node_image_ids)"
  for img in "$@"; do
    id="$(docker image inspect -f '{{.Id}}' "$img" 2>/dev/null)" || die "no local image $img"
    nid="$(awk -v r="$(normalized "$img")" '$1==r{print $2}' <<<"$have")"
    if [ "$nid" = "$id" ]; then log "$img: already in the node"; else todo+=("$img"); fi
  done
  [ ${#todo[@]} -eq 0 ] && return 0
  log "loading ${todo[*]}"
  docker save "${todo[@]}" | docker exec -i "$PROFILE" ctr -n k8s.io images import --no-unpack=false - >/dev/null
}

addons_offline() {
  local imgs
  mapfile -t imgs < <("$CLUSTER_DIR/build-node-images.sh" --list | grep '^driftline/' | grep -vxF "$KICBASE_TAG")
  load "${imgs[@]}"
  kc apply -f "$MANIFESTS/local-path-storage.yaml" -f "$MANIFESTS/metrics-server.yaml" >/dev/null
  kc -n local-path-storage rollout status deploy/local-path-provisioner --timeout=180s >/dev/null
  kc -n kube-system rollout status deploy/metrics-server --timeout=180s >/dev/null
}

wait_metrics() {
  local wait="${UP_WAIT:-300}" t0=$SECONDS out
  until out="$(kc top nodes 2>/dev/null)" && grep -q '[0-9]m' <<<"$out"; do
    [ $((SECONDS - t0)) -lt "$wait" ] || die "kubectl top nodes gave no numbers within ${wait}s"
    sleep 5
  done
  echo "$out" >&2
}

up() {
  local t0=$SECONDS
  timed "phase docker" "$CLUSTER_DIR/docker.sh" start
  decide_mode
  log "mode: $MODE (minikube: $MK, kubectl: $KC, profile: $PROFILE)"
  if [ "$MODE" = offline ]; then
    timed "phase binaries" "$CLUSTER_DIR/build-binaries.sh"
    timed "phase node images" "$CLUSTER_DIR/build-node-images.sh"
  elif [ "$KC" = "$BIN/kubectl" ]; then
    timed "phase binaries (kubectl only)" "$CLUSTER_DIR/build-binaries.sh" kubectl
  fi
  if running; then
    log "cluster $PROFILE already running"
  else
    timed "phase minikube start" start
  fi
  if [ "$MODE" = offline ]; then
    mk addons disable storage-provisioner >/dev/null 2>&1 || true
    timed "phase storage + metrics-server" addons_offline
  fi
  timed "phase metrics ready" wait_metrics
  log "cluster up in $((SECONDS - t0)) s — use it with:  eval \"\$($CLUSTER_DIR/env.sh)\""
  printf '%s\t%s\t%ss\trc=0\n' "$(date -Iseconds)" "up total ($MODE)" "$((SECONDS - t0))" >>"$LOGS/timings.log"
}

status() {
  "$CLUSTER_DIR/docker.sh" status || true
  decide_mode
  echo "mode: $MODE; minikube: $MK; kubectl: $KC; profile: $PROFILE; KUBECONFIG=$KUBECONFIG"
  if [ -x "$MK" ]; then mk status 2>&1 || true; else echo "minikube: not built yet"; fi
  if running; then
    kc version 2>/dev/null | sed 's/^/  /' || true
    kc get nodes -o wide 2>&1 | sed 's/^/  /' || true
    kc get storageclass 2>&1 | sed 's/^/  /' || true
    kc top nodes 2>&1 | sed 's/^/  /' || true
  fi
}

case "${1:-}" in
  up) up ;;
  stop) decide_mode; [ -x "$MK" ] && mk stop || true ;;
  down) decide_mode; [ -x "$MK" ] && mk delete || true ;;
  status) status ;;
  load) shift; decide_mode; load "$@" ;;
  images) docker exec "$PROFILE" crictl images ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
esac
