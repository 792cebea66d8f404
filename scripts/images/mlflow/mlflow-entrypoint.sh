#!/usr/bin/env bash
# Starts `mlflow server` in the driftline/mlflow image (as scripts/services/mlflow.sh runs it locally).
# Env: MLFLOW_PORT (default 5000), MLFLOW_WORKERS (default 1), MLFLOW_DATA_DIR (default /mlflow),
#      MLFLOW_ALLOWED_HOSTS (Host headers accepted, fnmatch patterns; default: the Service name in any
#      namespace form and loopback for kubectl port-forward).
set -euo pipefail
port="${MLFLOW_PORT:-5000}"
data="${MLFLOW_DATA_DIR:-/mlflow}"
hosts="${MLFLOW_ALLOWED_HOSTS:-mlflow,mlflow:$port,mlflow.*,127.0.0.1,127.0.0.1:*,localhost,localhost:*}"
mkdir -p "$data/artifacts"
echo "mlflow-entrypoint: starting MLflow ${MLFLOW_VERSION:-?} on :$port (store $data/mlflow.db)"
# exec: tini → mlflow (uvicorn); SIGTERM stops it.
exec mlflow server --host 0.0.0.0 --port "$port" --workers "${MLFLOW_WORKERS:-1}" \
  --backend-store-uri "sqlite:///$data/mlflow.db" \
  --serve-artifacts --artifacts-destination "$data/artifacts" \
  --allowed-hosts "$hosts"
