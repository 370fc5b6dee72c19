"""Threads change how fast a pass runs, never what it finds or which error it reports."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
from conftest import make_frame

from monitoring import MonitoringConfig, evaluate, fit_reference
from monitoring.core import engine
from monitoring.core.accumulator import Chunk
from monitoring.core.config import EvaluationConfig
from monitoring.core.engine import Engine, Steps
from monitoring.core.parallel import MAX_AUTO_THREADS, ReadAhead, read_ahead, thread_count
from monitoring.errors import ConfigError, DtypeMismatchError


@pytest.fixture(autouse=True)
def pool_at_any_size(monkeypatch):
    """Chunks under engine.INLINE_BELOW_ROWS run in the caller's thread: this module's small
    frames must still go through the pool, or its comparisons would compare one path."""
    monkeypatch.setattr(engine, "INLINE_BELOW_ROWS", 0)


def _config(threads: int, chunk_size: int) -> MonitoringConfig:
    return MonitoringConfig(evaluation=EvaluationConfig(threads=threads, chunk_size=chunk_size))


@pytest.fixture
def gappy_batch() -> pd.DataFrame:
    batch = make_frame(3000, seed=5, shift=0.3)
    batch.loc[::17, "size"] = np.nan
    batch.loc[::23, "color"] = None
    return batch


@pytest.mark.parametrize("chunk_size", [97, 1000, 5000])
def test_every_thread_count_gives_the_single_thread_result(gappy_batch, chunk_size):
    reference = fit_reference(make_frame(4000, seed=1), target="label", prediction="prediction")
    one = evaluate(gappy_batch, reference, config=_config(1, chunk_size))
    for threads in (2, 5):
        many = evaluate(gappy_batch, reference, config=_config(threads, chunk_size))
        pd.testing.assert_frame_equal(one.drift_table, many.drift_table, check_exact=True)
        assert one.performance == many.performance
        pd.testing.assert_frame_equal(one.worst_samples, many.worst_samples)
        pd.testing.assert_frame_equal(one.segments, many.segments)
        assert one.multivariate == many.multivariate
        assert one.batch_digest == many.batch_digest
        assert one.profile == many.profile


def test_the_first_bad_value_is_reported_whatever_the_thread_count():
    reference = fit_reference(make_frame(500, seed=1), target="label", prediction="prediction")
    batch = make_frame(400, seed=2).astype({"x": object, "size": object})
    batch.loc[250, "x"] = "n/a"
    batch.loc[120, "size"] = "??"  # two bad columns: the same one is named every time
    messages = set()
    for threads in (1, 2, 4):
        with pytest.raises(DtypeMismatchError) as error:
            evaluate(batch, reference, config=_config(threads, 100))
        messages.add(str(error.value))
    assert len(messages) == 1
    assert messages.pop().endswith(("row 250 holds 'n/a'", "row 120 holds '??'"))


def test_read_ahead_yields_in_order_then_raises_where_the_source_failed():
    def items():
        yield from range(5)
        raise OSError("disk gone after item 4")

    seen = []
    with pytest.raises(OSError, match="after item 4"), ReadAhead(items()) as ahead:
        for item in ahead:
            seen.append(item)
    assert seen == [0, 1, 2, 3, 4]


def test_read_ahead_closes_the_source_when_the_reader_stops_early():
    closed = threading.Event()

    def items():
        try:
            yield from range(1_000_000)
        finally:
            closed.set()

    with ReadAhead(items(), depth=2) as ahead:
        assert [next(ahead) for _ in range(3)] == [0, 1, 2]
    assert closed.is_set()
    assert not any(t.name == "monitoring-read-ahead" for t in threading.enumerate())


def test_one_thread_reads_in_the_callers_thread():
    names = []

    def items():
        names.append(threading.current_thread().name)
        yield 1

    with read_ahead(items(), 1) as ahead:
        assert list(ahead) == [1]
    assert names == [threading.current_thread().name]


def test_thread_count_setting():
    assert thread_count(3) == 3
    assert 1 <= thread_count(0) <= MAX_AUTO_THREADS
    with pytest.raises(ConfigError, match="evaluation.threads"):
        EvaluationConfig(threads=-1)


class _RecordingSource:
    """A source that notes, at each chunk, how many threads BLAS may use."""

    name = "recording"

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.blas_threads: list[int] = []

    def describe(self) -> str:
        return "recording source"

    def iter_chunks(self, chunk_size: int = 100_000):
        from threadpoolctl import threadpool_info

        for start in range(0, len(self.frame), chunk_size):
            blas = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
            self.blas_threads.append(max(blas, default=1))
            yield self.frame.iloc[start : start + chunk_size]


def test_blas_runs_in_one_thread_while_the_pass_has_its_own():
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads() -> list[int]:
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    reference = fit_reference(make_frame(500, seed=1), target="label", prediction="prediction")
    source = _RecordingSource(make_frame(600, seed=2))
    with threadpool_limits(limits=2, user_api="blas"):  # as on any multi-core machine
        assert blas_threads() and set(blas_threads()) == {2}
        evaluate(source, reference, config=_config(2, 200))
        assert set(blas_threads()) == {2}  # given back when the pass ends
    assert source.blas_threads == [1, 1, 1]


@pytest.mark.parametrize("threads", [1, 2])
def test_blas_runs_in_one_thread_during_a_pass(threads, reference_frame, batch_frame, monkeypatch):
    """OpenBLAS's spin-waiting threads would double a one-thread pass's CPU time."""
    from threadpoolctl import threadpool_info

    from monitoring.measure.multivariate_pass import MultivariatePass

    seen: list[int] = []
    update = MultivariatePass.update

    def spy(self, chunk):  # runs inside the pass, where BLAS is limited
        seen.extend(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
        return update(self, chunk)

    monkeypatch.setattr(MultivariatePass, "update", spy)
    evaluate(batch_frame, reference_frame, config=_config(threads=threads, chunk_size=500))
    assert seen and set(seen) == {1}


@pytest.mark.parametrize(("rows", "in_pool"), [(4_999, False), (5_000, True)])
def test_small_chunks_and_what_follows_a_small_pass_stay_in_the_callers_thread(
    monkeypatch, rows, in_pool
):
    """Below INLINE_BELOW_ROWS a chunk's parallel and deferred steps, and what is submitted
    after the pass, run in the calling thread: their tasks are shorter than the pool's
    hand-offs. At or above it they go to the pool. `map` (whole columns' drift decisions)
    uses the pool whatever the size."""
    monkeypatch.setattr(engine, "INLINE_BELOW_ROWS", 5_000)
    seen: dict[str, set[str]] = {"parallel": set(), "deferred": set(), "after": set()}
    mapped: set[str] = set()

    def noting(kind: str):
        return lambda *_: seen[kind].add(threading.current_thread().name)

    steps = Steps(
        prepare=lambda frame, offset: Chunk(frame, offset, "test frame"),
        parallel=[noting("parallel")] * 3,
        deferred=[noting("deferred")],
    )
    with Engine(threads=2) as pass_engine:
        frame = pd.DataFrame({"x": np.arange(rows)})
        assert pass_engine.run([frame], lambda _: steps) == rows
        pass_engine.submit(noting("after")).result()
        pass_engine.map(lambda _: mapped.add(threading.current_thread().name), range(3))
    here = threading.current_thread().name
    for kind, names in seen.items():
        assert (names != {here}) == in_pool, (kind, names)
    assert here not in mapped


def test_a_small_batch_simulates_its_nulls_in_the_pool_while_its_pass_runs(monkeypatch):
    """A batch that announces fewer rows than INLINE_BELOW_ROWS is read in this thread, so
    its histogram nulls (at that many values) are simulated in the pool meanwhile; the
    drift table is the one a single thread gives."""
    from monitoring.measure import drift
    from monitoring.stats import calibration

    monkeypatch.setattr(engine, "INLINE_BELOW_ROWS", 20_000)
    reference = fit_reference(make_frame(4000, seed=1), target="label", prediction="prediction")
    batch = make_frame(3000, seed=5, shift=0.3)
    calibration._histogram_nulls.cache_clear()
    one = evaluate(batch, reference, config=_config(1, 100_000))
    calibration._histogram_nulls.cache_clear()
    sizes_in_pool: list[int] = []
    real = drift.histogram_nulls

    def noting(counts, n, **options):
        if threading.current_thread() is not threading.main_thread():
            sizes_in_pool.append(n)
        return real(counts, n, **options)

    from monitoring.evaluation import batch as batch_module

    before_deciding: list[int] = []
    deciding = batch_module.decide_drift

    def decide_after_noting(*args, **kwargs):
        before_deciding.extend(sizes_in_pool)
        return deciding(*args, **kwargs)

    monkeypatch.setattr(drift, "histogram_nulls", noting)
    monkeypatch.setattr(batch_module, "decide_drift", decide_after_noting)
    two = evaluate(batch, reference, config=_config(2, 100_000))
    assert before_deciding and set(before_deciding) == {3000}
    pd.testing.assert_frame_equal(one.drift_table, two.drift_table, check_exact=True)


def test_one_thread_starts_no_other_thread(monkeypatch):
    """`evaluation.threads = 1` means no thread of ours: no pool, no read-ahead, no
    bridges drawn ahead, fitting and evaluating alike."""
    started: list[str] = []
    start = threading.Thread.start

    def noting(thread: threading.Thread) -> None:
        started.append(thread.name)
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", noting)
    config = _config(1, 100_000)
    reference = fit_reference(
        make_frame(3000, seed=1), target="label", prediction="prediction", config=config
    )
    evaluate(make_frame(30_000, seed=2), reference, config=config)
    assert started == []
    evaluate(make_frame(30_000, seed=2), reference, config=_config(2, 100_000))
    assert started  # the same calls with two threads do start some
