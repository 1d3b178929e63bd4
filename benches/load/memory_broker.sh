# Sourced by the load scripts (webhook_edge.sh, and latency.sh and end_to_end.sh
# through world.sh) for CM_BENCH_STORAGE=memory: a private tansu with memory storage
# on port 39192, to show a figure without the broker's disk.
#
#   start_memory_broker   # starts it, waits for its port; sets MEMORY_BROKER_PID and
#                         # MEMORY_BROKER (host:port); the caller stops it
MEMORY_BROKER=127.0.0.1:39192
memory_broker_up() { (exec 3<>"/dev/tcp/${MEMORY_BROKER%%:*}/${MEMORY_BROKER##*:}") 2>/dev/null; }
start_memory_broker() {
  # The last run's private broker may still be stopping.
  for _ in $(seq 1 50); do memory_broker_up || break; sleep 0.2; done
  if memory_broker_up; then
    echo "port 39192 is in use: another run's private tansu?" >&2
    exit 1
  fi
  tansu broker --listener-url "tcp://$MEMORY_BROKER" --advertised-listener-url "tcp://$MEMORY_BROKER" \
    --storage-engine memory://tansu/ >/tmp/bench-tansu-memory.log 2>&1 &
  MEMORY_BROKER_PID=$!
  for _ in $(seq 1 50); do memory_broker_up && break; sleep 0.2; done
}
