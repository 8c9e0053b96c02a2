#!/usr/bin/env bash
# Builds kube-apiserver, kubectl and etcd from the Go module proxy into a
# version-keyed cache outside the clone, and prints that folder.
#
# Idempotent: a second run finds the binaries and returns in well under a second.
# Used by `make test` (through KUBEBUILDER_ASSETS) and by the dev tooling.
#
#   scripts/k8s-binaries.sh            # build if missing, print the folder
#   K8S_VERSION=v1.36.3 ETCD_VERSION=v3.6.8 scripts/k8s-binaries.sh
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.36.3}
ETCD_VERSION=${ETCD_VERSION:-v3.6.8}
CACHE_ROOT=${ARMORY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/armory}
DEST="$CACHE_ROOT/k8s/$K8S_VERSION-etcd-$ETCD_VERSION"

log() { echo "k8s-binaries: $*" >&2; }

if [[ -x "$DEST/kube-apiserver" && -x "$DEST/kubectl" && -x "$DEST/etcd" ]]; then
  echo "$DEST"
  exit 0
fi

mkdir -p "$DEST"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=local

minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
staging="v0.${K8S_VERSION#v1.}"

if [[ ! -x "$DEST/kube-apiserver" || ! -x "$DEST/kubectl" ]]; then
  log "building kube-apiserver and kubectl $K8S_VERSION (cold: about 4 minutes)"
  mkdir -p "$work/k8s"
  # k8s.io/kubernetes points its staging modules at local folders; replace each
  # with the published module of the same version.
  modfile=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
  {
    echo "module armory.local/k8sbuild"
    echo
    echo "go 1.26"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\1#p' "$modfile" |
      grep -v -e '^k8s.io/sample-cli-plugin$' -e '^k8s.io/sample-controller$' |
      while read -r m; do echo "	$m => $m $staging"; done
    echo ")"
  } >"$work/k8s/go.mod"
  cat >"$work/k8s/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  (cd "$work/k8s" &&
    go build -trimpath -ldflags "$ldflags" -o "$DEST/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver &&
    go build -trimpath -ldflags "$ldflags" -o "$DEST/kubectl.tmp" k8s.io/kubernetes/cmd/kubectl)
  mv "$DEST/kube-apiserver.tmp" "$DEST/kube-apiserver"
  mv "$DEST/kubectl.tmp" "$DEST/kubectl"
fi

if [[ ! -x "$DEST/etcd" ]]; then
  log "building etcd $ETCD_VERSION"
  mkdir -p "$work/etcd"
  cat >"$work/etcd/go.mod" <<MOD
module armory.local/etcdbuild

go 1.26

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
MOD
  cat >"$work/etcd/tools.go" <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
  (cd "$work/etcd" && go build -trimpath -ldflags "-s -w" -o "$DEST/etcd.tmp" go.etcd.io/etcd/server/v3)
  mv "$DEST/etcd.tmp" "$DEST/etcd"
fi

"$DEST/kube-apiserver" --version >&2
"$DEST/etcd" --version | sed -n 1p >&2 # sed reads to the end: head could exit first and fail the pipe (SIGPIPE)
echo "$DEST"
