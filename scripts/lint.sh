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

# The controller never touches Kafka or storage data (DESIGN §1): it must not
# link a Kafka or GCS client. pkg/kafka/properties holds what it validates.
forbidden='^(github.com/IBM/sarama|cloud.google.com/go/storage)$'
if go list -deps ./pkg/controller/... | grep -Eq "$forbidden"; then
  echo "lint: pkg/controller imports a Kafka or storage client:" >&2
  go list -deps ./pkg/controller/... | grep -E "$forbidden" >&2
  for pkg in $(go list ./pkg/controller/...); do
    go list -f '{{.ImportPath}}: {{join .Imports " "}}' "$pkg" | grep -E 'armory/pkg/(worker|kafka|restore|credentials|storage)( |$)' >&2 || true
  done
  exit 1
fi
