"""The set-up the single-batch and backfill benchmarks share: the demo's world, any length.

`build(workdir, days, rows)` writes a SQLite predictions database of `days` daily batches
(the demo's credit-default generator; drift grows over the last tenth of the days), trains
and registers the demo's PyTorch classifier in a SQLite tracking store
(`WORKDIR/mlflow.db`), and fits and logs a reference on a 5,000-row hold-out day (day 0).
Returns what a command line needs: the database URL, the store URL and the reference id.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

QUERY = "SELECT * FROM predictions WHERE day = :day"
MODEL_NAME = "credit-default"
ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}


@dataclass(frozen=True)
class DemoStore:
    database: str
    tracking_uri: str
    reference_id: str
    workdir: Path

    def env(self) -> dict[str, str]:
        """The environment of a child process: this store, its own outbox and reference
        cache (filled when the store is built, as a user's is by their first fit)."""
        return {
            **os.environ,
            **ENV,
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "MONITORING_OUTBOX": str(self.workdir / "outbox"),
            "MONITORING_REFERENCE_CACHE": str(self.workdir / "references"),
        }


def build_in_child(workdir: Path, *, days: int, rows: int) -> DemoStore:
    """`build` in a child process, so that the caller stays small: a child it forks later
    starts with the caller's memory, which `ru_maxrss` would count as the child's peak."""
    import json
    import subprocess
    import sys

    code = (
        "import json, sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); "
        "from demo_store import build; "
        "s = build(Path(sys.argv[2]), days=int(sys.argv[3]), rows=int(sys.argv[4])); "
        "print(json.dumps([s.database, s.tracking_uri, s.reference_id]))"
    )
    here = str(Path(__file__).resolve().parent)
    done = subprocess.run(
        [sys.executable, "-c", code, here, str(workdir), str(days), str(rows)],
        capture_output=True, text=True, env={**os.environ, **ENV},
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"set-up failed:\n{done.stderr[-3000:]}")
    database, tracking_uri, reference_id = json.loads(done.stdout.strip().splitlines()[-1])
    return DemoStore(database, tracking_uri, reference_id, workdir)


def build(workdir: Path, *, days: int, rows: int) -> DemoStore:
    """The predictions database, the registered model and the stored reference."""
    os.environ.update(ENV)
    from monitoring.collect.sources import SqlSource
    from monitoring.demo.data import build_predictions_db, generate_frame
    from monitoring.demo.run import START, demo_config, train_demo_model, with_predictions
    from monitoring.evaluation.fit import fit_reference
    from monitoring.track import log_reference, make_client
    from monitoring.track.models import register_pytorch_model

    workdir.mkdir(parents=True, exist_ok=True)
    tracking_uri = f"sqlite:///{workdir / 'mlflow.db'}"
    client = make_client(tracking_uri)
    model = train_demo_model()
    register_pytorch_model(client, model, name=MODEL_NAME)
    frames = {}
    drift_start = days - max(days // 10, 1)
    for day in range(days + 1):
        frame = generate_frame(
            5_000 if day == 0 else rows,
            start=START + timedelta(days=day - 1),
            days=1,
            drift=max(0.0, (day - drift_start) / max(days - drift_start, 1)),
            seed=100 + day,
            first_id=1_000_000 + day * 100_000,
        )
        frames[day] = with_predictions(model, frame)
    database = build_predictions_db(workdir / "predictions.db", frames)
    config = demo_config(tracking_uri)
    reference = fit_reference(SqlSource(database, QUERY, {"day": 0}), config=config)
    log_reference(client, reference)
    return DemoStore(database, tracking_uri, reference.id, workdir)
