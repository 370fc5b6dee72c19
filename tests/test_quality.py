"""Data-quality checks: what production breaks (wrong units on a minority of rows, sentinel
values, a never-seen category, duplicated ids) is flagged with status `quality` (or `drift`
when the distribution also moved) and named, at 100, 5,000 and 1,000,000 rows; batches
drawn like the reference are flagged at no more than the stated rate."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from scipy import stats

import monitoring
from monitoring.core.config import QualityConfig
from monitoring.measure import quality

REGIONS = [f"r{i}" for i in range(8)]
REGION_P = np.array([0.3, 0.2, 0.15, 0.1, 0.1, 0.07, 0.05, 0.03])


def make(n: int, seed: int, *, first_id: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    amount = rng.normal(500, 50, n)
    age = rng.integers(18, 90, n).astype(float)
    region = rng.choice(REGIONS, n, p=REGION_P)
    p = 1 / (1 + np.exp(-(amount - 500) / 50))
    label = (rng.random(n) < p).astype(int)
    return pd.DataFrame(
        {
            "id": np.arange(first_id, first_id + n),
            "amount": amount,
            "age": age,
            "income": rng.lognormal(10, 0.4, n),
            "region": region,
            "label": label,
            "prediction": (p > 0.5).astype(int),
        }
    )


@pytest.fixture(scope="module")
def reference() -> monitoring.Reference:
    return monitoring.fit_reference(make(5_000, seed=0), target="label", prediction="prediction")


def wrong_units(batch: pd.DataFrame) -> pd.DataFrame:
    rows = np.arange(len(batch)) % 100 < 15  # 15% of rows in wrong units
    return batch.assign(amount=np.where(rows, batch["amount"] / 100, batch["amount"]))


def sentinel(batch: pd.DataFrame) -> pd.DataFrame:
    rows = np.arange(len(batch)) % 100 < 10  # 10% of rows with -999 for "unknown"
    return batch.assign(age=np.where(rows, -999.0, batch["age"]))


def new_category(batch: pd.DataFrame) -> pd.DataFrame:
    rows = np.arange(len(batch)) % 100 < 5  # 5% of rows in a category never seen
    return batch.assign(region=np.where(rows, "r-new", batch["region"]))


def duplicated_ids(batch: pd.DataFrame) -> pd.DataFrame:
    ids = batch["id"].to_numpy().copy()
    rows = np.flatnonzero(np.arange(len(batch)) % 100 < 10)  # 10% of rows repeat the id
    ids[rows] = ids[rows + 50]  # of a row 50 further down
    return batch.assign(id=ids)


SCENARIOS: dict[str, tuple[Callable[[pd.DataFrame], pd.DataFrame], str, str, float]] = {
    "wrong-units": (wrong_units, "amount", "out_of_range", 0.15),
    "sentinel-values": (sentinel, "age", "out_of_range", 0.10),
    "new-category": (new_category, "region", "unseen", 0.05),
    "duplicated-ids": (duplicated_ids, "dataset", "duplicate_ids", 0.10),
}
SIZES = [
    pytest.param(100, id="100-rows"),
    pytest.param(5_000, id="5000-rows"),
    pytest.param(1_000_000, id="1M-rows", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("rows", SIZES)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_what_production_breaks_is_flagged_and_named(reference, scenario, rows):
    breaks, feature, check, share = SCENARIOS[scenario]
    report = monitoring.evaluate(breaks(make(rows, seed=1, first_id=10**7)), reference)
    found = {(q.feature, q.check): q for q in report.quality_findings}
    assert (feature, check) in found, [q.reason for q in report.quality]
    finding = found[(feature, check)]
    assert finding.count == pytest.approx(share * rows, rel=0.05, abs=1)
    assert f"{finding.count:,} of {rows:,} rows" in finding.reason
    assert report.status in ("quality", "drift")  # drift when the distribution moved too


def test_the_breast_cancer_week_is_flagged_and_its_broken_rows_are_anomalous():
    """scikit-learn's breast cancer data: a 114-row reference, a 100-row batch in which 15
    rows have `mean area`, `worst area` and `area error` divided by 100 (values of 2 to 25
    where the reference minimum is in the hundreds). Before the quality checks this batch
    was `ok`: three p-values lost to Holm over 31 tests, the rows' anomaly scores drowned
    among 30 ordinary features."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True).frame.sample(frac=1.0, random_state=0)
    data = data.reset_index(drop=True).rename(columns={"target": "label"})
    reference = monitoring.fit_reference(data.iloc[:114], target="label")
    batch = data.iloc[114:214].reset_index(drop=True)
    broken = np.arange(15)
    for column in ("mean area", "worst area", "area error"):
        batch.loc[broken, column] = batch.loc[broken, column] / 100
    report = monitoring.evaluate(batch, reference)
    found = {(q.feature, q.check): q for q in report.quality_findings}
    assert report.status != "ok"
    # the 15 broken rows, and a few genuine values past a 114-row reference's range;
    # `area error` / 100 stays within quality.range_margin of its small minimum: its rows
    # are anomalous all the same
    for column in ("mean area", "worst area"):
        assert 15 <= found[(column, "out_of_range")].count <= 25
        assert "under the reference minimum" in found[(column, "out_of_range")].reason
    _, anomalous = reference.anomaly.assess(batch)
    assert anomalous[broken].all()
    assert anomalous[15:].mean() < 0.1


