#!/usr/bin/env bash
# Installs what only the benchmark needs: the load generators (wrk, redis-benchmark), the peers it
# compares litedist with (redis-server; pouchdb-server 4.2.0 from npm, pinned by
# bench/peers/package-lock.json) and gnuplot for the chart. Only what is missing; silent when all
# is there. Never run by `make test`: the tests need none of it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/packages.sh

packages=(wrk redis-server redis-tools gnuplot-nox sqlite3 curl python3)
# Node.js runs pouchdb-server only; a machine may have it from elsewhere than Debian.
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)

ld_missing_packages "${packages[@]}"
# gnuplot from any flavour (gnuplot-qt, gnuplot-x11) draws PNGs too.
if [[ " ${missing[*]} " == *" gnuplot-nox "* ]] && command -v gnuplot >/dev/null; then
  missing=("${missing[@]/gnuplot-nox/}")
  read -r -a missing <<<"${missing[*]}"
fi

if [[ ${#missing[@]} -gt 0 ]]; then
  ld_apt_install "bench deps" "${missing[@]}"
  sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  # Debian starts a system redis-server on install; the bench starts its own on free ports.
  if [[ " ${missing[*]} " == *" redis-server "* ]] && command -v systemctl >/dev/null; then
    "${sudo[@]}" systemctl disable --now redis-server >/dev/null 2>&1 || true
  fi
fi

# pouchdb-server, exactly as bench/peers/package-lock.json pins it.
ld_npm_ci "bench deps" bench/peers
