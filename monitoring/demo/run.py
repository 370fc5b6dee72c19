"""`monitoring demo`: the whole product on embedded defaults, in about a minute.

1. a credit-default predictions database in SQLite (`<workdir>/predictions.db`): a
   hold-out window (day 0) and N daily batches whose drift starts part-way;
2. a small PyTorch classifier, trained, logged and registered in MLflow;
3. a reference fitted from day 0 with SQL, then one MLflow run per day, read with a bound
   `:day` parameter; day 3's predictions are left NULL, so the registered model runs;
4. the last LATE_DAYS days are evaluated before their labels exist (their `defaulted` is
   NULL: performance is estimated), then their labels arrive in a `labels` table and are
   attached to their runs (`monitoring labels attach`): estimated beside realized.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from monitoring.core.config import MonitoringConfig, SchemaConfig, TrackingConfig
from monitoring.core.masking import mask_url
from monitoring.demo.data import (
    DEMO_FEATURES_CATEGORICAL,
    DEMO_FEATURES_NUMERIC,
    DEMO_ID,
    DEMO_PREDICTION_COLUMNS,
    DEMO_TARGET,
    DEMO_TIMESTAMP,
    build_predictions_db,
    generate_frame,
)
from monitoring.demo.model import predict_frame, train_classifier
from monitoring.track.experiments import runs_page

MODEL_NAME = "credit-default"
DRIFT_START_FRACTION = 0.5  # drift starts after half of the days
MODEL_DAY = 3  # this day's predictions are left NULL: the registered model makes them
START = datetime(2026, 11, 1)
QUERY = "SELECT * FROM predictions WHERE day = :day"
LATE_DAYS = 2  # the last days: evaluated without labels, which are attached afterwards
LABELS_QUERY = "SELECT loan_id, defaulted FROM labels WHERE day = :day"


def demo_config(tracking_uri: str | None = None) -> MonitoringConfig:
    """Column roles of the demo table (the `day` column is bookkeeping, not a feature)."""
    return MonitoringConfig(
        schema=SchemaConfig(
            id=DEMO_ID,
            timestamp=DEMO_TIMESTAMP,
            target=DEMO_TARGET,
            prediction="prediction",
            prediction_scores={"default": "proba_default", "repaid": "proba_repaid"},
            numerical=tuple(DEMO_FEATURES_NUMERIC),
            categorical=tuple(DEMO_FEATURES_CATEGORICAL),
            exclude=("day",),
            task="classification",
        ),
        tracking=TrackingConfig(uri=tracking_uri),
    )


def drift_for_day(day: int, days: int) -> float:
    """0 before the drift starts, then rising linearly to 1 on the last day."""
    start = int(days * DRIFT_START_FRACTION)
    return 0.0 if day <= start else (day - start) / (days - start)


def with_predictions(model, frame: pd.DataFrame) -> pd.DataFrame:  # noqa: ANN001
    """`frame` with the model's prediction and class-probability columns beside it."""
    return pd.concat([frame, predict_frame(model, frame)], axis=1)


def train_demo_model():  # noqa: ANN201 - a TabularClassifier (torch is imported lazily)
    """The demo's classifier, trained on 20,000 rows of the 59 days before the demo starts."""
    training = generate_frame(20_000, start=START - timedelta(days=60), days=59, seed=1)
    return train_classifier(
        training,
        numeric=DEMO_FEATURES_NUMERIC,
        categorical=DEMO_FEATURES_CATEGORICAL,
        target=DEMO_TARGET,
    )


