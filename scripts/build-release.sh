#!/usr/bin/env bash
# Builds dist/sluice: a stripped release binary that runs without the Swift toolchain (the
# Swift runtime and Foundation linked in with --static-swift-stdlib; it needs only glibc,
# libstdc++ and zlib-class system libraries every Debian/Ubuntu has). Writes the commit and
# build time into `sluice version`, prints the size, and checks that the binary starts with
# the toolchain hidden (a private mount namespace where the toolchain's folder is empty).
set -euo pipefail
cd "$(dirname "$0")/.."
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then commit="$commit+changes"; fi
built=$(date -u +%Y-%m-%dT%H:%M:%SZ)
info=Sources/sluice/BuildInfo.swift
cp "$info" "$info.orig"
trap 'mv "$info.orig" "$info"' EXIT
sed -i "s/static let commit = \"unknown\"/static let commit = \"$commit\"/; s/static let built = \"unknown\"/static let built = \"$built\"/" "$info"
flags=(-c release --product sluice --static-swift-stdlib -Xlinker --strip-all)
swift build "${flags[@]}"
bin="$(swift build "${flags[@]}" --show-bin-path)/sluice"
mkdir -p dist
cp "$bin" dist/sluice
mv "$info.orig" "$info"; trap - EXIT

toolchain=$(dirname "$(dirname "$(readlink -f "$(command -v swift)")")")   # e.g. /opt/swift/usr
if ldd dist/sluice | grep -q "$toolchain"; then
  echo "dist/sluice still links libraries from $toolchain:" >&2; ldd dist/sluice | grep "$toolchain" >&2; exit 1
fi
# Hide the toolchain where a private mount namespace is allowed (root, outside a container
# build); elsewhere run it with an empty environment.
if out=$(unshare -m sh -c "mount -t tmpfs none '$toolchain' && env -i PATH=/usr/bin:/bin ./dist/sluice version" 2>/dev/null); then
  echo "runs with $toolchain hidden: $out"
else
  out=$(env -i PATH=/usr/bin:/bin ./dist/sluice version)
  echo "runs with an empty environment: $out (the toolchain folder could not be hidden here)"
fi
echo "dist/sluice: $(du -h dist/sluice | cut -f1) ($(stat -c %s dist/sluice) bytes); needs: $(ldd dist/sluice | awk '{print $1}' | tr '\n' ' ')"
