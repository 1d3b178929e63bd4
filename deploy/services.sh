# Sourced by deploy/stack.sh and deploy/cluster.sh: starting, watching and stopping
# the local services, each with a pid file under $DATA/run and a log under
# $DATA/logs. Needs DATA, say, die and port_of NAME set by the sourcing script;
# PORT_HINT says which variable moves a port that is taken.

pid_file() { echo "$DATA/run/$1.pid"; }

running() {
  local pid_path; pid_path="$(pid_file "$1")"
  [ -f "$pid_path" ] && kill -0 "$(cat "$pid_path")" 2>/dev/null
}

# Says so when DIR is on ext4 without a journal (this kind of machine's root
# filesystem): ext4 then passes over every inode deleted in the last minute each time
# it creates a file, and ClickHouse creates and deletes about a hundred files per part
# it writes; under load that scan took about half of ClickHouse's CPU (measured:
# benches/README.md, "2026-12-03 03:36–04:15 UTC"). Data is safe either way; only slower.
warn_if_no_journal() { # warn_if_no_journal DIR
  local source fstype device
  read -r source fstype < <(df --output=source,fstype "$1" 2>/dev/null | tail -n 1) || return 0
  [ "$fstype" = ext4 ] || return 0
  device="$(basename "$(readlink -f "$source")")"
  if [ "$(cat "/sys/fs/ext4/$device/journal_task" 2>/dev/null)" = "<none>" ]; then
    say "note: $1 is on ext4 without a journal ($source); ClickHouse's inserts and merges run slower there (docs/deploy.md, \"ClickHouse's disk\")"
  fi
}

port_busy() { ss -ltnH "sport = :$1" 2>/dev/null | grep -q .; }

wait_until() { # wait_until SECONDS NAME COMMAND...
  local seconds="$1" name="$2"; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ! running "$name"; then
      say "$name exited during start-up; last lines of $DATA/logs/$name.log:"
      tail -n 30 "$DATA/logs/$name.log" >&2 || true
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "$name did not become ready within ${seconds}s; last lines of $DATA/logs/$name.log:"
      tail -n 30 "$DATA/logs/$name.log" >&2 || true
      return 1
    fi
    sleep 0.2
  done
}

launch() { # launch NAME COMMAND... : start in the background, record the pid
  local name="$1"; shift
  local port; port="$(port_of "$name")"
  if running "$name"; then say "$name already running (pid $(cat "$(pid_file "$name")"))"; return 0; fi
  if port_busy "$port"; then
    die "port $port for $name is already taken by another process ($(ss -ltnpH "sport = :$port" | sed 's/.*users://' | head -n1)); free it or ${PORT_HINT:-set the port variable}"
  fi
  mkdir -p "$DATA/logs" "$DATA/run"
  nohup "$@" >>"$DATA/logs/$name.log" 2>&1 &
  echo $! >"$(pid_file "$name")"
  say "$name starting (pid $!, port $port, log $DATA/logs/$name.log)"
}

stop_one() {
  local name="$1" pid_path; pid_path="$(pid_file "$name")"
  if running "$name"; then
    local pid; pid="$(cat "$pid_path")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 75); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    say "$name stopped"
  fi
  rm -f "$pid_path"
}

status_of() { # status_of NAME... : each service's state, pid and port, then the data directory
  local name
  for name in "$@"; do
    if running "$name"; then
      printf '%-11s running  pid %-8s port %s\n' "$name" "$(cat "$(pid_file "$name")")" "$(port_of "$name")"
    else
      printf '%-11s stopped\n' "$name"
    fi
  done
  echo "data: $DATA"
}

crash_one() { # crash_one NAME : kill -9, no shutdown and no flush (fault tests)
  running "$1" || die "$1 is not running"
  kill -9 "$(cat "$(pid_file "$1")")"
  say "$1 killed (-9)"
}

# Prometheus scraping the binaries (jobs callmatrix-ingest, -processor and -api, as
# deploy/prometheus/rules.yml expects; one target per instance) and evaluating the
# rules; its UI shows the alerts at http://127.0.0.1:PORT/alerts (docs/operations.md).
# Needs ROOT.
start_prometheus() { # start_prometheus PORT "INGEST_PORT..." "PROCESSOR_PORT..." "API_PORT..."
  local port="$1" ingest="$2" processor="$3" api="$4"
  targets() { local p out=""; for p in $1; do out="$out${out:+, }\"127.0.0.1:$p\""; done; echo "$out"; }
  mkdir -p "$DATA/prometheus/data"
  cp "$ROOT/deploy/prometheus/rules.yml" "$DATA/prometheus/rules.yml"
  cat >"$DATA/prometheus/prometheus.yml" <<YML
global:
  scrape_interval: 15s
  evaluation_interval: 15s
rule_files:
  - $DATA/prometheus/rules.yml
scrape_configs:
  - job_name: callmatrix-ingest
    static_configs: [{targets: [$(targets "$ingest")]}]
  - job_name: callmatrix-processor
    static_configs: [{targets: [$(targets "$processor")]}]
  - job_name: callmatrix-api
    static_configs: [{targets: [$(targets "$api")]}]
YML
  launch prometheus prometheus \
    --config.file "$DATA/prometheus/prometheus.yml" \
    --storage.tsdb.path "$DATA/prometheus/data" \
    --storage.tsdb.retention.time 7d \
    --web.listen-address "127.0.0.1:$port"
  wait_until 60 prometheus curl -fsS "http://127.0.0.1:$port/-/ready"
  say "prometheus ready on http://127.0.0.1:$port (alerts: /alerts)"
}
