#!/usr/bin/env python3
"""The fault matrix's alert drill (tests/chaos/fault_matrix.sh, CM_FAULT_OUTAGES).

  alert_watch.py watch PROMETHEUS_URL LOG STOP_FILE
      every 5 s, reads Prometheus's alerts (/api/v1/alerts) and appends each change
      of state to LOG as `<unix s> alert <name> <pending|firing|resolved>`, until
      STOP_FILE exists. The drill appends `<unix s> down <part>` and `<unix s> up
      <part>` lines to the same log.
  alert_watch.py report LOG
      for each outage: each alert that changed state between the part going down and
      the next outage (or the end), with its times from the kill (pending, firing)
      and from the revive (resolved), as a Markdown table.
"""
import json
import os
import sys
import time
import urllib.request


def alerts(url):
    with urllib.request.urlopen(f"{url}/api/v1/alerts", timeout=5) as answer:
        body = json.load(answer)
    states = {}
    for alert in body["data"]["alerts"]:
        name = alert["labels"]["alertname"]
        # One line per alert name: firing wins over pending across label sets.
        if states.get(name) != "firing":
            states[name] = alert["state"]
    return states


def watch(url, log, stop):
    seen = {}
    while not os.path.exists(stop):
        try:
            now = alerts(url)
        except (OSError, ValueError, KeyError) as error:
            print(f"alert_watch: Prometheus did not answer: {error}", file=sys.stderr)
            time.sleep(5)
            continue
        stamp = int(time.time())
        with open(log, "a") as out:
            for name, state in sorted(now.items()):
                if seen.get(name) != state:
                    out.write(f"{stamp} alert {name} {state}\n")
            for name in sorted(set(seen) - set(now)):
                out.write(f"{stamp} alert {name} resolved\n")
        seen = now
        time.sleep(5)


def report(log):
    events = []
    for line in open(log):
        parts = line.split()
        if len(parts) >= 3:
            events.append((int(parts[0]), parts[1:]))
    events.sort(key=lambda e: e[0])
    outages = []  # (part, down, up)
    for stamp, fields in events:
        if fields[0] == "down":
            outages.append([fields[1], stamp, None])
        elif fields[0] == "up" and outages and outages[-1][0] == fields[1]:
            outages[-1][2] = stamp
    print("| part down | for | alert | pending after | firing after | resolved after the part was back |")
    print("| --- | --- | --- | --- | --- | --- |")
    for i, (part, down, up) in enumerate(outages):
        until = outages[i + 1][1] if i + 1 < len(outages) else float("inf")
        seen = {}
        for stamp, fields in events:
            if fields[0] != "alert" or not down <= stamp < until:
                continue
            name, state = fields[1], fields[2]
            seen.setdefault(name, {}).setdefault(state, stamp)
        length = f"{up - down} s" if up else "?"
        if not seen:
            print(f"| {part} | {length} | (none) | | | |")
        for name, states in sorted(seen.items()):
            if "pending" not in states and "firing" not in states:
                # Raised before this part went down (an earlier step), ended now.
                print(f"| {part} | {length} | {name} (from before) | | | ended {states['resolved'] - down} s after the kill |")
                continue
            since = lambda s: f"{states[s] - down} s" if s in states else "-"
            if "resolved" in states and up and states["resolved"] >= up:
                resolved = f"{states['resolved'] - up} s"
            elif "resolved" in states:
                resolved = f"while still down ({states['resolved'] - down} s after the kill)"
            else:
                resolved = "not by the next step"
            print(f"| {part} | {length} | {name} | {since('pending')} | {since('firing')} | {resolved} |")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "watch":
        watch(sys.argv[2], sys.argv[3], sys.argv[4])
    elif len(sys.argv) == 3 and sys.argv[1] == "report":
        report(sys.argv[2])
    else:
        sys.exit(__doc__)
