#!/usr/bin/env bash
# Installs the Debian packages litedist needs to build and test, only those missing.
# Idempotent, and silent when everything is already installed.
set -euo pipefail

packages=(
  cmake make gcc pkg-config
  libevent-dev libjansson-dev libsqlite3-dev liblmdb-dev libsodium-dev libssl-dev libwslay-dev
  libcmocka-dev python3 python3-pytest
  clang libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "deps: installing ${missing[*]}"
sudo=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "deps: need root or sudo to install ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
