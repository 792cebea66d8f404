#!/usr/bin/env bash
# Builds the cluster's binaries from the Go module proxy into $CACHE/bin (outside the repo).
#
# Usage: scripts/cluster/build-binaries.sh [NAME...]      (default: all)
#   NAMEs: kubectl kubeadm kubelet kube-apiserver kube-controller-manager kube-scheduler
#          kube-proxy etcd coredns crictl pause metrics-server local-path-provisioner minikube
# A binary whose output exists with a stamp of the wanted version is skipped, so a warm run
# takes seconds. Each build's time goes to the log and to $CACHE/logs/timings.log.
#
# How: Kubernetes' commands come from a small "tools" module ($CACHE/src/k8s) that replaces
# the 31 k8s.io staging modules with $K8S_STAGING_VERSION (go install k8s.io/kubernetes/...
# is refused because of the replace directives in its go.mod); minikube from a wrapper
# module that copies minikube's own replace lines; the rest with `go get -tool` in a module
# each. The pause binary is `gcc -static` of build/pause/linux/pause.c from the kubernetes
# module. GOMODCACHE and GOCACHE are Go's defaults (~4 GB and ~6 GB after a full build).
#
# Env: DRIFTLINE_CACHE, K8S_VERSION, MINIKUBE_VERSION, ETCD_VERSION, COREDNS_VERSION,
#      CRICTL_VERSION, METRICS_SERVER_VERSION, LOCAL_PATH_VERSION (see lib.sh);
#      GO_BUILD_P (go build -p, default 2).
set -euo pipefail
LOG_TAG=binaries
source "$(dirname "$0")/lib.sh"

SRC="$CACHE/src"
STAMPS="$BIN/.stamps"
mkdir -p "$SRC" "$STAMPS"
export CGO_ENABLED=0 GOFLAGS="-buildvcs=false" GOPROXY="${GOPROXY:-https://proxy.golang.org,direct}"
P="${GO_BUILD_P:-2}"
command -v go >/dev/null || die "go is needed (Go 1.24 or newer)"

K8S_CMDS=(kubectl kubeadm kubelet kube-apiserver kube-controller-manager kube-scheduler kube-proxy)
ALL=("${K8S_CMDS[@]}" etcd coredns crictl pause metrics-server local-path-provisioner minikube)
STAGING=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider
  cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api
  cri-client csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms
  kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics
  mount-utils pod-security-admission sample-apiserver sample-cli-plugin sample-controller)

want_version() {
  case "$1" in
    kube* ) echo "$K8S_VERSION" ;;
    etcd) echo "$ETCD_VERSION" ;;
    coredns) echo "$COREDNS_VERSION" ;;
    crictl) echo "$CRICTL_VERSION" ;;
    pause) echo "$PAUSE_TAG" ;;
    metrics-server) echo "$METRICS_SERVER_VERSION" ;;
    local-path-provisioner) echo "$LOCAL_PATH_VERSION" ;;
    minikube) echo "$MINIKUBE_VERSION" ;;
    *) die "unknown binary $1" ;;
  esac
}
is_built() { [ -x "$BIN/$1" ] && [ "$(cat "$STAMPS/$1" 2>/dev/null)" = "$(want_version "$1")" ]; }
stamp() { want_version "$1" >"$STAMPS/$1"; }

