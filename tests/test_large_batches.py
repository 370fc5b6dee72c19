"""Large and broken batches: memory stays bounded, and a pass that breaks leaves no run.

A Parquet file whose DataFrame is larger than all the memory a child process may use is
evaluated in that child, chunk by chunk; as a control, loading it whole under the same
limit fails. Then batches that break part-way through the pass (a folder whose second file
differs, a damaged Parquet file, a CSV with a malformed row or a text value deep inside)
must fail through `evaluate_and_log` with an error naming the file and the row (or line),
and leave no FINISHED batch run in the tracking store.

The memory limit is RLIMIT_AS, set first thing in the child. Two things make address space
differ from memory, and the test controls both (measured on two cores):
- every thread reserves a stack and allocator arenas, so the child pins Arrow's and
  OpenBLAS's pools to one thread (OMP_NUM_THREADS=1); unpinned, the same pass maps
  ~200 MB more here, and more again on a machine with more cores. The pass's own threads
  (`evaluation.threads`, one per core by default) stay on: the child shares one glibc
  arena among them (MALLOC_ARENA_MAX=1), since each extra arena maps 64 MB up front that
  is never resident;
- Arrow's allocator (mimalloc) reserves a 1 GiB arena when the address space allows it
  and falls back to smaller mappings when it does not. A margin under 1 GiB keeps that
  reservation out; above it (unpinned), a 1.6 GB limit broke scipy's import and a 2 GB
  one hid the growing Parquet pass inside the reserved arena.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import make_frame
from mlflow import MlflowClient
from mlflow.entities import Run, ViewType

from monitoring.core.config import EvaluationConfig, MonitoringConfig, SchemaConfig
from monitoring.errors import DtypeMismatchError, MonitoringError, SourceError
from monitoring.track.pipeline import evaluate_and_log

# --- a file larger than the memory limit ---------------------------------------------

BIG_ROWS = 10_000_000
BLOCK_ROWS = 250_000  # rows generated and written at a time: one row group each
BIG_CHUNK = 50_000
MARGIN = 400 * 2**20  # address space the child may map beyond its imports: 400 MiB < 1 GiB
CATEGORIES = pa.array(
    [
        f"household/kitchen/small-appliances/{name}"
        for name in ("toasters", "kettles", "blenders", "coffee-makers", "juicers", "mixers")
    ]
)
CLASSES = pa.array(["approved", "rejected"])

CHILD_IMPORTS = (
    "import numpy, pandas, pyarrow.parquet, scipy.stats, monitoring.evaluation.batch, "
    "monitoring.evaluation.fit\n"
)
BASELINE = CHILD_IMPORTS + textwrap.dedent(
    r"""
    import re
    status = open("/proc/self/status").read()
    print(int(re.search(r"VmPeak:\s+(\d+) kB", status).group(1)) * 1024)
    """
)
LIMITED = textwrap.dedent(
    """
    import resource, sys
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    """
)
EVALUATE = LIMITED + textwrap.dedent(
    """
    from monitoring.core.config import EvaluationConfig, MonitoringConfig
    from monitoring.evaluation.batch import evaluate
    from monitoring.evaluation.fit import fit_reference
    reference = fit_reference(sys.argv[3], target="label", prediction="prediction")
    config = MonitoringConfig(evaluation=EvaluationConfig(chunk_size=int(sys.argv[4])))
    print(evaluate(sys.argv[2], reference, config=config).n_rows)
    """
)
LOAD_WHOLE = LIMITED + "import pandas\nprint(len(pandas.read_parquet(sys.argv[2])))\n"


@dataclass(frozen=True)
class BigBatch:
    path: Path
    reference: Path
    limit: int  # RLIMIT_AS of the child, bytes
    frame_bytes: int  # the file's size as a pandas DataFrame


def _block(rng: np.random.Generator, n: int) -> pa.Table:
    """Six numeric features, a categorical one, label, prediction and its probability."""
    x = rng.standard_normal((n, 6))
    p = 1 / (1 + np.exp(-1.5 * x[:, 0]))

    def strings(codes: np.ndarray, values: pa.Array) -> pa.Array:
        indices = pa.array(codes.astype(np.int8))
        return pa.DictionaryArray.from_arrays(indices, values).cast(pa.string())

    return pa.table(
        {
            **{f"x{i}": x[:, i] for i in range(6)},
            "category": strings(rng.integers(0, len(CATEGORIES), n), CATEGORIES),
            "label": strings(rng.random(n) < p, CLASSES),
            "prediction": strings(p > 0.5, CLASSES),
            "proba_rejected": p,
        }
    )


def _write_parquet(path: Path, rows: int, seed: int) -> None:
    """Write `rows` rows, BLOCK_ROWS at a time, without ever holding the whole table."""
    rng = np.random.default_rng(seed)
    schema = _block(rng, 1).schema
    strings = ["category", "label", "prediction"]
    with pq.ParquetWriter(path, schema, compression="none", use_dictionary=strings) as writer:
        for start in range(0, rows, BLOCK_ROWS):
            writer.write_table(_block(rng, min(BLOCK_ROWS, rows - start)))


def _child_env() -> dict[str, str]:
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MALLOC_ARENA_MAX": "1",
    }


def _run_child(code: str, *args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
        env=_child_env(),
        timeout=240,
    )


@pytest.fixture(scope="module")
def big_batch(tmp_path_factory: pytest.TempPathFactory) -> BigBatch:
    """The big file, a small reference file, and the limit: the child's address space
    after its imports (measured) plus MARGIN."""
    folder = tmp_path_factory.mktemp("big")
    path, reference = folder / "big.parquet", folder / "reference.parquet"
    _write_parquet(path, BIG_ROWS, seed=0)
    _write_parquet(reference, 20_000, seed=1)
    baseline = _run_child(BASELINE)
    assert baseline.returncode == 0, baseline.stderr
    with pq.ParquetFile(path) as parquet:
        group = parquet.read_row_group(0).to_pandas()
        frame_bytes = int(group.memory_usage(deep=True).sum()) * parquet.num_row_groups
    return BigBatch(path, reference, int(baseline.stdout) + MARGIN, frame_bytes)


@pytest.mark.slow
def test_the_big_file_is_larger_than_the_limit_and_loading_it_whole_fails(
    big_batch: BigBatch,
) -> None:
    """Control for the test below: the limit bites. The DataFrame (1.39 GB) is well over
    the whole limit (~0.91 GB), and `pd.read_parquet` under it runs out of memory."""
    assert big_batch.frame_bytes > 1.2 * big_batch.limit

    result = _run_child(LOAD_WHOLE, big_batch.limit, big_batch.path)

    assert result.returncode != 0
    assert "MemoryError" in result.stderr


@pytest.mark.slow
def test_a_file_larger_than_the_memory_limit_is_evaluated(big_batch: BigBatch) -> None:
    """10,000,000 rows (6 float64 features, a categorical of ~40-character strings, label,
    prediction, probability): 0.57 GB on disk (uncompressed, 40 row groups), 1.39 GB as a
    DataFrame. The child may map ~0.91 GB: ~0.49 GB measured after its imports (numpy,
    pandas, pyarrow, scipy, monitoring) plus the 400 MiB margin. With the Parquet pass
    fixed (pre_buffer=False) it peaks at ~0.71 GB mapped and ~0.27 GB resident, flat in
    the number of rows, in ~40 s on two cores (before that fix it ran out at ~4.5 M rows).
    """
    result = _run_child(EVALUATE, big_batch.limit, big_batch.path, big_batch.reference, BIG_CHUNK)

    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == [str(BIG_ROWS)]


@pytest.mark.slow
def test_running_out_of_memory_is_not_reported_as_a_corrupt_file(big_batch: BigBatch) -> None:
    """One chunk of the whole file cannot fit: that is a MemoryError, not a damaged file."""
    result = _run_child(EVALUATE, big_batch.limit, big_batch.path, big_batch.reference, BIG_ROWS)

    assert result.returncode != 0
    assert "MemoryError" in result.stderr.strip().splitlines()[-1]
    assert "corrupt" not in result.stderr


# --- batches that break part-way through the pass -----------------------------------

CHUNK = 1_000
CONFIG = MonitoringConfig(
    schema=SchemaConfig(target="label", prediction="prediction"),
    evaluation=EvaluationConfig(chunk_size=CHUNK, plot_top_features=0),
)
REFERENCE = make_frame(2_000, seed=1)

Damage = Callable[[Path], None]
Change = Callable[[pd.DataFrame], pd.DataFrame]


def finished_batch_runs(tracking_uri: str) -> list[Run]:
    """FINISHED runs tagged monitoring.kind=batch, in every experiment, deleted ones too."""
    client = MlflowClient(tracking_uri=tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    return client.search_runs(
        experiments,
        filter_string="tags.`monitoring.kind` = 'batch' and attributes.status = 'FINISHED'",
        run_view_type=ViewType.ALL,
    )


def _evaluate(batch: Path, processed: list[int]) -> None:
    """evaluate_and_log, recording the rows done (0 at the start, then after each chunk)."""
    evaluate_and_log(str(batch), reference=REFERENCE, config=CONFIG, progress=processed.append)


def test_a_clean_batch_logs_one_finished_batch_run(tracking_uri: str, tmp_path: Path) -> None:
    """Control for the tests below: `finished_batch_runs` does find a logged batch."""
    make_frame(10_000, seed=2).to_csv(tmp_path / "clean.csv", index=False)
    processed: list[int] = []

    _evaluate(tmp_path / "clean.csv", processed)

    assert processed[-1] == 10_000
    assert len(finished_batch_runs(tracking_uri)) == 1


@pytest.mark.parametrize(
    ("change", "named"),
    [
        pytest.param(
            lambda frame: frame.drop(columns="size"),
            ("part-1.parquet", "missing ['size']"),
            id="missing-column",
        ),
        pytest.param(
            lambda frame: frame.assign(
                size=frame["size"].astype(str).mask(frame.id == 1_700, "n/a")
            ),
            ("part-1.parquet", "'size'"),
            id="text-in-numeric-column",
        ),
        pytest.param(
            lambda frame: frame.assign(size=frame["size"] > 1),
            ("part-1.parquet", "'size'"),
            id="boolean-numeric-column",
        ),
    ],
)
def test_a_folder_whose_second_file_differs_names_that_file(
    tracking_uri: str, tmp_path: Path, change: Change, named: tuple[str, ...]
) -> None:
    folder = tmp_path / "batch"
    folder.mkdir()
    make_frame(3_000, seed=2).to_parquet(folder / "part-0.parquet")
    change(make_frame(3_000, seed=3)).to_parquet(folder / "part-1.parquet")
    processed: list[int] = []

    with pytest.raises(MonitoringError) as caught:
        _evaluate(folder, processed)

    assert [part for part in named if part not in str(caught.value)] == []
    assert processed[-1] == 3_000  # the first file was evaluated
    assert finished_batch_runs(tracking_uri) == []


def _truncate(path: Path) -> None:
    """Cut the file at 60%: the footer, with the schema and row groups, is lost."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 6 // 10])


