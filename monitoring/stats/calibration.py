"""Thresholds for drift statistics calibrated at the batch's size, and their p-values.

A fixed threshold (PSI 0.2) means a different false-alarm rate at every batch size: under
no drift a divergence shrinks like 1/n, so small batches alarm on noise and large ones
need a big shift before anything shows. Here the threshold for a batch of n values is the
(1 - alpha) quantile of the statistic *when the batch comes from the reference*.

Histogram divergences (`kl psi js hellinger tvd`) are simulated: with the reference's
fitted proportions p = r / m, draw S pairs (reference ~ Multinomial(m, p), batch ~
Multinomial(n, p)) and compute the statistic on each pair, smoothing included. Drawing the
reference too accounts for its own finite size. The simulated values are then summarised
by a scaled chi-squared a * chi2(nu) matched to their mean and variance (Satterthwaite);
for `js` and `hellinger`, which behave like square roots of a chi-squared, the match is on
the squared statistic. The fit gives smooth tail p-values below 1 / S, which multiple
testing across many features needs, and its quantile is the threshold, so "statistic >
threshold" and "p-value < alpha" agree. Tests hold the fitted quantiles against
empirical quantiles of independent simulations.

Wasserstein uses its limit: sqrt(n m / (n + m)) * W1 tends to the integral of |B(F(x))|
dx for a Brownian bridge B. The bridges are simulated once, on a grid of BRIDGE_GRID
levels shared by every column, and each column's integral sums them at its reference
CDF's levels (no dependence on n), so the threshold at n is that quantile over
sqrt(n m / (n + m)).

Results are cached per (reference histogram, n), so a series of batches of one size
costs one simulation per column.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import special

from monitoring.stats.divergence import (
    HISTOGRAM_DIVERGENCES,
    divergence_rows,
    every_divergence_rows,
)

DEFAULT_SIMULATIONS = 2000
BRIDGE_GRID = 512
SQUARED = frozenset({"js", "hellinger"})


@dataclass(frozen=True)
class NullFit:
    """A statistic's distribution under no drift: statistic (or its square) ~ scale * chi2(dof)."""

    scale: float
    dof: float
    squared: bool = False

    def p_value(self, statistic: float) -> float:
        """P(statistic >= observed | no drift)."""
        x = statistic**2 if self.squared else statistic
        if self.scale <= 0:
            return 1.0 if x <= 0 else 0.0
        return float(special.chdtrc(self.dof, x / self.scale))  # chi2(dof).sf

    @property
    def mean(self) -> float:
        """The statistic's mean under no drift (approximate for the squared ones)."""
        mean = self.scale * self.dof
        return float(np.sqrt(mean)) if self.squared else mean

    def threshold(self, alpha: float) -> float:
        """The (1 - alpha) quantile: exceeded with probability alpha under no drift."""
        q = self.scale * float(special.chdtri(self.dof, alpha))  # chi2(dof).isf
        return float(np.sqrt(q)) if self.squared else q


def _fit(values: np.ndarray, squared: bool) -> NullFit:
    x = values**2 if squared else values
    mean, var = float(np.mean(x)), float(np.var(x, ddof=1))
    if mean <= 0 or var <= 0:
        return NullFit(0.0, 1.0, squared)
    return NullFit(var / (2 * mean), 2 * mean * mean / var, squared)


def histogram_nulls(
    reference_counts: np.ndarray,
    n_batch: int,
    *,
    smoothing: float,
    simulations: int = DEFAULT_SIMULATIONS,
    seed: int = 0,
) -> dict[str, NullFit]:
    """The null fit of every histogram divergence for a batch of `n_batch` values."""
    counts = np.asarray(reference_counts, dtype=np.int64)
    return dict(
        _histogram_nulls(
            counts.tobytes(), len(counts), int(n_batch), float(smoothing), simulations, seed
        )
    )


