#!/usr/bin/env bash
# Builds the cluster's binaries from the Go module proxy into $CACHE/bin (outside the repo).
#
# Usage: scripts/cluster/build-binaries.sh [--resolve] [NAME...]      (default: all)
#   NAMEs: kubectl kubeadm kubelet kube-apiserver kube-controller-manager kube-scheduler
#          kube-proxy etcd coredns crictl pause metrics-server local-path-provisioner minikube
#   --resolve  only prepares the build modules (downloads, version alignment) and logs, per
#              binary, how it would be built; compiles nothing (a cheap check after a version bump).
# A binary whose output exists with a stamp of the wanted version (and build mode) is skipped,
# so a warm run takes seconds. Each build's time goes to the log and to $CACHE/logs/timings.log.
#
# How: Kubernetes' commands come from a small "tools" module ($CACHE/src/k8s) that replaces
# the 31 k8s.io staging modules with $K8S_STAGING_VERSION (go install k8s.io/kubernetes/...
# is refused because of the replace directives in its go.mod), all in ONE `go build -o DIR/`
# (the go command schedules their packages together and links them in parallel); minikube
# from a wrapper module that copies minikube's own replace lines; the rest with `go get -tool`
# in a module each; CoreDNS from a main of our own with only the plugins the cluster's Corefile
# uses. The pause binary is `gcc -static` of build/pause/linux/pause.c from the kubernetes
# module. GOMODCACHE and GOCACHE are Go's defaults (~4 GB and ~6 GB after a full build).
#
# Aligned builds: GOCACHE reuses a compiled package only when its source, its module's selected
# path@version (-trimpath puts it in the key) and all its dependencies are the same.
# coredns, crictl, metrics-server, local-path-provisioner and minikube each pull client-go,
# apimachinery, api, prometheus, x/net… at versions of their own, so a cold run compiled those
# again for each. Those in DRIFTLINE_ALIGN_DEPS (by default local-path-provisioner, where it
# pays: see ALIGN_DEFAULT) are built first with every module they compile
# packages from that the Kubernetes build compiles too (and every k8s.io / sigs.k8s.io module)
# required at the Kubernetes build's resolved version, so those packages come from GOCACHE.
# Only raised, never lowered: a module a tool needs newer than Kubernetes has keeps its version
# (and the packages above it are compiled again); modules only the tool compiles keep theirs.
# If that resolution or build fails (an API that changed between versions), one line says so
# and the binary is built with its module's own versions, as before. The stamp records the mode
# asked for (a change of K8S_VERSION, DRIFTLINE_ALIGN_DEPS or COREDNS_PLUGINS rebuilds) and the
# mode used.
#
# Env: DRIFTLINE_CACHE, K8S_VERSION, MINIKUBE_VERSION, ETCD_VERSION, COREDNS_VERSION,
#      CRICTL_VERSION, METRICS_SERVER_VERSION, LOCAL_PATH_VERSION (see lib.sh);
#      GO_BUILD_P (go build -p, default 2);
#      DRIFTLINE_ALIGN_DEPS (which binaries get aligned builds as above: 1 = the default list,
#      ALIGN_DEFAULT below; 0 = none, every binary with its module's own versions; all = every
#      one of ALIGNABLE; or names, e.g. "local-path-provisioner minikube");
#      COREDNS_PLUGINS (CoreDNS plugin packages compiled in, default the Corefile's of kubeadm
#      + minikube: errors health ready kubernetes metrics(prometheus) forward cache loop reload
#      loadbalance log hosts, plus whoami for the built-in default Corefile; `all` = upstream's
#      main with every plugin).
set -euo pipefail
shopt -s inherit_errexit   # a failing step inside "$(...)" fails the caller too
LOG_TAG=binaries
source "$(dirname "$0")/lib.sh"

SRC="$CACHE/src"
STAMPS="$BIN/.stamps"
mkdir -p "$SRC" "$STAMPS"
export CGO_ENABLED=0 GOFLAGS="-buildvcs=false" GOPROXY="${GOPROXY:-https://proxy.golang.org,direct}"
P="${GO_BUILD_P:-2}"
ALIGN_DEPS="${DRIFTLINE_ALIGN_DEPS:-1}"
COREDNS_PLUGINS="${COREDNS_PLUGINS:-errors health ready kubernetes metrics forward cache loop reload loadbalance log hosts whoami}"
command -v go >/dev/null || die "go is needed (Go 1.24 or newer)"

