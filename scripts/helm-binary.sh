#!/usr/bin/env bash
# Builds helm from the Go module proxy into a version-keyed cache outside the
# clone, and prints its path. The install test renders deploy/helm/armory
# with it. A second run returns at once.
#
#   scripts/helm-binary.sh                 # build if missing, print the path
#   HELM_VERSION=v3.22.0 scripts/helm-binary.sh
set -euo pipefail

HELM_VERSION=${HELM_VERSION:-v3.22.0}
CACHE_ROOT=${ARMORY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/armory}
DEST="$CACHE_ROOT/helm/$HELM_VERSION"

if [[ -x "$DEST/helm" ]]; then
  echo "$DEST/helm"
  exit 0
fi
echo "helm-binary: building helm $HELM_VERSION (cold: about 2 minutes)" >&2
mkdir -p "$DEST"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Build into a temporary folder, then move: a killed build leaves no half binary.
(cd "$work" && GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=local GOBIN="$work/bin" go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION") >&2
mv "$work/bin/helm" "$DEST/helm"
echo "$DEST/helm"
