#!/usr/bin/env bash
# Runs every fuzz target of the module for FUZZTIME each (default 30s).
# Their seed corpora (f.Add and testdata/fuzz) run in make test anyway; this
# looks further. A failing input is written to the package's testdata/fuzz:
# commit it, and it becomes a seed.
#
#   scripts/fuzz.sh              # every target, 30s each
#   FUZZTIME=5m scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-30s}
grep -rl --include='*_test.go' '^func Fuzz' pkg apis | sort | while read -r file; do
  pkg="./$(dirname "$file")"
  for target in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$file"); do
    echo "fuzz: $pkg $target for $FUZZTIME" >&2
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg"
  done
done
