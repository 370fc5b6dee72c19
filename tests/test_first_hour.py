"""What a new user hits in the first hour (issue 20): extra batch columns, role options
given with a fitted or stored reference, and the forms a reference takes."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from monitoring.cli.main import main
from monitoring.core.config import MonitoringConfig, SchemaConfig, load_config
from monitoring.errors import ConfigError, NotFittedError, SchemaError
from monitoring.evaluation.batch import evaluate
from monitoring.evaluation.fit import fit_reference


def make_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    label = rng.choice(["a", "b"], n)
    return pd.DataFrame(
        {
            "price": rng.normal(10.0, 2.0, n).round(3),
            "color": rng.choice(["red", "green", "blue"], n),
            "label": label,
            "prediction": np.where(rng.random(n) < 0.2, np.where(label == "a", "b", "a"), label),
        }
    )


REFERENCE = make_frame(300, seed=1)
BATCH = make_frame(120, seed=2).assign(week=7)
WARNING = "column(s) 'week' are not in the reference: not monitored"


def _run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def fitted():
    return fit_reference(REFERENCE)


# -- 1: extra columns ---------------------------------------------------------------------


def test_an_extra_column_is_reported_once_not_monitored_and_kept_in_worst_samples(fitted):
    report = evaluate(BATCH, fitted, config=MonitoringConfig().replace("evaluation", chunk_size=50))
    assert [w for w in report.warnings if "week" in w] == [
        w for w in report.warnings if w.startswith(WARNING)
    ]
    assert len([w for w in report.warnings if "week" in w]) == 1
    assert "week" not in {c.column for c in report.columns}
    assert "week" in report.worst_samples.columns
    assert set(report.worst_samples["week"]) == {7}


def test_an_excluded_extra_column_is_silent(fitted):
    config = MonitoringConfig().replace("schema", exclude=("week",))
    report = evaluate(BATCH, fitted, config=config)
    assert not any("week" in w for w in report.warnings)
    assert "week" not in {c.column for c in report.columns}


def test_extra_columns_error_refuses_the_batch(fitted):
    config = MonitoringConfig().replace("schema", extra_columns="error")
    with pytest.raises(SchemaError, match=r"column\(s\) 'week' that the reference does not"):
        evaluate(BATCH, fitted, config=config)
    evaluate(BATCH, fitted, config=config.replace("schema", exclude=("week",)))


def test_extra_columns_setting_is_validated(tmp_path):
    with pytest.raises(ConfigError, match=r"`schema.extra_columns` must be one of ignore, error"):
        SchemaConfig(extra_columns="warn")
    path = tmp_path / "m.toml"
    path.write_text('[schema]\nextra_columns = "error"\n')
    assert load_config(path).schema.extra_columns == "error"


def test_cli_evaluate_warns_of_an_extra_column_and_exclude_silences_it(tracking_uri, tmp_path):
    REFERENCE.to_csv(tmp_path / "reference.csv", index=False)
    BATCH.to_csv(tmp_path / "extra.csv", index=False)
    fit = _run("reference", "fit", tmp_path / "reference.csv")
    assert fit.exit_code == 0, fit.output
    reference_id = fit.stdout.strip().splitlines()[-1]
    warned = _run("evaluate", tmp_path / "extra.csv", "--reference", reference_id)
    assert warned.exit_code == 0, warned.output
    assert f"warning: {WARNING}" in warned.output
    excluded = _run(
        "evaluate", "extra.csv", "--reference", reference_id, "--exclude", "week", "--replace"
    )
    assert excluded.exit_code == 0, excluded.output
    assert "week" not in excluded.output
    config = tmp_path / "strict.toml"
    config.write_text('[schema]\nextra_columns = "error"\n')
    refused = _run(
        "evaluate", "extra.csv", "--reference", reference_id, "--config", config, "--replace"
    )
    assert refused.exit_code == 1
    assert "'week' that the reference does not have" in refused.output


# -- 2: role options with a fitted or stored reference ----------------------------------------


@pytest.mark.parametrize(
    ("roles", "pattern"),
    [
        ({"target": "other"}, r"--target 'other' differs from the reference's target column"),
        (
            {"prediction": "nonexistent_col"},
            r"--prediction 'nonexistent_col' differs from the reference's prediction column "
            r"'prediction'",
        ),
        ({"task": "regression"}, r"--task 'regression' differs from the reference's task"),
        ({"numerical": ["color"]}, r"--numerical 'color' differs"),
    ],
)
def test_a_role_that_differs_from_a_fitted_reference_is_an_error(fitted, roles, pattern):
    with pytest.raises(ConfigError, match=pattern):
        evaluate(BATCH, fitted, **roles)


def test_a_role_equal_to_the_reference_is_fine(fitted):
    report = evaluate(BATCH, fitted, target="label", prediction="prediction", numerical=["price"])
    assert report.n_rows == len(BATCH)


def test_cli_role_options_are_checked_against_the_stored_reference(tracking_uri, tmp_path):
    REFERENCE.to_csv(tmp_path / "reference.csv", index=False)
    BATCH.to_csv(tmp_path / "batch.csv", index=False)
    reference_id = _run("reference", "fit", "reference.csv").stdout.strip().splitlines()[-1]
    wrong = _run(
        "evaluate", "batch.csv", "--reference", reference_id, "--prediction", "nonexistent_col"
    )
    assert wrong.exit_code == 1
    assert (
        "--prediction 'nonexistent_col' differs from the reference's prediction column "
        "'prediction'" in wrong.output
    )
    wrong_id = _run("evaluate", "batch.csv", "--reference", reference_id, "--id-col", "color")
    assert wrong_id.exit_code == 1 and "--id-col 'color'" in wrong_id.output
    same = _run("evaluate", "batch.csv", "--reference", reference_id, "--target", "label")
    assert same.exit_code == 0, same.output
    schema = [line for line in same.output.splitlines() if line.startswith("schema:")]
    assert schema and all(f"(from the stored reference {reference_id})" in s for s in schema)
    assert not any("inferred" in s for s in schema)
    assert f"schema: target: 'label' (from the stored reference {reference_id})" in schema


# -- 3: the forms of a reference ----------------------------------------------------------


def test_public_evaluate_accepts_a_stored_reference_id(tracking_uri, fitted):
    import monitoring
    from monitoring.track import log_reference, make_client

    log_reference(make_client(tracking_uri), fitted)
    report = monitoring.evaluate(BATCH, fitted.id)
    assert report.reference.id == fitted.id
    assert report.n_rows == len(BATCH)
    with pytest.raises(ConfigError, match=r"--target 'other' differs"):
        monitoring.evaluate(BATCH, fitted.id, target="other")


def test_an_unknown_reference_id_names_the_id_and_the_store(tracking_uri):
    import monitoring

    with pytest.raises(NotFittedError, match=r"no reference with id 'c42ee1f52f0b10e2'") as caught:
        monitoring.evaluate(BATCH, "c42ee1f52f0b10e2")
    assert "mlflow.db" in str(caught.value)


def test_public_evaluate_checks_roles_against_a_fitted_reference(fitted):
    import monitoring

    with pytest.raises(ConfigError, match=r"--target 'other' differs from the reference's"):
        monitoring.evaluate(BATCH, fitted, target="other")
    assert monitoring.evaluate(BATCH, REFERENCE).n_rows == len(BATCH)  # fitted here


def test_evaluate_without_an_id_does_not_import_mlflow():
    code = (
        "import sys, monitoring, pandas as pd; "
        "df = pd.DataFrame({'x': [float(i % 7) for i in range(200)]}); "
        "monitoring.evaluate(df, df); print('mlflow' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_exclude_of_a_batch_only_column_works_when_the_reference_is_fitted_on_the_fly(
    tracking_uri, tmp_path
):
    """`evaluate extra.csv --reference val.csv --exclude week`: `week` is only in the batch,
    and fitting the reference from val.csv with the same --exclude used to refuse it."""
    reference, batch = tmp_path / "val.csv", tmp_path / "extra.csv"
    REFERENCE.to_csv(reference, index=False)
    BATCH.to_csv(batch, index=False)
    result = _run(
        "evaluate", batch, "--reference", reference, "--exclude", "week", "--batch-id", "b1"
    )
    assert result.exit_code == 0, result.output
    assert "excluded column 'week' is not in the reference: nothing to exclude" in result.output
    assert WARNING not in result.output  # excluded: not reported as an extra column


def test_an_excluded_column_is_given_no_inferred_role():
    """`label` and `prediction` would be inferred from their names; excluded, they are not
    monitored at all, and the same config evaluates a batch against that reference."""
    config = MonitoringConfig().replace("schema", exclude=("label", "prediction"))
    reference = fit_reference(REFERENCE, config=config)
    assert reference.schema.target is None and reference.schema.prediction is None
    assert set(reference.profiles) == {"price", "color"}
    assert {"label", "prediction"} <= set(reference.schema.ignored)
    report = evaluate(BATCH.drop(columns=["week"]), reference, config=config)
    assert {c.column for c in report.columns} == {"price", "color"}
    assert not report.performance  # no target, no prediction: nothing to measure
    assert any(w.startswith("the reference's schema has no prediction") for w in report.warnings)


@pytest.mark.parametrize(
    "roles",
    [{"target": "label"}, {"numerical": ("price",)}, {"prediction_scores": {"a": "price"}}],
    ids=["target", "numerical", "scores"],
)
def test_a_column_given_a_role_and_excluded_is_refused(roles):
    column = "label" if "target" in roles else "price"
    config = MonitoringConfig().replace("schema", exclude=(column,), **roles)
    with pytest.raises(ConfigError, match=rf"'{column}' is both in schema\.\w+ and in schema"):
        fit_reference(REFERENCE, config=config)