def _garble_last_row_group(path: Path) -> None:
    """Overwrite the page header of the last row group; the footer stays valid."""
    with pq.ParquetFile(path) as parquet:
        last = parquet.metadata.row_group(parquet.metadata.num_row_groups - 1)
        start = min(
            last.column(i).dictionary_page_offset or last.column(i).data_page_offset
            for i in range(last.num_columns)
        )
    data = bytearray(path.read_bytes())
    data[start : start + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "message", "rows_before"),
    [
        pytest.param(_truncate, "not a readable Parquet file", 0, id="truncated"),
        pytest.param(
            _garble_last_row_group, "corrupt Parquet data", 7_000, id="last-row-group-garbled"
        ),
    ],
)
def test_a_damaged_parquet_file_is_named_and_not_logged(
    tracking_uri: str, tmp_path: Path, damage: Damage, message: str, rows_before: int
) -> None:
    path = tmp_path / "damaged.parquet"
    make_frame(10_000, seed=4).to_parquet(path, row_group_size=2_500)
    damage(path)
    processed: list[int] = []

    with pytest.raises(SourceError, match=message) as caught:
        _evaluate(path, processed)

    assert str(path) in str(caught.value)
    assert processed[-1] == rows_before  # 0: the pass started and read nothing
    assert finished_batch_runs(tracking_uri) == []


