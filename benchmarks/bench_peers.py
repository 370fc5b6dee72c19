"""Benchmark our evaluation against four peers, and a long batch against the floor.

    python benchmarks/bench_peers.py [--sizes 50000,1000000] [--reference-rows 100000]
                                     [--stream-rows 20000000] [--repeat 3] [--small]
                                     [--peers NAME,...] [--skip-peers] [--workdir DIR]
                                     [--keep-data]

For each batch size, on the same Parquet files (bench_evaluate's 23-column data, a
100,000-row reference; `--small`: batches of 5,000 and 50,000 rows against a 5,000-row
reference): ours in-process (`fit_reference`, the reference saved and read back, then
`evaluate`; no MLflow), ours with a small untrained torch MLP making the predictions, and
over the same 20 features Evidently's `DataDriftPreset`, NannyML's
`UnivariateDriftCalculator` and `DataReconstructionDriftCalculator`, alibi-detect's
`TabularDrift` (KS and chi-squared per column) and frouros' `KSTest`/`ChiSquareTest` per
column, each peer installed in its own virtual environment under benchmarks/output/venvs/.
Each child times its fit on the reference and its evaluation of the batch separately; the
tools run in `--repeat` interleaved rounds and the table shows medians and spreads, the
ratios ours/peer of fit + evaluate and of evaluate alone, and the issue's targets. Then a
long batch streamed by us only (the CLI, and in-process), against the floor: pyarrow
reading the file and `np.histogram` over every numeric column. Every measured step runs in
its own child process (peak RSS and page faults from `os.wait4`). Prints a table and the
targets, and writes WORKDIR/results.csv and WORKDIR/targets.csv. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_evaluate  # noqa: E402  (the data, the child runner's pieces and the floor)

VENVS_DIR = bench_evaluate.OUTPUT_DIR / "venvs"
REFERENCE_ROWS = 100_000
DEFAULT_SIZES = (50_000, 1_000_000)
DEFAULT_STREAM_ROWS = 20_000_000
SMALL_REFERENCE_ROWS = 5_000  # --small: what users run day to day
SMALL_SIZES = (5_000, 50_000)
DEFAULT_REPEAT = 3  # rounds at each of --sizes: the machine is shared and noisy
NUMERICAL = tuple(f"num_{i:02d}" for i in range(bench_evaluate.N_NUMERIC))
CATEGORICAL = tuple(f"cat_{j}" for j in range(len(bench_evaluate.CATEGORY_COUNTS)))
PREDICTION_COLUMNS = ("prediction", "proba_1")  # left out of the batch the MLP predicts for
CHILD_LIMIT_S = 600  # a peer (or our step) still running after this is killed: "timeout"
STREAM_LIMIT_S = 3600  # the same for the long streamed batch
INSTALL_LIMIT_S = 1800  # one `pip install` into a peer's virtual environment
OURS, OURS_MLP, OURS_CLI = "ours", "ours + MLP", "ours (CLI)"
FLOOR = "floor"
EVIDENTLY, NANNYML_UNIVARIATE, NANNYML_MULTIVARIATE = (
    "evidently",
    "nannyml univariate",
    "nannyml multivariate",
)
ALIBI, FROUROS = "alibi-detect", "frouros"
P_VALUE = 0.05  # alibi-detect's and frouros' per-column tests: drifted below this p-value

# What each peer's virtual environment gets. The latest releases resolve to a broken
# environment on their own: evidently 0.7.23 imports `infer_dtype_from_object`, which
# pandas 3 removed, and nannyml 0.13.1 imports statsmodels without requiring it.
# alibi-detect is its core only (no `[torch]`/`[tensorflow]` extra: KS and chi-squared
# need neither); alibi-detect and frouros read no Parquet themselves, hence pyarrow, and
# alibi-detect 0.13.0 requires numpy < 2, which recent pyarrow refuses at import (26.0.1
# does; 21.0.0 takes it).
PEER_REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "evidently": ("evidently", "pandas<3"),
    "nannyml": ("nannyml", "statsmodels"),
    "alibi-detect": ("alibi-detect", "pyarrow<22"),
    "frouros": ("frouros", "pandas", "pyarrow"),
}
PEER_MODULES = {"alibi-detect": "alibi_detect"}  # imported to check a peer's environment
PEER_VERSIONED = ("pandas", "numpy", "scipy")  # shown beside the peer's own version
PEER_ENV = {  # no usage telemetry from the peers (nothing outside is reachable anyway)
    "DO_NOT_TRACK": "1",
    "EVIDENTLY_DISABLE_TELEMETRY": "1",
    "NML_DISABLE_USAGE_LOGGING": "1",
}

# Targets (issue 21). With the SMALL_REFERENCE_ROWS reference, at each of SMALL_SIZES:
# ours' fit + evaluate faster than each of these peers' (ours/peer below 1)...
SMALL_FASTER_THAN = (NANNYML_UNIVARIATE, NANNYML_MULTIVARIATE)
ALIBI_SHARE = 1.5  # ...and at most this many times alibi-detect's;
STORED_ROWS = 50_000  # here, evaluating against a stored reference: faster than alibi-detect.
# With the REFERENCE_ROWS reference, at TARGET_ROWS: fit + evaluate this many times faster...
TARGET_ROWS = 1_000_000
SPEEDUP_TARGETS = {EVIDENTLY: 25.0, NANNYML_UNIVARIATE: 5.0}
EVIDENTLY_MEMORY_SHARE = 0.4  # ...and ours at most this share of Evidently's peak RSS;
STREAM_RSS_LIMIT_MB = 1.5e9 / 2**20  # the long batch: peak RSS under 1.5 GB (in MiB, as shown)
FLOOR_FACTOR = 3.0  # and its evaluation within this many times the floor's time

# Ours, in its own process: prints a JSON line (seconds to fit, to read the stored reference,
# to evaluate; the page faults of the evaluation; the result). The reference is saved and
# read back before `evaluate`, as a stored reference is used. `import monitoring` is lazy:
# the modules that fit and evaluate import on first use (scipy's, pyarrow's) are timed in
# them; their number is in the note (the MLP's torch import is not among them).
OURS_CODE = """
import json, resource, sys, tempfile, time
started = time.perf_counter()
from monitoring import evaluate, fit_reference, load_reference_files, save_reference

