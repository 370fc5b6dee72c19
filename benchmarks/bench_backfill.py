"""Benchmark `monitoring backfill`: a year of daily batches in one process.

    python benchmarks/bench_backfill.py [--days 365] [--rows 2000] [--plots findings]
                                        [--workdir DIR]

Builds the demo's world for `--days` days of `--rows` rows (benchmarks/demo_store.py:
SQLite predictions database, registered model, stored reference), then runs, each in a
fresh child process: the backfill of every day (`--query ... WHERE day = :day --from 1
--to DAYS`), and the same command again (every batch already logged: what a resumed
backfill pays to skip them). Prints wall time, time per batch, peak RSS and the target
(365 batches under 2 minutes); writes the table to WORKDIR/results.csv.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_store import MODEL_NAME, QUERY, build_in_child  # noqa: E402

OUTPUT_DIR = Path(__file__).resolve().parent / "output"
TARGET_SECONDS = 120.0


def run_child(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB, output) of one child process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    output = process.stdout.read().decode() if process.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{output[-3000:]}")
    return seconds, usage.ru_maxrss / 1024, output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--plots", choices=["all", "findings", "none"], default="findings")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    OUTPUT_DIR.mkdir(exist_ok=True)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="backfill-", dir=OUTPUT_DIR))
    started = time.perf_counter()
    store = build_in_child(workdir, days=args.days, rows=args.rows)
    print(f"set-up: {time.perf_counter() - started:.1f} s ({workdir})", file=sys.stderr)
    command = [
        str(Path(sys.executable).with_name("monitoring")),
        "backfill", store.database, "--query", QUERY, "--partition-by", "day",
        "--from", "1", "--to", str(args.days), "--reference", store.reference_id,
        "--model-name", MODEL_NAME, "--model-version", "1", "--batch-id-format", "day-{value}",
        "--plots", args.plots,
    ]  # fmt: skip
    rows = []
    for step in ("backfill", "resume (all logged)"):
        seconds, rss, output = run_child(command, store.env())
        summary = [line for line in output.splitlines() if line.startswith("backfill:")]
        rows.append(
            {
                "step": step,
                "batches": args.days,
                "rows per batch": args.rows,
                "plots": args.plots,
                "wall s": round(seconds, 1),
                "s per batch": round(seconds / args.days, 3),
                "peak RSS MB": round(rss),
                "outcome": summary[-1] if summary else "",
            }
        )
    target = TARGET_SECONDS * args.days / 365
    met = "met" if rows[0]["wall s"] <= target else "NOT met"
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in columns))
    print(f"target: {args.days} batches in {target:.0f} s or less: {met}")
    with open(workdir / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
