"""Benchmark `monitoring reference fit` and `monitoring evaluate` on a synthetic Parquet batch.

    python benchmarks/bench_evaluate.py [--rows 1000000] [--reference-rows 100000]
                                        [--workdir DIR] [--repeat 1] [--keep-data]

Generates (numpy, seeded) a reference and a batch of 23 columns: 16 numeric features, 4
categorical ones, `label`, `prediction` and `proba_1`; the batch drifts mildly in two
features. Each measured command runs in a fresh child process, waited for with
`os.wait4`, so its peak RSS is its own. The floor is pyarrow reading the batch and
`np.histogram` over every numeric column, timed inside its own child process. Prints a
table and writes it to WORKDIR/results.csv. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

OUTPUT_DIR = Path(__file__).resolve().parent / "output"
BLOCK_ROWS = 250_000  # rows generated and written per Parquet row group
REFERENCE_SEED = 0
BATCH_SEED = 1
N_NUMERIC = 16
CATEGORY_COUNTS = (3, 8, 15, 30)  # categories of cat_0 .. cat_3
MISSING_RATE = 0.01  # share of missing values in num_03
DRIFT_SHIFT = 0.25  # batch: num_00 mean shift, in standard deviations
DRIFT_TILT = 1.5  # batch: cat_1 category weights raised to this power (favours the common)
STDERR_TAIL_LINES = 25
CHILD_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}
STATUS_LINE = re.compile(r"^status: \S+ \(([\d,]+) rows, ([\d.]+) s\)", re.MULTILINE)
ROLES = ("--target", "label", "--prediction", "prediction")
MODEL_NAME = "bench"
VERSIONED = ("numpy", "pandas", "pyarrow", "mlflow", "torch")

# Runs in its own process: prints seconds to read the batch, then to read and histogram.
FLOOR_CODE = """
import sys, time
import numpy as np
import pyarrow.parquet as pq

path, columns, bins = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3])
started = time.perf_counter()
table = pq.read_table(path)
read = time.perf_counter() - started
for column in columns:
    np.histogram(table.column(column).drop_null().to_numpy(), bins=bins)
print(table.num_rows, read, time.perf_counter() - started)
"""
FLOOR_BINS = 10  # the default `drift.bins`


@dataclass(frozen=True)
class Row:
    """One line of the results table; `peak_rss_mb` is None when not measured separately."""

    step: str
    rows: int
    wall_s: float
    peak_rss_mb: float | None

    @property
    def rows_per_s(self) -> float | None:
        return self.rows / self.wall_s if self.rows and self.wall_s > 0 else None


@dataclass(frozen=True)
class ChildResult:
    wall_s: float
    peak_rss_mb: float
    stdout: str
    stderr: str


# --- data -----------------------------------------------------------------------------------


def _categories(n: int) -> np.ndarray:
    return np.array([f"c{i:02d}" for i in range(n)])


def _zipf_weights(n: int, power: float = 1.0) -> np.ndarray:
    weights = (1.0 / np.arange(1, n + 1)) ** power
    return weights / weights.sum()


def make_block(rng: np.random.Generator, rows: int, *, drift: bool) -> pa.Table:
    """One block of 23 columns; `drift` shifts num_00 and tilts cat_1."""
    columns: dict[str, np.ndarray] = {}
    latent = rng.standard_normal((rows, 3))
    # num_00 .. num_05: normal, correlated through three latent factors.
    for i in range(6):
        value = 0.6 * latent[:, i % 3] + 0.8 * rng.standard_normal(rows)
        columns[f"num_{i:02d}"] = value * (i + 1) + 10.0 * i
    if drift:
        columns["num_00"] = columns["num_00"] + DRIFT_SHIFT * np.std(columns["num_00"])
    missing = rng.random(rows) < MISSING_RATE
    # num_06 .. num_09: lognormal (skewed), num_06 tied to the first factor.
    for i in range(6, 10):
        tie = 0.5 * latent[:, 0] if i == 6 else 0.0
        columns[f"num_{i:02d}"] = np.exp(tie + rng.normal(0.0, 0.5 + 0.25 * (i - 6), rows))
    # num_10 .. num_13: integer counts (Poisson, rate tied to the second factor for num_10).
    for i in range(10, 14):
        rate = (i - 8) * np.exp(0.3 * latent[:, 1]) if i == 10 else float(i - 8)
        columns[f"num_{i:02d}"] = rng.poisson(rate, rows).astype(np.int64)
    columns["num_14"] = rng.uniform(0.0, 1.0, rows)
    columns["num_15"] = rng.exponential(2.0, rows)
    arrays: dict[str, pa.Array] = {name: pa.array(v) for name, v in columns.items()}
    arrays["num_03"] = pa.array(columns["num_03"], mask=missing)  # nulls, not NaN
    for j, n in enumerate(CATEGORY_COUNTS):
        power = DRIFT_TILT if drift and j == 1 else 1.0
        codes = rng.choice(n, size=rows, p=_zipf_weights(n, power))
        arrays[f"cat_{j}"] = pa.array(_categories(n)[codes])
    code0 = rng.choice(CATEGORY_COUNTS[0], size=rows, p=_zipf_weights(CATEGORY_COUNTS[0]))
    logit = (
        0.8 * latent[:, 0]
        - 0.5 * latent[:, 1]
        + 0.3 * np.log(columns["num_07"])
        + 0.4 * (code0 == 0)
        - 0.2
    )
    truth = rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))
    # The model sees a noisy version of the logit: realistic, imperfect scores.
    proba = 1.0 / (1.0 + np.exp(-(0.9 * logit + 0.5 * rng.standard_normal(rows))))
    arrays["label"] = pa.array(np.where(truth, "1", "0"))
    arrays["prediction"] = pa.array(np.where(proba >= 0.5, "1", "0"))
    arrays["proba_1"] = pa.array(proba)
    return pa.table(arrays)


def write_parquet(path: Path, rows: int, *, seed: int, drift: bool) -> float:
    """Write `rows` rows in row groups of BLOCK_ROWS; returns the seconds taken."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    writer: pq.ParquetWriter | None = None
    try:
        for start in range(0, rows, BLOCK_ROWS):
            block = make_block(rng, min(BLOCK_ROWS, rows - start), drift=drift)
            if writer is None:
                writer = pq.ParquetWriter(path, block.schema)
            writer.write_table(block, row_group_size=BLOCK_ROWS)
    finally:
        if writer is not None:
            writer.close()
    return time.perf_counter() - started


