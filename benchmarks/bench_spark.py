"""Benchmark the Spark engine against the single-process pass on the same Parquet batch.

    python benchmarks/bench_spark.py [--rows 20000000] [--master local[2]] [--workdir DIR]
                                     [--reference-rows 100000] [--keep-data]

The data is `bench_evaluate.py`'s (23 columns, seeded numpy; the batch drifts mildly).
Each engine runs in a fresh child process that fits the same reference from its Parquet
file, then times `monitoring.evaluate` on the batch: one process reading the file, or
`spark.read.parquet` on a Spark session of `--master` (the session's start is reported
apart). The table gives the pass's seconds and their ratio, the Python driver's peak RSS,
the Spark JVM's peak RSS (in local mode the executors live in it too; their Python workers
are not counted), the partitions, and the size of the states collected to the driver
(one per partition). Both children print their digest and status, which must be
equal. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_evaluate import (  # noqa: E402 - the same data as the evaluate benchmark
    BATCH_SEED,
    CHILD_ENV,
    OUTPUT_DIR,
    REFERENCE_SEED,
    machine,
    write_parquet,
)

CHILD = r"""
import json, resource, sys, time
engine, reference_path, batch_path, master = sys.argv[1:5]
import monitoring
from monitoring.evaluation import spark_pass

reference = monitoring.fit_reference(reference_path, target="label", prediction="prediction")
out = {"engine": engine}
if engine == "spark":
    from monitoring.collect.sources.spark_frame import spark_session
    started = time.perf_counter()
    spark = spark_session(master)
    out["session_s"] = time.perf_counter() - started
    sizes = []
    profile = spark_pass.profile_partitions
    def measured(*args, **kwargs):
        states, rows = profile(*args, **kwargs)
        sizes.extend(len(s) for s in states)
        return states, rows
    spark_pass.profile_partitions = measured
    batch = spark.read.parquet(batch_path)
    out["partitions"] = batch.rdd.getNumPartitions()
else:
    batch = batch_path
started = time.perf_counter()
report = monitoring.evaluate(batch, reference)
out["seconds"] = time.perf_counter() - started
out.update(rows=report.n_rows, digest=report.batch_digest, status=report.status)
out["driver_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
if engine == "spark":
    out["state_bytes"] = sizes
    pid = spark.sparkContext._gateway.proc.pid
    status = open(f"/proc/{pid}/status").read()
    out["jvm_rss_mb"] = int(status.split("VmHWM:")[1].split()[0]) / 1024
    spark.stop()
print(json.dumps(out))
"""


def run(engine: str, workdir: Path, master: str) -> dict:
    env = {**os.environ, **CHILD_ENV}
    command = [
        sys.executable,
        "-c",
        CHILD,
        engine,
        str(workdir / "reference.parquet"),
        str(workdir / "batch.parquet"),
        master,
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=workdir)
    if done.returncode != 0:
        sys.exit(f"error: the {engine} child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000_000, help="batch rows")
    parser.add_argument("--reference-rows", type=int, default=100_000)
    parser.add_argument("--master", default="local[2]", help="Spark master URL")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep-data", action="store_true")
    args = parser.parse_args(argv)
    OUTPUT_DIR.mkdir(exist_ok=True)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="spark-", dir=OUTPUT_DIR))
    workdir.mkdir(parents=True, exist_ok=True)
    batch = workdir / "batch.parquet"
    if not batch.exists():
        print(f"writing {args.rows:,} batch rows ...", file=sys.stderr)
        write_parquet(
            workdir / "reference.parquet", args.reference_rows, seed=REFERENCE_SEED, drift=False
        )
        write_parquet(batch, args.rows, seed=BATCH_SEED, drift=True)
    single = run("single", workdir, args.master)
    spark = run("spark", workdir, args.master)
    if (single["digest"], single["status"]) != (spark["digest"], spark["status"]):
        sys.exit(f"error: the engines disagree: {single} vs {spark}")
    states = spark["state_bytes"]
    print(
        f"# {args.rows:,} rows, {batch.stat().st_size / 2**20:,.0f} MiB of Parquet; "
        f"Spark {args.master}, {spark['partitions']} partitions; " + "; ".join(machine())
    )
    print(
        f"{'engine':<8} {'pass s':>8} {'ratio':>6} {'driver RSS MB':>14} "
        f"{'JVM RSS MB':>11} {'session s':>10}"
    )
    print(
        f"{'single':<8} {single['seconds']:>8.2f} {1.0:>6.2f} "
        f"{single['driver_rss_mb']:>14.0f} {'-':>11} {'-':>10}"
    )
    print(
        f"{'spark':<8} {spark['seconds']:>8.2f} {spark['seconds'] / single['seconds']:>6.2f} "
        f"{spark['driver_rss_mb']:>14.0f} {spark['jvm_rss_mb']:>11.0f} "
        f"{spark['session_s']:>10.2f}"
    )
    print(
        f"states collected to the driver: {len(states)}, {sum(states) / 1024:,.0f} KiB in "
        f"all ({min(states) / 1024:,.0f} to {max(states) / 1024:,.0f} KiB each); "
        f"same digest {single['digest']} and status {single['status']!r}"
    )
    if not args.keep_data and args.workdir is None:
        shutil.rmtree(workdir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