K8S_CMDS=(kubectl kubeadm kubelet kube-apiserver kube-controller-manager kube-scheduler kube-proxy)
ALL=("${K8S_CMDS[@]}" etcd coredns crictl pause metrics-server local-path-provisioner minikube)
# Binaries that can be built against the Kubernetes build's module versions (align_module), and
# the ones that are by default. Not etcd: cheap (~1 min), and it would mix the Kubernetes build's
# etcd client modules into the server. Measured here (share of each one's non-standard-library
# source already compiled when it builds, own versions -> aligned): local-path-provisioner
# 6 % -> 98 % (client-go v0.30 -> v0.34.4; compiles); metrics-server 14 -> 21 %, minikube 12 -> 19 %,
# crictl 14 -> 15 %: they need newer protobuf/x/net/x/sys/otel/grpc/logr than Kubernetes v1.34.4,
# which nearly every k8s.io package sits on, so raising their k8s.io modules (apiserver v0.33 ->
# v0.34 in metrics-server…) would change them for seconds; coredns v1.12.1 does not compile
# against client-go v0.34 (plugin/kubernetes uses cache.Config.RetryOnError, since removed).
# Revisit when a version in lib.sh changes: `build-binaries.sh --resolve` shows what aligns.
ALIGNABLE=(coredns crictl metrics-server local-path-provisioner minikube)
ALIGN_DEFAULT=(local-path-provisioner)
case "$ALIGN_DEPS" in
  1) ALIGN_LIST=("${ALIGN_DEFAULT[@]}") ;;
  0|"") ALIGN_LIST=() ;;
  all) ALIGN_LIST=("${ALIGNABLE[@]}") ;;
  *) read -r -a ALIGN_LIST <<<"$ALIGN_DEPS"
     for a in "${ALIGN_LIST[@]}"; do
       [[ " ${ALIGNABLE[*]} " == *" $a "* ]] || die "DRIFTLINE_ALIGN_DEPS: $a cannot be aligned (can: ${ALIGNABLE[*]})"
     done ;;
esac
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
aligned_wanted() { [[ " ${ALIGN_LIST[*]} " == *" $1 "* ]]; }
# want_stamp NAME: what is asked of the binary: its version, plus what changes its build. Without
# alignment and with every CoreDNS plugin this is the bare version, as the stamps before it.
want_stamp() {
  local s
  s="$(want_version "$1")"
  if [ "$1" = coredns ] && [ "$COREDNS_PLUGINS" != all ]; then s+=" plugins=${COREDNS_PLUGINS// /,}"; fi
  if aligned_wanted "$1"; then s+=" align=k8s-$K8S_VERSION"; fi
  echo "$s"
}
# The stamp's first line is want_stamp (compared); its second says how it was built (logged only,
# so a binary whose aligned build failed over to its own versions is not rebuilt on every run).
is_built() { [ -x "$BIN/$1" ] && [ "$(head -n 1 "$STAMPS/$1" 2>/dev/null)" = "$(want_stamp "$1")" ]; }
stamp() { { want_stamp "$1"; [ -z "${2:-}" ] || echo "$2"; } >"$STAMPS/$1"; }
built_how() { sed -n 2p "$STAMPS/$1" 2>/dev/null; }

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
# gobuild DIR NAME PKG [LDFLAGS]: go build into $BIN/NAME (stamping is the caller's).
gobuild() {
  local dir="$1" name="$2" pkg="$3" ldflags="${4:-}"
  (cd "$dir" && go build -p "$P" -trimpath -ldflags "-s -w $ldflags" -o "$BIN/$name.tmp" "$pkg")
  mv -f "$BIN/$name.tmp" "$BIN/$name"
}

