"""Benchmark `monitoring compare` over HTTP against a local one-worker MLflow server.

    python benchmarks/bench_compare.py [--runs 2000] [--metrics 100] [--small-metrics 10]
                                       [--workdir DIR] [--repeat 3] [--profile]

Starts `mlflow server` (SQLite backend in WORKDIR, one worker, no job runner), creates
`--runs` finished batch runs of model "bench" with `--metrics` metrics each (one
`create_run`, one `log_batch`, one `set_terminated` per run) in two versions, and each
version's history run with its table (`sync_history`, as evaluations keep it). Then times
`monitoring compare --model-name bench --format csv` in a fresh child process and
`monitoring.track.comparison.compare` in-process (`--repeat` times), counting the HTTP requests
compare makes: reading the history tables (the default), then every batch run
(`--from-runs`). The same is done again for model "bench10" (`--small-metrics` per run, same
store) to show that the request count does not grow with metrics per run, and once more
with `versions=["1", "2"]`. Prints a table and the target of issue 17 (under 5 s over
2,000 runs, CLI, history tables) and writes it to WORKDIR/results.csv. See
benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import csv
import io
import math
import os
import pstats
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

OUTPUT_DIR = Path(__file__).resolve().parent / "output"
CHILD_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}
SERVER_ENV = {**CHILD_ENV, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
EXPERIMENT = "monitoring-bench"
MODEL_NAME = "bench"
SEED = 0
FIRST_BATCH = datetime(2020, 1, 1)
FIXED_METRICS = (
    "drift/dataset/drift",
    "drift/dataset/share_drifted",
    "drift/dataset/n_drifted",
    "perf/accuracy",
    "perf/roc_auc",
)
PSI_THRESHOLD = 0.2
DATASET_DRIFT_SHARE = 0.1  # drift/dataset/drift = 1 from this share of drifted features
HEALTH_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0
SLOW_S = 60.0  # an in-process median above this is profiled even without --profile
PROFILE_LINES = 25
STDERR_TAIL_LINES = 25
VERSIONED = ("mlflow", "pandas", "requests", "sqlalchemy")


# --- HTTP request counting ------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    seconds: float
    response_bytes: int


@dataclass
class RequestLog:
    requests: list[Request] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.requests)

    @property
    def seconds(self) -> float:
        return sum(r.seconds for r in self.requests)

    @property
    def response_mb(self) -> float:
        return sum(r.response_bytes for r in self.requests) / 1e6

    def by_endpoint(self) -> Counter[str]:
        return Counter(f"{r.method} {r.path}" for r in self.requests)


@contextlib.contextmanager
def counting_requests() -> Iterator[RequestLog]:
    """Record every `requests.Session.request` (MLflow's REST client goes through it)."""
    import requests

    found = RequestLog()
    original = requests.Session.request

    def request(self, method, url, *args, **kwargs):
        started = time.perf_counter()
        response = original(self, method, url, *args, **kwargs)
        seconds = time.perf_counter() - started
        found.requests.append(
            Request(str(method).upper(), urlsplit(url).path, seconds, len(response.content))
        )
        return response

    requests.Session.request = request
    try:
        yield found
    finally:
        requests.Session.request = original


# --- the server -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mlflow_command() -> list[str]:
    script = Path(sys.executable).parent / "mlflow"
    return [str(script)] if script.exists() else [sys.executable, "-m", "mlflow"]


def monitoring_command() -> list[str]:
    script = Path(sys.executable).parent / "monitoring"
    return [str(script)] if script.exists() else [sys.executable, "-m", "monitoring.cli.main"]


def start_server(workdir: Path, port: int) -> subprocess.Popen:
    """`mlflow server` in its own process group, output to WORKDIR/server.log."""
    command = [
        *mlflow_command(),
        "server",
        "--workers",
        "1",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{workdir / 'server.db'}",
        "--artifacts-destination",
        str(workdir / "artifacts"),
    ]
    with (workdir / "server.log").open("wb") as out:
        return subprocess.Popen(
            command,
            cwd=workdir,
            env={**os.environ, **SERVER_ENV},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as one
        )


def wait_healthy(server: subprocess.Popen, uri: str, workdir: Path) -> float:
    """Seconds until GET /health answers 200; exits if the server dies or never answers."""
    import requests

    started = time.perf_counter()
    while time.perf_counter() - started < HEALTH_TIMEOUT_S:
        if server.poll() is not None:
            sys.exit(f"error: mlflow server exited with {server.returncode}\n{_log_tail(workdir)}")
        try:
            if requests.get(f"{uri}/health", timeout=2).status_code == 200:
                return time.perf_counter() - started
        except requests.RequestException:
            pass
        time.sleep(0.25)
    sys.exit(
        f"error: mlflow server not healthy after {HEALTH_TIMEOUT_S:.0f} s\n{_log_tail(workdir)}"
    )


def _log_tail(workdir: Path) -> str:
    try:
        lines = (workdir / "server.log").read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "--- server.log (tail) ---\n" + "\n".join(lines[-STDERR_TAIL_LINES:])


def stop_server(server: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, SIGKILL if it lingers."""
    if server.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()
    # Workers left behind in the group (the leader may exit first).
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)


# --- the runs -------------------------------------------------------------------------------


def metric_keys(n: int) -> list[str]:
    """The five batch-level keys, then drift/f{j}/psi, psi_threshold, drifted ...; n in all."""
    keys = list(FIXED_METRICS)
    j = 0
    while len(keys) < n:
        keys += [f"drift/f{j}/psi", f"drift/f{j}/psi_threshold", f"drift/f{j}/drifted"]
        j += 1
    return keys[:n]


def run_values(rng: random.Random, keys: Sequence[str]) -> tuple[dict[str, float], str]:
    """Plausible metric values for one batch, and its status (ok/drift)."""
    values: dict[str, float] = {}
    features = sorted({k.split("/")[1] for k in keys if not k.startswith(("perf/", "drift/data"))})
    drifted = 0
    for name in features:
        psi = rng.lognormvariate(math.log(0.05), 0.6)  # ~1% above the threshold
        values[f"drift/{name}/psi"] = psi
        values[f"drift/{name}/psi_threshold"] = PSI_THRESHOLD
        values[f"drift/{name}/drifted"] = float(psi > PSI_THRESHOLD)
        drifted += psi > PSI_THRESHOLD
    share = drifted / len(features) if features else 0.0
    values["drift/dataset/drift"] = float(share >= DATASET_DRIFT_SHARE)
    values["drift/dataset/share_drifted"] = share
    values["drift/dataset/n_drifted"] = float(drifted)
    values["perf/accuracy"] = min(1.0, rng.gauss(0.86, 0.01))
    values["perf/roc_auc"] = min(1.0, rng.gauss(0.91, 0.01))
    return {k: values[k] for k in keys}, "drift" if drifted else "ok"


def create_runs(client, experiment_id: str, model: str, runs: int, n_metrics: int) -> float:
    """`runs` finished batch runs of `model`: versions "1" then "2"; returns seconds."""
    from mlflow.entities import Metric, RunTag

    from monitoring.track import tags

    rng = random.Random(f"{SEED}-{model}")
    keys = metric_keys(n_metrics)
    started = time.perf_counter()
    step = max(1, runs // 10)
    for i in range(runs):
        version = "1" if i < runs // 2 else "2"
        batch_id = f"day-{i:05d}"
        values, status = run_values(rng, keys)
        run_tags = {
            tags.KIND: tags.KIND_BATCH,
            tags.MODEL_NAME: model,
            tags.MODEL_VERSION: version,
            tags.BATCH_ID: batch_id,
            tags.BATCH_TIME_START: (FIRST_BATCH + timedelta(days=i)).isoformat(),
            tags.STATUS: status,
        }
        run_id = client.create_run(
            experiment_id, run_name=f"{model}-v{version}-{batch_id}"
        ).info.run_id
        now = int(time.time() * 1000)
        client.log_batch(
            run_id,
            metrics=[Metric(k, v, now, 0) for k, v in values.items()],
            tags=[RunTag(k, v) for k, v in run_tags.items()],
        )
        client.set_terminated(run_id, "FINISHED")
        if (i + 1) % step == 0 or i + 1 == runs:
            elapsed = time.perf_counter() - started
            log(f"  {model}: {i + 1:,}/{runs:,} runs, {elapsed:.1f} s")
    return time.perf_counter() - started


# --- measurements ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One in-process `compare`: total seconds, of which reading runs; its requests."""

    seconds: float
    read_s: float | None
    requests: RequestLog


@dataclass
class Measurement:
    model: str
    runs: int
    metrics_per_run: int
    create_s: float | None
    versions: str = ""
    source: str = "tables"
    rows: int = 0
    calls: list[Call] = field(default_factory=list)
    cli_s: float | None = None
    cli_rss_mb: float | None = None

    @property
    def requests(self) -> RequestLog:
        return self.calls[0].requests

    @property
    def inproc_min(self) -> float:
        return min(c.seconds for c in self.calls)

    @property
    def inproc_median(self) -> float:
        return statistics.median(c.seconds for c in self.calls)

    @property
    def request_s(self) -> float:
        return statistics.median(c.requests.seconds for c in self.calls)

    @property
    def read_s(self) -> float | None:
        found = [c.read_s for c in self.calls if c.read_s is not None]
        return statistics.median(found) if found else None

    @property
    def build_s(self) -> float | None:
        found = [c.seconds - c.read_s for c in self.calls if c.read_s is not None]
        return statistics.median(found) if found else None

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.inproc_median if self.inproc_median > 0 else math.nan


def time_cli(
    model: str, uri: str, workdir: Path, from_runs: bool = False
) -> tuple[float, float, int]:
    """Seconds, peak RSS (MB) and CSV data rows of `monitoring compare` in a child process."""
    suffix = "-runs" if from_runs else ""
    out_path = workdir / f"compare-{model}{suffix}.csv"
    err_path = workdir / f"compare-{model}{suffix}.stderr"
    command = [*monitoring_command(), "compare", "--model-name", model, "--format", "csv"]
    command += ["--from-runs"] if from_runs else []
    env = {**os.environ, **CHILD_ENV, "MLFLOW_TRACKING_URI": uri}
    env.pop("MLFLOW_RUN_ID", None)
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=workdir, env=env, stdout=out, stderr=err)
        _, status, rusage = os.wait4(process.pid, 0)  # this child's own rusage
        wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        tail = "\n".join(err_path.read_text(errors="replace").splitlines()[-STDERR_TAIL_LINES:])
        sys.exit(f"error: {' '.join(command)} failed with exit code {code}\n{tail}")
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024
    with out_path.open(newline="") as handle:
        data_rows = sum(1 for row in csv.reader(handle) if row) - 1  # less the header
    return wall, rusage.ru_maxrss / scale, data_rows


@contextlib.contextmanager
def timing_reads(seconds: list[float]) -> Iterator[None]:
    """Time `history_table.read_for_compare` (which `compare` imports when called)."""
    from monitoring.track import history_table

    original = history_table.read_for_compare

    def read_for_compare(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - started)

    history_table.read_for_compare = read_for_compare
    try:
        yield
    finally:
        history_table.read_for_compare = original


def time_inprocess(
    client,
    model: str,
    repeat: int,
    versions: Sequence[str] | None = None,
    from_runs: bool = False,
) -> tuple[list[Call], int]:
    """Each call (seconds, reading seconds, requests), and the trend rows."""
    from monitoring.track.comparison import compare

    calls: list[Call] = []
    rows = 0
    for i in range(repeat):
        reads: list[float] = []
        with counting_requests() as found, timing_reads(reads):
            started = time.perf_counter()
            result = compare(model, versions=versions, client=client, from_runs=from_runs)
            if result.notes:
                log(f"  WARNING: {'; '.join(result.notes)}")
            seconds = time.perf_counter() - started
        calls.append(Call(seconds, sum(reads) if reads else None, found))
        rows = len(result.trend)
        first = calls[0].requests.count
        if found.count != first:
            log(f"  note: call {i + 1} made {found.count} requests, the first {first}")
    return calls, rows


def profile_inprocess(client, model: str, path: Path) -> str:
    """cProfile one in-process compare; the top functions by cumulative and own time."""
    from monitoring.track.comparison import compare

    profiler = cProfile.Profile()
    profiler.enable()
    compare(model, client=client)
    profiler.disable()
    profiler.dump_stats(path)
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text).strip_dirs()
    stats.sort_stats("cumulative").print_stats(PROFILE_LINES)
    stats.sort_stats("tottime").print_stats(PROFILE_LINES)
    return text.getvalue()