reference_path, batch_path, mode = sys.argv[1], sys.argv[2], sys.argv[3]
model = None
if mode == "mlp":
    import torch

    class MLP(torch.nn.Module):
        classes = ["0", "1"]

        def __init__(self, n_inputs):
            super().__init__()
            self.layers = torch.nn.Sequential(
                torch.nn.Linear(n_inputs, 64), torch.nn.ReLU(),
                torch.nn.Linear(64, 64), torch.nn.ReLU(),
                torch.nn.Linear(64, 2),
            )

        def forward(self, x):
            return self.layers(torch.nan_to_num(x))  # num_03 has missing values

imported = time.perf_counter()
modules = len(sys.modules)
fitted_reference = fit_reference(reference_path, target="label", prediction="prediction")
fitted = time.perf_counter()
with tempfile.TemporaryDirectory() as folder:
    save_reference(fitted_reference, folder)
    saved = time.perf_counter()
    reference = load_reference_files(folder)
    read = time.perf_counter()
if mode == "mlp":
    torch.manual_seed(0)
    model = MLP(len(reference.schema.numerical)).eval()  # untrained: speed, not accuracy
before = resource.getrusage(resource.RUSAGE_SELF)
evaluating = time.perf_counter()
report = evaluate(batch_path, reference, model=model)
done = time.perf_counter()
after = resource.getrusage(resource.RUSAGE_SELF)
modules = len(sys.modules) - modules  # imported on first use: timed in fit and evaluate
features = [c for c in report.columns if c.role == "feature"]
print(json.dumps({
    "import_s": imported - started, "fit_s": fitted - imported, "load_s": read - saved,
    "evaluate_s": done - evaluating, "rows": report.n_rows,
    "evaluate_faults": after.ru_minflt - before.ru_minflt + after.ru_majflt - before.ru_majflt,
    "modules_imported": modules,
    "note": f"{sum(c.drifted for c in features)}/{len(features)} drifted, {report.status}, "
    f"{modules} modules imported in fit + evaluate",
}))
"""

# The peers read the same Parquet files with pandas (`load_s`, with whatever conversion the
# tool needs to take them), then time their fit on the reference (`fit_s`) and their
# evaluation of the batch (`evaluate_s`) apart, or both together where they cannot be
# separated (`fit_evaluate_s`). Arguments: reference, batch, numerical and categorical
# features (comma-separated), then the program's own.
PEER_PROLOGUE = """
import json, sys, time, warnings
warnings.filterwarnings("ignore")
started = time.perf_counter()
import numpy as np
import pandas as pd
"""
PEER_LOAD = """
reference_path, batch_path = sys.argv[1], sys.argv[2]
numerical, categorical = sys.argv[3].split(","), sys.argv[4].split(",")
features = numerical + categorical
imported = time.perf_counter()
reference = pd.read_parquet(reference_path, columns=features)
batch = pd.read_parquet(batch_path, columns=features)
"""

# Evidently, in its own process and virtual environment; detects its API generation. Its
# report takes the reference and the batch together: no fit to keep, `fit_evaluate_s` only.
EVIDENTLY_CODE = (
    PEER_PROLOGUE
    + """
try:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset
    api = "0.7"
except ImportError:
    from evidently.metric_preset import DataDriftPreset
    from evidently.report import Report
    try:
        from evidently import ColumnMapping
    except ImportError:
        from evidently.pipeline.column_mapping import ColumnMapping
    api = "legacy"
"""
    + PEER_LOAD
    + """
loaded = time.perf_counter()
if api == "0.7":
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    current = Dataset.from_pandas(batch, data_definition=definition)
    ref = Dataset.from_pandas(reference, data_definition=definition)
    snapshot = Report([DataDriftPreset(columns=features)]).run(current, ref)
    done = time.perf_counter()
    counted = snapshot.dict()["metrics"][0]["value"]
    drifted = int(counted["count"]) if isinstance(counted, dict) else counted
else:
    mapping = ColumnMapping(
        target=None, prediction=None,
        numerical_features=numerical, categorical_features=categorical,
    )
    report = Report(metrics=[DataDriftPreset(columns=features)])
    report.run(reference_data=reference, current_data=batch, column_mapping=mapping)
    done = time.perf_counter()
    drifted = report.as_dict()["metrics"][0]["result"]["number_of_drifted_columns"]
print(json.dumps({
    "import_s": imported - started, "load_s": loaded - imported,
    "fit_evaluate_s": done - loaded, "rows": len(batch),
    "note": f"{drifted}/{len(features)} drifted, API {api}",
}))
"""
)

# NannyML, in its own process and virtual environment: one chunk for the whole batch. Its
# last argument picks the calculator: `univariate` (KS and Jensen-Shannon on the numerical
# features, chi-squared and Jensen-Shannon on the categorical ones) or `multivariate`
# (PCA reconstruction error, `DataReconstructionDriftCalculator`, its defaults).
NANNYML_CODE = (
    PEER_PROLOGUE
    + """
import inspect
import nannyml
"""
    + PEER_LOAD
    + """
mode = sys.argv[5]
loaded = time.perf_counter()
if mode == "multivariate":
    calculator = nannyml.DataReconstructionDriftCalculator(
        column_names=features, chunk_number=1
    )
else:
    options = dict(
        column_names=features,
        continuous_methods=["kolmogorov_smirnov", "jensen_shannon"],
        categorical_methods=["chi2", "jensen_shannon"],
        chunk_number=1,
    )
    accepted = inspect.signature(nannyml.UnivariateDriftCalculator).parameters
    if "treat_as_categorical" in accepted:
        options["treat_as_categorical"] = categorical
    if "treat_as_numerical" in accepted:
        options["treat_as_numerical"] = numerical
    calculator = nannyml.UnivariateDriftCalculator(**options)
calculator.fit(reference)
fitted = time.perf_counter()
result = calculator.calculate(batch)
done = time.perf_counter()
table = result.filter(period="analysis").to_df()
alerts = [c for c in table.columns if c[-1] == "alert"]
if mode == "multivariate":
    error = float(table[("reconstruction_error", "value")].iloc[-1])
    alerted = bool(table[alerts[0]].iloc[-1])
    note = f"reconstruction error {error:.4f}, alert {alerted} (1-chunk thresholds)"
else:
    alerted = {c[0] for c in alerts if bool(table[c].iloc[-1])}
    note = f"{len(alerted)}/{len(features)} alerted (1-chunk thresholds)"
