"""Kernel two-sample test (maximum mean discrepancy) for multivariate drift.

Per-feature tests (KS, PSI, chi-squared) compare one marginal at a time, so they miss a
change in how features move together: two columns whose correlation flips from 0.8 to
-0.8 keep both marginals and pass every per-feature test. The MMD with a Gaussian kernel
compares the whole joint distributions, and its permutation test needs no assumption on
their shape.

Statistic. With k(x, y) = exp(-||x - y||^2 / (2 h^2)), reference rows x_1..x_n and batch
rows y_1..y_m, the unbiased estimate of MMD^2 (Gretton et al., 2012, eq. 3) is

    1/(n(n-1)) sum_{i != j} k(x_i, x_j) + 1/(m(m-1)) sum_{i != j} k(y_i, y_j)
    - 2/(nm) sum_{i, j} k(x_i, y_j).

It can be slightly negative when the distributions are equal. The bandwidth h is given,
or by default the median of the pairwise Euclidean distances between at most
`MEDIAN_SAMPLE_ROWS` rows of the pooled data (the median heuristic); when that median is 0
(mostly repeated rows), the median of the non-zero distances, and 1.0 when all the rows are
equal (the kernel is then 1 everywhere, whatever h).

Test. The pooled rows are split again at random into n "reference" and m "batch" rows
`permutations` times, with the same estimator for every split. The split statistics are
summarised by a Pearson type III distribution with their moments (`stats.mmd_null`): the
p-value is its survival function at the observed statistic and the threshold its
(1 - alpha) quantile, so p-values go below 1 / (1 + permutations), as multiple testing
across many features needs, and "statistic > threshold" is "p_value < alpha". Adaptive:
when that p-value is below `ADAPTIVE_FACTOR` * alpha (it could be significant) but not
below `CLEAR_P_VALUE` (it clearly is), splits are added, up to `max_permutations` in all,
and the fit is made on all of them; a clear batch either way costs `permutations` splits.

Memory, bounded at any input size. Each side is first subsampled uniformly without
replacement to at most `max_samples` rows, so N = n + m <= 2 * max_samples. The pooled
kernel matrix is computed once, in place, in float32 on `device`: 4 * N^2 bytes (64 MB at
max_samples = 2000). Each block of B = max(1, `BLOCK_CELLS` // N) splits adds about
64 * N * B bytes (0/1 labels, K @ labels and their float64 products: 13 MB at any N; 50
splits a block at N = 4000, 333 at N = 600, where fewer and larger products run the splits
2 to 4 times faster on 2 CPU cores than blocks of 50), the pooled data about 20 * N * d
bytes (float64 on the host, float32 on the device), and the median heuristic about
8 * M^2 bytes on the host with M = min(N, `MEDIAN_SAMPLE_ROWS`) (8 MB).

Time. O(N^2 * d) for the kernel, O(M^2 * d) for the median, and O(N^2 * S) for S splits
(`permutations`, or up to `max_permutations` near significance), done as one matrix
product K @ A per block, A being the N x B matrix of 0/1 reference labels: no Python loop
over rows. The inputs are centred in float64 and divided by h before the float32 cast, so
their offset and scale do not cost float32 precision.

Randomness: one `numpy.random.SeedSequence(seed)` gives independent streams for the two
subsamples, the median subsample and the splits, so a given seed gives the same result on
the CPU, and changing `permutations` does not change the subsamples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from monitoring.errors import InvalidValueError
from monitoring.stats.mmd_null import fit_permutation_null

if TYPE_CHECKING:
    import torch

__all__ = [
    "ADAPTIVE_FACTOR",
    "CLEAR_P_VALUE",
    "MEDIAN_SAMPLE_ROWS",
    "MIN_ROWS",
    "BLOCK_CELLS",
    "MMDResult",
    "mmd_test",
]

MIN_ROWS = 10
"""Fewest rows accepted on each side (and smallest `max_samples`): below that the
permutation null has too few distinct splits to say anything."""

MEDIAN_SAMPLE_ROWS = 1000
"""Most pooled rows whose pairwise distances give the median-heuristic bandwidth
(499,500 distances: the median's sampling error is far below what changes the test)."""

BLOCK_CELLS = 200_000
"""Rows x splits per matrix product K @ A: bounds the per-block memory (see above)."""

ADAPTIVE_FACTOR = 2.0
"""Splits are added (up to `max_permutations`) when the p-value fitted on the first ones is
below this times alpha: near alpha = 0.05, a p-value fitted on 200 splits lands between
about 0.6 and 1.5 times the one fitted on many, so a batch that could be significant is
not stopped short of it."""

CLEAR_P_VALUE = 1e-10
"""... and not below this: such a batch passes Holm's correction over any realistic number
of hypotheses (0.05 / 1e-10 = 5e8), even if the first fit erred by orders of magnitude."""


@dataclass(frozen=True)
class MMDResult:
    """Outcome of `mmd_test`; all numbers are Python floats and ints."""

    statistic: float
    """Unbiased MMD^2 estimate on the (sub)samples."""
    p_value: float
    """P(split statistic >= statistic) under the fitted permutation null (`mmd_null`)."""
    threshold: float
    """The (1 - alpha) quantile of the fitted null: statistic > threshold is p_value < alpha."""
    bandwidth: float
    """Gaussian kernel bandwidth h used, in the units of the inputs."""
    n_reference: int
    """Reference rows used, after subsampling."""
    n_batch: int
    """Batch rows used, after subsampling."""
    permutations: int
    """Splits drawn (between `permutations` and `max_permutations`)."""
    device: str
    """Where the kernel was computed: "cpu", "cuda:0", ..."""


def mmd_test(
    reference: np.ndarray,
    batch: np.ndarray,
    *,
    alpha: float = 0.05,
    permutations: int = 200,
    max_permutations: int | None = None,
    max_samples: int = 2000,
    bandwidth: float | None = None,
    seed: int = 0,
    device: str | None = None,
) -> MMDResult:
    """Test whether `reference` and `batch` (rows = samples) come from one distribution.

    Both are 2-D arrays of finite numbers with the same columns. `permutations` splits are
    drawn first, then more up to `max_permutations` (None: no more) when the p-value is
    near significance (between `CLEAR_P_VALUE` and `ADAPTIVE_FACTOR` * alpha). `device`
    None means "cuda" when available, else "cpu". See the module docstring for the
    statistic, the bandwidth, the null, memory and time. Raises InvalidValueError naming
    the argument at fault.
    """
    import torch

    ref = _as_rows(reference, "reference")
    bat = _as_rows(batch, "batch")
    if ref.shape[1] != bat.shape[1]:
        raise InvalidValueError(
            f"`reference` and `batch` must have the same number of columns, "
            f"got {ref.shape[1]} and {bat.shape[1]}"
        )
    _check_options(alpha, permutations, max_samples, bandwidth, seed)
    if max_permutations is None:
        max_permutations = permutations
    elif not _is_int(max_permutations) or max_permutations < permutations:
        raise InvalidValueError(
            f"`max_permutations` must be an integer >= `permutations` ({permutations}) or "
            f"None, got {max_permutations!r}"
        )
    target = _resolve_device(device)

    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)]
    ref = _subsample(ref, max_samples, streams[0])
    bat = _subsample(bat, max_samples, streams[1])
    n, m = ref.shape[0], bat.shape[0]
    pooled = np.concatenate([ref, bat])
    pooled -= pooled.mean(axis=0)
    h = float(bandwidth) if bandwidth is not None else _median_distance(pooled, streams[2])

    points = torch.from_numpy(pooled / h).to(device=target, dtype=torch.float32)
    kernel = _zero_diagonal_kernel(points)
    total = kernel.sum(dtype=torch.float64)

    observed_labels = np.zeros((1, n + m), dtype=np.float32)
    observed_labels[0, :n] = 1.0
    observed = _split_statistics(kernel, total, observed_labels, n, m)[0]

    base = observed_labels[0]
    null = np.empty(max_permutations, dtype=np.float64)
    drawn, goal = 0, permutations
    while drawn < goal:
        size = min(max(1, BLOCK_CELLS // (n + m)), goal - drawn)
        labels = streams[3].permuted(np.tile(base, (size, 1)), axis=1)
        null[drawn : drawn + size] = _split_statistics(kernel, total, labels, n, m)
        drawn += size
        if drawn == goal < max_permutations:
            fitted = fit_permutation_null(null[:drawn]).p_value(float(observed))
            near = CLEAR_P_VALUE <= fitted < ADAPTIVE_FACTOR * alpha
            goal = max_permutations if near else drawn
    fit = fit_permutation_null(null[:drawn])

    return MMDResult(
        statistic=float(observed),
        p_value=fit.p_value(float(observed)),
        threshold=fit.threshold(alpha),
        bandwidth=h,
        n_reference=n,
        n_batch=m,
        permutations=drawn,
        device=str(kernel.device),
    )


def _as_rows(values: np.ndarray, name: str) -> np.ndarray:
    """`values` as a 2-D numeric array of finite numbers with at least `MIN_ROWS` rows.

    Numeric arrays are not copied (they are cast to float64 after subsampling), and the
    finiteness check costs no array of the input's size unless a value is non-finite.
    """
    arr = np.asarray(values)
    if arr.dtype.kind not in "biuf":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidValueError(f"`{name}` must be an array of numbers: {exc}") from exc
    if arr.ndim != 2:
        raise InvalidValueError(
            f"`{name}` must be two-dimensional (rows = samples), got shape {arr.shape}"
        )
    if arr.shape[1] == 0:
        raise InvalidValueError(f"`{name}` must have at least one column, got shape {arr.shape}")
    if arr.shape[0] < MIN_ROWS:
        raise InvalidValueError(f"`{name}` must have at least {MIN_ROWS} rows, got {arr.shape[0]}")
    if arr.dtype.kind == "f" and not np.isfinite(arr.sum(dtype=np.float64)):
        bad = ~np.isfinite(arr)
        if bad.any():  # else the sum overflowed on finite values
            n_bad, n_nan = int(bad.sum()), int(np.isnan(arr).sum())
            row, col = (int(i) for i in np.argwhere(bad)[0])
            raise InvalidValueError(
                f"`{name}` has {n_bad} non-finite value(s) ({n_nan} NaN, {n_bad - n_nan} inf), "
                f"the first at row {row}, column {col}"
            )
    return arr


def _check_options(
    alpha: float, permutations: int, max_samples: int, bandwidth: float | None, seed: int
) -> None:
    if not 0.0 < alpha < 1.0:
        raise InvalidValueError(f"`alpha` must be in (0, 1), got {alpha!r}")
    if not _is_int(permutations) or permutations < 1:
        raise InvalidValueError(f"`permutations` must be an integer >= 1, got {permutations!r}")
    if not _is_int(max_samples) or max_samples < MIN_ROWS:
        raise InvalidValueError(
            f"`max_samples` must be an integer >= {MIN_ROWS}, got {max_samples!r}"
        )
    if bandwidth is not None and not (np.isfinite(bandwidth) and bandwidth > 0):
        raise InvalidValueError(
            f"`bandwidth` must be a finite number > 0 or None, got {bandwidth!r}"
        )
    if not _is_int(seed) or seed < 0:
        raise InvalidValueError(f"`seed` must be an integer >= 0, got {seed!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _resolve_device(device: str | None) -> torch.device:
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        target = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InvalidValueError(f"`device` {device!r} is not a torch device: {exc}") from exc
    if target.type == "cuda" and not torch.cuda.is_available():
        raise InvalidValueError(f"`device` is {device!r} but CUDA is not available")
    return target


def _subsample(rows: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    """At most `limit` rows, drawn uniformly without replacement, in their original order."""
    if rows.shape[0] > limit:
        rows = rows[np.sort(rng.choice(rows.shape[0], size=limit, replace=False))]
    return rows.astype(np.float64, copy=False)


def _median_distance(pooled: np.ndarray, rng: np.random.Generator) -> float:
    """Median pairwise Euclidean distance of at most `MEDIAN_SAMPLE_ROWS` rows (float64)."""
    from scipy.spatial.distance import pdist

    distances = pdist(_subsample(pooled, MEDIAN_SAMPLE_ROWS, rng))
    median = float(np.median(distances))
    if median > 0.0:
        return median
    positive = distances[distances > 0.0]
    return float(np.median(positive)) if positive.size else 1.0


def _zero_diagonal_kernel(points: torch.Tensor) -> torch.Tensor:
    """exp(-||z_i - z_j||^2 / 2) with a zero diagonal, built in one N x N buffer."""
    import torch

    sq = (points * points).sum(dim=1)
    if not bool(torch.isfinite(sq).all()):
        raise InvalidValueError(
            "`bandwidth` is too small for the spread of the data: "
            "distances divided by it overflow float32"
        )
    kernel = points @ points.T
    kernel.mul_(-2.0).add_(sq[:, None]).add_(sq[None, :]).clamp_(min=0.0)
    kernel.mul_(-0.5).exp_()
    kernel.fill_diagonal_(0.0)
    return kernel


def _split_statistics(
    kernel: torch.Tensor, total: torch.Tensor, labels: np.ndarray, n: int, m: int
) -> np.ndarray:
    """Unbiased MMD^2 for each row of `labels` (1 = reference side, n ones per row).

    With K the kernel with a zero diagonal and a a split's 0/1 column: a'Ka is the
    within-reference sum over i != j, (1 - a)'Ka the cross sum, and the within-batch sum
    is the total minus those (the total counts the cross sum twice).
    """
    import torch

    a = torch.from_numpy(labels.T.copy()).to(kernel.device)
    ka = (kernel @ a).double()
    a64 = a.double()
    within_ref = (a64 * ka).sum(dim=0)
    cross = ((1.0 - a64) * ka).sum(dim=0)
    within_batch = total - within_ref - 2.0 * cross
    stats = within_ref / (n * (n - 1)) + within_batch / (m * (m - 1)) - 2.0 * cross / (n * m)
    return stats.cpu().numpy()