def test_a_malformed_csv_row_deep_in_the_file_names_file_and_line(
    tracking_uri: str, tmp_path: Path
) -> None:
    """Data row 5,000 of 10,000 (0-based) is line 5,002 of the file, after the header."""
    path = tmp_path / "malformed.csv"
    make_frame(10_000, seed=5).to_csv(path, index=False)
    lines = path.read_text().splitlines(keepends=True)
    lines[5_001] = lines[5_001].rstrip("\n") + ",extra\n"
    path.write_text("".join(lines))
    processed: list[int] = []

    with pytest.raises(SourceError, match=r"malformed row at line 5002") as caught:
        _evaluate(path, processed)

    assert str(path) in str(caught.value)
    assert processed[-1] == 5_000  # the five chunks before it were evaluated
    assert finished_batch_runs(tracking_uri) == []


def test_text_in_a_numeric_csv_column_names_file_column_and_row(
    tracking_uri: str, tmp_path: Path
) -> None:
    """Rows in messages are 0-based positions in the batch (monitoring.collect.columns)."""
    path = tmp_path / "text.csv"
    frame = make_frame(10_000, seed=5).astype({"size": object})
    frame.loc[7_500, "size"] = "oops"
    frame.to_csv(path, index=False)
    processed: list[int] = []

    with pytest.raises(DtypeMismatchError) as caught:
        _evaluate(path, processed)

    message = str(caught.value)
    assert [part for part in ("text.csv", "'size'", "row 7500") if part not in message] == []
    assert processed[-1] == 7_000
    assert finished_batch_runs(tracking_uri) == []
