#!/usr/bin/env bash
# Builds every image the Kubernetes manifests name, on the local docker engine, and optionally loads
# them into the Minikube node (the cluster pulls from nowhere else: imagePullPolicy IfNotPresent).
#
# Usage: scripts/images/build.sh [--load] [--list] [NAME...]
#   NAME      broker kafka-bridge edge-inference retrainer dashboard simulator jobs kafka mlflow elasticsearch
#             (default: all of them)
#   --load    then copy them into the Minikube node (scripts/cluster/minikube.sh load: skips images
#             the node already has with the same ID)
#   --list    print the image references a build would produce, and exit
#
# Service images (<service>/Dockerfile, kafka-bridge/Dockerfile, jobs/Dockerfile) build FROM $BASE_NODE_IMAGE with the
# repository as context (.dockerignore keeps it to the sources); their first stage installs the
# production node_modules once and every service image shares those layers. Infrastructure images
# (scripts/images/<name>/) are built from the same artifacts the tests run, at the versions of the
# local service scripts (scripts/images/versions.sh): Kafka jars resolved by
# `scripts/services/kafka.sh jars`, the Elasticsearch node assembled by
# `scripts/services/elasticsearch.sh assemble`, MLflow wheels of scripts/setup/requirements-mlflow.txt.
# Those artifacts are cached under $DRIFTLINE_CACHE/images (outside the repository), docker's layer
# cache keeps the rest: a second build with no change takes seconds.
#
# Tags: service images get $DRIFTLINE_IMAGE_TAG (Jenkins: build-<n>), by default
# <package version>-g<commit> (plus -dirty-<hash> for uncommitted changes), so a new commit rolls the
# Deployments; infrastructure images get <upstream version>-<hash of their recipe>. Every image carries
# the OCI labels org.opencontainers.image.version and .revision (the git commit).
# The references built are written to $DRIFTLINE_CACHE/deploy/images.yml, which the Ansible role
# reads (driftline_images), and printed.
#
# Env: DRIFTLINE_IMAGE_TAG, DRIFTLINE_CACHE (default ~/.cache/driftline), BASE_NODE_IMAGE (default
#      driftline/base-node:20), BASE_JRE_IMAGE (driftline/base-jre:21), BASE_PYTHON_IMAGE
#      (driftline/base-python:3), KAFKA_M2_REPO (default ~/.m2/repository, where the Elasticsearch jars go too).
set -euo pipefail
LOG_TAG=images
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../cluster/lib.sh
source "$HERE/../cluster/lib.sh"
# shellcheck source=versions.sh
source "$HERE/versions.sh"

SERVICES=(broker kafka-bridge edge-inference retrainer dashboard simulator jobs)
INFRA=(kafka mlflow elasticsearch)
IMG_CACHE="$CACHE_ROOT/images"
DEPLOY_STATE="$CACHE_ROOT/deploy"
IMG_LOGS="$IMG_CACHE/logs"
mkdir -p "$IMG_CACHE" "$DEPLOY_STATE" "$IMG_LOGS"
BASE_NODE_IMAGE="${BASE_NODE_IMAGE:-driftline/base-node:20}"
BASE_JRE_IMAGE="${BASE_JRE_IMAGE:-driftline/base-jre:21}"
BASE_PYTHON_IMAGE="${BASE_PYTHON_IMAGE:-driftline/base-python:3}"
export KAFKA_M2_REPO="${KAFKA_M2_REPO:-$HOME/.m2/repository}"

load=0 list=0 names=()
for a in "$@"; do
  case "$a" in
    --load) load=1 ;;
    --list) list=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $a" ;;
    *) names+=("$a") ;;
  esac
