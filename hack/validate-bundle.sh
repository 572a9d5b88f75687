#!/usr/bin/env bash
# Validate an OLM bundle directory with operator-framework's own validator (default, object and
# OperatorHub validators). The validator logs problems but exits 0, so any error or fatal line fails here.
# Usage: hack/validate-bundle.sh [BUNDLE_DIR]   (default: bundle)
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=${1:-bundle}
verify=$(bash hack/build-olm-validator.sh)
output=$("$verify" manifests --object_validate --operatorhub_validate "$bundle" 2>&1) || true
printf '%s\n' "$output"
if printf '%s\n' "$output" | grep -Eq 'level=(error|fatal)|^Error'; then
  echo "[validate-bundle] $bundle is NOT valid" >&2
  exit 1
fi
echo "[validate-bundle] $bundle is valid ($(printf '%s\n' "$output" | grep -c 'level=warning' || true) warnings)" >&2
