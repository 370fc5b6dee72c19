"""`samples.parquet` keeps each sample's prediction and class scores beside its id: what
joining labels that arrive late to their batch needs (issue 18)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from conftest import make_frame

from monitoring.evaluation.batch import evaluate
from monitoring.evaluation.fit import fit_reference
from monitoring.measure.sample_table import write_samples


def test_a_classification_batch_keeps_predictions_and_scores_per_id(tmp_path):
    reference, batch = make_frame(600, seed=1), make_frame(250, seed=2)
    report = evaluate(batch, fit_reference(reference), config=None)
    table = report.samples
    assert table.column_names == ["id", "prediction", "proba_a", "proba_b"]
    assert table.column("id").to_pylist() == batch["id"].tolist()
    assert table.column("prediction").to_pylist() == batch["prediction"].tolist()
    for label in ("a", "b"):
        assert table.schema.field(f"proba_{label}").type == pa.float32()
        np.testing.assert_allclose(
            table.column(f"proba_{label}").to_numpy(), batch[f"proba_{label}"], rtol=1e-6
        )  # float32: 7 significant digits
    write_samples(table, tmp_path / "samples.parquet")  # the artifact takes every column
    assert (tmp_path / "samples.parquet").stat().st_size > 0


def test_without_predictions_only_ids_are_kept():
    reference = make_frame(600, seed=1).drop(columns=["prediction", "proba_a", "proba_b"])
    batch = make_frame(250, seed=2).drop(columns=["prediction", "proba_a", "proba_b"])
    report = evaluate(batch, fit_reference(reference))
    assert report.samples.column_names == ["id"]
