#!/usr/bin/env bash
# Installs what tcptracer-otel needs on a Debian/Ubuntu machine, then builds it.
# Idempotent: installs only what is missing. Run as root (or it uses sudo).
#
#   apt: clang (compiles bpf/*.bpf.c), bpftool (generates the loader's libbpf
#        skeleton; tests pin filter maps), libbpf-dev libelf-dev zlib1g-dev (the
#        loader), g++ make python3 (node-gyp),
#        bpftrace (the benchmark's peer), iproute2 util-linux (test namespaces),
#        openssl (a test makes a TLS certificate)
#   npm: the dependencies in package-lock.json, Node 26 LTS among them
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo

need=()
have_cmd() { command -v "$1" >/dev/null 2>&1; }
have_file() { [ -e "$1" ]; }
have_cmd clang || need+=(clang)
have_file /usr/include/bpf/libbpf.h || need+=(libbpf-dev)
have_file /usr/include/gelf.h || need+=(libelf-dev)
have_file /usr/include/zlib.h || need+=(zlib1g-dev)
have_cmd g++ || need+=(g++)
have_cmd make || need+=(make)
have_cmd python3 || need+=(python3)
have_cmd bpftool || need+=(bpftool)
have_cmd bpftrace || need+=(bpftrace)
have_cmd ip || need+=(iproute2)
have_cmd setpriv || need+=(util-linux)
have_cmd openssl || need+=(openssl)
have_cmd npm || need+=(npm)

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# npm ci when node_modules is missing or older than the lock file.
if [ ! -x node_modules/.bin/node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi

echo "setup: building (BPF object, native loader, TypeScript)" >&2
npm run --silent build