k8s_module() {
  local dir="$SRC/k8s-$K8S_VERSION" reps=() s
  for s in "${STAGING[@]}"; do reps+=("k8s.io/$s => k8s.io/$s $K8S_STAGING_VERSION"); done
  module "$dir" driftline.local/k8s-tools "${reps[@]}"
  local tools=() c
  for c in "${K8S_CMDS[@]}"; do tools+=("k8s.io/kubernetes/cmd/$c@$K8S_VERSION"); done
  tool "$dir" "${tools[@]}"
  k8s_require_staging "$dir"
  echo "$dir"
}
# k8s_require_staging DIR: Kubernetes' go.mod requires its staging modules at v0.0.0 (its own
# replaces point them at ./staging), so some stay selected at v0.0.0 here (=> v0.34.4). With
# -trimpath, GOCACHE keys a package by its module's *selected* path@version: require the ones the
# build compiles at the version they are replaced by (same code), so that the aligned builds
# (align_module) can select that version too and share those packages. Kept only if no other
# module's selected version moves (checked; else go.mod is put back).
k8s_require_staging() {
  local dir="$1" req=() before after
  mapfile -t req < <(cd "$dir" && go list -deps -f '{{with .Module}}{{with .Replace}}{{if ne $.Module.Version .Version}}{{$.Module.Path}}@{{.Version}}{{end}}{{end}}{{end}}' "${K8S_CMDS[@]/#/k8s.io/kubernetes/cmd/}" | sort -u)
  [ ${#req[@]} -gt 0 ] || return 0
  before="$(cd "$dir" && go list -m all | grep -vF -f <(printf '%s \n' "${req[@]%@*}"))"
  cp "$dir/go.mod" "$dir/go.mod.bak"
  (cd "$dir" && go mod edit "${req[@]/#/-require=}")
  after="$(cd "$dir" && go list -m all | grep -vF -f <(printf '%s \n' "${req[@]%@*}"))" || after=""
  if [ "$before" = "$after" ]; then rm -f "$dir/go.mod.bak"; return 0; fi
  mv -f "$dir/go.mod.bak" "$dir/go.mod"
  log "k8s tools module: requiring the staging modules at $K8S_STAGING_VERSION would move other modules; left at v0.0.0 (fewer shared packages)"
}

# build_k8s NAME...: the Kubernetes commands asked for in ONE go build -o DIR/: their thousands of
# shared packages are scheduled together (no serial tail per binary) and the links run in
# parallel. The version ldflags are the same for every command; each still gets its own stamp.
build_k8s() {
  local dir major minor out="$BIN/.k8s-build" pkgs=() n
  dir="$(k8s_module)"
  major="${K8S_VERSION#v}"; major="${major%%.*}"
  minor="${K8S_VERSION#v*.}"; minor="${minor%%.*}"
  for n in "$@"; do pkgs+=("k8s.io/kubernetes/cmd/$n"); done
  rm -rf "$out"; mkdir -p "$out"
  (cd "$dir" && go build -p "$P" -trimpath -o "$out/" -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=$major -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=$major -X k8s.io/client-go/pkg/version.gitMinor=$minor" "${pkgs[@]}")
  for n in "$@"; do mv -f "$out/$n" "$BIN/$n"; stamp "$n"; done
  rmdir "$out"
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

minikube_module() {
  local dir="$SRC/minikube-$MINIKUBE_VERSION" gomod reps=()
  if [ ! -f "$dir/go.mod" ]; then
    command -v jq >/dev/null || apt_install jq
    gomod="$(cd "$SRC" && GOFLAGS=-mod=mod go mod download -json "k8s.io/minikube@$MINIKUBE_VERSION" | jq -r .GoMod)"
    # minikube's own replace lines (its docker-machine forks), one "a => b v" each.
    mapfile -t reps < <(awk '/^replace \(/{r=1;next} r&&/^\)/{r=0} r&&NF{sub(/^[ \t]+/,"");print} /^replace [^(]/{sub(/^replace /,"");print}' "$gomod" | grep -v '=> \.')
    module "$dir" driftline.local/minikube-tool "${reps[@]}"
  fi
  tool "$dir" "k8s.io/minikube/cmd/minikube@$MINIKUBE_VERSION"
  echo "$dir"
}

# coredns_main: a CoreDNS main with only $COREDNS_PLUGINS, done as upstream's coredns.go (which
# imports core/plugin, i.e. every plugin). Plugins register themselves with caddy in their
# init(); the server walks core/dnsserver's Directives (fixed order) and skips the ones not
# registered, so a Corefile fails only if it names a plugin left out ("no action found for
# directive"). Leaving out route53, azure, clouddns, etcd, dnstap… drops whole cloud SDKs.
coredns_main() {
  local p
  echo "// Generated by scripts/cluster/build-binaries.sh (COREDNS_PLUGINS): CoreDNS with these plugins only."
  echo "package main"
  echo
  echo "import ("
  printf '\t_ "github.com/coredns/coredns/core/dnsserver"\n'
  for p in $COREDNS_PLUGINS; do printf '\t_ "github.com/coredns/coredns/plugin/%s"\n' "$p"; done
  echo
  printf '\t"github.com/coredns/coredns/coremain"\n'
  echo ")"
  echo
  echo "func main() { coremain.Run() }"
}
coredns_module() {
  local dir="$SRC/coredns-$COREDNS_VERSION-min"
  module "$dir" driftline.local/coredns-min
  coredns_main >"$dir/main.go.new"
  if ! cmp -s "$dir/main.go.new" "$dir/main.go" || ! grep -q "github.com/coredns/coredns $COREDNS_VERSION" "$dir/go.mod"; then
    mv -f "$dir/main.go.new" "$dir/main.go"
    # Requirements and go.sum for the imported packages only (`go get` of the module's root
    # package would download every plugin's dependencies, ~2 GB of cloud SDKs).
    (cd "$dir" && go mod edit -require="github.com/coredns/coredns@$COREDNS_VERSION" &&
      GOFLAGS="$GOFLAGS -mod=mod" go list -deps . >/dev/null)
  fi
  rm -f "$dir/main.go.new"
  echo "$dir"
}

# spec NAME: sets S_PKG (the main package go build builds) and S_LDFLAGS for a non-Kubernetes
# binary, and prepares its build module with the module's own versions (S_DIR).
spec() {
  S_LDFLAGS=""
  case "$1" in
    etcd) S_PKG=go.etcd.io/etcd/server/v3; simple_module etcd "$S_PKG@$ETCD_VERSION" ;;
    coredns)
      if [ "$COREDNS_PLUGINS" = all ]; then
        S_PKG=github.com/coredns/coredns; simple_module coredns "$S_PKG@$COREDNS_VERSION"
      else
        S_PKG=.; S_DIR="$(coredns_module)"
      fi ;;
    crictl) S_PKG=sigs.k8s.io/cri-tools/cmd/crictl; simple_module crictl "$S_PKG@$CRICTL_VERSION"
      S_LDFLAGS="-X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" ;;
    metrics-server) S_PKG=sigs.k8s.io/metrics-server/cmd/metrics-server
      simple_module metrics-server "$S_PKG@$METRICS_SERVER_VERSION"
      S_LDFLAGS="-X k8s.io/component-base/version.gitVersion=$METRICS_SERVER_VERSION" ;;
    local-path-provisioner) S_PKG=github.com/rancher/local-path-provisioner
      simple_module local-path-provisioner "$S_PKG@$LOCAL_PATH_VERSION" ;;
    minikube) S_PKG=k8s.io/minikube/cmd/minikube; S_DIR="$(minikube_module)"
      S_LDFLAGS="-X k8s.io/minikube/pkg/version.version=$MINIKUBE_VERSION -X k8s.io/minikube/pkg/version.gitCommitID=driftline-local" ;;
    *) die "unknown binary $1" ;;
  esac
}
# simple_module NAME MODULE_PKG@VERSION: sets S_DIR, a module with that tool (go get -tool).
simple_module() {
  S_DIR="$SRC/$1-${2#*@}"
  module "$S_DIR" "driftline.local/$1-tool"
  tool "$S_DIR" "$2"
}

