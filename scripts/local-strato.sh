# Sourced by the benchmark scripts: start a 3-node Strato cluster on 127.0.0.1 and wait until
# every node reports a partition map. Not a command of its own.
#
#   strato_start BIN DIR BASE [serve args...]   nodes on BASE, BASE+10, BASE+20 (+1 fabric,
#                                               +2 gossip), data and logs under DIR; appends
#                                               the pids to the caller's `pids` array
#   strato_wait_ready INFO_BIN BASE             polls `partition-generation` for up to 30 s;
#                                               returns 1 if the cluster did not come up

strato_start() {
  local bin=$1 dir=$2 base=$3
  shift 3
  local seeds="127.0.0.1:$((base + 2)),127.0.0.1:$((base + 12)),127.0.0.1:$((base + 22))"
  mkdir -p "$dir"
  for i in 1 2 3; do
    "$bin" serve --node-id "$i" --port $((base + 10 * (i - 1))) --data-dir "$dir/n$i" \
      --seeds "$seeds" --bootstrap-expect 3 "$@" >"$dir/n$i.log" 2>&1 &
    pids+=($!)
  done
}

strato_wait_ready() {
  local info=$1 base=$2 g ok
  for _ in $(seq 1 150); do
    ok=0
    for i in 1 2 3; do
      g=$("$info" info --host "127.0.0.1:$((base + 10 * (i - 1)))" --timeout-ms 500 \
        partition-generation 2>/dev/null || echo -1)
      [ "$g" -ge 0 ] 2>/dev/null && ok=$((ok + 1))
    done
    [ "$ok" -eq 3 ] && return 0
    sleep 0.2
  done
  return 1
}
