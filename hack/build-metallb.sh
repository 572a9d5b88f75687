#!/usr/bin/env bash
# Build MetalLB's controller and speaker (go.universe.tf/metallb) from the Go module proxy into a cache
# directory, with its CRDs, for the side-by-side benchmarks only: none of it is part of IronLB. Prints the
# directory on stdout; progress goes to stderr. A complete cache is reused.
set -euo pipefail

VERSION=${IRONLB_METALLB_VERSION:-v0.15.2}
CACHE_ROOT=${IRONLB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ironlb}
DEST=$CACHE_ROOT/tools/metallb-$VERSION
log() { printf '[build-metallb %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [ -x "$DEST/controller" ] && [ -x "$DEST/speaker" ] && [ -d "$DEST/crds" ]; then
  log "cached: $DEST"
  echo "$DEST"
  exit 0
fi
command -v go >/dev/null || { log "go is required"; exit 1; }
export CGO_ENABLED=0 GOFLAGS="-buildvcs=false -mod=mod"
started=$(date +%s)
work=$(mktemp -d)
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
# MetalLB's go.mod has replace directives a wrapper module would ignore: build inside a copy of its source
source_dir=$(cd "$work" && go mod download -json "go.universe.tf/metallb@$VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
cp -r "$source_dir" "$work/metallb"
chmod -R u+w "$work/metallb"
log "building MetalLB $VERSION controller and speaker (cold: about 5 minutes)"
mkdir -p "$DEST.partial/crds"
(cd "$work/metallb" && go build -trimpath -ldflags "-s -w" -o "$DEST.partial/" ./controller ./speaker >&2)
cp "$work/metallb/config/crd/bases/"*.yaml "$DEST.partial/crds/"
rm -rf "$DEST"
mv "$DEST.partial" "$DEST"
log "done in $(( $(date +%s) - started )) s: $DEST"
echo "$DEST"
