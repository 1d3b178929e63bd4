#!/usr/bin/env bash
# Where a running processor's time went, from its own histograms
# (`processor_step_seconds{step}`, `processor_batch_seconds`,
# `processor_record_age_seconds{at}`): per series the count, mean and total; the
# total as a share of the raw topic's batches (`processor_batch_seconds`, from a batch
# gathered to its commit; its sends overlap the next batch's reads, so shares are of a
# total a little above the wall time); and the bucket bound under which 99 % of the
# series fell (from the histogram's buckets: a bound, not an exact p99). The rollup
# worker's and the dead-letter recorder's steps run beside the batches, on the same
# cores, so their share says how much of that time they took.
#
#   benches/load/processor_steps.sh http://127.0.0.1:18086
set -euo pipefail
curl -fsS "${1:?the processor ops URL}/metrics" | awk '
  /^processor_(step_seconds|record_age_seconds|batch_seconds)_(sum|count)/ {
    key = $0; sub(/ [^ ]*$/, "", key)   # label values hold spaces: the value is the last field
    kind = (key ~ /_sum/) ? "sum" : "count"; sub(/_sum|_count/, "", key)
    v[key, kind] = $NF; keys[key] = 1
  }
  /^processor_(step_seconds|record_age_seconds|batch_seconds)_bucket/ {
    key = $0; sub(/ [^ ]*$/, "", key)
    le = key; sub(/.*le="/, "", le); sub(/".*/, "", le)
    sub(/_bucket/, "", key); sub(/,?le="[^"]*"/, "", key); sub(/\{\}/, "", key)
    n[key] += 1; bound[key, n[key]] = le; below[key, n[key]] = $NF
  }
  /^processor_records_total\{outcome="call"\}/ { calls = $NF }
  END {
    batches = v["processor_batch_seconds", "sum"]
    printf "  %-62s %8s %10s %9s %7s %10s\n", "series", "count", "mean ms", "total s", "share", "p99 <= ms"
    for (k in keys) if (v[k, "count"] > 0) {
      share = (batches > 0 && k !~ /record_age/) ? sprintf("%6.1f%%", 100 * v[k, "sum"] / batches) : "      -"
      p99 = "-"
      for (i = 1; i <= n[k]; i++) if (below[k, i] >= 0.99 * v[k, "count"]) {
        p99 = (bound[k, i] == "+Inf") ? "inf" : sprintf("%.0f", 1000 * bound[k, i]); break
      }
      printf "  %-62s %8d %10.1f %9.1f %7s %10s\n", k, v[k, "count"], 1000 * v[k, "sum"] / v[k, "count"], v[k, "sum"], share, p99
    }
    if (v["processor_batch_seconds", "count"] > 0)
      printf "  calls per batch of the raw topic: %.1f\n", calls / v["processor_batch_seconds", "count"]
  }'