# --- report ---------------------------------------------------------------------------------


def machine() -> list[str]:
    """The machine lines of bench_evaluate.py, with this benchmark's packages."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_evaluate import machine as machine_lines

    return machine_lines(VERSIONED)


HEADER = (
    "model",
    "read from",
    "runs",
    "metrics/run",
    "versions",
    "requests",
    "MB recv",
    "CLI wall s",
    "CLI RSS MB",
    "in-proc min s",
    "in-proc median s",
    "read s",
    "HTTP s",
    "build s",
    "rows/s",
    "create s",
)


def _opt(value: float | None, spec: str) -> str:
    if value is None or math.isnan(value):
        return "-"
    return format(value, spec)


def table_cells(m: Measurement) -> tuple[str, ...]:
    return (
        m.model,
        m.source,
        f"{m.runs:,}",
        str(m.metrics_per_run),
        m.versions,
        str(m.requests.count),
        f"{m.requests.response_mb:.1f}",
        _opt(m.cli_s, ".2f"),
        _opt(m.cli_rss_mb, ",.0f"),
        f"{m.inproc_min:.2f}",
        f"{m.inproc_median:.2f}",
        _opt(m.read_s, ".2f"),
        f"{m.request_s:.2f}",
        _opt(m.build_s, ".2f"),
        f"{m.rows_per_s:,.0f}",
        _opt(m.create_s, ".1f"),
    )


def format_table(measurements: list[Measurement]) -> str:
    cells = [table_cells(m) for m in measurements]
    widths = [max(len(line[i]) for line in [HEADER, *cells]) for i in range(len(HEADER))]

    def line(values: tuple[str, ...]) -> str:
        first = values[0].ljust(widths[0])
        rest = (v.rjust(w) for v, w in zip(values[1:], widths[1:], strict=True))
        return "  ".join([first, *rest])

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(HEADER), rule, *(line(c) for c in cells)])


def write_csv(path: Path, measurements: list[Measurement]) -> None:
    def num(value: float | None, spec: str) -> str:
        return "" if value is None else format(value, spec)

    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "model",
                "source",
                "runs",
                "metrics_per_run",
                "versions",
                "trend_rows",
                "requests",
                "search_runs_requests",
                "response_mb",
                "cli_wall_s",
                "cli_peak_rss_mb",
                "inprocess_min_s",
                "inprocess_median_s",
                "read_s",
                "http_s",
                "build_s",
                "rows_per_s",
                "create_s",
            ]
        )
        for m in measurements:
            searches = sum(1 for r in m.requests.requests if r.path.endswith("/runs/search"))
            writer.writerow(
                [
                    m.model,
                    m.source,
                    m.runs,
                    m.metrics_per_run,
                    m.versions,
                    m.rows,
                    m.requests.count,
                    searches,
                    f"{m.requests.response_mb:.2f}",
                    num(m.cli_s, ".3f"),
                    num(m.cli_rss_mb, ".1f"),
                    f"{m.inproc_min:.3f}",
                    f"{m.inproc_median:.3f}",
                    num(m.read_s, ".3f"),
                    f"{m.request_s:.3f}",
                    num(m.build_s, ".3f"),
                    f"{m.rows_per_s:.0f}",
                    num(m.create_s, ".2f"),
                ]
            )


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2000, help="batch runs per model")
    parser.add_argument("--metrics", type=int, default=100, help="metrics per run (model bench)")
    parser.add_argument(
        "--small-metrics",
        type=int,
        default=10,
        help="metrics per run of the second model (bench<N>); 0 skips it",
    )
    parser.add_argument(
        "--workdir", type=Path, help="default: a new temporary folder under benchmarks/output/"
    )
    parser.add_argument("--repeat", type=int, default=3, help="in-process compare calls per model")
    parser.add_argument(
        "--profile",
        action="store_true",
        help=f"cProfile one in-process compare of bench (always when slower than {SLOW_S:.0f} s)",
    )
    args = parser.parse_args(argv)
    for name in ("runs", "metrics", "repeat"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.runs < 2:
        parser.error("--runs must be >= 2 (two model versions)")
    if args.small_metrics < 0:
        parser.error(f"--small-metrics must be >= 0, got {args.small_metrics}")
    return args


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build_histories(client, experiment_id: str, model: str) -> float:
    """Each version's history run and table, as evaluations keep them; returns seconds."""
    from monitoring.track.history_runs import sync_history

    started = time.perf_counter()
    for version in ("1", "2"):
        sync_history(client, experiment_id, model, version, rebuild=True)
    return time.perf_counter() - started


