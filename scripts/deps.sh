#!/usr/bin/env bash
# Installs the Debian packages litedist needs to build and test, only those missing, then the
# npm packages of the browser tests (tests/browser, pinned by its package-lock.json).
# Idempotent, and silent when everything is already installed.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  cmake make gcc pkg-config
  libevent-dev libjansson-dev libsqlite3-dev liblmdb-dev libsodium-dev libssl-dev libwslay-dev
  libcmocka-dev python3 python3-pytest
  clang libclang-rt-14-dev
  chromium
)
# Node.js runs the browser tests (never the server). A machine may have it from elsewhere than
# Debian (NodeSource bundles npm into its nodejs package): ask Debian only for what is missing.
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)

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
