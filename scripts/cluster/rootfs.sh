#!/usr/bin/env bash
# A Debian root filesystem as a local docker image, without any registry: debootstrap
# (variant minbase) into a temporary directory, cached as a tarball, then `docker import`.
#
# Usage: scripts/cluster/rootfs.sh NAME SUITE [PACKAGE,PACKAGE,...]
#   Prints the image reference: driftline/rootfs:NAME-SUITE-HASH (HASH of suite + packages), so
#   a second call with the same arguments reuses the image (or the cached tarball) in seconds.
#   Examples: rootfs.sh minbase bookworm ; rootfs.sh jre trixie openjdk-21-jre-headless,tini
# Env: DRIFTLINE_CACHE (tarballs in $CACHE/rootfs/, .debs in $CACHE/debs/), DEBIAN_MIRROR
#      (default deb.debian.org).
set -euo pipefail
LOG_TAG=rootfs
source "$(dirname "$0")/lib.sh"

name="${1:?usage: rootfs.sh NAME SUITE [PKG,PKG,...]}"
suite="${2:?usage: rootfs.sh NAME SUITE [PKG,PKG,...]}"
pkgs="${3:-}"
hash="$(printf '%s\n%s\n%s\n%s\n' "$suite" "$pkgs" "$DEBIAN_MIRROR" "v2" | sha256sum | cut -c1-12)"
ref="driftline/rootfs:$name-$suite-$hash"
tarball="$CACHE/rootfs/$name-$suite-$hash.tar.gz"

if image_exists "$ref"; then echo "$ref"; exit 0; fi
mkdir -p "$CACHE/rootfs"
if [ ! -s "$tarball" ]; then
  apt_install debootstrap
  [ -e "/usr/share/debootstrap/scripts/$suite" ] || die "this debootstrap does not know suite $suite"
  dir="$(mktemp -d "$CACHE/rootfs/.build-XXXXXX")"
  trap 'rm -rf "$dir"' EXIT
  log "debootstrap $suite ($name${pkgs:+: $pkgs}) ..."
  # --cache-dir keeps the downloaded .debs, so the next rootfs (most packages are shared)
  # downloads only what it adds.
  mkdir -p "$CACHE/debs"
  args=(--variant=minbase --components=main "--cache-dir=$CACHE/debs")
  [ -n "$pkgs" ] && args+=("--include=$pkgs")
  if ! debootstrap "${args[@]}" "$suite" "$dir" "$DEBIAN_MIRROR" >"$LOGS/debootstrap-$name-$suite.log" 2>&1; then
    tail -n 20 "$LOGS/debootstrap-$name-$suite.log" >&2
    die "debootstrap failed (log $LOGS/debootstrap-$name-$suite.log)"
  fi
  # Smaller image: no apt lists, caches, docs, man pages, locales but C.
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb \
    "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/usr/share/info/* "$dir"/var/log/*.log
  find "$dir/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} + 2>/dev/null || true
  # apt sources for later `apt-get install` inside builds
  echo "deb $DEBIAN_MIRROR $suite main" >"$dir/etc/apt/sources.list"
  tar --numeric-owner -C "$dir" -czf "$tarball.tmp" .
  mv -f "$tarball.tmp" "$tarball"
  rm -rf "$dir"; trap - EXIT
fi
docker import -c 'CMD ["/bin/bash"]' -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  "$tarball" "$ref" >/dev/null
log "imported $ref ($(du -h "$tarball" | cut -f1) tarball)"
echo "$ref"
