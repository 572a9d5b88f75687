#!/usr/bin/env bash
# Install the system packages IronLB's tests and lab need, from Debian, when they are missing.
# Idempotent: a machine that has everything runs no apt command at all.
set -euo pipefail

missing=()
need() { # need COMMAND PACKAGE
  command -v "$1" >/dev/null 2>&1 || missing+=("$2")
}
need go golang-go
need git git
need sha256sum coreutils
# the lab: network namespaces, real packets, and the tools a user would probe them with
need ip iproute2
need setpriv util-linux  # the lab applies pods' securityContext (capabilities, user) with it
need ping iputils-ping
need arping arping
need ndisc6 ndisc6
need nft nftables
need curl curl
# the workloads behind the nodes (the KubeVirt VM stand-in serves nginx) and the BGP routers
need nginx nginx-light
need bird bird2
need gobgpd gobgpd
# IronLB's images: built on a Debian base made by debootstrap, run by podman with runc (crun fails here)
need podman podman
need runc runc
need debootstrap debootstrap
# the lab's real kubelets run their pods with Debian's containerd (and runc, above)
need containerd containerd
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)

if [ ${#missing[@]} -gt 0 ]; then
  echo "[system-deps] installing: ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >&2
fi
