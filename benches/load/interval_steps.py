#!/usr/bin/env python3
"""What a running processor did between two snapshots of its /metrics: for a soak
(benches/load/latency.sh with CM_BENCH_RSS_EVERY_S), so a figure that grows through
the run shows which step grows with it. Prints one line: calls stored, batches,
calls per batch, the mean of the batch and of each step (ms), the mean age of the
records when gathered, and the keyed state's memtables.

    interval_steps.py PREVIOUS.prom CURRENT.prom
"""
import re
import sys

SERIES = re.compile(r'^(processor_(?:step_seconds|batch_seconds|record_age_seconds)(?:_sum|_count))(\{[^}]*\})? (\S+)$')


def read(path):
    values = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("processor_records_total{") and 'outcome="call"' in line:
                values["calls"] = float(line.rsplit(" ", 1)[1])
            elif line.startswith("processor_state_write_buffer_bytes "):
                values["write_buffer"] = float(line.rsplit(" ", 1)[1])
            else:
                m = SERIES.match(line)
                if m:
                    values[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return values


def main():
    before, after = read(sys.argv[1]), read(sys.argv[2])

    def delta(key):
        return after.get(key, 0.0) - before.get(key, 0.0)

    def mean_ms(name, labels=""):
        count = delta((name + "_count", labels))
        return 1000 * delta((name + "_sum", labels)) / count if count > 0 else float("nan")

    batches = delta(("processor_batch_seconds_count", ""))
    calls = delta("calls")
    parts = [
        f"calls {calls:.0f}",
        f"batches {batches:.0f}",
        f"calls/batch {calls / batches:.0f}" if batches else "calls/batch -",
        f"batch {mean_ms('processor_batch_seconds'):.0f} ms",
    ]
    steps = sorted({key[1] for key in after if isinstance(key, tuple) and key[0] == "processor_step_seconds_count"})
    for labels in steps:
        what = re.search(r'step="([^"]*)"', labels)
        if delta(("processor_step_seconds_count", labels)) > 0:
            parts.append(f"{what.group(1) if what else labels} {mean_ms('processor_step_seconds', labels):.0f}")
    ages = sorted({key[1] for key in after if isinstance(key, tuple) and key[0] == "processor_record_age_seconds_count"})
    for labels in ages:
        at = re.search(r'at="([^"]*)"', labels)
        if delta(("processor_record_age_seconds_count", labels)) > 0:
            parts.append(f"age at {at.group(1) if at else labels} {mean_ms('processor_record_age_seconds', labels):.0f}")
    if "write_buffer" in after:
        parts.append(f"state memtables {after['write_buffer'] / 2**20:.0f} MiB")
    print("steps " + " | ".join(parts))


if __name__ == "__main__":
    main()
