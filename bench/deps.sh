#!/usr/bin/env bash
# Installs what only the benchmark needs: the load generators (wrk, redis-benchmark), the peers it
# compares litedist with (redis-server; pouchdb-server 4.2.0 from npm, pinned by
# bench/peers/package-lock.json) and gnuplot for the chart. Only what is missing; silent when all
# is there. Never run by `make test`: the tests need none of it.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(wrk redis-server redis-tools gnuplot-nox sqlite3 curl python3)
# Node.js runs pouchdb-server only; a machine may have it from elsewhere than Debian.
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
# gnuplot from any flavour (gnuplot-qt, gnuplot-x11) draws PNGs too.
if [[ " ${missing[*]} " == *" gnuplot-nox "* ]] && command -v gnuplot >/dev/null; then
  missing=("${missing[@]/gnuplot-nox/}")
  read -r -a missing <<<"${missing[*]}"
fi

if [[ ${#missing[@]} -gt 0 ]]; then
  echo "bench deps: installing ${missing[*]}"
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "bench deps: need root or sudo" >&2; exit 1; }
    sudo=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts a system redis-server on install; the bench starts its own on free ports.
  if [[ " ${missing[*]} " == *" redis-server "* ]] && command -v systemctl >/dev/null; then
    "${sudo[@]}" systemctl disable --now redis-server >/dev/null 2>&1 || true
  fi
fi

# pouchdb-server: `npm ci` (exactly the lock file) when node_modules is missing or was installed
# from another lock file; a stamp inside node_modules records which.
peers=bench/peers
stamp=$peers/node_modules/.litedist-lock.sha256
want=$(cat "$peers/package.json" "$peers/package-lock.json" | sha256sum | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  echo "bench deps: npm ci in $peers (pouchdb-server)"
  log=$(mktemp)
  if ! (cd "$peers" && npm ci --no-audit --no-fund --loglevel=error) >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "bench deps: npm ci failed in $peers" >&2
    exit 1
  fi
  rm -f "$log"
  echo "$want" >"$stamp"
fi
