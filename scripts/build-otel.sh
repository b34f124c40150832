#!/usr/bin/env bash
# Builds the two programs the Collector and Jaeger tests run, into tools/bin/:
#   otelcol-tcptracer  the Collector of otel-config/builder-config.yaml (sources in tools/otelcol)
#   jaeger             Jaeger v2, the Go tool of tools/jaeger/go.mod
# Each is rebuilt only when it is missing or when what it is built from changed (go.mod, go.sum,
# the Go sources, the Go version, the flags): a hash of those is kept beside the binary.
# Static (CGO_ENABLED=0), -trimpath, module graph read-only: go.sum pins every module.
#
# Needs Go 1.26 or newer. Without it this prints why and exits 0: the tests that need these
# programs then skip with that reason (and fail under CI=true). npm test runs this first;
# scripts/setup.sh does not (running the tracer needs no Go).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=tools/bin   # git-ignored; not under build/, which node-gyp rebuild (npm run build) removes
GO_MIN=1.26
FLAGS=(-trimpath -ldflags='-s -w')

go_cmd=
for g in "${GO:-}" "$(command -v go 2>/dev/null || true)" /usr/local/go/bin/go; do
  if [ -n "$g" ] && [ -x "$g" ]; then go_cmd=$g; break; fi
done
if [ -z "$go_cmd" ]; then
  echo "build-otel: no Go found (needs Go $GO_MIN or newer): the Collector and Jaeger tests will skip" >&2
  exit 0
fi
version=$("$go_cmd" env GOVERSION)            # e.g. go1.26.8
have=${version#go}
if [ "$(printf '%s\n%s\n' "$GO_MIN" "$have" | sort -V | head -n1)" != "$GO_MIN" ]; then
  echo "build-otel: $version is older than Go $GO_MIN: the Collector and Jaeger tests will skip" >&2
  exit 0
fi

export CGO_ENABLED=0 GOFLAGS=-mod=readonly GOTOOLCHAIN=local
mkdir -p "$OUT"

# build NAME MODULE_DIR PACKAGE: go build PACKAGE in MODULE_DIR to $OUT/NAME unless its stamp matches.
build() {
  local name=$1 dir=$2 pkg=$3 stamp="$OUT/$1.stamp" sum
  sum=$( { echo "$version ${FLAGS[*]} $pkg"; cat "$dir"/go.mod "$dir"/go.sum; cat "$dir"/*.go 2>/dev/null || true; } | sha256sum | cut -d' ' -f1)
  if [ -x "$OUT/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$sum" ]; then
    echo "build-otel: $OUT/$name is up to date" >&2
    return
  fi
  echo "build-otel: building $OUT/$name with $version (a first build downloads its modules: minutes)" >&2
  local start=$SECONDS
  rm -f "$stamp"
  (cd "$dir" && "$go_cmd" build "${FLAGS[@]}" -o "../../$OUT/$name.tmp" "$pkg")
  mv "$OUT/$name.tmp" "$OUT/$name"
  echo "$sum" > "$stamp"
  echo "build-otel: $OUT/$name built in $((SECONDS - start)) s" >&2
}

build otelcol-tcptracer tools/otelcol .
build jaeger tools/jaeger github.com/jaegertracing/jaeger/cmd/jaeger
