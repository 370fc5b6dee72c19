"""Turn raw column chunks into clean arrays, or say exactly which value is wrong.

Shared by reference fitting and batch profiling so both read values the same way.
Row numbers in messages are 0-based positions in the whole source (chunk offset + index).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from monitoring.errors import DtypeMismatchError, InvalidValueError


def numeric_values(series: pd.Series, *, column: str, offset: int, where: str) -> np.ndarray:
    """Float64 values of a numeric column; NaN marks missing. inf and text are errors."""
    if pd.api.types.is_bool_dtype(series):
        raise DtypeMismatchError(
            f"{where}: column {column!r} is boolean where a number is expected"
        )
    if pd.api.types.is_numeric_dtype(series):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        converted = pd.to_numeric(series, errors="coerce")
        bad = converted.isna().to_numpy() & series.notna().to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DtypeMismatchError(
                f"{where}: column {column!r} must be numeric, but row {offset + row} holds "
                f"{series.iloc[row]!r}"
            )
        values = converted.to_numpy(dtype=np.float64, na_value=np.nan)
    infinite = np.isinf(values)
    if infinite.any():
        row = int(np.flatnonzero(infinite)[0])
        raise InvalidValueError(
            f"{where}: column {column!r} holds an infinite value at row {offset + row} "
            f"({int(infinite.sum())} in this chunk); replace it or mark it missing"
        )
    return values


def label_values(series: pd.Series) -> pd.Series:
    """Values of a categorical column (or class labels) as strings; missing stays NaN.

    Whole floats print as integers, so a label column read as 1.0 from one source and
    1 from another is the same category "1". Only the distinct values are converted.
    """
    values = np.asarray(label_categories(series), dtype=object)  # missing: NaN
    return pd.Series(values, index=series.index, dtype=object)


def label_categories(series: pd.Series) -> pd.Categorical:
    """`label_values` as a Categorical: the same strings, hashed once per chunk, so that
    later lookups (class checks, performance) read integer codes instead of text."""
    codes, uniques = _factorized(series)
    names = _distinct_label_values(uniques)
    # Two values may print alike (1 and 1.0) and inf prints as missing: factorise again.
    name_codes, categories = pd.factorize(names, use_na_sentinel=True)
    codes = np.append(name_codes, -1)[codes]
    return pd.Categorical.from_codes(codes, categories=pd.Index(categories, dtype=object))


def _factorized(series: pd.Series) -> tuple[np.ndarray, pd.Series]:
    """Per value the index of its distinct value (-1 if missing), and the distinct values.

    A Categorical (Parquet string columns are read dictionary-encoded) has both already:
    its codes are used as they are, without hashing the chunk again; categories that no
    row uses are dropped, as `pd.factorize` would never list them.
    """
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy().astype(np.intp)
        categories = series.cat.categories
        used = np.bincount(codes[codes >= 0], minlength=len(categories)) > 0
        if not used.all():
            renumbered = np.append(np.cumsum(used) - 1, -1)
            codes, categories = renumbered[codes], categories[used]
        return codes, pd.Series(categories)
    try:
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
    except TypeError as exc:  # unhashable values: lists, dicts, arrays
        raise _nested_values_error(series) from exc
    return codes, pd.Series(uniques)


def _hashable(value: object) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _nested_values_error(series: pd.Series) -> DtypeMismatchError:
    """The error for a column whose values cannot be hashed, naming the first such row."""
    values = series.to_numpy(dtype=object)
    position = next((i for i, v in enumerate(values) if not _hashable(v)), 0)
    value = values[position]
    kind = "struct (dict)" if isinstance(value, Mapping) else type(value).__name__
    return DtypeMismatchError(
        f"column {series.name!r} holds {kind} values ({repr(value)[:60]} at row "
        f"{series.index[position]}); list and struct columns cannot be monitored: exclude "
        "the column (`schema.exclude`, --exclude) or flatten it into scalar columns"
    )


def _distinct_label_values(series: pd.Series) -> pd.Series:
    """`label_values` of a few values, one at a time."""
    if pd.api.types.is_float_dtype(series):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        finite = np.isfinite(values)
        if np.all(values[finite] == np.round(values[finite])):
            out = pd.Series(np.full(len(series), np.nan, dtype=object), index=series.index)
            out[finite] = values[finite].astype(np.int64).astype(str)
            return out
    if isinstance(series.dtype, pd.StringDtype):  # text already: only NA becomes NaN
        return pd.Series(
            series.to_numpy(dtype=object, na_value=np.nan), index=series.index, dtype=object
        )
    mask = series.notna()
    out = series.astype(object).where(mask, np.nan)
    out[mask] = out[mask].astype(str)
    return out


def score_matrix(
    frame: pd.DataFrame, score_columns: Mapping[str, str], classes: Sequence[str]
) -> np.ndarray | None:
    """Class probabilities (rows x classes, in `classes` order), or None when incomplete.

    A binary task may give one class's probability only; the other is its complement.
    Every score read must be a probability in [0, 1]: InvalidValueError otherwise, naming
    the score column, its class and the row (the frame's index: the row number in the
    source for files and queries).
    """
    given = [c for c in classes if c in score_columns and score_columns[c] in frame.columns]
    if len(classes) == 2 and len(given) == 1:
        p = frame[score_columns[given[0]]].to_numpy(dtype=np.float64, na_value=np.nan)
        _check_probabilities(frame, p[:, None], [score_columns[given[0]]], given)
        pair = np.column_stack([1.0 - p, p])
        return pair if given[0] == classes[1] else pair[:, ::-1]
    if not given or len(given) != len(classes):
        return None
    columns = [score_columns[c] for c in classes]
    scores = frame[columns].to_numpy(dtype=np.float64, na_value=np.nan)
    _check_probabilities(frame, scores, columns, classes)
    return scores


def _check_probabilities(
    frame: pd.DataFrame, scores: np.ndarray, columns: Sequence[str], classes: Sequence[str]
) -> None:
    """InvalidValueError naming the first score outside [0, 1] (or missing) by column."""
    # min and max are NaN if any value is, so this one check lets only valid scores pass.
    if scores.size == 0 or (float(scores.min()) >= 0.0 and float(scores.max()) <= 1.0):
        return
    bad = ~((scores >= 0.0) & (scores <= 1.0))
    row, col = (int(i) for i in np.argwhere(bad)[0])
    raise InvalidValueError(
        f"score column {columns[col]!r} (class {str(classes[col])!r}) has "
        f"{float(scores[row, col])!r} at row {frame.index[row]}: class scores must be "
        f"probabilities in [0, 1] ({int(bad.sum())} such value(s) in this chunk)"
    )


def label_codes(series: pd.Series, vocabulary: Sequence[str]) -> np.ndarray:
    """Per value: its index in `vocabulary`, len(vocabulary) when unseen, len + 1 when missing.

    Factorises first, so only the distinct values are normalised (as `label_values` does)
    and looked up: fast on long columns with few categories.
    """
    codes, uniques = _factorized(series)
    size = len(vocabulary)
    if len(uniques) == 0:
        return np.full(len(series), size + 1, dtype=np.int64)
    lookup = _vocabulary_index(uniques, vocabulary)
    return np.where(codes < 0, size + 1, lookup[np.maximum(codes, 0)]).astype(np.int64)


TEXT_LOOKUP_MAX = 10_000  # categories looked up one by one in a dict (`LabelCoder`)


class LabelCoder:
    """`label_codes` of one column, chunk after chunk.

    A Parquet string column arrives as a Categorical whose dictionary usually repeats from
    one chunk to the next: its categories are looked up in the vocabulary once, and a chunk
    then costs one comparison of the dictionaries and one gather of its codes. Other
    columns (and float categories, whose printed form depends on which values a chunk
    holds) go through `label_codes` every time. Not thread-safe: one column, one task at
    a time.
    """

    def __init__(self, vocabulary: Sequence[str]) -> None:
        self.vocabulary = tuple(vocabulary)
        self._positions = {value: i for i, value in enumerate(self.vocabulary)}
        self._categories: pd.Index | None = None
        self._lookup = np.empty(0, dtype=np.int64)

    def codes(self, series: pd.Series) -> np.ndarray:
        dtype = series.dtype
        if not isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_float_dtype(
            dtype.categories.dtype
        ):
            return label_codes(series, self.vocabulary)
        categories = dtype.categories
        if self._categories is None or not categories.equals(self._categories):
            size = len(self.vocabulary)
            # Code -1 (missing) reads the last entry: len(vocabulary) + 1, as label_codes.
            self._lookup = np.append(self._category_index(categories), size + 1)
            self._categories = categories
        return self._lookup[series.cat.codes.to_numpy()]

    def _category_index(self, categories: pd.Index) -> np.ndarray:
        """`_vocabulary_index` of a dictionary's categories. Text categories (a Parquet
        dictionary's) are their own labels: looked up in a dict, without pandas' per-call
        cost (0.4-0.9 ms a column, most of a small batch's label coding)."""
        size = len(self.vocabulary)
        if len(categories) <= TEXT_LOOKUP_MAX and all(type(v) is str for v in categories):
            positions = self._positions
            found = (positions.get(value, size) for value in categories)
            return np.fromiter(found, dtype=np.int64, count=len(categories))
        return _vocabulary_index(categories, self.vocabulary)


class ClassCoder:
    """`label_categories` of one class-label column (target or prediction), chunk after
    chunk, with the classes as categories whenever every label is one of them.

    The labels are coded by a `LabelCoder` over the classes (a Parquet dictionary is
    looked up once) and go on as class codes: `performance.read_labels` reads them
    without converting any text again. A chunk with a label outside the classes gets
    `label_categories` as it is, so the caller can name that label and its row. Not
    thread-safe: one column, one task at a time.
    """

    def __init__(self, classes: Sequence[str]) -> None:
        self.dtype = pd.CategoricalDtype(pd.Index([str(c) for c in classes], dtype=object))
        self._coder = LabelCoder(self.dtype.categories)

    def labels(self, series: pd.Series) -> pd.Categorical:
        codes = self._coder.codes(series)  # unseen: len(classes); missing: len + 1
        unseen = len(self.dtype.categories)
        if (codes == unseen).any():
            return label_categories(series)  # a label that is not a class: the caller names it
        return pd.Categorical.from_codes(
            np.where(codes > unseen, -1, codes), dtype=self.dtype, validate=False
        )


def _vocabulary_index(values: pd.Index | pd.Series, vocabulary: Sequence[str]) -> np.ndarray:
    """Per distinct value: its index in `vocabulary`, len(vocabulary) when unseen."""
    names = _distinct_label_values(pd.Series(values)).astype(str)
    lookup = pd.Index(list(vocabulary)).get_indexer(names)
    return np.where(lookup < 0, len(vocabulary), lookup).astype(np.int64)


def bin_codes(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Per value: its bin (0 .. len(edges)) on the reference edges, len(edges) + 1 if NaN."""
    index = np.searchsorted(edges, values, side="right")
    return np.where(np.isnan(values), len(edges) + 1, index)
