"""The MLflow UI as a user sees it, in headless Chromium (Debian's `chromium`, which
`.ci/run` installs when it is absent): a tracking server over a store this test builds
(three batches of a registered version, a note), then the experiment's runs, a batch
run's overview, its `report.html` in the artifact viewer, the note, and the model
version's page, each checked for what a user must see there. Pages are read with
`--dump-dom` after their scripts ran (`--virtual-time-budget`)."""

from __future__ import annotations

import html
import re
import shutil
import subprocess

import pytest
import requests
import torch
from conftest import make_frame
from mlflow import MlflowClient

import monitoring
from monitoring.track.experiments import runs_page
from monitoring.track.models import register_pytorch_model

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class _Threshold(torch.nn.Module):
    """Class b when x > 0 (numeric features stacked, x first)."""

    classes = ["a", "b"]

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs[:, :1]
        return torch.cat([-x, x], dim=1) * 5


def _page(url: str) -> tuple[str, str]:
    """The page's DOM after its scripts ran, and its visible text (tags stripped)."""
    if CHROMIUM is None:
        pytest.fail("the browser test needs Debian's chromium (`.ci/run` installs it)")
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1600,1000",
            "--virtual-time-budget=20000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    dom = done.stdout
    text = html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom)))
    return dom, text


@pytest.fixture
def server(start_server):
    """A tracking server, for the fluent API and the registry too (an earlier test may
    have left MLflow's process-wide registry URI elsewhere)."""
    import mlflow

    uri = start_server("sqlite")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    yield uri
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


@pytest.mark.slow
def test_what_a_user_sees_in_the_mlflow_ui(server):
    uri = server
    client = MlflowClient(uri, registry_uri=uri)
    info = register_pytorch_model(client, _Threshold(), name="browsed")
    reference = monitoring.fit_reference(
        make_frame(2000, seed=1), target="label", prediction="prediction"
    )
    frames = {"b-1": make_frame(600, seed=2), "b-2": make_frame(600, seed=3, shift=1.2)}
    logged = {
        batch_id: monitoring.evaluate_and_log(
            frame, reference=reference, batch_id=batch_id, model_uri=info.uri
        )
        for batch_id, frame in frames.items()
    }
    drifted = logged["b-2"]
    assert drifted.report.status != "ok"
    note = monitoring.add_note(
        drifted.run_id, verdict="data-quality", text="units bug in `size`", sample_ids=["3"]
    )
    monitoring.evaluate_and_log(
        make_frame(600, seed=4), reference=reference, batch_id="b-3", model_uri=info.uri
    )
    experiment, run = drifted.experiment_id, drifted.run_id

    # The experiment opens on its runs: the version's history run, and every run counted;
    # the saved batch view (the link `monitoring evaluate` prints) with its columns.
    _, text = _page(f"{uri}/#/experiments/{experiment}?workflowType=machine_learning")
    assert "browsed-v1-history" in text
    assert "4 matching runs" in text
    dom, text = _page(runs_page(uri, experiment))
    assert "Batches: status, drift, performance" in text
    assert "monitoring.kind" in html.unescape(dom)  # the search box's filter
    for column in ("drift/dataset/sha", "perf/accuracy", "monitoring.status"):
        assert column in text, column

    # A batch run's overview: its name, the verdict, the drifted feature, the links.
    _, text = _page(f"{uri}/#/experiments/{experiment}/runs/{run}?workflowType=machine_learning")
    assert "b-2 · browsed v1" in text
    assert f"Status: {drifted.report.status}" in text
    assert "report.html" in text and "browsed version 1" in text
    assert "x" in drifted.report.drifted_features

    # report.html in the artifact viewer: an HTML frame, fed the page this run logged.
    dom, _ = _page(
        f"{uri}/#/experiments/{experiment}/runs/{run}/artifacts/report.html"
        "?workflowType=machine_learning"
    )
    assert "mlflow-html-iframe" in dom
    page = requests.get(
        f"{uri}/get-artifact", params={"path": "report.html", "run_uuid": run}, timeout=30
    ).text
    assert f"Why: {drifted.report.status}" in page and "<b>x</b>" in page
    assert "This version's last batches" in page and "b-1" in page

    # The note: its fields as text, not one heading.
    _, text = _page(
        f"{uri}/#/experiments/{experiment}/runs/{run}/artifacts/notes/{note.note_id}.md"
        "?workflowType=machine_learning"
    )
    assert "data-quality" in text and "units bug in size" in text.replace("`", "")

    # The model version's page: the last batch, its status, the note counted.
    _, text = _page(f"{uri}/#/models/browsed/versions/{info.version}")
    assert "Monitoring" in text and "Last batch : b-3" in text.replace("  ", " ")
    assert "Notes : 1" in text
