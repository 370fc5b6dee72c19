"""Random keys that belong to rows, not to the order they are read in.

A sample of rows is the rows with the smallest keys. When a row's key is a hash of its row
number in the batch and the seed (splitmix64, whose outputs pass BigCrush), every way of
splitting the batch (chunks, threads, Spark partitions) keeps the same rows: the sample of
two partitions merged is the sample of the whole. A key drawn from a generator would
instead depend on how many rows its stream had seen.
"""

from __future__ import annotations

import numpy as np

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_UNIT = 2.0**-53


def _splitmix(z: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser on uint64 values (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def remix(hashes: np.ndarray) -> np.ndarray:
    """Hashes mixed again (uint64 in, uint64 out): a second hash as good as the first."""
    return _splitmix(hashes ^ _GAMMA)


def row_hashes(seed: int, first_row: int, n: int) -> np.ndarray:
    """64-bit hashes of rows `first_row` .. `first_row + n - 1` under `seed` (uint64)."""
    base = _splitmix(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))[0]
    rows = np.arange(first_row, first_row + n, dtype=np.uint64)
    return _splitmix((rows + base) * _GAMMA)


def row_keys(seed: int, first_row: int, n: int) -> np.ndarray:
    """Uniform keys in [0, 1) of rows `first_row` .. `first_row + n - 1` under `seed`."""
    return (row_hashes(seed, first_row, n) >> np.uint64(11)).astype(np.float64) * _UNIT
