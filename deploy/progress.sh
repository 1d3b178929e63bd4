# Sourced by stack.sh and test.sh. `heartbeat WHAT COMMAND...` runs COMMAND and, while
# it runs, prints a line every 30 s: a cargo build can compile one large crate (or
# link) for over a minute without a word, and a newcomer's first run should never
# look stuck.
heartbeat() {
  local what="$1"
  shift
  "$@" &
  local pid=$! waited=0
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    waited=$((waited + 1))
    if [ $((waited % 30)) -eq 0 ] && kill -0 "$pid" 2>/dev/null; then
      printf '[progress] %s: still running (%d s)\n' "$what" "$waited"
    fi
  done
  wait "$pid"
}
