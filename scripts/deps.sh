#!/usr/bin/env bash
# Installs the Debian packages litedist needs to build and run, only those missing; with
# --test also what the tests need (pytest, clang for the fuzzers, chromium and Node.js for the
# browser tests, openssl to make the TLS tests' certificates, python3-yaml, systemd, shellcheck
# and dpkg-dev for the deployment and package tests) and the browser tests' npm
# packages (tests/browser, pinned by its lock file).
# Idempotent, and silent when everything is already installed.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/packages.sh

test=false
case "${1:-}" in
  "") ;;
  --test) test=true ;;
  *) echo "usage: scripts/deps.sh [--test]" >&2; exit 2 ;;
esac

packages=(
  cmake make gcc pkg-config
  libevent-dev libjansson-dev libsqlite3-dev liblmdb-dev libsodium-dev libssl-dev libwslay-dev
  libcmocka-dev libsystemd-dev
)
if $test; then
  packages+=(python3 python3-pytest python3-prometheus-client clang libclang-rt-14-dev chromium openssl)
  # tests/system/test_resp.py: redis-cli and a real client library against the RESP listener
  packages+=(redis-tools python3-redis)
  # tests/deploy: the manifests (python3-yaml), the unit (systemd-analyze), the shell scripts
  # (shellcheck), the Debian package (dpkg-shlibdeps and file, which cpack -G DEB calls).
  packages+=(python3-yaml systemd shellcheck dpkg-dev file)
  # Node.js runs the browser tests (never the server). A machine may have it from elsewhere
  # than Debian (NodeSource bundles npm into its nodejs package): ask only for what is missing.
  command -v node >/dev/null || packages+=(nodejs)
  command -v npm >/dev/null || packages+=(npm)
fi

ld_missing_packages "${packages[@]}"
if [[ ${#missing[@]} -gt 0 ]]; then ld_apt_install deps "${missing[@]}"; fi

$test || exit 0

# The browser tests' npm packages, exactly as their lock file pins them.
ld_npm_ci deps tests/browser
