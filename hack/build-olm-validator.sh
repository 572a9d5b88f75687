#!/usr/bin/env bash
# Build operator-framework's bundle validator (operator-verify) from the Go module proxy into a cache and
# print its path. It logs problems at error level but may exit 0: hack/validate-bundle.sh turns any error
# line into a failure.
set -euo pipefail

VERSION=${IRONLB_OLM_API_VERSION:-v0.40.0}
CACHE_ROOT=${IRONLB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ironlb}
DEST=$CACHE_ROOT/tools/operator-verify-$VERSION
log() { printf '[build-olm-validator %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [ -x "$DEST/operator-verify" ]; then
  log "cached: $DEST/operator-verify"
  echo "$DEST/operator-verify"
  exit 0
fi
command -v go >/dev/null || { log "go is required"; exit 1; }
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
started=$(date +%s)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gomod=$(cd "$work" && go mod download -json "github.com/operator-framework/api@$VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
{
  echo "module ironlb.io/hack/olm-validator"
  echo
  echo "go $(sed -n 's/^go //p' "$gomod")"
  echo
  echo "require github.com/operator-framework/api $VERSION"
} >"$work/go.mod"
log "building operator-verify from github.com/operator-framework/api@$VERSION"
(cd "$work" && go get "github.com/operator-framework/api/cmd/operator-verify@$VERSION" >&2 \
  && go build -trimpath -ldflags "-s -w" -o "$DEST.partial/operator-verify" \
     github.com/operator-framework/api/cmd/operator-verify >&2)
rm -rf "$DEST" && mv "$DEST.partial" "$DEST"
log "done in $(( $(date +%s) - started )) s"
echo "$DEST/operator-verify"