print(json.dumps({
    "import_s": imported - started, "load_s": loaded - imported,
    "fit_s": fitted - loaded, "evaluate_s": done - fitted, "rows": len(batch), "note": note,
}))
"""
)

# alibi-detect's TabularDrift, in its own process and virtual environment: a two-sample KS
# test per numerical column and a chi-squared test per categorical one, on one numeric
# array. Loading codes the categories as integers, the reference's categories for both
# files. Missing values (num_03) go in as NaN: alibi-detect takes them as they are.
ALIBI_CODE = (
    PEER_PROLOGUE
    + """
import alibi_detect
from alibi_detect.cd import TabularDrift
"""
    + PEER_LOAD
    + """
p_value = float(sys.argv[5])
for column in categorical:
    categories = pd.Categorical(reference[column]).categories
    reference[column] = pd.Categorical(reference[column], categories=categories).codes
    batch[column] = pd.Categorical(batch[column], categories=categories).codes
x_ref = reference.to_numpy(dtype=np.float64)
x = batch.to_numpy(dtype=np.float64)
loaded = time.perf_counter()
per_feature = {i: None for i in range(len(numerical), len(features))}  # None: as in x_ref
detector = TabularDrift(x_ref, p_val=p_value, categories_per_feature=per_feature)
fitted = time.perf_counter()
found = detector.predict(x, drift_type="feature")
done = time.perf_counter()
p_values = np.asarray(found["data"]["p_val"], dtype=float)
drifted = int(np.sum(np.asarray(found["data"]["is_drift"])))
print(json.dumps({
    "import_s": imported - started, "load_s": loaded - imported,
    "fit_s": fitted - loaded, "evaluate_s": done - fitted, "rows": len(batch),
    "note": f"{drifted}/{len(features)} drifted (p < {p_value:g}, per column), "
    f"{int(np.isnan(p_values).sum())} p-values NaN",
}))
"""
)

# frouros, in its own process and virtual environment: `KSTest` per numerical column and
# `ChiSquareTest` per categorical one, each fitted on its reference column and compared
# with the batch's. Loading drops each column's missing values (num_03).
FROUROS_CODE = (
    PEER_PROLOGUE
    + """
from frouros.detectors.data_drift import ChiSquareTest, KSTest
"""
    + PEER_LOAD
    + """
p_value = float(sys.argv[5])
x_ref = {c: reference[c].dropna().to_numpy() for c in features}
x = {c: batch[c].dropna().to_numpy() for c in features}
loaded = time.perf_counter()
detectors = {c: KSTest() for c in numerical} | {c: ChiSquareTest() for c in categorical}
for column, detector in detectors.items():
    detector.fit(X=x_ref[column])
fitted = time.perf_counter()
p_values = {c: d.compare(X=x[c])[0].p_value for c, d in detectors.items()}
done = time.perf_counter()
drifted = sum(p < p_value for p in p_values.values())
print(json.dumps({
    "import_s": imported - started, "load_s": loaded - imported,
    "fit_s": fitted - loaded, "evaluate_s": done - fitted, "rows": len(batch),
    "note": f"{drifted}/{len(features)} drifted (p < {p_value:g}, per column)",
}))
"""
)

# The jobs of each peer's virtual environment: (tool, program, its own arguments).
PEER_JOBS: dict[str, tuple[tuple[str, str, tuple[str, ...]], ...]] = {
    "evidently": ((EVIDENTLY, EVIDENTLY_CODE, ()),),
    "nannyml": (
        (NANNYML_UNIVARIATE, NANNYML_CODE, ("univariate",)),
        (NANNYML_MULTIVARIATE, NANNYML_CODE, ("multivariate",)),
    ),
    "alibi-detect": ((ALIBI, ALIBI_CODE, (str(P_VALUE),)),),
    "frouros": ((FROUROS, FROUROS_CODE, (str(P_VALUE),)),),
}


@dataclass(frozen=True)
class Peer:
    """A peer's virtual environment: its interpreter and versions, or why it is unusable."""

    name: str
    python: Path | None
    version: str  # the peer's own, from `pip show`
    environment: str = ""  # versions of PEER_VERSIONED in its virtual environment
    error: str | None = None


@dataclass(frozen=True)
class Measure:
    """One line of the table: one run, or the medians of a tool's rounds (`rounds`).
    Seconds are None where the step has no such part."""

    rows: int
    tool: str
    version: str
    status: str  # ok, failed, timeout, not installed
    wall_s: float | None = None  # the whole child process
    import_s: float | None = None  # the child's imports, before its clock for the rest starts
    # Peers: Parquet to what the tool takes; ours: reading the stored reference back;
    # the floor: pyarrow's read. Not part of fit + evaluate.
    load_s: float | None = None
    fit_s: float | None = None  # fitting on the reference (its construction, for alibi-detect)
    evaluate_s: float | None = None  # the batch against the fitted (stored) reference
    work_s: float | None = None  # fit + evaluate (Evidently: its report, which does both)
    peak_rss_mb: float | None = None
    page_faults: float | None = None  # the child's minor + major faults (`os.wait4`)
    evaluate_faults: float | None = None  # ours: the faults of the `evaluate` call alone
    evaluate_range: tuple[float, float] | None = None  # min and max over the rounds
    work_range: tuple[float, float] | None = None
    rounds: int = 1
    note: str = ""

    @property
    def rows_per_s(self) -> float | None:
        seconds = self.evaluate_s if self.evaluate_s is not None else self.work_s
        return self.rows / seconds if seconds else None


@dataclass(frozen=True)
class Target:
    what: str
    value: str
    met: bool | None  # None: not measured


Found = dict[tuple[int, str], Measure]  # the successful lines by (rows, tool)


@dataclass(frozen=True)
class ChildRun(bench_evaluate.ChildResult):
    """A child's result with its page faults (minor + major, from `os.wait4`)."""

    page_faults: int = 0


# --- children -------------------------------------------------------------------------------


