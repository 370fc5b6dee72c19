"""A numeric chunk column sorted once, for every lookup the streaming pass makes on it.

Profiling (bin counts, the support counts behind KS and Wasserstein) and the
reconstruction's normal scores all look each value up in a sorted reference table. Random
lookups miss the cache at every step of the binary search; looking up values in sorted
order walks the table once. One argsort per column and chunk pays for itself several
times over, and turns the bin counts into one binary search per bin edge.

Every result equals what the unsorted computation gives (`columns.bin_codes`,
`np.interp`): only the order of the work changes. The error sums per bin (`bin_sums`, for
the segment table) are added in sorted order, so they are equal up to rounding.
"""

from __future__ import annotations

import numpy as np


class SortedColumn:
    """Float values of one chunk column (NaN = missing) and their sorted order."""

    __slots__ = ("order", "sorted", "values")

    def __init__(self, values: np.ndarray):
        self.values = np.asarray(values, dtype=np.float64)
        missing = np.isnan(self.values)
        if missing.any():
            # numpy's vectorised argsort gives up on NaN (3x slower): sort the rest only.
            present = np.flatnonzero(~missing)
            self.order = present[np.argsort(self.values[present])]
        else:
            self.order = np.argsort(self.values)
        self.sorted = self.values[self.order]

    def __len__(self) -> int:
        return len(self.values)

    @property
    def n_missing(self) -> int:
        return len(self.values) - len(self.sorted)

    def bin_counts(self, edges: np.ndarray) -> np.ndarray:
        """Present values per bin of `edges`: bin i holds edges[i-1] <= v < edges[i]
        (`columns.bin_codes` without the missing slot)."""
        below = np.searchsorted(self.sorted, edges, side="left")
        return np.diff(np.concatenate(([0], below, [len(self.sorted)]))).astype(np.int64)

    def bin_codes(self, edges: np.ndarray) -> np.ndarray:
        """Per row, in the chunk's order: its bin, len(edges) + 1 if missing. Equal to
        `columns.bin_codes(values, edges)`, from the ranks instead of a search per value."""
        codes = np.full(len(self.values), len(edges) + 1, dtype=np.intp)
        codes[self.order] = np.repeat(np.arange(len(edges) + 1), self.bin_counts(edges))
        return codes

    def bin_sums(self, edges: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per bin of `edges`, then for the missing values: the sum of `weights` (one per
        row in the chunk's order, NaN = none) and how many rows have a weight.

        Equal to `np.bincount` over `columns.bin_codes` (rows with a weight only), except
        that each bin is summed in sorted order: equal up to rounding."""
        w = weights[self.order]  # present values, in sorted order
        per_bin = self.bin_counts(edges)
        starts = np.concatenate(([0], np.cumsum(per_bin)[:-1]))
        known = ~np.isnan(w)
        if known.all():
            rows = per_bin.copy()
        else:
            w = np.where(known, w, 0.0)
            rows = np.add.reduceat(np.append(known, False).astype(np.int64), starts)
            rows[per_bin == 0] = 0
        # reduceat sums w[starts[i]:starts[i+1]]; the appended 0 lets a start equal n, and
        # an empty bin (which reduceat gives one value of the next) is set to 0.
        sums = np.add.reduceat(np.append(w, 0.0), starts)
        sums[per_bin == 0] = 0.0
        missing = weights[np.isnan(self.values)] if self.n_missing else np.empty(0)
        missing = missing[~np.isnan(missing)]
        return np.append(sums, missing.sum()), np.append(rows, missing.size).astype(np.int64)

    def interp(self, xp: np.ndarray, fp: np.ndarray, missing: float) -> np.ndarray:
        """`np.interp(values, xp, fp)` per row in the chunk's order; `missing` where NaN."""
        out = np.full(len(self.values), missing, dtype=np.float64)
        out[self.order] = np.interp(self.sorted, xp, fp)
        return out
