"""Read class labels and class-probability scores into the integer codes and matrices that
the classification metrics count: every value checked, a bad one named with its position.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from monitoring.errors import InvalidValueError

__all__ = ["read_label_text", "read_labels", "read_scores"]


def _as_1d(values: npt.ArrayLike, name: str) -> np.ndarray:
    """Return `values` as a 1-D array without turning missing values into text."""
    arr = np.asarray(values)
    if arr.dtype.kind == "U" and not isinstance(values, np.ndarray):
        # np.asarray(["a", nan]) would give the string "nan": keep the objects instead.
        arr = np.asarray(values, dtype=object)
    if arr.ndim != 1:
        raise InvalidValueError(f"`{name}` must be one-dimensional, got shape {arr.shape}")
    return arr


def read_label_text(values: npt.ArrayLike, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Return (labels as str for the present rows, missing mask over all rows).

    Float labels that are all integral (pandas turns an int column with gaps into float)
    are written as integers, so 1.0 compares equal to the class "1".
    """
    arr = _as_1d(values, name)
    missing = np.asarray(pd.isna(arr), dtype=bool)
    present = arr[~missing]
    if (
        present.dtype.kind == "f"
        and np.isfinite(present).all()
        and np.array_equal(present, np.trunc(present))
    ):
        present = present.astype(np.int64)
    return present.astype(str), missing


def read_labels(
    values: npt.ArrayLike, classes: Sequence[str], *, name: str
) -> tuple[np.ndarray, np.ndarray]:
    """Map labels (compared as str) to their index in `classes`.

    Returns (codes, missing): codes is -1 on rows whose label is missing (None, NaN,
    pd.NA). A label outside `classes` raises InvalidValueError naming it and its row.
    """
    if isinstance(values, pd.Categorical):  # already hashed (`columns.label_categories`)
        if _are_classes(values.categories, classes):  # `columns.ClassCoder`: class codes
            codes = values.codes.astype(np.int64)
            return codes, codes < 0
        codes, uniques = values.codes.astype(np.intp), np.asarray(values.categories, dtype=object)
    else:
        # Only the distinct labels are converted and looked up: fast on long chunks.
        codes, uniques = pd.factorize(_as_1d(values, name), use_na_sentinel=True)
    missing = codes < 0
    text, _ = read_label_text(np.asarray(uniques), name)
    names = [str(c) for c in classes]
    lookup = pd.Index(names).get_indexer(text)
    if (lookup < 0).any():
        unknown = np.flatnonzero((lookup < 0)[codes] & ~missing)
        row = int(unknown[0])
        raise InvalidValueError(
            f"`{name}` has label {str(text[codes[row]])!r} at position {row} of the chunk, "
            f"which is not one of the classes {names} "
            f"({unknown.size} such row(s) in this chunk)"
        )
    return np.append(lookup, -1)[codes].astype(np.int64), missing


def _are_classes(categories: pd.Index, classes: Sequence[str]) -> bool:
    """Whether a Categorical's categories are the classes as text, in their order."""
    return (
        categories.dtype == object
        and len(categories) == len(classes)
        and all(a == str(b) for a, b in zip(categories, classes, strict=True))
    )


def read_scores(scores: npt.ArrayLike, n_rows: int, classes: Sequence[str]) -> np.ndarray:
    """Check that `scores` is an (n_rows, len(classes)) array of finite values in [0, 1].

    Rows are taken as given: they are not renormalised to sum to 1.
    """
    try:
        prob = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidValueError(f"`scores` must be an array of numbers: {exc}") from exc
    if prob.shape != (n_rows, len(classes)):
        raise InvalidValueError(
            f"`scores` must have shape ({n_rows}, {len(classes)}) (rows, classes), got {prob.shape}"
        )
    # min and max are NaN if any value is, so this one check lets only valid scores pass.
    valid = prob.size == 0 or (float(prob.min()) >= 0.0 and float(prob.max()) <= 1.0)
    if not valid:
        bad = np.argwhere(~((prob >= 0.0) & (prob <= 1.0)))
        row, col = (int(i) for i in bad[0])
        raise InvalidValueError(
            f"`scores` has {float(prob[row, col])!r} at position {row}, "
            f"class {str(classes[col])!r}: scores must be finite probabilities in [0, 1] "
            f"({bad.shape[0]} such value(s))"
        )
    return prob
