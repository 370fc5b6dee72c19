"""`report.html`: one self-contained page per batch run (no script, no external style,
font or image), with the verdict and its reasons, quality findings, the drifted columns
(input features first) with their distributions, performance, the version's last batches
and the worst samples."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_frame

import monitoring


@pytest.fixture
def pages(client, tmp_path) -> dict[str, str]:
    reference = monitoring.fit_reference(
        make_frame(3000, seed=1), target="label", prediction="prediction"
    )
    out = {}
    calm = make_frame(1000, seed=2)
    drifted = make_frame(1000, seed=3, shift=1.0)
    drifted.loc[:39, "size"] = drifted.loc[:39, "size"] * 1000  # a units bug on 40 rows
    unlabelled = make_frame(800, seed=4).assign(label=None)
    for batch_id, frame in (("day-1", calm), ("day-2", drifted), ("day-3", unlabelled)):
        logged = monitoring.evaluate_and_log(
            frame, reference=reference, batch_id=batch_id, model_name="paged"
        )
        local = client.download_artifacts(logged.run_id, "report.html", str(tmp_path))
        out[batch_id] = Path(local).read_text(encoding="utf-8")
        Path(local).unlink()
    return out


def test_the_page_is_self_contained(pages):
    for page in pages.values():
        assert page.startswith("<!DOCTYPE html>")
        assert "<script" not in page and "<link" not in page
        sources = re.findall(r"src='([^']*)'", page)
        assert all(s.startswith("data:image/png;base64,") for s in sources)
        assert "http://" not in page and "https://" not in page


def test_a_drifted_batch_says_why_and_ranks_its_input_features_first(pages):
    page = pages["day-2"]
    assert "<h2>Why: " in page and "DRIFT" in page
    assert "x</b> <span class='bad'>DRIFT</span>" in page
    # The drifted input feature comes before the drifted prediction columns.
    feature, prediction = page.index("<b>x</b>"), page.index("<b>proba_b</b>")
    assert feature < prediction
    assert "alt='x against the reference'" in page  # its distribution, as a data URI
    assert "<h2>Data quality</h2>" in page and "size" in page.split("<h2>Data quality")[1][:600]
    assert "<th>adjusted p</th>" in page  # performance tested against the reference


def test_the_trend_lists_the_versions_earlier_batches_and_this_one(pages):
    trend = pages["day-2"].split("This version's last batches")[1]
    assert trend.index("day-1") < trend.index("day-2")
    assert "<svg" in trend and "perf/accuracy" in trend
    assert "day-3" not in trend  # logged after this page was made


def test_a_batch_without_labels_shows_its_estimates_only(pages):
    page = pages["day-3"]
    assert "No ground truth in this batch" in page
    assert "Estimated from the model's outputs alone" in page
    assert page.count("labels not known yet") >= 1
    assert "<h2>Worst samples</h2>" not in page  # no ground truth: no error to rank rows by


def test_the_worst_samples_are_listed_with_their_anomaly_explanation(pages):
    section = pages["day-2"].split("<h2>Worst samples</h2>")[1]
    assert "<th>anomaly_features</th>" in section and "<th>id</th>" in section
    rows = re.findall(r"<tr><td>(\d+)</td>", section.split("<h2>")[0])
    assert len(rows) == 10 and len(set(rows)) == 10
    assert np.all([r.isdigit() for r in rows])


def test_the_run_description_links_its_report_and_the_versions_runs(client):
    reference = monitoring.fit_reference(
        make_frame(2000, seed=1), target="label", prediction="prediction"
    )
    logged = monitoring.evaluate_and_log(
        make_frame(500, seed=5), reference=reference, batch_id="b-1", model_name="linked"
    )
    note = client.get_run(logged.run_id).data.tags["mlflow.note.content"]
    experiment = logged.experiment_id
    report = f"(#/experiments/{experiment}/runs/{logged.run_id}/artifacts/report.html)"
    assert f"Open: [report.html]{report}" in note
    view = f"(#/experiments/{experiment}/runs?viewStateShareKey=batches&workflowType="
    assert f"[the batch runs]{view}machine_learning)" in note
    assert "#/models/" not in note  # no registered version to link to
    assert note.index("**Status:") < note.index("Open: ") < note.index("\n- ")


def test_a_registered_version_is_linked():
    from monitoring.track.description import with_links

    note = with_links(
        "## t\n\n**Status: `ok`**\n\n- x",
        experiment_id="3",
        run_id="r",
        model="churn model",
        version="2",
    )
    assert "[churn model version 2](#/models/churn%20model/versions/2)" in note


class _Threshold(torch.nn.Module):
    """Class b when x > 0 (no preprocess: numeric features are stacked, x first)."""

    classes = ["a", "b"]

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs[:, :1]
        return torch.cat([-x, x], dim=1) * 5


def test_the_registered_versions_description_follows_its_last_batch(client):
    from monitoring.track.models import register_pytorch_model

    info = register_pytorch_model(client, _Threshold(), name="described")
    reference = monitoring.fit_reference(
        make_frame(2000, seed=1), target="label", prediction="prediction"
    )
    first = monitoring.evaluate_and_log(
        make_frame(500, seed=2), reference=reference, batch_id="b-1", model_uri=info.uri
    )
    text = client.get_model_version("described", info.version).description
    assert text.startswith("## Monitoring")
    assert "**Last batch**: `b-1`" in text and f"runs/{first.run_id}/artifacts/report.html" in text
    assert "**Batches**: 1 (1 ok)" in text or "**Batches**: 1 (1 " in text
    client.update_model_version(
        "described", info.version, description="Owner: risk team.\n\n" + text
    )
    second = monitoring.evaluate_and_log(
        make_frame(500, seed=3, shift=1.5), reference=reference, batch_id="b-2", model_uri=info.uri
    )
    text = client.get_model_version("described", info.version).description
    assert text.startswith("Owner: risk team.")  # what a person wrote is kept
    assert text.count("## Monitoring") == 1
    assert "**Last batch**: `b-2`" in text and f"status **`{second.report.status}`**" in text
    assert "**Batches**: 2 (" in text


def test_an_unregistered_model_has_no_version_to_describe(client):
    from monitoring.track.registry import ModelInfo
    from monitoring.track.version_page import update_version_description

    assert not update_version_description(
        client, ModelInfo("loose"), pd.DataFrame(), experiment_id="0", alerts=()
    )


def test_a_backfill_writes_the_versions_description_once_at_its_end(
    client, monkeypatch, tmp_path
):
    from monitoring.collect.partitions import file_partitions
    from monitoring.collect.sources import open_source
    from monitoring.track import backfill as backfill_module
    from monitoring.track import publish as publish_module
    from monitoring.track.models import register_pytorch_model

    info = register_pytorch_model(client, _Threshold(), name="filled")
    calls = []
    real = publish_module.update_version_description

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(publish_module, "update_version_description", counted)
    monkeypatch.setattr(backfill_module, "update_version_description", counted)
    frame = pd.concat([make_frame(300, seed=d).assign(day=d) for d in (1, 2, 3)])
    reference = monitoring.fit_reference(
        make_frame(2000, seed=9), target="label", prediction="prediction"
    )
    path = tmp_path / "days.parquet"
    frame.to_parquet(path)
    parts = file_partitions(open_source(str(path)), "day", tmp_path / "parts")
    results = backfill_module.backfill(
        parts,
        reference=reference,
        model_uri=info.uri,
        config=monitoring.MonitoringConfig().replace("schema", exclude=("day",)),
    )
    assert [r.outcome for r in results] == ["logged"] * 3
    assert len(calls) == 1
    text = client.get_model_version("filled", info.version).description
    assert "**Batches**: 3 (" in text and "**Last batch**: `day=3`" in text