# The quality family at quality.alpha = 0.01 (Holm). Measured on 300 reference-like batches
# of 500 rows: see the assertion's message; the bound asserted is the binomial's 99.9%
# point at 1% (7 of 300).
def test_reference_like_batches_rarely_fail_a_quality_check(reference):
    flagged = []
    for seed in range(300):
        report = monitoring.evaluate(make(500, seed=100 + seed, first_id=10**7), reference)
        flagged.append(bool(report.quality_findings))
    count = sum(flagged)
    low, high = stats.binomtest(count, len(flagged)).proportion_ci(method="exact")
    assert count <= stats.binom.ppf(0.999, len(flagged), 0.01), (count, low, high)


def test_row_volume_is_a_finding_from_the_factor_on():
    config = QualityConfig(volume_factor=5.0, volume_batches=3)
    assert quality.row_volume(100, [2_000, 2_100], config) is None  # too few batches
    collapsed = quality.row_volume(200, [2_000, 2_100, 1_900], config)
    usual = quality.row_volume(1_500, [2_000, 2_100, 1_900], config)
    flood = quality.row_volume(20_000, [2_000, 2_100, 1_900], config)
    assert collapsed.flagged and flood.flagged and not usual.flagged
    assert collapsed.reason.startswith("200 rows against a median of 2,000")


@pytest.mark.parametrize(
    ("count", "n", "rate"),
    [pytest.param(15, 100, 2 / 5001, id="units"), pytest.param(3, 10_000, 1e-4, id="few")],
)
def test_the_binomial_tail_equals_scipy(count, n, rate):
    """Golden numbers against scipy.stats.binom.sf(count - 1, n, rate), rel 1e-10."""
    expected = stats.binom.sf(count - 1, n, rate)
    assert quality.binomial_upper_p(count, n, rate) == pytest.approx(expected, rel=1e-10)


def test_a_collapsed_row_count_is_flagged_against_the_versions_earlier_batches(
    tracking_uri, reference
):
    """Three batches of 2,000 rows, then 200: a tenth of the usual rows is a finding
    (quality.volume_factor 5), logged with its metric, tag and reason."""
    for day in range(3):
        monitoring.evaluate_and_log(
            make(2_000, seed=20 + day, first_id=10**7 * (day + 1)),
            reference=reference,
            batch_id=f"day-{day}",
            model_name="churn",
        )
    logged = monitoring.evaluate_and_log(
        make(200, seed=30, first_id=10**8),
        reference=reference,
        batch_id="day-3",
        model_name="churn",
    )
    found = {(q.feature, q.check): q for q in logged.report.quality_findings}
    assert logged.report.status == "quality"
    assert found[("dataset", "row_volume")].reason.startswith("200 rows against a median of 2,000")
    run = MlflowClient(tracking_uri).get_run(logged.run_id)
    assert run.data.tags["monitoring.status"] == "quality"
    assert run.data.tags["monitoring.quality"] == "dataset: row_volume"
    assert run.data.metrics["quality/dataset/row_volume_flagged"] == 1.0
    assert run.data.metrics["quality/dataset/flagged"] == 1.0
    assert "Data quality, dataset: row volume" in run.data.tags["mlflow.note.content"]


def test_fail_on_drift_exits_with_the_quality_code_on_a_quality_finding(tmp_path, tracking_uri):
    from click.testing import CliRunner

    from monitoring.cli.main import main
    from monitoring.cli.options import EXIT_QUALITY

    make(5_000, seed=0).to_csv(tmp_path / "reference.csv", index=False)
    batch = make(2_000, seed=1, first_id=10**7)
    batch.loc[:19, "region"] = "r-new"  # 1% of rows: too few to be drift, a clear finding
    batch.to_csv(tmp_path / "batch.csv", index=False)
    args = ["evaluate", str(tmp_path / "batch.csv"), "--reference", str(tmp_path / "reference.csv")]
    result = CliRunner().invoke(main, [*args, "--fail-on-drift", "--model-name", "churn"])
    assert result.exit_code == EXIT_QUALITY, result.output
    assert "quality: region: unseen: 20 of 2,000 rows in categories" in result.output
    assert "status: quality" in result.output


def test_the_drift_table_carries_each_columns_quality_findings(reference):
    report = monitoring.evaluate(sentinel(make(2_000, seed=3, first_id=10**7)), reference)
    table = report.drift_table.set_index("feature")
    assert table.loc["age", "quality"].iloc[0].startswith("200 of 2,000 rows outside")
    assert (table.loc["amount", "quality"] == "").all()


def test_anomalous_rows_are_scored_on_a_sample_that_ignores_chunking():
    """Every row of the first 50,000, then one in four by a hash of the row number: the
    same rows whatever the chunks, about a quarter of the rest."""
    from monitoring.measure.quality_counts import SCORE_EVERY_ROW, scored_rows

    def positions(start: int, rows: int) -> np.ndarray:
        kept = scored_rows(start, rows)
        return start + (np.arange(rows) if kept is None else kept)

    whole = positions(0, 400_000)
    chunked = np.concatenate([positions(start, 30_000) for start in range(0, 390_000, 30_000)])
    np.testing.assert_array_equal(whole, np.concatenate([chunked, positions(390_000, 10_000)]))
    assert scored_rows(0, SCORE_EVERY_ROW) is None
    beyond = (len(whole) - SCORE_EVERY_ROW) / (400_000 - SCORE_EVERY_ROW)
    assert beyond == pytest.approx(0.25, abs=0.005)