def run_limited(
    command: Sequence[str], *, cwd: Path, env: dict[str, str], limit_s: float
) -> tuple[str, ChildRun]:
    """Run `command` in its own session, killed after `limit_s`; (status, result), no exit.

    Like bench_evaluate.run_child (wall time, and the peak RSS and page faults of this child
    from `os.wait4`), but a failure or a timeout is returned as a status for the table.
    """
    out_path, err_path = cwd / ".child.stdout", cwd / ".child.stderr"
    timed_out = threading.Event()
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            list(command), cwd=cwd, env=env, stdout=out, stderr=err, start_new_session=True
        )

        def kill() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                os.killpg(process.pid, signal.SIGKILL)

        timer = threading.Timer(limit_s, kill)
        timer.start()
        try:
            _, status, rusage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    result = ChildRun(
        wall,
        bench_evaluate._rss_mb(rusage),
        out_path.read_text(errors="replace"),
        err_path.read_text(errors="replace"),
        page_faults=rusage.ru_minflt + rusage.ru_majflt,
    )
    out_path.unlink()
    err_path.unlink()
    if timed_out.is_set():
        return "timeout", result
    if process.returncode != 0:
        tail = result.stderr.splitlines()[-bench_evaluate.STDERR_TAIL_LINES :]
        log(f"  failed (exit {process.returncode}): {bench_evaluate._shown(list(command))}")
        log("\n".join(f"  | {line}" for line in tail))
        return "failed", result
    return "ok", result


def last_json(stdout: str) -> dict[str, object]:
    """The JSON object a child program prints last."""
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError(f"no JSON line in the child's output:\n{stdout}")


def measure_child(
    rows: int,
    tool: str,
    version: str,
    command: Sequence[str],
    *,
    cwd: Path,
    env: dict[str, str],
    limit_s: float,
) -> Measure:
    """Run a child program that prints a JSON line of timings; its Measure, whatever happens."""
    log(f"{rows:,} rows, {tool}: running")
    status, child = run_limited(command, cwd=cwd, env=env, limit_s=limit_s)
    measure = Measure(
        rows,
        tool,
        version,
        status,
        child.wall_s,
        peak_rss_mb=child.peak_rss_mb,
        page_faults=child.page_faults,
    )
    if status == "timeout":
        measure = replace(measure, note=f"killed after {limit_s:.0f} s")
    if status != "ok":
        log(f"{rows:,} rows, {tool}: {status} after {child.wall_s:.1f} s")
        return measure
    try:
        found = last_json(child.stdout)
    except ValueError:
        log(f"{rows:,} rows, {tool}: no timings in its output:\n{child.stdout[-2000:]}")
        return replace(measure, status="failed", note="no timings in its output")
    fit_s, evaluate_s = _seconds(found.get("fit_s")), _seconds(found.get("evaluate_s"))
    work_s = _seconds(found.get("fit_evaluate_s"))
    if work_s is None and evaluate_s is not None:
        work_s = (fit_s or 0.0) + evaluate_s
    faults = found.get("evaluate_faults")
    measure = replace(
        measure,
        import_s=_seconds(found.get("import_s")),
        load_s=_seconds(found.get("load_s")),
        fit_s=fit_s,
        evaluate_s=evaluate_s,
        work_s=work_s,
        evaluate_faults=None if faults is None else float(faults),  # type: ignore[arg-type]
        evaluate_range=None if evaluate_s is None else (evaluate_s, evaluate_s),
        work_range=None if work_s is None else (work_s, work_s),
        note=str(found.get("note", "")),
    )
    log(
        f"{rows:,} rows, {tool}: {child.wall_s:.2f} s wall, fit {_time(fit_s)} s, "
        f"evaluate {_time(evaluate_s)} s, fit + evaluate {_time(work_s)} s, "
        f"{child.peak_rss_mb:,.0f} MB peak RSS ({measure.note})"
    )
    return measure