def _short(names: list[str], shown: int = 2) -> str:
    """The first names and how many more, so that the summary table fits a terminal."""
    if not names:
        return "-"
    more = f" +{len(names) - shown}" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def write_labels(url: str, labels: dict[int, pd.DataFrame]) -> None:
    """The late days' labels, in a `labels` table (loan_id, day, defaulted)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            frame = pd.concat(
                [f.assign(day=day) for day, f in labels.items()] or [pd.DataFrame()],
                ignore_index=True,
            )
            frame.to_sql("labels", connection, if_exists="replace", index=False)
    finally:
        engine.dispose()


def attach_late_labels(  # noqa: PLR0913 - the demo's state, passed as it is
    table: pd.DataFrame,
    day: int,
    url: str,
    config: MonitoringConfig,
    name: str,
    version: str,
    client,  # noqa: ANN001 - an MlflowClient
    echo: Callable[[str], None],
) -> pd.DataFrame:
    """Attach a late day's labels to its run; the table's row gets the realized figures."""
    from monitoring.collect.sources import SqlSource
    from monitoring.track.labels import attach_labels

    batch = f"day-{day:02d}"
    result = attach_labels(
        SqlSource(url, LABELS_QUERY, {"day": day}),
        model_name=name,
        model_version=version,
        batch_id=batch,
        id_column=DEMO_ID,
        target=DEMO_TARGET,
        config=config,
        client=client,
    )
    echo(
        f"  {batch}: {result.n_labelled:,} labels attached; accuracy "
        f"{result.performance['accuracy']:.3f} (estimated "
        f"{result.estimated['accuracy'].value:.3f}); status {result.status}"
    )
    row = table["batch"] == batch
    table.loc[row, "accuracy"] = result.performance.get("accuracy")
    table.loc[row, "roc_auc"] = result.performance.get("roc_auc")
    table.loc[row, "status"] = result.status
    table.loc[row, "degraded"] = _short([t.metric for t in result.tests if t.flagged])
    return table


def run_demo(
    *,
    workdir: str | Path,
    days: int = 12,
    rows_per_day: int = 2000,
    echo: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Build, train, register, fit and evaluate; returns the per-day summary table."""
    from monitoring.collect.sources import SqlSource
    from monitoring.track import log_reference, make_client
    from monitoring.track.models import register_pytorch_model
    from monitoring.track.pipeline import evaluate_and_log

    started = time.perf_counter()
    folder = Path(workdir)
    folder.mkdir(parents=True, exist_ok=True)
    config = demo_config()
    client = make_client(config.tracking.uri)
    echo(f"tracking store: {mask_url(client.tracking_uri)}")

    model = train_demo_model()
    holdout = with_predictions(
        model,
        generate_frame(5000, start=START - timedelta(days=1), days=1, seed=2, first_id=1_000_000),
    )
    accuracy = float((holdout["prediction"] == holdout[DEMO_TARGET]).mean())
    info = register_pytorch_model(
        client, model, name=MODEL_NAME, metrics={"holdout_accuracy": accuracy}
    )
    echo(f"registered {info.name} version {info.version} (hold-out accuracy {accuracy:.3f})")

    frames = {0: holdout}
    for day in range(1, days + 1):
        frame = generate_frame(
            rows_per_day,
            start=START + timedelta(days=day - 1),
            days=1,
            drift=drift_for_day(day, days),
            seed=100 + day,
            first_id=2_000_000 + day * 100_000,
        )
        frame = with_predictions(model, frame)
        if day == MODEL_DAY:
            frame = frame.assign(**dict.fromkeys(DEMO_PREDICTION_COLUMNS, None))
        frames[day] = frame
    late = [day for day in frames if day > max(days - LATE_DAYS, 0)]
    labels = {day: frames[day][[DEMO_ID, DEMO_TARGET]] for day in late}
    for day in late:
        frames[day] = frames[day].assign(**{DEMO_TARGET: None})
    url = build_predictions_db(folder / "predictions.db", frames)
    write_labels(url, labels)
    echo(f"predictions database: {url} ({days} days of {rows_per_day:,} rows + hold-out)")

    from monitoring.evaluation.fit import fit_reference

    reference = fit_reference(SqlSource(url, QUERY, {"day": 0}), config=config)
    log_reference(client, reference)
    echo(f"reference {reference.id} fitted on day 0 ({reference.n_rows:,} rows)")

    rows = []
    for day in range(1, days + 1):
        logged = evaluate_and_log(
            SqlSource(url, QUERY, {"day": day}),
            reference=reference,
            config=config,
            batch_id=f"day-{day:02d}",
            model_uri=info.uri,
            replace=True,
            client=client,
        )
        report = logged.report
        estimate = report.estimated_performance.get("accuracy")
        rows.append(
            {
                "batch": logged.batch_id,
                "rows": report.n_rows,
                "status": report.status,
                "drifted": _short(report.drifted_features),
                "degraded": _short([t.metric for t in report.performance_tests if t.flagged]),
                "accuracy": report.performance.get("accuracy"),
                "est_accuracy": estimate.value if estimate else None,
                "est_interval": f"{estimate.lower:.3f}-{estimate.upper:.3f}" if estimate else "",
                "labels": "later" if day in late else "with batch",
                "roc_auc": report.performance.get("roc_auc"),
                "model_run": "yes" if report.predicted_by_model else "",
                "run_id": logged.run_id,
            }
        )
    table = pd.DataFrame(rows)
    echo(f"days {', '.join(map(str, late))} evaluated without labels; their labels arrive:")
    for day in late:
        table = attach_late_labels(table, day, url, config, info.name, info.version, client, echo)
    echo("")
    echo(table.drop(columns="run_id").to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    echo("")
    echo(f"done in {time.perf_counter() - started:.1f} s; experiment 'monitoring-{MODEL_NAME}'")
    store = mask_url(client.tracking_uri)
    experiment = client.get_experiment_by_name(f"monitoring-{MODEL_NAME}").experiment_id
    echo(f"open the MLflow UI: mlflow ui --backend-store-uri {store}, then")
    echo(f"  {runs_page(store, experiment)}")
    return table
