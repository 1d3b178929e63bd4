#!/usr/bin/env bash
# Fuzzes every target in fuzz/ for SECONDS each (default 60) with cargo fuzz
# (libFuzzer), starting from the seed corpus in fuzz/seeds/<target>, and prints one
# line per target: executions, seconds, executions per second, new corpus entries,
# crashes. Crashes are left in fuzz/artifacts/<target>/; each one found becomes a
# seed (fuzz/seeds/<target>/crash_*) once fixed, so every test run replays it.
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]
#
# Not part of deploy/test.sh (it is long); the seed corpus is (see the fuzzing
# modules' tests). Installs cargo-fuzz if missing. libFuzzer needs nightly
# compiler flags: the nightly toolchain when there is one, else the stable one
# with RUSTC_BOOTSTRAP=1. No sanitizer (`-s none`): the code is safe Rust, and
# the C libraries it links (librdkafka) would take ASan far longer to build.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-60}"
shift || true
all=(coercions field_path mapping webhook_body signature_headers csv last_event_id calls_query aggregates_query)
targets=("${@:-${all[@]}}")
if [ "$#" -eq 0 ]; then targets=("${all[@]}"); fi

if ! command -v cargo-fuzz > /dev/null; then
  echo "installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi
toolchain=()
if rustup toolchain list 2> /dev/null | grep -q '^nightly'; then
  toolchain=(+nightly)
else
  export RUSTC_BOOTSTRAP=1
fi
export CARGO_TARGET_DIR="${CM_FUZZ_TARGET_DIR:-/var/tmp/callmatrix-fuzz-target}"
work=".data/fuzz"
mkdir -p "$work"
summary="$work/summary.txt"
: > "$summary"
cd fuzz
cargo "${toolchain[@]}" fuzz build -s none -O
for target in "${targets[@]}"; do
  corpus="../$work/corpus/$target"
  mkdir -p "$corpus" "artifacts/$target"
  cp -n seeds/"$target"/* "$corpus"/ 2> /dev/null || true
  before=$(ls "$corpus" | wc -l)
  crashes_before=$(ls "artifacts/$target" 2> /dev/null | wc -l)
  log="../$work/$target.log"
  set +e
  cargo "${toolchain[@]}" fuzz run -s none -O "$target" "$corpus" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 > "$log" 2>&1
  status=$?
  set -e
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  after=$(ls "$corpus" | wc -l)
  crashes=$(( $(ls "artifacts/$target" 2> /dev/null | wc -l) - crashes_before ))
  line=$(printf '%-18s %12s runs in %5s s = %8s/s, corpus %5s -> %5s, new crashes %s (exit %s)' \
    "$target" "${runs:-0}" "$seconds" "$(( ${runs:-0} / seconds ))" "$before" "$after" "$crashes" "$status")
  echo "$line" | tee -a "../$summary"
done
echo "summary in $work/summary.txt; logs in $work/<target>.log" >&2
