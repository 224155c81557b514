#!/usr/bin/env bash
# `make cluster`: three local litedistd nodes on 127.0.0.1:17001-17003, data in ./cluster/node-N,
# each seeded with the other two as peers (the seed's Aspire host). Ctrl-C stops all three.
set -euo pipefail
bin=${LITEDISTD:-build/bin/litedistd}
root=${CLUSTER_DIR:-./cluster}
key=${CLUSTER_REPLICATION_KEY:-local-cluster-key}
ports=(17001 17002 17003)
pids=()

stop_all() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  echo "cluster: stopped"
}
trap stop_all INT TERM EXIT

for i in 0 1 2; do
  id="node-$((i + 1))"
  seeds=""
  for j in 0 1 2; do
    [[ $j == "$i" ]] && continue
    seeds+="${seeds:+,}{\"NodeId\":\"node-$((j + 1))\",\"BaseUrl\":\"http://127.0.0.1:${ports[$j]}\"}"
  done
  mkdir -p "$root/$id"
  LITEDIST_Node__NodeId="$id" LITEDIST_Node__ReplicationApiKey="$key" \
    LITEDIST_Node__SeedPeers="[$seeds]" \
    "$bin" --data "$root/$id" --port "${ports[$i]}" > >(sed -u "s/^/[$id] /") 2>&1 &
  pids+=($!)
done
echo "cluster: node-1..3 on http://127.0.0.1:17001-17003 (ReplicationApiKey $key); Ctrl-C stops them"
wait -n "${pids[@]}" || true
echo "cluster: a node exited; stopping the others"
