"""LabelCoder and ClassCoder: their per-column caches give exactly `label_codes` and
`label_categories` (as labels), chunk after chunk."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitoring.collect.columns import ClassCoder, LabelCoder, label_categories, label_codes
from monitoring.errors import InvalidValueError
from monitoring.measure.performance.labels import read_labels

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
    "mixed objects": [_categorical(["a", 1, None], ["a", 1]), _categorical([1, "c"], [1, "c"])],
    "text categories": [
        _categorical(["b", "é", " a", "1"], ["b", "é", " a", "1"]),
        pd.Series(pd.Categorical(["c", None], categories=pd.Index(["c"], dtype="string"))),
    ],
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


@pytest.mark.parametrize("chunks", CHUNKS.values(), ids=CHUNKS.keys())
def test_codes_equal_label_codes_without_the_text_lookup(chunks, monkeypatch):
    """Past TEXT_LOOKUP_MAX categories, text goes through `_vocabulary_index` too."""
    import monitoring.collect.columns as columns

    monkeypatch.setattr(columns, "TEXT_LOOKUP_MAX", 0)
    test_codes_equal_label_codes_chunk_after_chunk(chunks)


@pytest.fixture
def lookups(monkeypatch) -> list[int]:
    """One entry per dictionary looked up in a vocabulary (`LabelCoder._category_index`)."""
    calls: list[int] = []
    original = LabelCoder._category_index
    monkeypatch.setattr(LabelCoder, "_category_index", lambda *a: calls.append(1) or original(*a))
    return calls


def test_a_repeated_dictionary_is_looked_up_once(lookups):
    coder = LabelCoder(VOCABULARY)
    for chunk in CHUNKS["same dictionary"] * 3:
        coder.codes(chunk)
    assert len(lookups) == 1
    coder.codes(CHUNKS["dictionary changes"][0])
    assert len(lookups) == 2


CLASSES = ("0", "1")
LABEL_CHUNKS = {
    "same dictionary": [
        _categorical(["1", "0", None, "1"], ["1", "0"]),
        _categorical(["0", "0"], ["1", "0"]),
    ],
    "dictionary changes": [
        _categorical(["0", "1"], ["0", "1"]),
        _categorical(["1", None], ["1", "0", "unused"]),  # an unused non-class is fine
        _categorical([None, None], ["1"]),
    ],
    "integers": [pd.Series([1, 0, 1]), _categorical([0, 1, None], [0, 1])],
    "whole floats": [pd.Series([1.0, np.nan, 0.0]), _categorical([1.0, 0.0], [0.0, 1.0])],
    "plain strings": [pd.Series(["0", None], dtype=object), pd.Series(["1"], dtype="string")],
}


def _as_text(labels: pd.Categorical) -> list:
    return [None if pd.isna(v) else str(v) for v in np.asarray(labels, dtype=object)]


@pytest.mark.parametrize("chunks", LABEL_CHUNKS.values(), ids=LABEL_CHUNKS.keys())
def test_class_coder_gives_the_labels_on_the_classes(chunks):
    coder = ClassCoder(CLASSES)
    for chunk in chunks:
        got = coder.labels(chunk)
        expected = label_categories(chunk)
        assert _as_text(got) == _as_text(expected)
        assert list(got.categories) == list(CLASSES)
        # read_labels takes the class codes as they are, and agrees with the slow path.
        codes, missing = read_labels(got, CLASSES, name="y")
        slow_codes, slow_missing = read_labels(expected, CLASSES, name="y")
        np.testing.assert_array_equal(codes, slow_codes)
        np.testing.assert_array_equal(missing, slow_missing)


def test_class_coder_leaves_a_label_outside_the_classes_for_the_caller_to_name():
    coder = ClassCoder(CLASSES)
    coder.labels(_categorical(["0", "1"], ["0", "1", "2"]))  # "2" unused: fine
    got = coder.labels(_categorical(["0", "2"], ["0", "1", "2"]))
    assert list(got.categories) == ["0", "2"]  # label_categories: the chunk's own labels
    with pytest.raises(InvalidValueError, match="'2' at position 1"):
        read_labels(got, CLASSES, name="y")


def test_class_coder_looks_a_repeated_dictionary_up_once(lookups):
    coder = ClassCoder(CLASSES)
    for chunk in LABEL_CHUNKS["same dictionary"] * 3:
        coder.labels(chunk)
    assert len(lookups) == 1
