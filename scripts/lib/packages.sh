# Shell functions shared by scripts/deps.sh and bench/deps.sh (sourced, not run): install the
# Debian packages that are missing, and `npm ci` a directory when its lock file changed. Each
# is silent when there is nothing to do. Callers run with `set -euo pipefail`.

# Sets the array `missing` to those of the given Debian packages that are not installed.
ld_missing_packages() {
  missing=()
  local p status
  for p in "$@"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || missing+=("$p")
  done
}

# ld_apt_install TAG PACKAGE...: apt-get installs the packages (as root, or through sudo);
# TAG prefixes the messages.
ld_apt_install() {
  local tag=$1
  shift
  [[ $# -gt 0 ]] || return 0
  echo "$tag: installing $*"
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "$tag: need root or sudo to install $*" >&2; exit 1; }
    sudo=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# ld_npm_ci TAG DIR: `npm ci` (exactly the lock file) in DIR when its node_modules is missing or
# was installed from another package.json / package-lock.json; a stamp inside node_modules
# records which.
ld_npm_ci() {
  local tag=$1 dir=$2
  local stamp=$dir/node_modules/.litedist-lock.sha256
  local want log
  want=$(cat "$dir/package.json" "$dir/package-lock.json" | sha256sum | cut -d' ' -f1)
  if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
    return 0
  fi
  echo "$tag: npm ci in $dir"
  log=$(mktemp)
  if ! (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "$tag: npm ci failed in $dir" >&2
    exit 1
  fi
  rm -f "$log"
  echo "$want" >"$stamp"
}
