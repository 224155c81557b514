#!/usr/bin/env bash
# Installs the Debian packages litedist needs to build and run, only those missing; with
# --test also what the tests need (pytest, clang for the fuzzers, chromium and Node.js for the
# browser tests, openssl to make the TLS tests' certificates) and the browser tests' npm packages (tests/browser, pinned by its lock file).
# Idempotent, and silent when everything is already installed.
set -euo pipefail
cd "$(dirname "$0")/.."

test=false
case "${1:-}" in
  "") ;;
  --test) test=true ;;
  *) echo "usage: scripts/deps.sh [--test]" >&2; exit 2 ;;
esac

packages=(
  cmake make gcc pkg-config
  libevent-dev libjansson-dev libsqlite3-dev liblmdb-dev libsodium-dev libssl-dev libwslay-dev
  libcmocka-dev
)
if $test; then
  packages+=(python3 python3-pytest clang libclang-rt-14-dev chromium openssl)
  # Node.js runs the browser tests (never the server). A machine may have it from elsewhere
  # than Debian (NodeSource bundles npm into its nodejs package): ask only for what is missing.
  command -v node >/dev/null || packages+=(nodejs)
  command -v npm >/dev/null || packages+=(npm)
fi

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done

if [[ ${#missing[@]} -gt 0 ]]; then
  echo "deps: installing ${missing[*]}"
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "deps: need root or sudo to install ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

$test || exit 0

# The browser tests' npm packages: `npm ci` (exactly the lock file) when node_modules is missing
# or was installed from another lock file. A stamp inside node_modules records which.
browser=tests/browser
stamp=$browser/node_modules/.litedist-lock.sha256
want=$(cat "$browser/package.json" "$browser/package-lock.json" | sha256sum | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  echo "deps: npm ci in $browser"
  log=$(mktemp)
  if ! (cd "$browser" && npm ci --no-audit --no-fund --loglevel=error) >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "deps: npm ci failed in $browser" >&2
    exit 1
  fi
  rm -f "$log"
  echo "$want" >"$stamp"
fi
