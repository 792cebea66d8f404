#!/usr/bin/env bash
# Builds, without any registry, every image the local minikube needs, from the binaries of
# build-binaries.sh and Debian rootfs tarballs of rootfs.sh:
#   registry.k8s.io/kube-{apiserver,controller-manager,scheduler}:$K8S_VERSION  (FROM scratch)
#   registry.k8s.io/kube-proxy:$K8S_VERSION       (Debian rootfs: iptables, conntrack, ipset)
#   registry.k8s.io/etcd:$ETCD_TAG, registry.k8s.io/coredns/coredns:$COREDNS_VERSION,
#   registry.k8s.io/pause:$PAUSE_TAG              (tags exactly as kubeadm/minikube ask)
#   driftline/metrics-server:$METRICS_SERVER_VERSION, driftline/local-path-provisioner:$LOCAL_PATH_VERSION,
#   driftline/local-path-helper:bookworm          (the provisioner's helper pod: Debian minbase)
#   $KICBASE_TAG (default driftline/kicbase:v1.37.0-local)  the node image (kicbase/Dockerfile)
#
# Usage: scripts/cluster/build-node-images.sh [--list]
#   --list  prints the image references this script produces (for minikube.sh load), no build.
# An image whose tag exists carrying the same content label (sha256 of its build context and
# base) is skipped. Env: DRIFTLINE_CACHE, K8S_VERSION, ETCD_TAG, ... (see lib.sh).
set -euo pipefail
LOG_TAG=images
source "$(dirname "$0")/lib.sh"

CP_IMAGES=(
  "registry.k8s.io/kube-apiserver:$K8S_VERSION" "registry.k8s.io/kube-controller-manager:$K8S_VERSION"
  "registry.k8s.io/kube-scheduler:$K8S_VERSION" "registry.k8s.io/kube-proxy:$K8S_VERSION"
  "registry.k8s.io/etcd:$ETCD_TAG" "registry.k8s.io/coredns/coredns:$COREDNS_VERSION"
  "registry.k8s.io/pause:$PAUSE_TAG")
ADDON_IMAGES=("driftline/metrics-server:$METRICS_SERVER_VERSION"
  "driftline/local-path-provisioner:$LOCAL_PATH_VERSION" "driftline/local-path-helper:bookworm")
if [ "${1:-}" = "--list" ]; then printf '%s\n' "${CP_IMAGES[@]}" "${ADDON_IMAGES[@]}" "$KICBASE_TAG"; exit 0; fi

KICBASE_PACKAGES="systemd,systemd-sysv,dbus,iproute2,iptables,conntrack,containerd,runc,containernetworking-plugins,openssh-server,sudo,socat,ca-certificates,procps,kmod,jq,mount,util-linux,curl,ethtool,ebtables,openssl,libseccomp2,iputils-ping,netcat-openbsd,ipset,lz4"
CTX="$CACHE/images"
mkdir -p "$CTX"
docker_ok || die "docker does not answer: run scripts/cluster/docker.sh start"
for b in kube-apiserver kube-controller-manager kube-scheduler kube-proxy etcd coredns pause crictl metrics-server local-path-provisioner; do
  [ -x "$BIN/$b" ] || die "$BIN/$b missing: run scripts/cluster/build-binaries.sh"
done

# stage NAME: a fresh build-context directory $CTX/NAME.
stage() { rm -rf "${CTX:?}/$1"; mkdir -p "$CTX/$1"; echo "$CTX/$1"; }
copy() { cp -p "$@"; }   # hard links would not change the content hash but break on other filesystems

