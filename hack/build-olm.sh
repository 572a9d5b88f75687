#!/usr/bin/env bash
# Build Operator Lifecycle Manager's `olm` operator (the one that installs a ClusterServiceVersion) from the Go
# module proxy into a cache directory, next to OLM's CRDs from the same module. Prints the directory on stdout;
# progress goes to stderr. A complete cache is reused. The proxy serves v0.28.0 by exact version only (its
# version list is refused), and the module builds only as its own main module (replace directives).
set -euo pipefail

VERSION=${IRONLB_OLM_VERSION:-v0.28.0}
MODULE=github.com/operator-framework/operator-lifecycle-manager
CACHE_ROOT=${IRONLB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ironlb}
DEST=$CACHE_ROOT/tools/olm-$VERSION
log() { printf '[build-olm %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [ -x "$DEST/olm" ] && [ -n "$(ls "$DEST/crds" 2>/dev/null)" ]; then
  log "cached: $DEST"
  echo "$DEST"
  exit 0
fi
command -v go >/dev/null || { log "go is required"; exit 1; }
export CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false"
started=$(date +%s)
work=$(mktemp -d)
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
source_dir=$(cd "$work" && GOFLAGS= go mod download -json "$MODULE@$VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
cp -r "$source_dir" "$work/olm" && chmod -R u+w "$work/olm"
rm -rf "$work/olm/vendor"  # -mod=mod: the module proxy's copies, not a vendor tree
mkdir -p "$DEST.partial/crds"
log "building olm $VERSION from $MODULE (cold: minutes)"
(cd "$work/olm" && go build -trimpath -ldflags "-s -w" -o "$DEST.partial/olm" ./cmd/olm >&2)
cp "$work"/olm/deploy/chart/crds/*.yaml "$DEST.partial/crds/"
rm -rf "$DEST"
mv "$DEST.partial" "$DEST"
log "done in $(( $(date +%s) - started )) s: $DEST"
echo "$DEST"
