"""Notes on any sample of a batch (issue 20, item 4): a batch run keeps every sample id in
`samples.parquet`, a note may name any of them, and a re-evaluation with `replace` leaves
every anomaly-ignore sample out of `perf/<metric>_excl_ignored`, not only the worst ones.

The batch: 300 regression rows whose prediction is in grams instead of kilograms on 15 of
them (a units bug). With `evaluation.worst_k = 5` only 5 of the 15 are among the worst
samples; the notes name all 15.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from monitoring import MonitoringConfig, NoteError, add_note, evaluate_and_log
from monitoring.cli.notes import notes
from monitoring.track.notes import ignored_sample_ids

ROWS = 300
WORST_K = 5
BUGGED = np.arange(7, ROWS, 20)[:15]  # the 15 rows whose prediction is 1000 times too big
GRAMS = 1000.0


def _config() -> MonitoringConfig:
    return (
        MonitoringConfig()
        .replace("schema", id="sample", target="y", prediction="pred", task="regression")
        .replace("evaluation", worst_k=WORST_K, chunk_size=64)  # ids over several chunks
    )


def _frame(n: int, *, seed: int, ids: str) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, n)
    y = 2.0 * x + rng.normal(0.0, 0.3, n)
    numbers = 100_000 + np.arange(n)  # ids like the '100388'
    sample = numbers if ids == "integer" else np.array([f"s-{i:06d}" for i in numbers])
    return pd.DataFrame({"sample": sample, "x": x, "y": y, "pred": 2.0 * x})


def _bugged(ids: str) -> pd.DataFrame:
    frame = _frame(ROWS, seed=2, ids=ids)
    frame.loc[BUGGED, "pred"] *= GRAMS
    return frame


def _log(client: MlflowClient, frame: pd.DataFrame, *, replace: bool = False) -> str:
    return evaluate_and_log(
        frame,
        reference=_frame(1000, seed=1, ids="integer"),
        config=_config(),
        batch_id="units",
        model_name="weight",
        replace=replace,
        client=client,
    ).run_id


def _artifact(client: MlflowClient, run_id: str, path: str) -> Path:
    return Path(unquote(urlparse(client.get_run(run_id).info.artifact_uri).path)) / path


def _worst_ids(client: MlflowClient, run_id: str) -> list[str]:
    worst = pd.read_csv(_artifact(client, run_id, "worst_samples.csv"), dtype=str)
    return worst["sample"].tolist()


@pytest.fixture(params=["integer", "text"])
def ids(request) -> str:
    return request.param


def test_the_batch_run_keeps_every_sample_id_in_batch_order(client, ids):
    frame = _bugged(ids)
    run_id = _log(client, frame)
    table = pq.read_table(_artifact(client, run_id, "samples.parquet"))
    assert table.column_names == ["id", "prediction"]  # a regression batch: its values
    np.testing.assert_allclose(table.column("prediction").to_numpy(), frame["pred"])
    assert table.schema.field("id").type == (pa.int64() if ids == "integer" else pa.string())
    assert table.column("id").to_pylist() == frame["sample"].tolist()


def test_a_note_may_name_samples_outside_the_worst_ones(client, ids):
    frame = _bugged(ids)
    run_id = _log(client, frame)
    noted = [str(v) for v in frame["sample"].to_numpy()[BUGGED]]
    worst = _worst_ids(client, run_id)
    outside = [v for v in noted if v not in worst]
    assert len(worst) == WORST_K and len(outside) == len(BUGGED) - WORST_K

    note = add_note(
        run_id, verdict="anomaly-ignore", text="Grams, not kg.", sample_ids=noted, client=client
    )

    assert note.sample_ids == tuple(noted)
    assert ignored_sample_ids(client, run_id) == tuple(noted)


def test_the_cli_notes_a_sample_outside_the_worst_ones(client):
    frame = _bugged("integer")
    run_id = _log(client, frame)
    outside = next(
        str(v) for v in frame["sample"][BUGGED] if str(v) not in _worst_ids(client, run_id)
    )
    args = ["add", "--run-id", run_id, "--sample-ids", outside, "--verdict", "anomaly-ignore"]

    result = CliRunner().invoke(notes, [*args, "--text", "Grams."])

    assert result.exit_code == 0, result.output
    assert ignored_sample_ids(client, run_id) == (outside,)


@pytest.mark.parametrize(
    "unknown",
    [
        pytest.param("100300", id="past-the-last-id"),
        pytest.param("99999", id="before-the-first-id"),
        pytest.param("s-100003", id="another-kind-of-id"),
    ],
)
def test_an_id_that_is_not_in_the_batch_is_refused_naming_it_and_the_run(client, unknown):
    run_id = _log(client, _bugged("integer"))
    expected = (
        f"sample id '{unknown}' is not in batch run {run_id}: its batch holds 300 distinct "
        r"sample ids \(its 'sample' column, kept in samples.parquet\)"
    )
    with pytest.raises(NoteError, match=expected):
        add_note(
            run_id,
            verdict="anomaly-ignore",
            text="x",
            sample_ids=["100003", unknown],
            client=client,
        )
    assert ignored_sample_ids(client, run_id) == ()


def test_a_run_logged_before_samples_parquet_falls_back_to_the_worst_samples(client):
    frame = _bugged("integer")
    run_id = _log(client, frame)
    _artifact(client, run_id, "samples.parquet").unlink()  # as a run logged before it
    worst = _worst_ids(client, run_id)
    outside = next(str(v) for v in frame["sample"][BUGGED] if str(v) not in worst)

    add_note(run_id, verdict="other", text="Worst.", sample_ids=worst[:1], client=client)
    with pytest.raises(NoteError, match=f"'{outside}'.*only its 5 worst samples.*--replace"):
        add_note(run_id, verdict="other", text="x", sample_ids=[outside], client=client)


def test_replace_leaves_every_ignored_sample_out_of_the_excl_ignored_metrics(client, ids):
    frame = _bugged(ids)
    first = _log(client, frame)
    noted = [str(v) for v in frame["sample"].to_numpy()[BUGGED]]
    add_note(first, verdict="anomaly-ignore", text="Grams.", sample_ids=noted, client=client)

    second = _log(client, frame, replace=True)

    metrics = client.get_run(second).data.metrics
    kept = frame.drop(index=BUGGED)
    error = kept["y"] - kept["pred"]
    # Hand computation over the 285 rows left; float sums in another order: rel 1e-12.
    assert metrics["perf/n_evaluated_excl_ignored"] == ROWS - len(BUGGED)
    assert metrics["perf/mae_excl_ignored"] == pytest.approx(error.abs().mean(), rel=1e-12)
    assert metrics["perf/rmse_excl_ignored"] == pytest.approx(np.sqrt((error**2).mean()), rel=1e-12)
    every = (frame["y"] - frame["pred"]).abs().mean()
    assert metrics["perf/mae"] == pytest.approx(every, rel=1e-12)
    assert ignored_sample_ids(client, second) == tuple(noted)  # the notes carried over
