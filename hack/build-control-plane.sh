#!/usr/bin/env bash
# Build pinned upstream kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kube-proxy, kubelet
# and etcd from the Go module proxy into a cache directory, so tests run against the real control plane (and the
# lab's real kubelets) without Docker.
#
# Prints the directory holding the binaries on stdout (progress goes to stderr), in the layout envtest uses,
# so the result can be exported as KUBEBUILDER_ASSETS. A directory already named by KUBEBUILDER_ASSETS that
# holds every binary is used as it is; a complete cache is reused.
set -euo pipefail

K8S_VERSION=${IRONLB_K8S_VERSION:-v1.34.12}
ETCD_VERSION=${IRONLB_ETCD_VERSION:-v3.6.16}
CACHE_ROOT=${IRONLB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ironlb}
DEST=$CACHE_ROOT/control-plane/k8s-$K8S_VERSION-etcd-$ETCD_VERSION
K8S_COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler kubectl kube-proxy kubelet)
ALL_BINARIES=("${K8S_COMMANDS[@]}" etcd)

log() { printf '[build-control-plane %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

has_all() {
  local dir=$1 bin
  for bin in "${ALL_BINARIES[@]}"; do [ -x "$dir/$bin" ] || return 1; done
}

if [ -n "${KUBEBUILDER_ASSETS:-}" ] && has_all "$KUBEBUILDER_ASSETS"; then
  log "using KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi
if has_all "$DEST"; then
  log "cached: $DEST"
  echo "$DEST"
  exit 0
fi

command -v go >/dev/null || { log "go is required (https://go.dev/dl or your distribution's golang package)"; exit 1; }
# GOTOOLCHAIN stays as the user has it: with the default (auto) an older local Go fetches the toolchain the
# modules ask for from the module proxy.
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
started=$(date +%s)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$DEST.partial"

# A wrapper module in DIR requiring MODULE@VERSION, with the `go` and `godebug` lines of the wrapped module
# so the binaries behave as the release's own build does. Prints the wrapped module's go.mod path.
write_wrapper_module() { # DIR MODULE@VERSION
  local dir=$1 module=${2%@*} version=${2#*@} gomod godebug
  mkdir -p "$dir"
  gomod=$(cd "$dir" && go mod download -json "$module@$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  godebug=$(grep -E '^godebug ' "$gomod" || true)
  {
    echo "module ironlb.io/hack/$(basename "$dir")-binaries"
    echo
    echo "go $(sed -n 's/^go //p' "$gomod")"
    echo
    [ -n "$godebug" ] && { echo "$godebug"; echo; }
    echo "require $module $version"
    echo
  } >"$dir/go.mod"
  echo "$gomod"
}

# --- Kubernetes: k8s.io/kubernetes replaces its staging modules with relative paths that only work inside
# its own repository, so the wrapper points each one at the published v0.X.Y module.
staging_version=v0.${K8S_VERSION#v1.}
log "Kubernetes $K8S_VERSION (staging modules $staging_version): resolving modules"
k8s_mod=$(write_wrapper_module "$work/k8s" "k8s.io/kubernetes@$K8S_VERSION")
grep -E '^\s*k8s.io/[a-z0-9-]+ => \./staging/' "$k8s_mod" \
  | awk -v v="$staging_version" '{print "replace " $1 " => " $1 " " v}' >>"$work/k8s/go.mod"
packages=()
for cmd in "${K8S_COMMANDS[@]}"; do packages+=("k8s.io/kubernetes/cmd/$cmd"); done
# An unversioned `go get` of a package would upgrade k8s.io/kubernetes to the newest release: pin each one.
(cd "$work/k8s" && go get "${packages[@]/%/@$K8S_VERSION}" >&2)
minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
# The module proxy knows the release time but not its commit: the build date is the release's, so two builds
# of one version are identical.
build_date=$(cd "$work/k8s" && go list -m -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"Time": "\(.*\)".*/\1/p')
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date -X $pkg.gitCommit=unknown"
done
log "building ${K8S_COMMANDS[*]} (cold: many minutes on 2 cores)"
(cd "$work/k8s" && go build -trimpath -ldflags "$ldflags" -o "$DEST.partial/" "${packages[@]}" >&2)
log "Kubernetes built after $(( $(date +%s) - started )) s"

# --- etcd: its own wrapper module, so its dependency versions do not bend Kubernetes' (and vice versa).
log "etcd $ETCD_VERSION: resolving modules"
write_wrapper_module "$work/etcd" "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null
(cd "$work/etcd" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2)
log "building etcd"
(cd "$work/etcd" && go build -trimpath -ldflags "-s -w" -o "$DEST.partial/etcd" go.etcd.io/etcd/server/v3 >&2)

rm -rf "$DEST"
mv "$DEST.partial" "$DEST"
log "done in $(( $(date +%s) - started )) s: $DEST"
"$DEST/kube-apiserver" --version >&2
"$DEST/etcd" --version | head -1 >&2
echo "$DEST"
