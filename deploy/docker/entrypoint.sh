#!/bin/bash
# litedist container entrypoint: each LITEDIST_<path>_FILE variable (a Docker or Kubernetes
# secret mounted as a file) becomes LITEDIST_<path> holding the file's content, so keys never
# sit in the image, the compose file or the pod spec; then it runs litedistd.
set -euo pipefail

fail() {
    echo "litedist-entrypoint: $*" >&2
    exit 1
}

for var in $(compgen -e); do
    [[ $var == LITEDIST_*_FILE ]] || continue
    name=${var%_FILE}
    file=${!var}
    # Both given: which one is meant is unknowable, so neither is taken.
    [[ -z ${!name+x} ]] || fail "both $name and $var are set: set one"
    [[ -f $file && -r $file ]] || fail "$var: cannot read $file"
    value=$(<"$file") # command substitution drops the file's trailing newlines
    [[ -n $value ]] || fail "$var: $file is empty"
    export "$name=$value"
    unset "$var"
done

# Options alone (`docker run IMAGE --port 1447`) are litedistd's.
if [[ $# -eq 0 || ${1:0:1} == - ]]; then
    set -- litedistd "$@"
fi
exec "$@"
