"""Secrets never leave the process: a password planted in each form a URL can carry it (user
info, a query parameter, MONITORING_DB_URL, MLFLOW_TRACKING_URI) is searched for in every
param, tag, dataset source and artifact of every run, and in both output streams of the
CLI. The masking itself, the MONITORING_DB_URL convention and the MLproject entry points
are checked first, without a database server.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from conftest import ADMIN_URL, ROOT, make_frame
from mlflow import MlflowClient
from mlflow.entities import ViewType

from monitoring.cli.main import main
from monitoring.collect.sources import SqlSource
from monitoring.core.config import MonitoringConfig, TrackingConfig
from monitoring.core.masking import mask_secrets, mask_url, scrub, url_secrets

HOST = "127.0.0.1:5432"


def _cli(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


# --- masking ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        pytest.param(
            "postgresql+psycopg://bob:s3cr3t@db/prod",
            "postgresql+psycopg://bob:***@db/prod",
            id="userinfo",
        ),
        pytest.param(
            "https://bob:p@ss@mlflow.example.com/api",
            "https://bob:***@mlflow.example.com/api",
            id="userinfo-with-at",
        ),
        pytest.param(
            "postgresql://bob:pa/ss@db/prod", "postgresql://bob:***@db/prod", id="userinfo-slash"
        ),
        *[
            pytest.param(
                f"postgresql://db/prod?sslmode=require&{key}=hunter22",
                f"postgresql://db/prod?sslmode=require&{key}=***",
                id=f"query-{key}",
            )
            for key in ("password", "PWD", "passwd", "token", "Secret", "access_token", "API_KEY")
        ],
        pytest.param(
            "connect failed: host=db user=bob password=hunter22 dbname=prod",
            "connect failed: host=db user=bob password=*** dbname=prod",
            id="libpq-conninfo",
        ),
        pytest.param(
            "see http://u:hunter22@h:5000/x and https://h/y?token=abc then stop",
            "see http://u:***@h:5000/x and https://h/y?token=*** then stop",
            id="two-urls-in-text",
        ),
        pytest.param("sqlite:////data/monitoring.db", "sqlite:////data/monitoring.db", id="none"),
    ],
)
def test_secrets_are_masked_and_nothing_else(text: str, masked: str) -> None:
    assert mask_secrets(text) == masked


def test_sqlalchemy_urls_are_masked_in_their_own_rendering() -> None:
    assert mask_url("mssql+pyodbc://host/db?driver=x&PWD=hunter2") == (
        "mssql+pyodbc://host/db?PWD=***&driver=x"
    )


def test_a_driver_message_quoting_the_password_is_scrubbed() -> None:
    url = "postgresql://bob:p%40ss-w0rd@db/prod?token=tok-123456"
    message = "FATAL: password 'p@ss-w0rd' rejected (token tok-123456)"

    assert scrub(message, url_secrets(url)) == "FATAL: password '***' rejected (token ***)"


def test_a_sql_source_describes_its_url_masked() -> None:
    source = SqlSource("postgresql+psycopg://bob@127.0.0.1:1/db?password=hunter22", "SELECT 1")

    assert "hunter22" not in source.describe()
    assert "password=***" in source.describe()


def test_the_configuration_params_mask_a_tracking_uri_password() -> None:
    config = MonitoringConfig(tracking=TrackingConfig(uri="postgresql://bob:hunter22@db/mlflow"))

    assert config.flat()["tracking.uri"] == "postgresql://bob:***@db/mlflow"


# --- MONITORING_DB_URL ------------------------------------------------------------------


@pytest.fixture
def shop(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    engine = sa.create_engine(url)
    make_frame(300, seed=1).assign(day=0).to_sql("p", engine, index=False)
    make_frame(200, seed=2).assign(day=1).to_sql("p", engine, index=False, if_exists="append")
    engine.dispose()
    return url


QUERY = "SELECT * FROM p WHERE day = :day"


@pytest.mark.parametrize("source", [pytest.param([], id="omitted"), ["env:MONITORING_DB_URL"]])
def test_commands_read_the_database_url_from_the_environment(
    tracking_uri: str, shop: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source
) -> None:
    monkeypatch.setenv("MONITORING_DB_URL", shop)

    fitted = _cli("reference", "fit", *source, "--query", QUERY, "--param", "day=0",
                  "--exclude", "day")  # fmt: skip
    reference_id = fitted.stdout.strip().splitlines()[-1]
    evaluated = _cli("evaluate", *source, "--query", QUERY, "--param", "day=1",
                     "--reference", reference_id, "--batch-id", "d1")  # fmt: skip
    fetched = _cli("fetch", *(["--db-url", *source] if source else []), "--query", QUERY,
                   "--param", "day=1", "--out", tmp_path / "day1.csv")  # fmt: skip

    assert [r.exit_code for r in (fitted, evaluated, fetched)] == [0, 0, 0], evaluated.output
    assert "(200 rows" in evaluated.stdout
    assert len(pd.read_csv(tmp_path / "day1.csv")) == 200


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["evaluate", "--reference", "x.csv"], id="evaluate"),
        pytest.param(["reference", "fit", "env:MONITORING_DB_URL"], id="reference-fit"),
        pytest.param(["fetch", "--out", "x.csv", "--query", "SELECT 1"], id="fetch"),
    ],
)
def test_no_source_and_no_environment_is_one_error_line(
    tracking_uri: str, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    monkeypatch.delenv("MONITORING_DB_URL", raising=False)

    result = _cli(*args)

    assert result.exit_code == 1
    assert "MONITORING_DB_URL is not set" in result.stderr.strip().splitlines()[-1]


def test_a_password_on_the_command_line_is_warned_about_and_masked(
    tracking_uri: str, tmp_path: Path
) -> None:
    make_frame(300, seed=1).to_csv(tmp_path / "reference.csv", index=False)
    url = "postgresql+psycopg://bob:hunter22@127.0.0.1:1/shop"  # a closed port

    result = _cli("evaluate", url, "--query", "SELECT 1", "--reference", tmp_path / "reference.csv")

    assert result.exit_code == 1
    assert "warning: SOURCE holds a password" in result.stderr
    assert "cannot connect to postgresql+psycopg://bob:***@127.0.0.1:1/shop" in result.stderr
    assert "hunter22" not in result.stdout + result.stderr


def test_mlproject_takes_the_database_url_from_the_environment() -> None:
    lines = [line.strip() for line in (ROOT / "MLproject").read_text().splitlines()]
    parameters = [line.split(":")[0] for line in lines if line.endswith("}")]

    sources = [line for line in lines if line.startswith("source:")]
    assert sources == ['source: {type: string, default: "env:MONITORING_DB_URL"}'] * 2
    assert [p for p in parameters if "url" in p] == []
    assert not [line for line in lines if "--db-url" in line]


# --- end to end: every place a password could land --------------------------------------


@pytest.fixture
def pg_tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """A fresh PostgreSQL tracking store reached with a password (trust auth ignores it):
    MLFLOW_TRACKING_URI holds it, cwd (./mlruns artifacts) is tmp. Yields (uri, password)."""
    database = f"mlflow_secrets_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{database}"')
    password = f"pw-tracking-{uuid.uuid4().hex[:8]}"
    uri = f"postgresql+psycopg://postgres:{password}@{HOST}/{database}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    yield uri, password
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture
def pg_predictions() -> Iterator[str]:
    """A throw-away predictions table (days 0, 1 and 2) in database `test`."""
    table = f"secrets_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(f"postgresql+psycopg://postgres@{HOST}/test")
    frames = [make_frame(n, seed=day).assign(day=day) for day, n in enumerate((400, 200, 200))]
    pd.concat(frames).to_sql(table, engine, index=False)
    yield table
    with engine.begin() as connection:
        connection.exec_driver_sql(f'DROP TABLE IF EXISTS "{table}"')
    engine.dispose()


def _everything_logged(client: MlflowClient, folder: Path) -> Iterator[tuple[str, str]]:
    """(where, text) for every param, tag, dataset and artifact of every run."""
    experiments = client.search_experiments(view_type=ViewType.ALL)
    runs = client.search_runs([e.experiment_id for e in experiments], run_view_type=ViewType.ALL)
    assert runs
    for run in runs:
        run_id = run.info.run_id
        yield f"{run_id} params", json.dumps(run.data.params)
        yield f"{run_id} tags", json.dumps(run.data.tags)
        for item in run.inputs.dataset_inputs:
            dataset = item.dataset
            yield f"{run_id} dataset", json.dumps(
                [dataset.name, dataset.source_type, dataset.source, dataset.schema]
            )
        local = Path(client.download_artifacts(run_id, "", str(folder / run_id)))
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            yield f"{run_id} {path.relative_to(local)}", path.read_bytes().decode("latin-1")


@pytest.mark.postgres
def test_no_planted_password_reaches_mlflow_or_the_terminal(
    pg_tracking: tuple[str, str],
    pg_predictions: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tracking_uri, tracking_password = pg_tracking
    table = pg_predictions
    passwords = {
        "userinfo": f"pw-userinfo-{uuid.uuid4().hex[:8]}",
        "query": f"pw-query-{uuid.uuid4().hex[:8]}",
        "env": f"pw-env-{uuid.uuid4().hex[:8]}",
        "tracking": tracking_password,
    }
    in_userinfo = f"postgresql+psycopg://postgres:{passwords['userinfo']}@{HOST}/test"
    in_query = f"postgresql+psycopg://postgres@{HOST}/test?password={passwords['query']}"
    monkeypatch.setenv(
        "MONITORING_DB_URL", f"postgresql+psycopg://postgres:{passwords['env']}@{HOST}/test"
    )
    query = f'SELECT * FROM "{table}" WHERE day = :day'

    results = [_cli("reference", "fit", in_query, "--query", query, "--param", "day=0",
                    "--exclude", "day", "--target", "label")]  # fmt: skip
    reference_id = results[0].stdout.strip().splitlines()[-1]
    results += [
        _cli("evaluate", in_userinfo, "--query", query, "--param", "day=1",
             "--reference", reference_id, "--batch-id", "day-1", "--model-name", "shop"),
        _cli("evaluate", "--query", query, "--param", "day=2",
             "--reference", reference_id, "--batch-id", "day-2", "--model-name", "shop"),
        _cli("fetch", "--query", query, "--param", "day=2", "--out", tmp_path / "day2.csv"),
        # A failure's message: the same URLs on a closed port.
        _cli("fetch", "--db-url", in_userinfo.replace(HOST, "127.0.0.1:1"), "--query", query,
             "--param", "day=2", "--out", tmp_path / "never.csv"),
    ]  # fmt: skip

    assert [r.exit_code for r in results] == [0, 0, 0, 0, 1], [r.output for r in results]
    assert "browse: mlflow ui --backend-store-uri postgresql+psycopg://postgres:***@" in (
        results[1].stdout
    )
    assert "error: cannot connect to" in results[-1].stderr
    client = MlflowClient(tracking_uri)
    searched = [(f"CLI {i} stdout", r.stdout) for i, r in enumerate(results)]
    searched += [(f"CLI {i} stderr", r.stderr) for i, r in enumerate(results)]
    searched += list(_everything_logged(client, tmp_path / "downloaded"))
    leaks = [
        (form, where)
        for where, text in searched
        for form, password in passwords.items()
        if password in text
    ]
    assert leaks == []
    # The search looked where the sources are described: masked, not missing.
    described = [text for where, text in searched if where.endswith("params")]
    assert any("postgres:***@" in text for text in described)
    assert any("password=***" in text for text in described)