def _seconds(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


# --- peers' virtual environments ------------------------------------------------------------


def ensure_peer(name: str, requirements: Sequence[str]) -> Peer:
    """Create (once) and fill the peer's virtual environment; its versions or its error."""
    venv = VENVS_DIR / name
    python = venv / "bin" / "python"
    marker = venv / "requirements.txt"  # written once the install succeeded
    wanted = "\n".join(requirements) + "\n"
    install_log = VENVS_DIR / f"{name}-install.log"
    if not (python.exists() and marker.exists() and marker.read_text() == wanted):
        VENVS_DIR.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        with install_log.open("w") as handle:
            if not python.exists():
                log(f"{name}: creating {venv}")
                step = [sys.executable, "-m", "venv", str(venv)]
                error = _run_logged(step, handle, name)
                if error:
                    return Peer(name, None, "-", error=error)
            log(f"{name}: pip install {' '.join(requirements)} (can take minutes)")
            step = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
            error = _run_logged([*step, *requirements], handle, name)
        if error:
            return Peer(name, None, "-", error=f"{error} (log: {install_log})")
        marker.write_text(wanted)
        log(f"{name}: installed in {time.perf_counter() - started:.0f} s")
    else:
        log(f"{name}: reusing {venv}")
    version, environment = _installed_versions(python, name)
    module = PEER_MODULES.get(name, name)
    check = subprocess.run(  # the peer, and pyarrow: every peer's child reads Parquet files
        [str(python), "-c", f"import {module}, pyarrow"],
        capture_output=True,
        text=True,
        env={**os.environ, **PEER_ENV},
    )
    if check.returncode != 0:
        last = (check.stderr.strip().splitlines() or ["?"])[-1]
        return Peer(name, None, version, environment, f"`import {module}, pyarrow` fails: {last}")
    return Peer(name, python, version, environment)


def _run_logged(command: list[str], handle, name: str) -> str | None:
    """Run an install step, its output to `handle` and its progress lines to stderr."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    timer = threading.Timer(INSTALL_LIMIT_S, process.kill)
    timer.start()
    last = ""
    try:
        assert process.stdout is not None
        for line in process.stdout:
            handle.write(line)
            if line.startswith(("Collecting", "Installing", "Successfully", "ERROR")):
                log(f"  {name}: {line.rstrip()[:150]}")
            if line.strip() and not line.startswith("WARNING"):
                last = line.strip()
        code = process.wait()
    finally:
        timer.cancel()
    return None if code == 0 else f"`{_install_step(command)}` failed ({code}): {last[:300]}"


def _install_step(command: list[str]) -> str:
    """An install step as typed: `python -m venv DIR` or `pip install REQUIREMENTS`."""
    return " ".join(
        command[command.index("pip") :] if "pip" in command else ["python", *command[1:]]
    )


def _installed_versions(python: Path, name: str) -> tuple[str, str]:
    """`pip show` versions: the peer's, and those of PEER_VERSIONED in its environment."""
    shown = subprocess.run(
        [str(python), "-m", "pip", "show", name, *PEER_VERSIONED],
        capture_output=True,
        text=True,
    ).stdout
    versions: dict[str, str] = {}
    current = ""
    for line in shown.splitlines():
        if line.startswith("Name:"):
            current = line.split(":", 1)[1].strip().lower()
        elif line.startswith("Version:") and current:
            versions[current] = line.split(":", 1)[1].strip()
    own = versions.pop(name, "?")
    return own, ", ".join(f"{k} {v}" for k, v in versions.items())


# --- data -----------------------------------------------------------------------------------


def write_batches(path: Path, without_prediction: Path, rows: int) -> float:
    """The batch (bench_evaluate's, seed and drift) and the same rows without predictions."""
    started = time.perf_counter()
    rng = np.random.default_rng(bench_evaluate.BATCH_SEED)
    writers: list[pq.ParquetWriter] = []
    try:
        for start in range(0, rows, bench_evaluate.BLOCK_ROWS):
            block = bench_evaluate.make_block(
                rng, min(bench_evaluate.BLOCK_ROWS, rows - start), drift=True
            )
            blocks = [block, block.drop_columns(list(PREDICTION_COLUMNS))]
            if not writers:
                writers = [
                    pq.ParquetWriter(p, b.schema)
                    for p, b in zip((path, without_prediction), blocks, strict=True)
                ]
            for writer, b in zip(writers, blocks, strict=True):
                writer.write_table(b, row_group_size=bench_evaluate.BLOCK_ROWS)
    finally:
        for writer in writers:
            writer.close()
    return time.perf_counter() - started


def in_child(function: Callable[..., float], *args: object, **kwargs: object) -> float:
    """Call `function` in a spawned process, so this one stays small.

    On Linux a child's peak RSS (`ru_maxrss`) starts from this process's own peak: the
    memory that writing the data takes here would show as every measured child's floor.
    """
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        return pool.submit(function, *args, **kwargs).result()


def has_rows(path: Path, rows: int) -> bool:
    """Whether `path` is a Parquet file of `rows` rows already (kept from an earlier run)."""
    try:
        return pq.ParquetFile(path).metadata.num_rows == rows
    except (OSError, ValueError, pa.ArrowException):
        return False


# --- report ---------------------------------------------------------------------------------


def _ratio(value: float | None, base: float | None) -> float | None:
    return value / base if value is not None and base else None


def ours_over(measures: list[Measure]) -> list[tuple[float | None, ...]]:
    """Per measure, ours' (in-process, no model, same rows) evaluate, fit + evaluate and
    peak RSS over its own: below 1, ours took less time or held less memory."""
    base = {m.rows: m for m in measures if m.tool == OURS and m.status == "ok"}
    out = []
    for m in measures:
        ours = base.get(m.rows)
        out.append(
            tuple(
                _ratio(ours and getattr(ours, name), getattr(m, name))
                for name in ("evaluate_s", "work_s", "peak_rss_mb")
            )
        )
    return out


def table_rows(measures: list[Measure]) -> list[dict[str, str]]:
    """Measures as text cells, with the ratios of ours to each at its size (`ours_over`)."""
    out = []
    for m, (evaluate, work, rss) in zip(measures, ours_over(measures), strict=True):
        out.append(
            {
                "rows": f"{m.rows:,}",
                "tool": m.tool,
                "version": m.version,
                "status": m.status,
                "wall s": _time(m.wall_s),
                "import s": _time(m.import_s),
                "load s": _time(m.load_s),
                "fit s": _time(m.fit_s),
                "eval s": _time(m.evaluate_s),
                "eval range": _spread(m.evaluate_range),
                "fit+eval s": _time(m.work_s),
                "fit+eval range": _spread(m.work_range),
                "ours/ eval": _times(evaluate),
                "ours/ fit+eval": _times(work),
                "peak RSS MB": _num(m.peak_rss_mb, "{:,.0f}"),
                "ours/ RSS": _times(rss),
                "faults": _num(m.page_faults, "{:,.0f}"),
                "eval faults": _num(m.evaluate_faults, "{:,.0f}"),
                "note": m.note,
            }
        )
    return out


def _num(value: float | None, spec: str = "{:.2f}") -> str:
    return "-" if value is None else spec.format(value)


def _time(seconds: float | None) -> str:
    """Seconds: two decimals, two significant digits below 0.1 s (alibi-detect's fit)."""
    if seconds is None:
        return "-"
    return f"{seconds:.2f}" if seconds >= 0.1 else f"{seconds:.2g}"


def _spread(found: tuple[float, float] | None) -> str:
    return "-" if found is None else f"{_time(found[0])}-{_time(found[1])}"


def _times(ratio: float | None) -> str:
    if ratio is None:
        return "-"
    return f"{ratio:.0f}" if ratio >= 100 else f"{ratio:.1f}" if ratio >= 10 else f"{ratio:.3g}"


def format_table(rows: list[dict[str, str]]) -> str:
    header = list(rows[0])
    left = {"tool", "version", "status", "note"}
    widths = {h: max(len(h), *(len(r[h]) for r in rows)) for h in header}

    def line(cells: dict[str, str]) -> str:
        return "  ".join(
            cells[h].ljust(widths[h]) if h in left else cells[h].rjust(widths[h]) for h in header
        ).rstrip()

    rule = "  ".join("-" * widths[h] for h in header)
    return "\n".join([line({h: h for h in header}), rule, *(line(r) for r in rows)])


def targets(measures: list[Measure], stream_rows: int, reference_rows: int) -> list[Target]:
    """The issue's targets for the reference measured, each with the measured value (None
    where a side is missing): with the small reference at SMALL_SIZES, with the default
    one at TARGET_ROWS, and the long batch's."""
    found = {(m.rows, m.tool): m for m in measures if m.status == "ok"}
    out: list[Target] = []
    if reference_rows == SMALL_REFERENCE_ROWS:
        out += _small_targets(found)
    if reference_rows == REFERENCE_ROWS:
        out += _large_targets(found)
    if not stream_rows:
        return out  # --stream-rows 0: the long batch was not run
    floor = found.get((stream_rows, FLOOR))
    for tool in (OURS_CLI, OURS):
        m = found.get((stream_rows, tool))
        rss = m and m.peak_rss_mb
        out.append(
            Target(
                f"{stream_rows:,} rows, {tool}: peak RSS < {STREAM_RSS_LIMIT_MB:,.0f} MB (1.5 GB)",
                _num(rss, "{:,.0f} MB"),
                None if rss is None else rss < STREAM_RSS_LIMIT_MB,
            )
        )
        for part, ours_s, floor_s in (
            ("evaluate / floor in-process", m and m.evaluate_s, floor and floor.evaluate_s),
            ("wall / floor wall", m and m.wall_s, floor and floor.wall_s),
        ):
            times = _ratio(ours_s, floor_s)
            out.append(
                Target(
                    f"{stream_rows:,} rows, {tool}: within {FLOOR_FACTOR:g}x the floor ({part})",
                    _num(times, "{:.1f}x"),
                    None if times is None else times <= FLOOR_FACTOR,
                )
            )
    return out


def _small_targets(found: Found) -> list[Target]:
    """Ours against the peers at each of SMALL_SIZES (ours/peer, medians of the same run)."""
    out: list[Target] = []
    reference = f"{SMALL_REFERENCE_ROWS:,}-row reference"
    for rows in SMALL_SIZES:
        what = f"{rows:,} rows ({reference}), fit + evaluate: ours"
        for peer in SMALL_FASTER_THAN:
            share = _ours_over(found, rows, peer, "work_s")
            out.append(Target(f"{what} faster than {peer}", _num(share, "{:.2f}x"), _below(share)))
        share = _ours_over(found, rows, ALIBI, "work_s")
        out.append(
            Target(
                f"{what} at most {ALIBI_SHARE:g}x {ALIBI}",
                _num(share, "{:.2f}x"),
                None if share is None else share <= ALIBI_SHARE,
            )
        )
    share = _ours_over(found, STORED_ROWS, ALIBI, "evaluate_s")
    what = f"{STORED_ROWS:,} rows ({reference}), evaluate against a stored reference: ours"
    out.append(Target(f"{what} faster than {ALIBI}", _num(share, "{:.2f}x"), _below(share)))
    return out


def _ours_over(found: Found, rows: int, peer: str, seconds: str) -> float | None:
    """Ours' median `seconds` (a Measure field) over the peer's, at `rows`."""
    ours, theirs = found.get((rows, OURS)), found.get((rows, peer))
    return _ratio(ours and getattr(ours, seconds), theirs and getattr(theirs, seconds))


def _below(share: float | None, limit: float = 1.0) -> bool | None:
    return None if share is None else share < limit


def _large_targets(found: Found) -> list[Target]:
    """Ours against Evidently and NannyML at TARGET_ROWS (peer/ours: how many times faster)."""
    out: list[Target] = []
    ours = found.get((TARGET_ROWS, OURS))
    for peer, factor in SPEEDUP_TARGETS.items():
        theirs = found.get((TARGET_ROWS, peer))
        speedup = _ratio(theirs and theirs.work_s, ours and ours.work_s)
        out.append(
            Target(
                f"{TARGET_ROWS:,} rows, fit + evaluate: ours {factor:g}x faster than {peer}",
                _num(speedup, "{:.1f}x"),
                None if speedup is None else speedup >= factor,
            )
        )
    theirs = found.get((TARGET_ROWS, EVIDENTLY))
    share = _ratio(ours and ours.peak_rss_mb, theirs and theirs.peak_rss_mb)
    out.append(
        Target(
            f"{TARGET_ROWS:,} rows: ours' peak RSS <= {EVIDENTLY_MEMORY_SHARE:g}x {EVIDENTLY}'s",
            _num(share, "{:.2f}x"),
            None if share is None else share <= EVIDENTLY_MEMORY_SHARE,
        )
    )
    return out


def format_targets(found: list[Target]) -> str:
    if not found:
        return "targets: none for this reference size"
    width = max(len(t.what) for t in found)
    shown = {True: "met", False: "NOT met", None: "not measured"}
    return "\n".join(f"{t.what.ljust(width)}  {t.value:>9}  {shown[t.met]}" for t in found)


def write_csvs(workdir: Path, measures: list[Measure], found: list[Target]) -> None:
    with (workdir / "results.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["rows", "tool", "version", "status", "rounds", "wall_s", "import_s", "load_s"]
            + ["fit_s"]
            + ["evaluate_s", "evaluate_min_s", "evaluate_max_s", "fit_evaluate_s"]
            + ["fit_evaluate_min_s", "fit_evaluate_max_s", "ours_over_evaluate"]
            + ["ours_over_fit_evaluate", "peak_rss_mb", "ours_over_rss", "page_faults"]
            + ["evaluate_page_faults", "rows_per_s", "note"]
        )
        for m, ratios in zip(measures, ours_over(measures), strict=True):
            low_e, high_e = m.evaluate_range or (None, None)
            low_w, high_w = m.work_range or (None, None)
            writer.writerow(
                [m.rows, m.tool, m.version, m.status, m.rounds]
                + [_csv(v, "{:.6f}") for v in (m.wall_s, m.import_s, m.load_s, m.fit_s)]
                + [_csv(m.evaluate_s, "{:.6f}")]
                + [_csv(v, "{:.6f}") for v in (low_e, high_e, m.work_s, low_w, high_w)]
                + [_csv(r, "{:.4g}") for r in ratios[:2]]
                + [_csv(m.peak_rss_mb, "{:.1f}"), _csv(ratios[2], "{:.4g}")]
                + [_csv(m.page_faults, "{:.0f}")]
                + [_csv(m.evaluate_faults, "{:.0f}"), _csv(m.rows_per_s, "{:.0f}"), m.note]
            )
    with (workdir / "targets.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["target", "value", "met"])
        for t in found:
            writer.writerow([t.what, t.value, "" if t.met is None else str(t.met).lower()])


def _csv(value: float | None, spec: str = "{:.3f}") -> str:
    return "" if value is None else spec.format(value)


# --- main -----------------------------------------------------------------------------------


def parse_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part.replace("_", "")) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated row counts, got {text!r}"
        ) from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"row counts must be >= 1, got {text!r}")
    return sizes


