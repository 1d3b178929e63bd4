# Sourced by the load scripts: where the box's CPU went while a load ran, so a
# latency or rate figure comes with the proof of whether the box had any left.
#
#   cpu_mark name=PID...     # before the run: the box's and each process's CPU so far
#   cpu_report               # after it: each process in cores, the box busy, idle,
#                            # iowait and steal (time the hypervisor gave elsewhere)
#
# Counts from /proc/stat and /proc/PID/stat (utime + stime, in clock ticks); a process
# that exited before the report shows as gone. Everything not named (the load
# generator, the kernel, the shell) is in "other".
CPU_TICKS_PER_S="$(getconf CLK_TCK)"

cpu_box_ticks() { # user nice system idle iowait irq softirq steal
  awk '/^cpu / {print $2, $3, $4, $5, $6, $7, $8, $9; exit}' /proc/stat
}

cpu_process_ticks() { # utime + stime of PID; the name field may hold spaces
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || { echo gone; return; }
  echo "${stat##*) }" | awk '{print $12 + $13}'
}

cpu_mark() {
  CPU_NAMES=() CPU_PIDS=() CPU_START=()
  local pair
  for pair in "$@"; do
    CPU_NAMES+=("${pair%%=*}")
    CPU_PIDS+=("${pair#*=}")
    CPU_START+=("$(cpu_process_ticks "${pair#*=}")")
  done
  CPU_BOX_START="$(cpu_box_ticks)"
  CPU_WALL_START="$(date +%s.%N)"
}

cpu_report() { # cpu_report [--brief]: --brief prints one line, "busy B (name C, ...)"
  local wall box_end i now named=0 line=""
  wall="$(awk -v now="$(date +%s.%N)" -v start="$CPU_WALL_START" 'BEGIN {print now - start}')"
  box_end="$(cpu_box_ticks)"
  for i in "${!CPU_NAMES[@]}"; do
    now="$(cpu_process_ticks "${CPU_PIDS[$i]}")"
    if [ "$now" = gone ] || [ "${CPU_START[$i]}" = gone ]; then
      line+=" ${CPU_NAMES[$i]} gone,"
      continue
    fi
    named=$((named + now - CPU_START[i]))
    line+="$(awk -v t=$((now - CPU_START[i])) -v hz="$CPU_TICKS_PER_S" -v w="$wall" -v n="${CPU_NAMES[$i]}" \
      'BEGIN {printf " %s %.2f,", n, t / hz / w}')"
  done
  # shellcheck disable=SC2086
  set -- $CPU_BOX_START $box_end "${1:-}"
  awk -v hz="$CPU_TICKS_PER_S" -v w="$wall" -v named="$named" -v cores="$(nproc)" -v procs="$line" \
    -v u="$(($9 - $1 + ${10} - $2))" -v s="$((${11} - $3 + ${14} - $6 + ${15} - $7))" \
    -v idle="$((${12} - $4))" -v io="$((${13} - $5))" -v steal="$((${16} - $8))" -v brief="${17}" 'BEGIN {
      c = hz * w
      if (brief == "--brief") {
        printf "busy %.2f of %d (%s other %.2f)\n", (u + s) / c, cores, substr(procs, 2), (u + s - named) / c
        exit
      }
      gsub(/,/, "", procs)
      printf "cpu over %.0f s, in cores of %d: busy %.2f (user %.2f, system %.2f), idle %.2f, iowait %.2f, steal %.2f\n",
        w, cores, (u + s) / c, u / c, s / c, idle / c, io / c, steal / c
      printf "  by process:%s other %.2f\n", procs, (u + s - named) / c
    }'
}
