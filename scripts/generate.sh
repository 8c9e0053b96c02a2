#!/usr/bin/env bash
# Writes every generated file from the Go types in apis/:
#   apis/kannika/v1alpha/zz_generated.*.go   deepcopy, OpenAPI model names
#   generated/openapi                        OpenAPI definitions (input to applyconfiguration-gen)
#   generated/applyconfiguration             typed apply configurations
#   generated/clientset, listers, informers  the typed client, listers, informers
#   deploy/crds                              CRD YAML (controller-gen)
#
# The generators are pinned in scripts/tools/go.mod and built once into a cache
# folder keyed by that file's contents. Run it through `make generate`.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

module=$(go list -m)
apis="$module/apis/kannika/v1alpha"
out="$module/generated"
boilerplate="$root/scripts/boilerplate.go.txt"
header="--go-header-file=$boilerplate"
# "Credentials" is its own plural (client.Credentials(ns), not Credentialses).
plurals="--plural-exceptions=Endpoints:Endpoints,Credentials:Credentials"

# Build the generators once per version of scripts/tools/go.{mod,sum}.
cache=${ARMORY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/armory}
tools_key=$(cat scripts/tools/go.mod scripts/tools/go.sum | sha256sum | cut -c1-16)
bin="$cache/tools/$tools_key"
if [[ ! -x "$bin/controller-gen" ]]; then
  echo "generate: building the code generators into $bin" >&2
  mkdir -p "$bin"
  (cd scripts/tools && GOBIN="$bin" GOFLAGS=-mod=mod go install tool)
fi

# openapi-gen leaks a temp file per run: keep them in a folder we remove.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export TMPDIR="$tmp"
# The first run on a fresh module adds the go.sum lines the generators need.
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod"

rm -rf generated deploy/crds
rm -f apis/kannika/v1alpha/zz_generated.*.go

"$bin/deepcopy-gen" "$header" --output-file zz_generated.deepcopy.go "$apis"

# The apimachinery packages are inputs too: openapi-gen resolves ObjectMeta,
# Quantity and Time from them. Their known rule violations are not ours, so the
# report goes to a scratch file.
"$bin/openapi-gen" "$header" \
  --output-file zz_generated.openapi.go \
  --output-dir generated/openapi \
  --output-pkg "$out/openapi" \
  --output-model-name-file zz_generated.model_name.go \
  --report-filename "$tmp/api-violations.report" \
  k8s.io/apimachinery/pkg/apis/meta/v1 \
  k8s.io/apimachinery/pkg/runtime \
  k8s.io/apimachinery/pkg/version \
  k8s.io/apimachinery/pkg/api/resource \
  "$apis"

go run ./scripts/models-schema >"$tmp/schema.json"

# kube_codegen.sh's gen_client skips a version folder named v1alpha (it only
# matches v1, v1alpha1, ...), so the client generators are called directly.
"$bin/applyconfiguration-gen" "$header" \
  --output-dir generated/applyconfiguration \
  --output-pkg "$out/applyconfiguration" \
  --openapi-schema "$tmp/schema.json" \
  "$apis"

"$bin/client-gen" "$header" "$plurals" \
  --output-dir generated/clientset \
  --output-pkg "$out/clientset" \
  --clientset-name versioned \
  --apply-configuration-package "$out/applyconfiguration" \
  --input-base "$module/apis" \
  --input kannika/v1alpha

"$bin/lister-gen" "$header" "$plurals" \
  --output-dir generated/listers \
  --output-pkg "$out/listers" \
  "$apis"

"$bin/informer-gen" "$header" "$plurals" \
  --output-dir generated/informers \
  --output-pkg "$out/informers" \
  --versioned-clientset-package "$out/clientset/versioned" \
  --listers-package "$out/listers" \
  "$apis"

"$bin/controller-gen" crd:crdVersions=v1 paths=./apis/... output:crd:artifacts:config=deploy/crds

# The Helm chart installs the same CRDs (Helm reads them from crds/).
rm -rf deploy/helm/armory/crds
mkdir -p deploy/helm/armory/crds
for f in deploy/crds/*.yaml; do
  # With the label deploy/kustomization.yaml gives every object.
  sed "0,/^metadata:$/s//metadata:\n  labels:\n    app.kubernetes.io\/part-of: armory/" "$f" >"deploy/helm/armory/crds/$(basename "$f")"
done

# The field reference, from the CRDs.
go run ./scripts/crd-reference deploy/crds >docs/reference.md

# The applyconfiguration schema must be typed: an untyped one generates code
# that compiles but merges list-maps wrongly (see INFRA.md).
if ! grep -q 'com.github.kannika.armory.apis.kannika.v1alpha.BackupSpec' generated/applyconfiguration/internal/internal.go; then
  echo "generate: generated/applyconfiguration/internal/internal.go has no typed schema for BackupSpec" >&2
  exit 1
fi
