"""The accumulator protocol, checked on every accumulator of a batch and of a reference fit:
two partitions profiled apart, each sent through `to_state()` / `from_state()` and merged,
give what one pass over the whole gives (exactly for counts; float sums to 1e-12)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import make_frame

from monitoring import MonitoringConfig, fit_reference
from monitoring.core.accumulator import Accumulator, Chunk
from monitoring.core.engine import Engine, Steps
from monitoring.core.state import pack, unpack
from monitoring.errors import InvalidValueError
from monitoring.evaluation.batch_plan import BatchPlan
from monitoring.evaluation.fit import _FitPlan
from monitoring.measure.batch_identity import BatchDigest
from monitoring.measure.reference import Reference

SPLIT = 700  # the first partition's rows; the batch has 1,500


@pytest.fixture(scope="module")
def reference() -> Reference:
    config = MonitoringConfig().replace("drift", multivariate=("reconstruction", "mmd"))
    return fit_reference(
        make_frame(2000, seed=1).assign(when=pd.date_range("2026-01-01", periods=2000, freq="h")),
        config=config,
    )


@pytest.fixture(scope="module")
def batch() -> pd.DataFrame:
    frame = make_frame(1500, seed=2, shift=0.3)
    return frame.assign(when=pd.date_range("2026-03-01", periods=1500, freq="min"))


def _plan(reference: Reference, frame: pd.DataFrame, first_row: int) -> BatchPlan:
    config = MonitoringConfig().replace("drift", multivariate=("reconstruction", "mmd"))
    plan = BatchPlan(reference, config, None, where="batch test", ignored=frozenset({"5", "900"}))
    with Engine(1) as engine:
        chunks = [frame.iloc[i : i + 300] for i in range(0, len(frame), 300)]
        engine.run(chunks, plan, first_row=first_row)
    return plan


ACCUMULATORS: dict[str, Callable[[BatchPlan], Any]] = {
    "counts": lambda plan: plan.counts,
    "performance": lambda plan: plan.performance,
    "performance-excluding-ignored": lambda plan: plan.performance_kept,
    "worst-samples": lambda plan: plan.worst,
    "segments": lambda plan: plan.segments,
    "multivariate": lambda plan: plan.multivariate,
    "time-range": lambda plan: plan.time_range,
    "sample-ids": lambda plan: plan.samples,
    "estimated-performance": lambda plan: plan.estimated,
}


def _same(merged: Any, whole: Any) -> None:
    """Equal results: frames and arrays exactly up to float sums (rel 1e-12)."""
    if isinstance(merged, pd.DataFrame):
        pd.testing.assert_frame_equal(merged, whole, rtol=1e-12, check_exact=False)
    elif isinstance(merged, dict):
        assert merged.keys() == whole.keys()
        for key in merged:
            assert merged[key] == pytest.approx(whole[key], rel=1e-12, nan_ok=True), key
    elif isinstance(merged, tuple) and merged and hasattr(merged[0], "statistic"):
        for a, b in zip(merged, whole, strict=True):
            assert (a.method, a.n) == (b.method, b.n)
            assert a.statistic == pytest.approx(b.statistic, rel=1e-9)
    elif hasattr(merged, "equals"):  # an Arrow table
        assert merged.equals(whole)
    else:
        assert merged == whole


@pytest.mark.parametrize("name", ACCUMULATORS, ids=str)
def test_partitions_merged_through_their_states_equal_the_whole(name, reference, batch):
    whole = ACCUMULATORS[name](_plan(reference, batch, 0))
    first = ACCUMULATORS[name](_plan(reference, batch.iloc[:SPLIT], 0))
    second = ACCUMULATORS[name](_plan(reference, batch.iloc[SPLIT:], SPLIT))
    assert isinstance(whole, Accumulator)
    merged = first.from_state(first.to_state()).merge(second.from_state(second.to_state()))
    if name == "counts":
        for column, counts in whole.columns.items():
            np.testing.assert_array_equal(merged.columns[column].counts, counts.counts)
            assert merged.columns[column].n_missing == counts.n_missing
        numeric = merged.columns["x"]
        np.testing.assert_array_equal(numeric.support.gap, whole.columns["x"].support.gap)
        assert numeric.mean == pytest.approx(whole.columns["x"].mean, rel=1e-12)
    elif name == "multivariate":
        assert merged.n == whole.n == len(batch)
        assert merged.error_sum == pytest.approx(whole.error_sum, rel=1e-12)
        assert merged.sample.n == whole.sample.n
        np.testing.assert_array_equal(merged.sample.rows, whole.sample.rows)  # the same rows
        assert merged.result()[0].statistic == pytest.approx(whole.result()[0].statistic)
    elif name == "estimated-performance":
        # The estimates are sums (rel 1e-12); the intervals, quantiles of seeded draws from
        # a covariance whose eigenvectors move with its last bits (1e-9).
        assert merged.result().keys() == whole.result().keys() and whole.result()
        for key, e in whole.result().items():
            assert merged.result()[key].value == pytest.approx(e.value, rel=1e-12), key
            bounds = (merged.result()[key].lower, merged.result()[key].upper)
            assert bounds == pytest.approx((e.lower, e.upper), abs=1e-9), key
    else:
        _same(merged.result(), whole.result())


def test_worst_samples_of_merged_partitions_keep_their_batch_row_numbers(reference, batch):
    first = _plan(reference, batch.iloc[:SPLIT], 0).worst
    second = _plan(reference, batch.iloc[SPLIT:], SPLIT).worst
    rows = first.merge(second).result()["row"]
    np.testing.assert_array_equal(batch["id"].to_numpy()[rows], rows)  # id == row number


def test_the_digest_is_the_same_for_any_split_and_any_order_of_the_rows(batch):
    whole, first, second = BatchDigest(), BatchDigest(), BatchDigest()
    shuffled, changed = BatchDigest(), BatchDigest()
    other = batch.assign(x=batch["x"].where(batch.index != 3, batch["x"] + 1e-9))
    with Engine(1) as engine:
        for digest, frame in (
            (whole, batch),
            (first, batch[:SPLIT]),
            (second, batch[SPLIT:]),
            (shuffled, batch.sample(frac=1.0, random_state=4)),
            (changed, other),
        ):
            engine.run([frame], lambda _f, d=digest: _digest_steps(d))
    assert whole.from_state(whole.to_state()).result() == whole.result()
    one_way = first.from_state(first.to_state()).merge(second.from_state(second.to_state()))
    other_way = second.from_state(second.to_state()).merge(first.from_state(first.to_state()))
    assert len(whole.result()) == 16
    assert one_way.result() == other_way.result() == shuffled.result() == whole.result()
    assert changed.result() != whole.result()  # one value of one row differs
    assert first.result() != whole.result()


def _digest_steps(digest: BatchDigest) -> Steps:
    return Steps(prepare=lambda frame, offset: Chunk(frame, offset, "t"), parallel=[digest.update])


FIT_ACCUMULATORS = ("numeric", "categorical")


@pytest.mark.parametrize("kind", FIT_ACCUMULATORS, ids=str)
def test_reference_fit_collectors_merge_through_their_states(kind):
    frame = make_frame(1200, seed=3)

    def collectors(part: pd.DataFrame, first_row: int) -> dict[str, Any]:
        plan = _FitPlan(None, MonitoringConfig().drift, "reference test")
        with Engine(1) as engine:
            engine.run([part], plan, first_row=first_row)
        return plan.numeric if kind == "numeric" else plan.categorical

    whole = collectors(frame, 0)
    first, second = collectors(frame[:500], 0), collectors(frame[500:], 500)
    assert whole.keys() == first.keys() and whole
    for column, collector in whole.items():
        restored = first[column].from_state(first[column].to_state())
        merged = restored.merge(second[column].from_state(second[column].to_state()))
        if kind == "numeric":
            np.testing.assert_array_equal(merged.values(), collector.values())
            assert merged.n_missing == collector.n_missing
        else:
            assert merged.counts == collector.counts
            assert merged.n_missing == collector.n_missing


def test_a_state_is_arrays_and_json_only():
    state = pack({"a": np.arange(3)}, n=3, name="x")
    arrays, values = unpack(state)
    np.testing.assert_array_equal(arrays["a"], np.arange(3))
    assert values == {"n": 3, "name": "x"}
    with pytest.raises(InvalidValueError, match="not an accumulator state"):
        unpack(b"not a state")


def test_large_integer_arrays_travel_narrowed_and_come_back_in_their_own_type():
    counts = np.random.default_rng(0).poisson(3.0, 100_000).astype(np.int64)
    signed = -counts.astype(np.int32)
    sums = np.linspace(0.0, 1.0, 100_000)
    state = pack({"counts": counts, "signed": signed, "sums": sums}, n=5)
    arrays, values = unpack(state)
    assert values == {"n": 5}
    for name, original in (("counts", counts), ("signed", signed), ("sums", sums)):
        assert arrays[name].dtype == original.dtype
        np.testing.assert_array_equal(arrays[name], original)
    assert len(state) < counts.nbytes / 8 + signed.nbytes / 4 + sums.nbytes + 4096
    with pytest.raises(InvalidValueError, match="reserved"):
        pack(__narrowed__={})
