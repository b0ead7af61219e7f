#!/usr/bin/env bash
# Measures the README quickstart from a fresh clone to the first transformed
# record, as a newcomer would meet it: empty Go module and build caches (so
# every module is downloaded from the Go proxy), the quickstart's commands
# in order, and the first record of clicks_big. Uses weir's default ports.
#   bash examples/quickstart/time-to-first-record.sh [REPOSITORY]   (default: this clone)
set -euo pipefail
repo=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
W=$(mktemp -d)
export GOMODCACHE=$W/gomod GOCACHE=$W/gocache GOPATH=$W/gopath
trap 'chmod -R u+w "$W"; rm -rf "$W"' EXIT
now() { date +%s.%N; }
start=$(now)
git clone -q "$repo" "$W/weir" && cd "$W/weir"
go build -o weir ./cmd/weir
built=$(now)
mkdir -p quickstart
cp examples/quickstart/clicks.yaml examples/plugin-enrich/countries.csv quickstart/
./weir plugin build examples/wasm-redact -o quickstart/redact.wasm
./weir plugin build examples/plugin-enrich -o quickstart/enrich
plugins=$(now)
./weir serve --pipelines quickstart > weir.log 2>&1 &
serve=$!
trap 'kill $serve 2>/dev/null; wait $serve 2>/dev/null; chmod -R u+w "$W"; rm -rf "$W"' EXIT
until ./weir pipeline status clicks --rate-over 0 2>/dev/null | grep -q "state:    running"; do sleep 0.2; done
./weir produce clicks --sample clicks -n 20000
./weir consume clicks_big -n 1 -F -f '%k %v\n'
end=$(now)
awk -v s="$start" -v b="$built" -v p="$plugins" -v e="$end" 'BEGIN {
  printf "clone, module downloads and go build: %.0f s; plugin builds: %.0f s; node start, produce and the first record: %.0f s; total: %.0f s\n", b-s, p-b, e-p, e-s }'
