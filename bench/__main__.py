"""Every benchmark in one command: ``python -m bench`` (about ten minutes on two cores).

    python -m bench [--quick] [--only ingest,worker,e2e,delivery,rules,recommend]

Runs each benchmark script in its own process, one after the other (they
must not share the machine), with its defaults (``--quick``: shorter runs,
for a smoke check), and prints each one's table as it finishes. The numbers
in docs/performance.md come from this command. Exits non-zero if any
benchmark failed to run; whether a target is met is read from the tables.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: name -> (script, full-run arguments, quick-run arguments)
BENCHMARKS = {
    "ingest": ("ingest_bench.py", [], ["--duration", "5", "--rate-seconds", "3"]),
    "worker": (
        "worker_bench.py",
        [],
        ["--emails", "500", "--scheduled", "100000", "--due", "1000"],
    ),
    "e2e": ("e2e_bench.py", [], ["--seconds", "15", "--burst-seconds", "10"]),
    "delivery": ("delivery_bench.py", [], ["--deliveries", "100"]),
    "rules": ("rules_bench.py", [], []),
    "recommend": (
        "recommend_bench.py",
        [],
        ["--orders", "5000", "--lines", "50000", "--eval", "1000"],
    ),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke check)")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated names")
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(
            f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}"
        )
    failed = []
    for index, name in enumerate(names, 1):
        script, full, quick = BENCHMARKS[name]
        path = HERE / script
        if not path.exists():
            print(f"[{index}/{len(names)}] {name}: {script} is missing, skipped", flush=True)
            failed.append(name)
            continue
        command = [sys.executable, str(path), *(quick if args.quick else full)]
        print(f"[{index}/{len(names)}] {name}: {' '.join(command[1:])}", flush=True)
        started = time.monotonic()
        code = subprocess.call(command, cwd=HERE.parent)
        print(f"[{index}/{len(names)}] {name}: exit {code} in {time.monotonic() - started:.0f}s\n")
        if code != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