# skel DIR: the minimum a static binary wants: /etc/passwd, group, nsswitch, CA certificates, /tmp.
skel() {
  mkdir -p "$1/skel/etc/ssl/certs" "$1/skel/tmp"
  chmod 1777 "$1/skel/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' >"$1/skel/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$1/skel/etc/group"
  echo 'hosts: files dns' >"$1/skel/etc/nsswitch.conf"
  cp /etc/ssl/certs/ca-certificates.crt "$1/skel/etc/ssl/certs/"
}
# scratch_image TAG BINARY [ENTRYPOINT_JSON]: FROM scratch + skel + the binary in /usr/local/bin.
scratch_image() {
  local tag="$1" bin="$2" ep="${3:-}" d
  d="$(stage "scratch-${bin}")"
  skel "$d"
  copy "$BIN/$bin" "$d/$bin"
  {
    echo "FROM scratch"
    echo "COPY skel/ /"
    echo "COPY $bin /usr/local/bin/$bin"
    echo "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    [ -n "$ep" ] && echo "ENTRYPOINT $ep"
  } >"$d/Dockerfile"
  build_image "$tag" "$d"
}

images() {
  local r d base
  r=registry.k8s.io
  scratch_image "$r/kube-apiserver:$K8S_VERSION" kube-apiserver
  scratch_image "$r/kube-controller-manager:$K8S_VERSION" kube-controller-manager
  scratch_image "$r/kube-scheduler:$K8S_VERSION" kube-scheduler
  scratch_image "$r/etcd:$ETCD_TAG" etcd
  scratch_image "$r/coredns/coredns:$COREDNS_VERSION" coredns '["/usr/local/bin/coredns"]'
  scratch_image "$r/pause:$PAUSE_TAG" pause '["/usr/local/bin/pause"]'
  scratch_image "driftline/metrics-server:$METRICS_SERVER_VERSION" metrics-server '["/usr/local/bin/metrics-server"]'
  scratch_image "driftline/local-path-provisioner:$LOCAL_PATH_VERSION" local-path-provisioner '["/usr/local/bin/local-path-provisioner"]'
  # The pause image is also referenced as /pause by some tools.
  # kube-proxy needs iptables and friends: a Debian rootfs.
  base="$("$CLUSTER_DIR/rootfs.sh" kube-proxy "$DEBIAN_SUITE" iptables,conntrack,ipset,kmod,iproute2)"
  d="$(stage kube-proxy)"
  copy "$BIN/kube-proxy" "$d/kube-proxy"
  printf 'ARG BASE\nFROM ${BASE}\nCOPY kube-proxy /usr/local/bin/kube-proxy\n' >"$d/Dockerfile"
  build_image "$r/kube-proxy:$K8S_VERSION" "$d" "BASE=$base"
  # the local-path provisioner's helper pod runs sh/mkdir/rm: Debian minbase is enough.
  base="$("$CLUSTER_DIR/rootfs.sh" minbase "$DEBIAN_SUITE")"
  docker tag "$base" driftline/local-path-helper:bookworm
}

kicbase() {
  local mk d base
  mk="$(cd /tmp && GOFLAGS=-mod=mod go mod download -json "k8s.io/minikube@$MINIKUBE_VERSION" | jq -r .Dir)"
  [ -f "$mk/deploy/kicbase/entrypoint" ] || die "minikube module source not found ($mk)"
  base="$("$CLUSTER_DIR/rootfs.sh" kicbase "$DEBIAN_SUITE" "$KICBASE_PACKAGES")"
  d="$(stage kicbase)"
  copy "$CLUSTER_DIR/kicbase/Dockerfile" "$CLUSTER_DIR/kicbase/driftline-service-guard" \
    "$CLUSTER_DIR/kicbase/driftline-service-guard.service" "$CLUSTER_DIR/runc-wrapper.sh" "$BIN/crictl" "$d/"
  copy "$mk/deploy/kicbase/entrypoint" "$mk/deploy/kicbase/containerd.toml" \
    "$mk/deploy/kicbase/10-network-security.conf" "$mk/deploy/kicbase/11-tcp-mtu-probing.conf" "$d/"
  chmod u+w "$d"/*
  build_image "$KICBASE_TAG" "$d" "BASE=$base"
}

timed "images: control plane + add-ons" images
timed "images: kicbase $KICBASE_TAG" kicbase
log "node images ready"