# module DIR NAME [REPLACE_LINE...]: an empty module (once) with the given replace lines.
module() {
  local dir="$1" name="$2"; shift 2
  mkdir -p "$dir"
  if [ ! -f "$dir/go.mod" ]; then
    (cd "$dir" && go mod init "$name" >/dev/null 2>&1)
    if [ $# -gt 0 ]; then
      { echo; echo "replace ("; printf '\t%s\n' "$@"; echo ")"; } >>"$dir/go.mod"
    fi
  fi
}
# tool DIR PKG@VERSION...: adds the tools (go get -tool), only when go.mod lacks that version.
tool() {
  local dir="$1"; shift
  local missing=() t
  for t in "$@"; do grep -qE "^tool ${t%@*}\$|^\s+${t%@*}\$" "$dir/go.mod" && grep -q "${t#*@}" "$dir/go.mod" || missing+=("$t"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  (cd "$dir" && go get -tool "${missing[@]}")
}
# gobuild DIR NAME PKG [LDFLAGS]
gobuild() {
  local dir="$1" name="$2" pkg="$3" ldflags="${4:-}"
  (cd "$dir" && go build -p "$P" -trimpath -ldflags "-s -w $ldflags" -o "$BIN/$name.tmp" "$pkg")
  mv -f "$BIN/$name.tmp" "$BIN/$name"
  stamp "$name"
}

k8s_module() {
  local dir="$SRC/k8s-$K8S_VERSION" reps=() s
  for s in "${STAGING[@]}"; do reps+=("k8s.io/$s => k8s.io/$s $K8S_STAGING_VERSION"); done
  module "$dir" driftline.local/k8s-tools "${reps[@]}"
  local tools=() c
  for c in "${K8S_CMDS[@]}"; do tools+=("k8s.io/kubernetes/cmd/$c@$K8S_VERSION"); done
  tool "$dir" "${tools[@]}"
  echo "$dir"
}

build_k8s() {
  local name="$1" dir major minor
  dir="$(k8s_module)"
  major="${K8S_VERSION#v}"; major="${major%%.*}"
  minor="${K8S_VERSION#v*.}"; minor="${minor%%.*}"
  gobuild "$dir" "$name" "k8s.io/kubernetes/cmd/$name" \
    "-X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=$major -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=$major -X k8s.io/client-go/pkg/version.gitMinor=$minor"
}

build_pause() {
  local dir kdir
  dir="$(k8s_module)"
  kdir="$(cd "$dir" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)"
  [ -f "$kdir/build/pause/linux/pause.c" ] || die "pause.c not found in $kdir"
  command -v gcc >/dev/null || apt_install gcc libc6-dev
  gcc -Os -static -Wall -Werror -DVERSION="v$PAUSE_TAG-driftline" -o "$BIN/pause.tmp" "$kdir/build/pause/linux/pause.c"
  strip "$BIN/pause.tmp" 2>/dev/null || true
  mv -f "$BIN/pause.tmp" "$BIN/pause"
  stamp pause
}

build_minikube() {
  local dir="$SRC/minikube-$MINIKUBE_VERSION" gomod reps=()
  if [ ! -f "$dir/go.mod" ]; then
    gomod="$(cd "$SRC" && GOFLAGS=-mod=mod go mod download -json "k8s.io/minikube@$MINIKUBE_VERSION" | jq -r .GoMod)"
    # minikube's own replace lines (its docker-machine forks), one "a => b v" each.
    mapfile -t reps < <(awk '/^replace \(/{r=1;next} r&&/^\)/{r=0} r&&NF{sub(/^[ \t]+/,"");print} /^replace [^(]/{sub(/^replace /,"");print}' "$gomod" | grep -v '=> \.')
    module "$dir" driftline.local/minikube-tool "${reps[@]}"
  fi
  tool "$dir" "k8s.io/minikube/cmd/minikube@$MINIKUBE_VERSION"
  gobuild "$dir" minikube k8s.io/minikube/cmd/minikube \
    "-X k8s.io/minikube/pkg/version.version=$MINIKUBE_VERSION -X k8s.io/minikube/pkg/version.gitCommitID=driftline-local"
}

# simple NAME MODULE_PKG@VERSION BUILD_PKG [LDFLAGS]
simple() {
  local name="$1" mp="$2" pkg="$3" ldflags="${4:-}" dir
  dir="$SRC/$name-${mp#*@}"
  module "$dir" "driftline.local/$name-tool"
  tool "$dir" "$mp"
  gobuild "$dir" "$name" "$pkg" "$ldflags"
}

build_one() {
  case "$1" in
    kube*) build_k8s "$1" ;;
    pause) build_pause ;;
    etcd) simple etcd "go.etcd.io/etcd/server/v3@$ETCD_VERSION" go.etcd.io/etcd/server/v3 ;;
    coredns) simple coredns "github.com/coredns/coredns@$COREDNS_VERSION" github.com/coredns/coredns ;;
    crictl) simple crictl "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION" sigs.k8s.io/cri-tools/cmd/crictl \
      "-X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" ;;
    metrics-server) simple metrics-server "sigs.k8s.io/metrics-server/cmd/metrics-server@$METRICS_SERVER_VERSION" \
      sigs.k8s.io/metrics-server/cmd/metrics-server "-X k8s.io/component-base/version.gitVersion=$METRICS_SERVER_VERSION" ;;
    local-path-provisioner) simple local-path-provisioner "github.com/rancher/local-path-provisioner@$LOCAL_PATH_VERSION" \
      github.com/rancher/local-path-provisioner ;;
    minikube) build_minikube ;;
    *) die "unknown binary $1 (known: ${ALL[*]})" ;;
  esac
}

# The image tags minikube will ask for must be the ones build-node-images.sh tags: minikube
# v1.37 has no table for v1.34.4 and runs the cached kubeadm's `config images list`, so ask it.
check_image_tags() {
  [ -x "$BIN/kubeadm" ] || return 0
  local list etcd coredns pause
  list="$("$BIN/kubeadm" config images list --kubernetes-version "$K8S_VERSION" 2>/dev/null)" || return 0
  etcd="$(sed -n 's#.*/etcd:##p' <<<"$list")"
  coredns="$(sed -n 's#.*/coredns/coredns:##p' <<<"$list")"
  pause="$(sed -n 's#.*/pause:##p' <<<"$list")"
  log "kubeadm $K8S_VERSION uses etcd $etcd, coredns $coredns, pause $pause"
  [ "$etcd" = "$ETCD_TAG" ] && [ "$coredns" = "$COREDNS_VERSION" ] && [ "$pause" = "$PAUSE_TAG" ] ||
    die "image tags differ from lib.sh (ETCD_TAG=$ETCD_TAG COREDNS_VERSION=$COREDNS_VERSION PAUSE_TAG=$PAUSE_TAG): set them"
}

names=("$@")
[ ${#names[@]} -eq 0 ] && names=("${ALL[@]}")
t0=$SECONDS
for n in "${names[@]}"; do
  if is_built "$n"; then log "$n $(want_version "$n"): cached"; continue; fi
  timed "build $n $(want_version "$n")" build_one "$n"
done
check_image_tags
log "binaries ready in $BIN ($((SECONDS - t0)) s)"
