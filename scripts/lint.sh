#!/usr/bin/env bash
# gofmt, go vet, and the rules the product's imports follow.
set -euo pipefail
cd "$(dirname "$0")/.."

unformatted=$(git ls-files -co --exclude-standard -- '*.go' | xargs -r gofmt -l)
if [[ -n "$unformatted" ]]; then
  echo "lint: gofmt would change these files (run gofmt -w):" >&2
  echo "$unformatted" >&2
  exit 1
fi

go vet ./...

# The product is plain client-go: controller-runtime is allowed in test
# support (pkg/testenv, envtest) only, never in the armory binary.
if go list -deps . | grep -q '^sigs.k8s.io/controller-runtime'; then
  echo "lint: the armory binary imports controller-runtime:" >&2
  go list -deps . | grep '^sigs.k8s.io/controller-runtime' >&2
  exit 1
fi
