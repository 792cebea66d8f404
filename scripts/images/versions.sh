# shellcheck shell=bash
# The versions of Kafka, Elasticsearch and MLflow the images are built at, read from the one place the
# tests take them: the defaults of the local service scripts and the pinned MLflow requirement.
# Sourced by scripts/images/build.sh; `bash scripts/images/versions.sh` prints them.
# Override one with KAFKA_VERSION / ELASTICSEARCH_VERSION (the images then differ from the tests).
_versions_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
_default_of() { # FILE VAR: the default in a line `x="${VAR:-default}"`
  sed -n "s/^[a-z_]*=\"\${$2:-\([^}]*\)}\"\$/\1/p" "$1" | head -n1
}
KAFKA_VERSION="${KAFKA_VERSION:-$(_default_of "$_versions_root/scripts/services/kafka.sh" KAFKA_VERSION)}"
ELASTICSEARCH_VERSION="${ELASTICSEARCH_VERSION:-$(_default_of "$_versions_root/scripts/services/elasticsearch.sh" ELASTICSEARCH_VERSION)}"
MLFLOW_REQUIREMENTS="$_versions_root/scripts/setup/requirements-mlflow.txt"
MLFLOW_VERSION="$(sed -n 's/^mlflow==\([0-9.]*\).*/\1/p' "$MLFLOW_REQUIREMENTS" | head -n1)"
if [ -z "$KAFKA_VERSION" ] || [ -z "$ELASTICSEARCH_VERSION" ] || [ -z "$MLFLOW_VERSION" ]; then
  echo "versions.sh: could not read a version (kafka '$KAFKA_VERSION', elasticsearch '$ELASTICSEARCH_VERSION', mlflow '$MLFLOW_VERSION')" >&2
  return 1 2>/dev/null || exit 1
fi
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  echo "KAFKA_VERSION=$KAFKA_VERSION"
  echo "ELASTICSEARCH_VERSION=$ELASTICSEARCH_VERSION"
  echo "MLFLOW_VERSION=$MLFLOW_VERSION"
fi
