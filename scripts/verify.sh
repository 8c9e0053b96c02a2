#!/usr/bin/env bash
# Fails when generated code or CRDs are stale or were edited by hand: copies the
# tree to a temporary folder, regenerates there, and diffs the results.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The tracked files plus the new ones git does not ignore: what would be committed.
git ls-files -co --exclude-standard -z | xargs -0 tar -cf - 2>/dev/null | tar -xf - -C "$tmp"

(cd "$tmp" && scripts/generate.sh) >"$tmp.log" 2>&1 || { cat "$tmp.log" >&2; rm -f "$tmp.log"; exit 1; }
rm -f "$tmp.log"

status=0
for path in apis generated deploy/crds deploy/helm/armory/crds docs/reference.md go.mod go.sum; do
  if ! diff -ruN "$path" "$tmp/$path" >"$tmp/diff.txt"; then
    echo "verify: $path is not what 'make generate' writes:" >&2
    head -40 "$tmp/diff.txt" >&2
    status=1
  fi
done
if [[ $status -ne 0 ]]; then
  echo "verify: run 'make generate' and commit the result; never edit generated code by hand." >&2
fi
exit $status