done
[ ${#names[@]} -gt 0 ] || names=("${SERVICES[@]}" "${INFRA[@]}")
for n in "${names[@]}"; do
  [[ " ${SERVICES[*]} ${INFRA[*]} " == *" $n "* ]] || die "unknown image $n (one of: ${SERVICES[*]} ${INFRA[*]})"
done

cd "$REPO_ROOT"
revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
pkg_version="$(node -p "require('./package.json').version" 2>/dev/null || sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' package.json | head -n1)"
dirty=""
if [ "$revision" != unknown ] && [ -n "$(git status --porcelain 2>/dev/null)" ]; then
  dirty="-dirty-$({ git diff HEAD; git ls-files -o --exclude-standard -z | xargs -0 -r cat; } | sha256sum | cut -c1-8)"
  revision="$revision-dirty"
fi
service_tag="${DRIFTLINE_IMAGE_TAG:-$pkg_version-g$(git rev-parse --short=10 HEAD 2>/dev/null || echo unknown)$dirty}"

# ref NAME: the image reference a build of NAME produces.
ref() {
  case "$1" in
    kafka) echo "driftline/kafka:$KAFKA_VERSION-$(content_hash "$HERE/kafka")" ;;
    mlflow) echo "driftline/mlflow:$MLFLOW_VERSION-$(content_hash "$HERE/mlflow" "$(cat "$MLFLOW_REQUIREMENTS")")" ;;
    elasticsearch) echo "driftline/elasticsearch:$ELASTICSEARCH_VERSION-$(content_hash "$HERE/elasticsearch" "$(sha256sum "$REPO_ROOT/scripts/services/elasticsearch.sh")")" ;;
    *) echo "driftline/$1:$service_tag" ;;
  esac
}

if [ "$list" = 1 ]; then
  for n in "${names[@]}"; do ref "$n"; done
  exit 0
fi

docker_ok || die "docker does not answer (scripts/cluster/docker.sh start, or scripts/cluster/up.sh)"

# docker_build LOGNAME ARGS...: docker build with the output in a log; the tail on failure.
docker_build() {
  local name="$1"; shift
  local blog="$IMG_LOGS/build-$name.log"
  if ! DOCKER_BUILDKIT=0 docker build "$@" >"$blog" 2>&1; then
    tail -n 30 "$blog" >&2
    die "docker build of $name failed (log $blog)"
  fi
}

build_service() {
  local s="$1" r
  r="$(ref "$s")"
  docker_build "$s" -f "$s/Dockerfile" -t "$r" \
    --build-arg BASE_IMAGE="$BASE_NODE_IMAGE" \
    --build-arg DRIFTLINE_VERSION="$pkg_version" --build-arg DRIFTLINE_REVISION="$revision" .
}

# stage_recipe NAME CTX: the recipe files (Dockerfile, scripts, configs) of scripts/images/NAME into CTX.
stage_recipe() {
  mkdir -p "$2"
  find "$2" -maxdepth 1 -type f -delete
  cp -p "$HERE/$1/"* "$2/"
}

build_kafka() {
  local ctx="$IMG_CACHE/kafka-$KAFKA_VERSION"
  if [ ! -f "$ctx/libs/.complete" ]; then
    log "resolving the Kafka $KAFKA_VERSION jars from Maven Central (scripts/services/kafka.sh jars)"
    rm -rf "$ctx/libs"
    mkdir -p "$ctx"
    KAFKA_VERSION="$KAFKA_VERSION" "$REPO_ROOT/scripts/services/kafka.sh" jars "$ctx/libs"
  fi
  stage_recipe kafka "$ctx"
  docker_build kafka -t "$(ref kafka)" --build-arg BASE_IMAGE="$BASE_JRE_IMAGE" \
    --build-arg KAFKA_VERSION="$KAFKA_VERSION" --build-arg DRIFTLINE_REVISION="$revision" "$ctx"
}

build_elasticsearch() {
  local ctx="$IMG_CACHE/elasticsearch-$ELASTICSEARCH_VERSION"
  mkdir -p "$ctx"
  # elasticsearch.sh reassembles only when its own recipe changed (marker = the script's hash).
  ELASTICSEARCH_VERSION="$ELASTICSEARCH_VERSION" "$REPO_ROOT/scripts/services/elasticsearch.sh" assemble "$ctx/home"
  stage_recipe elasticsearch "$ctx"
  docker_build elasticsearch -t "$(ref elasticsearch)" --build-arg BASE_IMAGE="$BASE_JRE_IMAGE" \
    --build-arg ELASTICSEARCH_VERSION="$ELASTICSEARCH_VERSION" --build-arg DRIFTLINE_REVISION="$revision" "$ctx"
}