# k8s_lists: $SRC/k8s-…/modules.txt ("path version" of every module in the Kubernetes build's
# graph, as selected; not the ones it replaces by other code) and packages.txt (every package its
# commands compile); prints the dir.
k8s_lists() {
  local kdir
  kdir="$(k8s_module)"
  if [ ! "$kdir/packages.txt" -nt "$kdir/go.mod" ]; then
    (cd "$kdir" && go list -m -f '{{if .Version}}{{if or (not .Replace) (and (eq .Path .Replace.Path) (eq .Version .Replace.Version))}}{{.Path}} {{.Version}}{{end}}{{end}}' all) |
      LC_ALL=C sort -u >"$kdir/modules.txt"
    (cd "$kdir" && go list -deps -f '{{if not .Standard}}{{.ImportPath}}{{end}}' "${K8S_CMDS[@]/#/k8s.io/kubernetes/cmd/}") |
      LC_ALL=C sort -u >"$kdir/packages.txt.tmp"
    mv -f "$kdir/packages.txt.tmp" "$kdir/packages.txt"
  fi
  echo "$kdir"
}

# align_module OWN_DIR DIR PKG: DIR = a copy of the build module OWN_DIR in which every module
# that PKG compiles packages from, and that the Kubernetes build compiles the same packages from
# (or any k8s.io / sigs.k8s.io module), is required at the Kubernetes build's version (`go mod
# edit -require`: minimal version selection then selects exactly that version, where nothing in
# the module's graph asks for a newer one). Repeated until nothing changes (new versions can
# import other packages and raise other modules). Why not `replace`: with -trimpath, GOCACHE
# keys a package by its module's selected path@version, and a replace does not change the
# selected version, so a replaced package is never the Kubernetes build's one. So a module the
# tool needs newer than Kubernetes' stays as it is (never downgraded): DIR/newer.txt lists those,
# DIR/raised.txt the raised ones. Modules OWN_DIR replaces (minikube's forks) are left alone.
align_module() {
  local own="$1" dir="$2" pkg="$3" kdir round new=()
  local fmt='{{with .Module}}{{if not .Main}}{{.Path}} {{.Version}} {{with .Replace}}{{.Path}}@{{.Version}}{{else}}-{{end}} {{$.ImportPath}}{{end}}{{end}}'
  kdir="$(k8s_lists)"
  rm -rf "$dir"; mkdir -p "$dir"
  cp "$own/go.mod" "$dir/"
  for f in go.sum main.go; do if [ -f "$own/$f" ]; then cp "$own/$f" "$dir/"; fi; done
  : >"$dir/tried.txt"
  for round in 1 2 3 4 5 6 7 8 9 10 11 12; do
    # -mod=mod: adds the requirements and go.sum lines the new versions need (and downloads them).
    (cd "$dir" && GOFLAGS="$GOFLAGS -mod=mod" go list -deps -f "$fmt" "$pkg") >"$dir/deps.txt"
    # "path tool-version k8s-version" of the shared modules whose selected versions differ
    awk 'FILENAME == ARGV[1] { k[$1] = 1; next }
         NF == 4 && $3 == "-" && (($4 in k) || $1 ~ /^(sigs\.)?k8s\.io\//) { print $1, $2 }' \
      "$kdir/packages.txt" "$dir/deps.txt" | LC_ALL=C sort -u |
      LC_ALL=C join - "$kdir/modules.txt" | awk '$2 != $3' >"$dir/differ.txt"
    # each module is raised once: if it still differs, the tool's graph needs it newer
    mapfile -t new < <(awk 'FILENAME == ARGV[1] { done[$1] = 1; next } !($1 in done) { print $1 "@" $3 }' "$dir/tried.txt" "$dir/differ.txt")
    if [ ${#new[@]} -eq 0 ]; then
      # "path version-kept kubernetes-version" / "path version"
      cp "$dir/differ.txt" "$dir/newer.txt"
      awk 'FILENAME == ARGV[1] { n[$1] = 1; next } !($1 in n)' "$dir/newer.txt" "$dir/tried.txt" >"$dir/raised.txt"
      rm -f "$dir/deps.txt" "$dir/differ.txt" "$dir/tried.txt"
      return 0
    fi
    [ "$round" -lt 12 ] || { echo "align: no fixed point after $round rounds: ${new[*]}" >&2; return 1; }
    (cd "$dir" && go mod edit "${new[@]/#/-require=}")
    printf '%s\n' "${new[@]/@/ }" >>"$dir/tried.txt"
  done
}

# build_tool NAME: a non-Kubernetes binary; aligned first where wanted (see the header), else or
# on failure with its module's own versions. Logs the mode used; the stamp's second line keeps it.
build_tool() {
  local name="$1" rc=0 adir alog ver
  spec "$name"
  ver="$(want_version "$name")"
  if aligned_wanted "$name"; then
    adir="$S_DIR-k8s-$K8S_VERSION"
    alog="$LOGS/build-$name-aligned.log"
    # In a subshell with its own set -e (not `if (…)`: that switches set -e off inside).
    set +e
    (set -e; align_module "$S_DIR" "$adir" "$S_PKG"; gobuild "$adir" "$name" "$S_PKG" "$S_LDFLAGS") >"$alog" 2>&1
    rc=$?
    set -e
    if [ "$rc" -eq 0 ]; then
      stamp "$name" "aligned: $(align_summary "$adir")"
      log "$name $ver: built aligned with Kubernetes $K8S_VERSION's module versions ($(align_summary "$adir"))"
      return 0
    fi
    rm -f "$BIN/$name.tmp"
    log "$name $ver: aligned build FAILED ($(first_error "$alog"); log $alog): building with its own module versions"
    gobuild "$S_DIR" "$name" "$S_PKG" "$S_LDFLAGS"
    stamp "$name" "own: module's own versions (aligned build failed, log $alog)"
  else
    gobuild "$S_DIR" "$name" "$S_PKG" "$S_LDFLAGS"
    stamp "$name" "own: module's own versions"
  fi
  log "$name $ver: built with its module's own versions"
}

# align_summary DIR: what align_module did, for the log and the stamp.
align_summary() {
  echo "modules raised to Kubernetes $K8S_VERSION's versions: $(wc -l <"$1/raised.txt"), kept newer: $(wc -l <"$1/newer.txt"); $1/{raised,newer}.txt"
}

# first_error LOG: the first line of a go command's log that looks like the error.
first_error() {
  { grep -vE '^go: (downloading|added|upgraded|finding|found) ' "$1" | grep -m1 -E '\.go:[0-9]+|error|^go: ' || tail -n 1 "$1"; } | cut -c1-200
}

# resolve_one NAME (--resolve): prepares NAME's build module(s), compiles nothing.
resolve_one() {
  local name="$1" rc=0 adir alog
  case "$name" in
    kube*|pause) k8s_lists >/dev/null; log "$name: Kubernetes tools module $SRC/k8s-$K8S_VERSION ready"; return 0 ;;
  esac
  spec "$name"
  if ! aligned_wanted "$name"; then log "$name: own versions ($S_DIR)"; return 0; fi
  adir="$S_DIR-k8s-$K8S_VERSION"
  alog="$LOGS/resolve-$name-aligned.log"
  set +e
  (set -e; align_module "$S_DIR" "$adir" "$S_PKG") >"$alog" 2>&1
  rc=$?
  set -e
  if [ "$rc" -eq 0 ]; then
    log "$name: aligned resolution OK ($(align_summary "$adir"))"
  else
    log "$name: aligned resolution FAILED ($(first_error "$alog"); log $alog): would build with its own versions"
  fi
}

build_one() {
  case "$1" in
    kube*) build_k8s "$1" ;;
    pause) build_pause ;;
    etcd|coredns|crictl|metrics-server|local-path-provisioner|minikube) build_tool "$1" ;;
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