@lru_cache(maxsize=4096)
def _histogram_nulls(
    counts_bytes: bytes, k: int, n_batch: int, smoothing: float, simulations: int, seed: int
) -> tuple[tuple[str, NullFit], ...]:
    counts = np.frombuffer(counts_bytes, dtype=np.int64, count=k)
    rng = np.random.default_rng([seed, int(counts.sum()), n_batch, k])
    reference, batch = _null_draws(counts, n_batch, simulations, rng)
    rows = every_divergence_rows(reference, batch, smoothing=smoothing)
    return tuple((name, _fit(rows[name], name in SQUARED)) for name in HISTOGRAM_DIVERGENCES)


def simulate_histogram_null(
    name: str,
    reference_counts: np.ndarray,
    n_batch: int,
    *,
    smoothing: float,
    simulations: int,
    seed: int,
) -> np.ndarray:
    """Raw simulated values of one divergence under no drift (for tests and docs)."""
    counts = np.asarray(reference_counts, dtype=np.int64)
    rng = np.random.default_rng(seed)
    reference, batch = _null_draws(counts, int(n_batch), simulations, rng)
    return divergence_rows(name, reference, batch, smoothing=smoothing)


def _null_draws(
    counts: np.ndarray, n_batch: int, simulations: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """`simulations` (reference, batch) histogram pairs drawn from the reference's
    proportions, the reference at its own size so that its noise counts too."""
    m = int(counts.sum())
    p = counts / m
    return rng.multinomial(m, p, size=simulations), rng.multinomial(n_batch, p, size=simulations)


@dataclass(frozen=True)
class BridgeNull:
    """Simulated limit of sqrt(n m / (n + m)) * W1 under no drift, for one reference column."""

    values: np.ndarray  # sorted simulated values of the integral of |B(F(x))| dx
    n_reference: int
    simulations: int = DEFAULT_SIMULATIONS
    seed: int = 0

    def made_with(self, simulations: int, seed: int) -> bool:
        """Whether these are the draws `wasserstein_null(..., simulations, seed)` makes."""
        return self.simulations == simulations and self.seed == seed

    def _scale(self, n_batch: int) -> float:
        m = self.n_reference
        return float(np.sqrt((n_batch + m) / (n_batch * m)))

    def p_value(self, distance: float, n_batch: int) -> float:
        x = distance / self._scale(n_batch)
        above = len(self.values) - np.searchsorted(self.values, x, side="left")
        if above > 0:
            return float((above + 1) / (len(self.values) + 1))
        # Beyond every simulation: the integral of |B| has Gaussian tails; fit them.
        mean, sd = float(self.values.mean()), float(self.values.std(ddof=1))
        return float(min(special.ndtr((mean - x) / sd), 1 / (len(self.values) + 1)))

    def threshold(self, alpha: float, n_batch: int) -> float:
        return float(np.quantile(self.values, 1 - alpha)) * self._scale(n_batch)

    def mean(self, n_batch: int) -> float:
        """W1's mean under no drift for a batch of n_batch values."""
        return float(self.values.mean()) * self._scale(n_batch)


def wasserstein_null(
    support: np.ndarray,
    support_counts: np.ndarray,
    *,
    simulations: int = DEFAULT_SIMULATIONS,
    seed: int = 0,
) -> BridgeNull:
    """The Brownian-bridge null of W1 on a reference support (cached per support)."""
    u = np.asarray(support, dtype=np.float64)
    c = np.asarray(support_counts, dtype=np.int64)
    return _wasserstein_null(u.tobytes(), c.tobytes(), len(u), simulations, seed)


def _grid_levels() -> np.ndarray:
    """The grid's levels t_k = sin^2(pi k / 2G), k = 0 .. G: dense near 0 and 1, where
    sqrt(t (1 - t)), a bridge's spread, is steepest. In theta = arcsin(sqrt(t)) they are
    evenly spaced and the spread is sin(2 theta) / 2, smooth, so interpolating between
    them is as good in the tails as in the middle (on an even grid in t it made the
    integral 3% low for a long-tailed column, whose widest intervals sit in the tails)."""
    return np.sin(np.arange(BRIDGE_GRID + 1) * (np.pi / (2 * BRIDGE_GRID))) ** 2


_GRID_LOCK = threading.Lock()  # one drawing of the grid; a second caller waits for it


def _bridge_grid(seed: int, simulations: int) -> np.ndarray:
    with _GRID_LOCK:
        return _drawn_bridge_grid(seed, simulations)


def draw_bridges_ahead(seed: int, simulations: int = DEFAULT_SIMULATIONS) -> None:
    """Draw the shared bridges in a background thread (numpy draws them without the GIL,
    12-20 ms), so that a reference fit's pass over its rows hides them."""
    threading.Thread(
        target=_bridge_grid, args=(seed, simulations), name="monitoring-bridges", daemon=True
    ).start()


@lru_cache(maxsize=2)
def _drawn_bridge_grid(seed: int, simulations: int) -> np.ndarray:
    """|B(t_k)| at the grid's interior levels, k = 1 .. G - 1, for `simulations` bridges
    (read-only).

    Drawn once per (seed, simulations) and shared by every column: a column's null is then
    a matrix-vector product (about 1 ms) instead of its own simulation (7-15 ms a column,
    most of a small reference's fit). Columns share their bridges' noise, as columns of one
    size already shared their draws before."""
    t = _grid_levels()
    rng = np.random.default_rng([seed, BRIDGE_GRID])
    walk = rng.standard_normal((simulations, BRIDGE_GRID))
    walk *= np.sqrt(np.diff(t))
    np.cumsum(walk, axis=1, out=walk)  # W(t_k), k = 1 .. G
    bridge = walk[:, :-1] - t[1:-1] * walk[:, -1:]  # B(t) = W(t) - t W(1)
    np.abs(bridge, out=bridge)
    bridge.setflags(write=False)
    return bridge


def bridge_weights(levels: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Weights over the grid's interior levels such that weights @ |B(t)| is the integral
    sum_j widths_j |B(levels_j)|: each |B(level)| is interpolated between the two grid
    levels around it, linearly in theta = arcsin(sqrt(t)) (`_grid_levels`), with |B| = 0 at
    0 and 1. Checked against bridges simulated at the exact levels: quantiles within 1%
    at 40,000 simulations, far below the noise of 2,000. Any number of levels costs one
    pass over them."""
    theta = np.arcsin(np.sqrt(np.clip(levels, 0.0, 1.0)))
    position = theta * (2 * BRIDGE_GRID / np.pi)
    below = np.minimum(np.floor(position).astype(np.int64), BRIDGE_GRID - 1)
    above_share = position - below
    weights = np.bincount(below, weights=widths * (1.0 - above_share), minlength=BRIDGE_GRID + 1)
    weights += np.bincount(below + 1, weights=widths * above_share, minlength=BRIDGE_GRID + 1)
    return weights[1:BRIDGE_GRID]  # |B(0)| = |B(1)| = 0


@lru_cache(maxsize=1024)
def _wasserstein_null(
    support_bytes: bytes, counts_bytes: bytes, size: int, simulations: int, seed: int
) -> BridgeNull:
    u = np.frombuffer(support_bytes, dtype=np.float64, count=size)
    c = np.frombuffer(counts_bytes, dtype=np.int64, count=size)
    m = int(c.sum())
    levels = np.cumsum(c)[:-1] / m  # F_r on [u_j, u_{j+1})
    widths = np.diff(u)
    if len(levels) == 0:
        return BridgeNull(np.zeros(simulations), m, simulations, seed)
    values = np.sort(_bridge_grid(seed, simulations) @ bridge_weights(levels, widths))
    return BridgeNull(values, m, simulations, seed)
