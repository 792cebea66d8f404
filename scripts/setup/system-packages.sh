#!/usr/bin/env bash
# Installs the Debian packages Driftline's tests and local services need, if missing.
# Usage: scripts/setup/system-packages.sh [package...]   (default: everything the tests need)
set -euo pipefail
want=("$@")
if [ ${#want[@]} -eq 0 ]; then
  want=(mosquitto mosquitto-clients chromium ansible)
fi
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