def parse_peers(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [name for name in names if name not in PEER_REQUIREMENTS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated peers among {', '.join(PEER_REQUIREMENTS)}, got {text!r}"
        )
    return names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--small",
        action="store_true",
        help=f"small batches against a small reference: --sizes "
        f"{','.join(map(str, SMALL_SIZES))} --reference-rows {SMALL_REFERENCE_ROWS} "
        "--stream-rows 0, unless given",
    )
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        help="comma-separated batch rows compared with the peers (default "
        f"{','.join(map(str, DEFAULT_SIZES))})",
    )
    parser.add_argument(
        "--reference-rows",
        type=int,
        help=f"rows of the reference (default {REFERENCE_ROWS})",
    )
    parser.add_argument(
        "--stream-rows",
        type=int,
        help=f"rows of the batch streamed by us only; 0 skips it (default {DEFAULT_STREAM_ROWS})",
    )
    parser.add_argument(
        "--peers",
        type=parse_peers,
        default=tuple(PEER_REQUIREMENTS),
        help=f"comma-separated peers to measure (default all: {','.join(PEER_REQUIREMENTS)})",
    )
    parser.add_argument("--skip-peers", action="store_true", help="measure ours only")
    parser.add_argument(
        "--workdir", type=Path, help="default: a new temporary folder under benchmarks/output/"
    )
    parser.add_argument(
        "--keep-data", action="store_true", help="keep the Parquet files after the run"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=DEFAULT_REPEAT,
        help="rounds of every tool at each of --sizes; the table shows medians "
        f"(default {DEFAULT_REPEAT})",
    )
    args = parser.parse_args(argv)
    small = args.small
    if args.sizes is None:
        args.sizes = SMALL_SIZES if small else DEFAULT_SIZES
    if args.reference_rows is None:
        args.reference_rows = SMALL_REFERENCE_ROWS if small else REFERENCE_ROWS
    if args.stream_rows is None:
        args.stream_rows = 0 if small else DEFAULT_STREAM_ROWS
    if args.repeat < 1:
        parser.error(f"--repeat must be >= 1, got {args.repeat}")
    if args.reference_rows < 1:
        parser.error(f"--reference-rows must be >= 1, got {args.reference_rows}")
    if args.stream_rows < 0:
        parser.error(f"--stream-rows must be >= 0, got {args.stream_rows}")
    if args.stream_rows in args.sizes:
        parser.error("--stream-rows must differ from each of --sizes")
    return args


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def git_commit() -> str:
    """The checkout measured: its commit, and whether the package has uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--", "monitoring"],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "commit unknown"
    return f"commit {commit or 'unknown'}" + (" with uncommitted changes" if changed else "")


def peers_for(args: argparse.Namespace) -> list[Peer]:
    if args.skip_peers:
        return []
    return [ensure_peer(name, PEER_REQUIREMENTS[name]) for name in args.peers]


def compare_size(
    rows: int,
    workdir: Path,
    reference: Path,
    peers: list[Peer],
    env: dict[str, str],
    ours_version: str,
    repeat: int = 1,
) -> list[Measure]:
    """Ours (without and with a model) and each peer's jobs on one batch size, `repeat` times."""
    batch = workdir / f"batch-{rows}.parquet"
    unpredicted = workdir / f"batch-{rows}-no-prediction.parquet"
    if has_rows(batch, rows) and has_rows(unpredicted, rows):
        log(f"reusing the {rows:,}-row batches in {workdir}")
    else:
        seconds = in_child(write_batches, batch, unpredicted, rows)
        log(f"generated the {rows:,}-row batches in {seconds:.1f} s")
    ours = [sys.executable, "-c", OURS_CODE, str(reference)]
    jobs: list[tuple[str, str, list[str], dict[str, str]]] = [
        (OURS, ours_version, [*ours, str(batch), "plain"], env),
        (OURS_MLP, ours_version, [*ours, str(unpredicted), "mlp"], env),
    ]
    features = [str(reference), str(batch), ",".join(NUMERICAL), ",".join(CATEGORICAL)]
    peer_env = {**env, **PEER_ENV}
    missing = []
    for peer in peers:
        for tool, program, arguments in PEER_JOBS[peer.name]:
            if peer.python is None:
                missing.append(Measure(rows, tool, peer.version, "not installed"))
                continue
            command = [str(peer.python), "-c", program, *features, *arguments]
            jobs.append((tool, peer.version, command, peer_env))
    # Round after round, every tool once: a slower spell of this shared machine then falls
    # on every tool alike, and the median of the rounds drops one-off outliers.
    runs: dict[str, list[Measure]] = {tool: [] for tool, *_ in jobs}
    for round_ in range(repeat):
        if repeat > 1:
            log(f"{rows:,} rows: round {round_ + 1} of {repeat}")
        for tool, version, command, child_env in jobs:
            runs[tool].append(
                measure_child(
                    rows, tool, version, command, cwd=workdir, env=child_env, limit_s=CHILD_LIMIT_S
                )
            )
    return [median_measure(runs[tool]) for tool, *_ in jobs] + missing