# --- children -------------------------------------------------------------------------------


def _rss_mb(rusage) -> float:
    """ru_maxrss is in kilobytes on Linux, bytes on macOS."""
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024
    return rusage.ru_maxrss / scale


def run_child(command: list[str], *, cwd: Path, env: dict[str, str], what: str) -> ChildResult:
    """Run `command`, timing it and reading its own peak RSS; exit when it fails."""
    out_path, err_path = cwd / ".child.stdout", cwd / ".child.stderr"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=err)
        _, status, rusage = os.wait4(process.pid, 0)  # this child's rusage, not all children's
        wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    stdout = out_path.read_text(errors="replace")
    stderr = err_path.read_text(errors="replace")
    out_path.unlink()
    err_path.unlink()
    if process.returncode != 0:
        tail = "\n".join(stderr.splitlines()[-STDERR_TAIL_LINES:])
        sys.exit(
            f"error: {what} failed with exit code {process.returncode}\n"
            f"command: {_shown(command)}\n--- stderr (last {STDERR_TAIL_LINES} lines) ---\n"
            f"{tail}"
        )
    return ChildResult(wall, _rss_mb(rusage), stdout, stderr)


def _shown(command: list[str]) -> str:
    """The command line, with a multi-line `python -c` program elided."""
    return " ".join("<program>" if "\n" in part else part for part in command)


def monitoring_command() -> list[str]:
    """The `monitoring` console script beside this interpreter, else `python -m`."""
    script = Path(sys.executable).parent / "monitoring"
    return [str(script)] if script.exists() else [sys.executable, "-m", "monitoring.cli.main"]


def evaluate_seconds(stdout: str) -> tuple[int, float]:
    """Rows and seconds from the CLI's "status: ... (N rows, X s)" line."""
    found = STATUS_LINE.search(stdout)
    if found is None:
        sys.exit(f"error: no status line in the output of `monitoring evaluate`:\n{stdout}")
    return int(found.group(1).replace(",", "")), float(found.group(2))


# --- report ---------------------------------------------------------------------------------


def machine(versioned: Sequence[str] = VERSIONED) -> list[str]:
    """Two lines: the processor and core count, then Python and the packages' versions."""
    versions = []
    for name in versioned:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [
        f"machine: {platform.machine()}, {_cpu_model()}, nproc {usable} "
        f"(cpu_count {os.cpu_count()}), {platform.system()} {platform.release()}",
        f"python {platform.python_version()}; " + ", ".join(versions),
    ]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown cpu"


def format_table(rows: list[Row]) -> str:
    header = ("step", "rows", "wall s", "rows/s", "peak RSS MB")
    cells = [
        (
            r.step,
            f"{r.rows:,}",
            f"{r.wall_s:.2f}",
            "-" if r.rows_per_s is None else f"{r.rows_per_s:,.0f}",
            "-" if r.peak_rss_mb is None else f"{r.peak_rss_mb:,.0f}",
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header))]

    def line(values: tuple[str, ...]) -> str:
        first = values[0].ljust(widths[0])
        rest = (v.rjust(w) for v, w in zip(values[1:], widths[1:], strict=True))
        return "  ".join([first, *rest])

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(c) for c in cells)])