def measure(
    client,
    uri: str,
    workdir: Path,
    model: str,
    args,
    n_metrics: int,
    create_s: float | None,
    from_runs: bool = False,
) -> Measurement:
    source = "batch runs" if from_runs else "tables"
    m = Measurement(model, args.runs, n_metrics, create_s, versions="all", source=source)
    m.cli_s, m.cli_rss_mb, cli_rows = time_cli(model, uri, workdir, from_runs)
    log(f"  CLI compare {model} ({source}): {m.cli_s:.2f} s, {cli_rows:,} rows")
    m.calls, m.rows = time_inprocess(client, model, args.repeat, from_runs=from_runs)
    log(
        f"  in-process compare {model} ({source}): "
        + ", ".join(f"{c.seconds:.2f}" for c in m.calls)
        + f" s; {m.requests.count} requests, {m.rows:,} rows"
    )
    if cli_rows != args.runs or m.rows != args.runs:
        log(f"  WARNING: expected {args.runs:,} rows, CLI {cli_rows:,}, in-process {m.rows:,}")
    return m


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for key, value in CHILD_ENV.items():
        os.environ.setdefault(key, value)
    if args.workdir is None:
        OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix="compare-", dir=OUTPUT_DIR))
    else:
        workdir = args.workdir.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        if (workdir / "server.db").exists():
            sys.exit(f"error: {workdir / 'server.db'} exists; give a new or empty --workdir")
    log(f"workdir: {workdir}")

    from mlflow import MlflowClient

    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    server = start_server(workdir, port)
    measurements: list[Measurement] = []
    profile_text = ""
    try:
        healthy = wait_healthy(server, uri, workdir)
        log(f"mlflow server {uri}: healthy in {healthy:.1f} s (pid {server.pid})")
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        experiment_id = client.create_experiment(EXPERIMENT)

        models = [(MODEL_NAME, args.metrics)]
        if args.small_metrics:
            models.append((f"{MODEL_NAME}{args.small_metrics}", args.small_metrics))
        for model, n_metrics in models:
            log(f"creating {args.runs:,} runs x {n_metrics} metrics ({model})")
            create_s = create_runs(client, experiment_id, model, args.runs, n_metrics)
            log(f"  created in {create_s:.1f} s ({args.runs / create_s:,.1f} runs/s)")
            history_s = build_histories(client, experiment_id, model)
            log(f"  history runs and tables built in {history_s:.1f} s")
            for from_runs in (False, True):
                measurements.append(
                    measure(client, uri, workdir, model, args, n_metrics, create_s, from_runs)
                )

        filtered = Measurement(MODEL_NAME, args.runs, args.metrics, None, versions="1,2")
        filtered.calls, filtered.rows = time_inprocess(client, MODEL_NAME, 1, versions=["1", "2"])
        log(f"  in-process compare {MODEL_NAME} versions 1,2: {filtered.requests.count} requests")
        measurements.append(filtered)

        if args.profile or measurements[0].inproc_median > SLOW_S:
            prof = workdir / "compare.prof"
            profile_text = profile_inprocess(client, MODEL_NAME, prof)
            (workdir / "profile.txt").write_text(profile_text)
            log(f"profile: {prof}, {workdir / 'profile.txt'}")
    finally:
        stop_server(server)
        log(f"mlflow server stopped ({time.perf_counter() - started:.0f} s after start)")

    results = workdir / "results.csv"
    write_csv(results, measurements)
    print("\n".join(machine()))
    print(format_table(measurements))
    print(
        "read from: each version's history table (the default) or every batch run "
        "(--from-runs); requests, MB recv: HTTP requests of one in-process compare and their "
        "response bytes; read s: reading the runs (HTTP s: inside requests.Session.request, "
        "i.e. the server and the download; the rest is parsing into the DataFrame); build s: "
        "compare less reading (trend, alerts, summary, version differences); medians "
        "over the in-process calls; rows/s: trend rows / in-process median"
    )
    default = measurements[0]
    verdict = "met" if default.cli_s is not None and default.cli_s < 5.0 else "NOT met"
    print(
        f"target: monitoring compare over {default.runs:,} runs ({default.metrics_per_run} "
        f"metrics each) under 5 s end to end: {default.cli_s:.2f} s, {verdict}"
    )
    for m in measurements:
        endpoints = ", ".join(f"{n} x {e}" for e, n in sorted(m.requests.by_endpoint().items()))
        print(
            f"requests of {m.model} ({m.metrics_per_run} metrics, versions {m.versions}): "
            f"{endpoints}"
        )
    if profile_text:
        print(profile_text)
    print(f"results: {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