resolve=""
if [ "${1:-}" = --resolve ]; then resolve=1; shift; fi
names=("$@")
[ ${#names[@]} -eq 0 ] && names=("${ALL[@]}")
for n in "${names[@]}"; do want_version "$n" >/dev/null; done   # dies on an unknown name
t0=$SECONDS
if [ -n "$resolve" ]; then
  for n in "${names[@]}"; do timed "resolve $n" resolve_one "$n"; done
  exit 0
fi
# The Kubernetes commands first, in one go build (build_k8s), so that the aligned builds after
# them find the shared packages in GOCACHE.
k8s_todo=() rest=() how=""
for n in "${names[@]}"; do
  if is_built "$n"; then how="$(built_how "$n")"; log "$n $(want_version "$n"): cached${how:+ ($how)}"; continue; fi
  case "$n" in kube*) k8s_todo+=("$n") ;; *) rest+=("$n") ;; esac
done
if [ ${#k8s_todo[@]} -gt 0 ]; then
  prefetch_pid=""
  if [ ${#rest[@]} -gt 0 ]; then
    # While the Kubernetes build compiles (tens of minutes, both cores), resolve and download the
    # other binaries' modules (network-bound, ~2 min cold) in the background: the same steps as
    # --resolve; the builds below run them again, quickly (and report any error themselves).
    k8s_lists >/dev/null
    (for n in "${rest[@]}"; do [ "$n" = pause ] || resolve_one "$n"; done) >"$LOGS/prefetch.log" 2>&1 &
    prefetch_pid=$!
    trap '[ -z "$prefetch_pid" ] || kill "$prefetch_pid" 2>/dev/null || true' EXIT
  fi
  timed "build ${k8s_todo[*]} $K8S_VERSION (one go build)" build_k8s "${k8s_todo[@]}"
  if [ -n "$prefetch_pid" ]; then
    wait "$prefetch_pid" || log "module prefetch failed (log $LOGS/prefetch.log); the builds resolve again"
    prefetch_pid=""
  fi
fi
for n in "${rest[@]}"; do
  timed "build $n $(want_version "$n")" build_one "$n"
done
check_image_tags
log "binaries ready in $BIN ($((SECONDS - t0)) s)"