def median_measure(runs: list[Measure]) -> Measure:
    """One line for repeated runs of a tool: the median of each time (fit + evaluate: of each
    round's sum) and of the page faults, the range of evaluate and of fit + evaluate, and the
    largest peak RSS. A run that failed or timed out is reported as it is, not averaged away."""
    failed = next((m for m in runs if m.status != "ok"), None)
    if failed is not None or len(runs) == 1:
        return failed or runs[0]

    def median(name: str) -> float | None:
        known = [v for v in (getattr(m, name) for m in runs) if v is not None]
        return statistics.median(known) if known else None

    def spread(name: str) -> tuple[float, float] | None:
        known = [v for v in (getattr(m, name) for m in runs) if v is not None]
        return (min(known), max(known)) if known else None

    first = runs[0]
    return replace(
        first,
        wall_s=median("wall_s"),
        import_s=median("import_s"),
        load_s=median("load_s"),
        fit_s=median("fit_s"),
        evaluate_s=median("evaluate_s"),
        work_s=median("work_s"),
        page_faults=median("page_faults"),
        evaluate_faults=median("evaluate_faults"),
        evaluate_range=spread("evaluate_s"),
        work_range=spread("work_s"),
        peak_rss_mb=max(m.peak_rss_mb or 0.0 for m in runs),
        rounds=len(runs),
        note=f"{first.note}; median of {len(runs)}".lstrip("; "),
    )


