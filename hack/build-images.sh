#!/usr/bin/env bash
# Build IronLB's two images from operator/Dockerfile and speaker/Dockerfile with podman, as users build them,
# but on a base made from Debian's packages: no container registry is reachable here, so the Dockerfiles'
# default BASE (python:3.11-slim) cannot be pulled. Both are Debian bookworm with Python 3.11.
#
# Cached like the control plane: the base's root filesystem (debootstrap, ~2 min cold) as a tarball keyed by
# its package list, each image by the hash of its inputs (Dockerfile, lock, sources), so an unchanged tree
# builds nothing. Each image is also tagged with the name the manifests use (quay.io/ironlb/NAME:vVERSION), so
# the lab's pods run the image their spec names. Prints "NAME IMAGE-ID SIZE-BYTES" per image on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE_ROOT=${IRONLB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ironlb}
SUITE=bookworm
MIRROR=${IRONLB_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES=python3,python3-venv,ca-certificates
BASE_RECIPE=2  # bump when the way the base is made changes
log() { printf '[build-images %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
for tool in podman debootstrap; do
  command -v "$tool" >/dev/null || { log "$tool is required (hack/system-deps.sh installs it)"; exit 1; }
done
CA_BUNDLE=${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}
# crun cannot run here (cgroups v1 in hybrid mode); runc can.
PODMAN=(podman --runtime runc)

base_key=$(printf '%s %s %s %s' "$SUITE" "$PACKAGES" "$(uname -m)" "$BASE_RECIPE" | sha256sum | cut -c1-12)
BASE_IMAGE=localhost/ironlb-base:$SUITE-$base_key
base_tar=$CACHE_ROOT/images/base-$SUITE-$base_key.tar
if ! "${PODMAN[@]}" image exists "$BASE_IMAGE"; then
  if [ ! -f "$base_tar" ]; then
    started=$(date +%s)
    log "debootstrap --variant=minbase $SUITE with $PACKAGES (cold: ~2 min)"
    root=$(mktemp -d)
    trap 'rm -rf "$root"' EXIT
    debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$MIRROR" >&2
    # documentation, manuals and translations are of no use in an image
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
      "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
    mkdir -p "$(dirname "$base_tar")"
    tar -C "$root" -cf "$base_tar.partial" .
    mv "$base_tar.partial" "$base_tar"
    rm -rf "$root"
    trap - EXIT
    log "base root filesystem in $(( $(date +%s) - started )) s: $base_tar"
  fi
  "${PODMAN[@]}" import --change 'CMD ["/bin/bash"]' "$base_tar" "$BASE_IMAGE" >/dev/null
  log "imported $BASE_IMAGE"
fi

# the pod sandbox ("pause") of the lab's real kubelets (hack/ironlb_lab/kubelets.py): the base, asleep until
# stopped. No registry serves registry.k8s.io/pause here.
PAUSE_IMAGE=localhost/ironlb-pause:$SUITE-$base_key
if ! "${PODMAN[@]}" image exists "$PAUSE_IMAGE"; then
  context=$(mktemp -d)
  cat >"$context/Containerfile" <<EOF
FROM $BASE_IMAGE
CMD ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait \$!; done"]
EOF
  "${PODMAN[@]}" build --quiet -t "$PAUSE_IMAGE" "$context" >/dev/null
  rm -rf "$context"
  log "built $PAUSE_IMAGE"
fi
"${PODMAN[@]}" images --format '{{.Repository}}:{{.Tag}}' | grep '^localhost/ironlb-pause:' \
  | grep -vxF "$PAUSE_IMAGE" | xargs -r "${PODMAN[@]}" rmi >/dev/null 2>&1 || true
"${PODMAN[@]}" image inspect --format "pause {{.Id}} {{.Size}}" "$PAUSE_IMAGE"

version=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
sources_hash() { # the files an image is built from
  git ls-files -z -- pyproject.toml requirements-runtime.lock README.md common operator speaker \
    | xargs -0 sha256sum | sha256sum | cut -c1-12
}
inputs=$(sources_hash)
for name in operator speaker; do
  tag=$(printf '%s %s %s' "$inputs" "$BASE_IMAGE" "$(sha256sum "$name/Dockerfile")" | sha256sum | cut -c1-12)
  local_ref=localhost/ironlb-$name:$tag
  if ! "${PODMAN[@]}" image exists "$local_ref"; then
    started=$(date +%s)
    log "building $local_ref from $name/Dockerfile on $BASE_IMAGE"
    # pip in the build reaches PyPI through this machine's TLS-intercepting proxy: its RUN steps see the
    # host's CA bundle (a build volume, not a layer: the image keeps Debian's own)
    "${PODMAN[@]}" build --network host --layers=false --build-arg "BASE=$BASE_IMAGE" \
      --volume "$CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro" \
      -f "$name/Dockerfile" -t "$local_ref" . >&2
    log "built $local_ref in $(( $(date +%s) - started )) s"
  fi
  # images of earlier inputs: drop them, so the storage does not grow with every commit
  "${PODMAN[@]}" images --format '{{.Repository}}:{{.Tag}}' | grep "^localhost/ironlb-$name:" \
    | grep -vxF "$local_ref" | xargs -r "${PODMAN[@]}" rmi --force >/dev/null 2>&1 || true
  "${PODMAN[@]}" tag "$local_ref" "quay.io/ironlb/$name:v$version"
  "${PODMAN[@]}" image inspect --format "$name {{.Id}} {{.Size}}" "$local_ref"
done
"${PODMAN[@]}" images --format '{{.Repository}}:{{.Tag}}' | grep '^localhost/ironlb-base:' \
  | grep -vxF "$BASE_IMAGE" | xargs -r "${PODMAN[@]}" rmi >/dev/null 2>&1 || true
