"""LabelCoder: the per-column cache gives exactly `label_codes`, chunk after chunk."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitoring.columns import LabelCoder, label_codes

VOCABULARY = ("1", "a", "b", "c")


def _categorical(values: list, categories: list) -> pd.Series:
    return pd.Series(pd.Categorical(values, categories=categories))


CHUNKS = {
    "same dictionary": [
        _categorical(["a", "b", None, "z"], ["a", "b", "z"]),
        _categorical(["b", "b", "a"], ["a", "b", "z"]),
    ],
    "dictionary changes": [
        _categorical(["a", "c"], ["a", "c"]),
        _categorical(["c", "a", None], ["c", "a"]),  # same names, other order
        _categorical(["q", "a"], ["a", "q", "unused"]),
        _categorical([None, None], ["a"]),
    ],
    "integers": [_categorical([1, 2, None], [1, 2]), _categorical([2, 1], [1, 2])],
    # Float categories print as integers only when every value in the chunk is whole.
    "floats": [_categorical([1.0, 2.5], [1.0, 2.5]), _categorical([1.0], [1.0, 2.5])],
    "plain strings": [
        pd.Series(["a", None, "x"], dtype=object),
        pd.Series(["c", "a"], dtype="string"),
    ],
}


@pytest.mark.parametrize("chunks", CHUNKS.values(), ids=CHUNKS.keys())
def test_codes_equal_label_codes_chunk_after_chunk(chunks):
    coder = LabelCoder(VOCABULARY)
    for chunk in chunks:
        got = coder.codes(chunk)
        np.testing.assert_array_equal(got, label_codes(chunk, VOCABULARY))
        assert got.dtype == np.int64


def test_a_repeated_dictionary_is_looked_up_once(monkeypatch):
    import monitoring.columns as columns

    calls = []
    original = columns._vocabulary_index
    monkeypatch.setattr(columns, "_vocabulary_index", lambda *a: calls.append(1) or original(*a))
    coder = LabelCoder(VOCABULARY)
    for chunk in CHUNKS["same dictionary"] * 3:
        coder.codes(chunk)
    assert len(calls) == 1
    coder.codes(CHUNKS["dictionary changes"][0])
    assert len(calls) == 2