def write_csv(path: Path, rows: list[Row]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "rows", "wall_s", "rows_per_s", "peak_rss_mb"])
        for r in rows:
            rss = "" if r.peak_rss_mb is None else f"{r.peak_rss_mb:.1f}"
            speed = "" if r.rows_per_s is None else f"{r.rows_per_s:.0f}"
            writer.writerow([r.step, r.rows, f"{r.wall_s:.3f}", speed, rss])


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="batch rows")
    parser.add_argument("--reference-rows", type=int, default=100_000, help="reference rows")
    parser.add_argument(
        "--workdir", type=Path, help="default: a new temporary folder under benchmarks/output/"
    )
    parser.add_argument("--repeat", type=int, default=1, help="times `evaluate` is run")
    parser.add_argument(
        "--keep-data", action="store_true", help="keep the Parquet files after the run"
    )
    args = parser.parse_args(argv)
    for name in ("rows", "reference_rows", "repeat"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    return args


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.workdir is None:
        OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix="bench-", dir=OUTPUT_DIR))
    else:
        workdir = args.workdir.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
    reference_path = workdir / "reference.parquet"
    batch_path = workdir / "batch.parquet"
    env = {
        **os.environ,
        **CHILD_ENV,
        "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}",
    }
    env.pop("MLFLOW_RUN_ID", None)
    log(f"workdir: {workdir}")

    seconds = write_parquet(reference_path, args.reference_rows, seed=REFERENCE_SEED, drift=False)
    log(f"generated reference: {args.reference_rows:,} rows in {seconds:.1f} s")
    seconds = write_parquet(batch_path, args.rows, seed=BATCH_SEED, drift=True)
    size_mb = batch_path.stat().st_size / 1e6
    log(f"generated batch: {args.rows:,} rows ({size_mb:.0f} MB) in {seconds:.1f} s")

    rows: list[Row] = []
    cli = monitoring_command()
    imported = run_child(
        [sys.executable, "-c", "import monitoring.track.pipeline"],
        cwd=workdir,
        env=env,
        what="import monitoring.track.pipeline",
    )
    rows.append(
        Row(
            "python -c 'import monitoring.track.pipeline'", 0, imported.wall_s, imported.peak_rss_mb
        )
    )

    fit = run_child(
        [*cli, "reference", "fit", str(reference_path), *ROLES],
        cwd=workdir,
        env=env,
        what="monitoring reference fit",
    )
    lines = fit.stdout.strip().splitlines()
    if not lines:
        sys.exit("error: `monitoring reference fit` printed no reference id")
    reference_id = lines[-1].strip()
    log(f"reference fit: id {reference_id} in {fit.wall_s:.1f} s")
    rows.append(Row("reference fit (CLI)", args.reference_rows, fit.wall_s, fit.peak_rss_mb))

    stamp = time.strftime("%Y%m%d-%H%M%S")
    for i in range(1, args.repeat + 1):
        suffix = f" #{i}" if args.repeat > 1 else ""
        done = run_child(
            [*cli, "evaluate", str(batch_path), "--reference", reference_id]
            + ["--batch-id", f"bench-{stamp}-{i}", "--model-name", MODEL_NAME],
            cwd=workdir,
            env=env,
            what="monitoring evaluate",
        )
        n_rows, evaluated = evaluate_seconds(done.stdout)
        log(f"evaluate{suffix}: {done.wall_s:.1f} s wall, {evaluated:.1f} s evaluating")
        rows.append(Row(f"evaluate (CLI){suffix}", n_rows, done.wall_s, done.peak_rss_mb))
        rows.append(Row(f"  of which evaluation{suffix}", n_rows, evaluated, None))
    log(done.stdout.rstrip())

    numeric = ",".join(f"num_{i:02d}" for i in range(N_NUMERIC))
    floor = run_child(
        [sys.executable, "-c", FLOOR_CODE, str(batch_path), numeric, str(FLOOR_BINS)],
        cwd=workdir,
        env=env,
        what="the floor (pyarrow read + np.histogram)",
    )
    n_read, read_s, total_s = floor.stdout.split()
    rows.append(Row("floor: pyarrow read", int(n_read), float(read_s), None))
    rows.append(Row("floor: read + np.histogram", int(n_read), float(total_s), floor.peak_rss_mb))

    if not args.keep_data:
        reference_path.unlink()
        batch_path.unlink()
    results = workdir / "results.csv"
    write_csv(results, rows)
    print("\n".join(machine()))
    print(format_table(rows))
    print(f"results: {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
