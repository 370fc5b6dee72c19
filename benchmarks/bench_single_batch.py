"""Benchmark one small batch on the command line, against `import mlflow` and MLflow's floor.

    python benchmarks/bench_single_batch.py [--rows 2000] [--repeat 3] [--history 5]
                                            [--workdir DIR]

Builds the demo's world (benchmarks/demo_store.py) with `--history` + `--repeat` days of
`--rows` rows and backfills the first `--history` days (the set-up: a history to judge
against; `--history 365` is a year of daily batches). Then, interleaved
`--repeat` times, each in a fresh child process:

- `python -c "import mlflow"`;
- MLflow's floor: `import mlflow`, a client on the SQLite store, one run with 175 metrics
  (what a batch run of this table logs) and FINISHED: no evaluation, no artifact;
- `monitoring evaluate` of the next day (SQLite predictions into the SQLite store, with
  plots as configured by `--plots`, `all` by default), as users run it: the reference is
  cached (by the set-up's backfill), so the batch is evaluated in a forked child while
  MLflow is imported and the store opened;
- the same day under another batch id with `MONITORING_EARLY_EVALUATION=0`: one process.

Prints the median and spread of each, the ratios to `import mlflow`, and the targets of
issue 20 (at most 2.5 s end to end; at most 1.6 times `import mlflow`).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_store import MODEL_NAME, QUERY, build_in_child  # noqa: E402

OUTPUT_DIR = Path(__file__).resolve().parent / "output"
FLOOR = """
import time
import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric
client = MlflowClient()
experiment = client.get_experiment_by_name("monitoring-credit-default").experiment_id
run = client.create_run(experiment, run_name="floor")
stamp = int(time.time() * 1000)
client.log_batch(run.info.run_id, metrics=[Metric(f"m{i}", 1.0, stamp, 0) for i in range(175)])
client.set_terminated(run.info.run_id)
"""


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--plots", choices=["all", "findings", "none"], default="all")
    parser.add_argument(
        "--history", type=int, default=5, help="days backfilled before the measured ones"
    )
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    OUTPUT_DIR.mkdir(exist_ok=True)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="single-", dir=OUTPUT_DIR))
    store = build_in_child(workdir, days=args.history + args.repeat, rows=args.rows)
    env = store.env()
    monitoring = str(Path(sys.executable).with_name("monitoring"))
    common = [
        "--reference", store.reference_id, "--model-name", MODEL_NAME, "--model-version", "1",
    ]  # fmt: skip
    config = workdir / "monitoring.toml"
    config.write_text(f'[evaluation]\nplots = "{args.plots}"\n', encoding="utf-8")
    subprocess.run(
        [monitoring, "backfill", store.database, "--query", QUERY, "--partition-by", "day",
         "--from", "1", "--to", str(args.history), "--batch-id-format", "day-{value}", *common],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    times: dict[str, list[float]] = {
        "import mlflow": [],
        "MLflow floor": [],
        "evaluate": [],
        "one process": [],
    }
    single = {**env, "MONITORING_EARLY_EVALUATION": "0"}
    for round_ in range(args.repeat):
        day = args.history + 1 + round_
        times["import mlflow"].append(timed([sys.executable, "-c", "import mlflow"], env))
        times["MLflow floor"].append(timed([sys.executable, "-c", FLOOR], env))
        times["evaluate"].append(
            timed(
                [monitoring, "evaluate", store.database, "--query", QUERY, "--param",
                 f"day={day}", "--batch-id", f"day-{day}", "--config", str(config), *common],
                env,
            )  # fmt: skip
        )
        times["one process"].append(
            timed(
                [monitoring, "evaluate", store.database, "--query", QUERY, "--param",
                 f"day={day}", "--batch-id", f"day-{day}-single", "--config", str(config),
                 *common],
                single,
            )  # fmt: skip
        )
    base = statistics.median(times["import mlflow"])
    print(f"{'step':<15} {'median s':>9} {'min s':>7} {'max s':>7} {'x import mlflow':>16}")
    for step, values in times.items():
        median = statistics.median(values)
        print(
            f"{step:<15} {median:9.2f} {min(values):7.2f} {max(values):7.2f} "
            f"{median / base:16.2f}"
        )
    evaluate = statistics.median(times["evaluate"])
    print(f"target: evaluate at most 2.5 s: {'met' if evaluate <= 2.5 else 'NOT met'}")
    print(f"target: at most 1.6 x import mlflow: {'met' if evaluate / base <= 1.6 else 'NOT met'}")


if __name__ == "__main__":
    main()