def stream(
    rows: int, workdir: Path, reference: Path, env: dict[str, str], ours_version: str
) -> tuple[list[Measure], Path]:
    """The long batch, streamed by us (CLI and in-process), and the floor on the same file."""
    batch = workdir / f"stream-{rows}.parquet"
    if has_rows(batch, rows):
        log(f"reusing {batch}")
    else:
        log(f"generating the {rows:,}-row batch (row groups of {bench_evaluate.BLOCK_ROWS:,})")
        seconds = in_child(
            bench_evaluate.write_parquet, batch, rows, seed=bench_evaluate.BATCH_SEED, drift=True
        )
        log(f"generated {batch.stat().st_size / 1e6:,.0f} MB in {seconds:.1f} s")
    measures: list[Measure] = []
    cli = bench_evaluate.monitoring_command()
    tracking = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}"}
    log(f"{rows:,} rows: monitoring reference fit (CLI)")
    status, fit = run_limited(
        [*cli, "reference", "fit", str(reference), *bench_evaluate.ROLES],
        cwd=workdir,
        env=tracking,
        limit_s=CHILD_LIMIT_S,
    )
    lines = fit.stdout.strip().splitlines()
    if status == "ok" and lines:
        reference_id = lines[-1].strip()
        log(f"{rows:,} rows: monitoring evaluate (CLI)")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        status, done = run_limited(
            [*cli, "evaluate", str(batch), "--reference", reference_id]
            + ["--batch-id", f"peers-{stamp}", "--model-name", bench_evaluate.MODEL_NAME],
            cwd=workdir,
            env=tracking,
            limit_s=STREAM_LIMIT_S,
        )
        measure = Measure(rows, OURS_CLI, ours_version, status, done.wall_s)
        measure = replace(
            measure, peak_rss_mb=done.peak_rss_mb, page_faults=done.page_faults, fit_s=fit.wall_s
        )
        if status == "ok":
            n_rows, seconds = bench_evaluate.evaluate_seconds(done.stdout)
            found = done.stdout.splitlines()
            shown = next((line for line in found if line.startswith("status:")), "")
            measure = replace(measure, rows=n_rows, evaluate_s=seconds, note=shown)
        log(f"{rows:,} rows, {OURS_CLI}: {status}, {done.wall_s:.1f} s wall")
    else:
        measure = Measure(rows, OURS_CLI, ours_version, status, note="reference fit failed")
    measures.append(measure)
    ours = [sys.executable, "-c", OURS_CODE, str(reference), str(batch), "plain"]
    measures.append(
        measure_child(rows, OURS, ours_version, ours, cwd=workdir, env=env, limit_s=STREAM_LIMIT_S)
    )
    log(f"{rows:,} rows: the floor (pyarrow read + np.histogram)")
    status, floor = run_limited(
        [sys.executable, "-c", bench_evaluate.FLOOR_CODE, str(batch), ",".join(NUMERICAL)]
        + [str(bench_evaluate.FLOOR_BINS)],
        cwd=workdir,
        env=env,
        limit_s=STREAM_LIMIT_S,
    )
    measure = Measure(rows, FLOOR, "pyarrow + numpy", status, floor.wall_s)
    measure = replace(measure, peak_rss_mb=floor.peak_rss_mb, page_faults=floor.page_faults)
    if status == "ok":
        _, read_s, total_s = floor.stdout.split()
        measure = replace(
            measure,
            load_s=float(read_s),
            evaluate_s=float(total_s),
            note="load s: read; eval s: read + histograms",
        )
    measures.append(measure)
    return measures, batch


def byte_compile_ours() -> None:
    """Byte-compile our package once, as pip does for the peers' wheels when it installs
    them. Ours is an editable install: without this, and with PYTHONDONTWRITEBYTECODE set
    (as on our CI machines), every child would compile it from source (about 0.13 s)."""
    import compileall

    import monitoring

    compileall.compile_dir(Path(monitoring.__file__).parent, quiet=1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.workdir is None:
        bench_evaluate.OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix="peers-", dir=bench_evaluate.OUTPUT_DIR))
    else:
        workdir = args.workdir.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
    log(f"workdir: {workdir}")
    env = {**os.environ, **bench_evaluate.CHILD_ENV}
    env.pop("MLFLOW_RUN_ID", None)
    env.pop("MLFLOW_TRACKING_URI", None)  # ours in-process logs nothing; the CLI gets its own
    ours_version = bench_evaluate.metadata.version("monitoring")
    measured = git_commit()
    byte_compile_ours()

    peers = peers_for(args)
    for peer in peers:
        log(
            f"{peer.name} {peer.version} ({peer.environment})"
            + (f": {peer.error}" if peer.error else "")
        )

    reference_rows = args.reference_rows
    reference = workdir / f"reference-{reference_rows}.parquet"
    if has_rows(reference, reference_rows):
        log(f"reusing {reference}")
    else:
        in_child(
            bench_evaluate.write_parquet,
            reference,
            reference_rows,
            seed=bench_evaluate.REFERENCE_SEED,
            drift=False,
        )
        log(f"generated the reference: {reference_rows:,} rows")
    data = [reference]
    measures: list[Measure] = []
    for rows in args.sizes:
        measures += compare_size(rows, workdir, reference, peers, env, ours_version, args.repeat)
        data += [workdir / f"batch-{rows}.parquet", workdir / f"batch-{rows}-no-prediction.parquet"]
    if args.stream_rows:
        streamed, path = stream(args.stream_rows, workdir, reference, env, ours_version)
        measures += streamed
        data.append(path)

    found = targets(measures, args.stream_rows, reference_rows)
    write_csvs(workdir, measures, found)
    if not args.keep_data:
        for path in data:
            path.unlink(missing_ok=True)
    header = [*bench_evaluate.machine(), f"monitoring {ours_version}, {measured} (at the start)"]
    header.append(
        f"reference {reference_rows:,} rows; batches "
        + ", ".join(f"{rows:,}" for rows in args.sizes)
        + f" rows, {args.repeat} interleaved round{'s' if args.repeat > 1 else ''}"
        + (f"; long batch {args.stream_rows:,} rows" if args.stream_rows else "")
    )
    header += [
        f"peer {p.name} {p.version} ({p.environment})" + (f": {p.error}" if p.error else "")
        for p in peers
    ]
    (workdir / "versions.txt").write_text("\n".join(header) + "\n")
    print("\n".join(header))
    print(format_table(table_rows(measures)))
    print()
    print(format_targets(found))
    print(f"results: {workdir / 'results.csv'}, {workdir / 'targets.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
