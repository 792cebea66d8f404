#!/usr/bin/env bash
# Prints shell exports that put the cluster's kubectl and minikube first on PATH and point
# KUBECONFIG at the cluster's kubeconfig:
#   eval "$(scripts/cluster/env.sh)"
# The PATH entry is $CACHE/path, a directory holding only kubectl and minikube (links to the
# built ones in $CACHE/bin, or nothing when you use your own), not the other built binaries.
# Env: DRIFTLINE_CACHE, KUBECONFIG (default ~/.kube/config, where minikube writes), and lib.sh's.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
shims="$CACHE/path"
mkdir -p "$shims"
for b in kubectl minikube; do
  if [ -x "$BIN/$b" ]; then ln -sfn "$BIN/$b" "$shims/$b"; else rm -f "$shims/$b"; fi
done
q() { printf '%q' "$1"; }
echo "export PATH=$(q "$shims"):\"\$PATH\""
echo "export KUBECONFIG=$(q "${KUBECONFIG:-$HOME/.kube/config}")"
echo "export MINIKUBE_WANTUPDATENOTIFICATION=false"
[ "$PROFILE" != minikube ] && echo "export MINIKUBE_PROFILE=$(q "$PROFILE")"
echo "# kubectl: $( [ -x "$BIN/kubectl" ] && echo "$BIN/kubectl" || command -v kubectl || echo none)  minikube: $( [ -x "$BIN/minikube" ] && echo "$BIN/minikube" || command -v minikube || echo none)"
