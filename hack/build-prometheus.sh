#!/usr/bin/env bash
# Build pinned Prometheus and promtool from the Go module proxy into a cache directory, next to the
# Prometheus Operator's ServiceMonitor and PrometheusRule CRDs (from its module), for the lab's Prometheus
# and the alert tests (`promtool test rules`). Prints the directory on stdout; progress goes to stderr.
# A complete cache is reused.
set -euo pipefail

# Prometheus publishes its Go module as v0.3XX.Y for release 3.XX.Y
PROMETHEUS_MODULE_VERSION=${IRONLB_PROMETHEUS_VERSION:-v0.316.0}
PROMETHEUS_OPERATOR_VERSION=${IRONLB_PROMETHEUS_OPERATOR_VERSION:-v0.90.1}
CACHE_ROOT=${IRONLB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ironlb}
DEST=$CACHE_ROOT/tools/prometheus-$PROMETHEUS_MODULE_VERSION-operator-$PROMETHEUS_OPERATOR_VERSION
CRDS=(monitoring.coreos.com_servicemonitors.yaml monitoring.coreos.com_prometheusrules.yaml)
log() { printf '[build-prometheus %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

complete() {
  [ -x "$DEST/prometheus" ] && [ -x "$DEST/promtool" ] || return 1
  local crd
  for crd in "${CRDS[@]}"; do [ -f "$DEST/crds/$crd" ] || return 1; done
}
if complete; then
  log "cached: $DEST"
  echo "$DEST"
  exit 0
fi
command -v go >/dev/null || { log "go is required"; exit 1; }
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
started=$(date +%s)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$DEST.partial/crds"

module=github.com/prometheus/prometheus
gomod=$(cd "$work" && go mod download -json "$module@$PROMETHEUS_MODULE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
{
  echo "module ironlb.io/hack/prometheus-binaries"
  echo
  echo "go $(sed -n 's/^go //p' "$gomod")"
  echo
  echo "require $module $PROMETHEUS_MODULE_VERSION"
} >"$work/go.mod"
release=${PROMETHEUS_MODULE_VERSION#v0.}  # 316.0
release=3.${release#3}                    # 3.16.0
ldflags="-s -w -X github.com/prometheus/common/version.Version=$release"
ldflags+=" -X github.com/prometheus/common/version.Branch=module-proxy"
ldflags+=" -X github.com/prometheus/common/version.Revision=$PROMETHEUS_MODULE_VERSION"
log "building prometheus and promtool $release from $module@$PROMETHEUS_MODULE_VERSION (cold: minutes)"
(cd "$work" && go get "$module/cmd/prometheus@$PROMETHEUS_MODULE_VERSION" \
  "$module/cmd/promtool@$PROMETHEUS_MODULE_VERSION" >&2 \
  && go build -trimpath -ldflags "$ldflags" -o "$DEST.partial/" "$module/cmd/prometheus" "$module/cmd/promtool" >&2)

operator=github.com/prometheus-operator/prometheus-operator
source_dir=$(cd "$work" && go mod download -json "$operator@$PROMETHEUS_OPERATOR_VERSION" \
  | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
for crd in "${CRDS[@]}"; do
  cp "$source_dir/example/prometheus-operator-crd/$crd" "$DEST.partial/crds/$crd"
done
rm -rf "$DEST"
mv "$DEST.partial" "$DEST"
log "done in $(( $(date +%s) - started )) s: $DEST"
"$DEST/prometheus" --version | head -1 >&2
echo "$DEST"
