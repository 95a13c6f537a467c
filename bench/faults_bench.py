"""Fault scenarios (a)-(d) at volume: jobs lost, duplicate events, renditions written twice,
time to drain. FAULT_JOBS jobs per scenario (default 200), on a local cloud of its own.

Reported beside a baseline run of the same number of jobs with no fault, in the same run.
"""
from __future__ import annotations

import os
import signal
import sys
import tempfile
from pathlib import Path

from localcloud import chaos
from localcloud.stack import private_stack

SCENARIOS = [
    ("baseline (no fault)", lambda cfg, n: chaos.run_jobs(cfg, n, timeout=900)),
    ("(a) every push twice", lambda cfg, n: chaos.scenario_duplicates(cfg, n, timeout=900)),
    ("(b) kill -9 render", lambda cfg, n: chaos.scenario_kill_render(cfg, n, timeout=900)),
    ("(c) cloud restarted", lambda cfg, n: chaos.scenario_restart_cloud(cfg, n, timeout=900)),
    ("(d) 20% storage+firestore faults", lambda cfg, n: chaos.scenario_transient_faults(cfg, n, 0.2, timeout=900)),
]
COLUMNS = ["jobs", "completed", "lost", "duplicate_events", "missing_events", "events_lost_by_emulator",
           "renditions_written_twice", "stage_redeliveries", "retried_calls", "redriven_by_sweep", "drain_seconds"]


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still stop the local cloud it started
    n = int(os.environ.get("FAULT_JOBS", "200"))
    with tempfile.TemporaryDirectory() as tmp, private_stack(Path(tmp), "mediarelay-bench") as cfg:
        rows = []
        for name, run in SCENARIOS:
            result = run(cfg, n)
            rows.append((name, result))
            print(f"{name}: {result.row()}", flush=True)
    base = rows[0][1].drain_seconds or 1
    print()
    print("| scenario | " + " | ".join(COLUMNS) + " | drain vs baseline |")
    print("|---" * (len(COLUMNS) + 2) + "|")
    for name, r in rows:
        row = r.row()
        print(f"| {name} | " + " | ".join(str(row[c]) for c in COLUMNS) + f" | {r.drain_seconds / base:.2f}x |")