build_mlflow() {
  local ctx="$IMG_CACHE/mlflow-$MLFLOW_VERSION" want
  want="$(sha256sum "$MLFLOW_REQUIREMENTS" | cut -c1-64)"
  if [ "$(cat "$ctx/wheels/.complete" 2>/dev/null)" != "$want" ]; then
    log "downloading the MLflow $MLFLOW_VERSION wheels for the image's Python (scripts/cluster/base-images/wheelhouse.sh)"
    rm -rf "$ctx/wheels"
    mkdir -p "$ctx/wheels"
    "$REPO_ROOT/scripts/cluster/base-images/wheelhouse.sh" "$ctx/wheels" -r "$MLFLOW_REQUIREMENTS" >"$IMG_LOGS/wheels-mlflow.log" 2>&1 ||
      { tail -n 20 "$IMG_LOGS/wheels-mlflow.log" >&2; die "downloading the MLflow wheels failed"; }
    echo "$want" >"$ctx/wheels/.complete"
  fi
  stage_recipe mlflow "$ctx"
  cp -p "$MLFLOW_REQUIREMENTS" "$ctx/requirements-mlflow.txt"
  docker_build mlflow -t "$(ref mlflow)" --build-arg BASE_IMAGE="$BASE_PYTHON_IMAGE" \
    --build-arg MLFLOW_VERSION="$MLFLOW_VERSION" --build-arg DRIFTLINE_REVISION="$revision" "$ctx"
}

for base in "$BASE_NODE_IMAGE" "$BASE_JRE_IMAGE" "$BASE_PYTHON_IMAGE"; do
  image_exists "$base" || case "$base" in
    driftline/*) die "base image $base is missing: scripts/cluster/up.sh (or scripts/cluster/base-images/build.sh) builds it" ;;
  esac
done

t_all=$SECONDS
built=()
for n in "${names[@]}"; do
  case "$n" in
    kafka) timed "image kafka" build_kafka ;;
    mlflow) timed "image mlflow" build_mlflow ;;
    elasticsearch) timed "image elasticsearch" build_elasticsearch ;;
    *) timed "image $n" build_service "$n" ;;
  esac
  built+=("$(ref "$n")")
done

# Kibana: deployed only where its image is on this docker engine (there is no other source for it here).
kibana_ref="docker.elastic.co/kibana/kibana:$ELASTICSEARCH_VERSION"
if image_exists "$kibana_ref"; then
  log "Kibana image $kibana_ref present: it will be deployed"
  built+=("$kibana_ref")
else
  log "no Kibana image ($kibana_ref is not on this docker engine): the deployment skips Kibana"
  kibana_ref=""
fi

# What the deployment uses: every image, the ones not rebuilt now keep their last reference.
state="$DEPLOY_STATE/images.yml"
declare -A refs=()
if [ -f "$state" ]; then
  while IFS=': ' read -r k v; do
    if [[ "$k" =~ ^[a-z-]+$ ]]; then refs[$k]="${v//\"/}"; fi
  done < <(sed -n 's/^  \([a-z-]*\): \(.*\)$/\1: \2/p' "$state")
fi
for n in "${names[@]}"; do refs[$n]="$(ref "$n")"; done
refs[kibana]="$kibana_ref"
{
  echo "# Written by scripts/images/build.sh $(date -Iseconds): the images the deployment uses (Ansible: driftline_images)."
  echo "driftline_images_revision: \"$revision\""
  echo "driftline_images:"
  for n in "${SERVICES[@]}" "${INFRA[@]}" kibana; do
    if [ -n "${refs[$n]+set}" ]; then echo "  $n: \"${refs[$n]}\""; fi
  done
} >"$state.tmp"
mv "$state.tmp" "$state"

log "built ${#built[@]} image(s) in $((SECONDS - t_all)) s; references in $state"
for r in "${built[@]}"; do
  printf '  %-60s %s\n' "$r" "$(docker image inspect -f '{{.Size}}' "$r" | awk '{printf "%.0f MB", $1/1e6}')"
done

if [ "$load" = 1 ]; then
  timed "load into minikube" "$REPO_ROOT/scripts/cluster/minikube.sh" load "${built[@]}"
fi
