"""The KS distribution without scipy.stats, checked against scipy.stats.kstwo and
scipy.special.smirnov (the independent references)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import special, stats

from monitoring.stats import ks_pvalue
from monitoring.stats.kolmogorov import durbin_cdf, ks_2samp_exact_sf, kstwo_sf, smirnov_sf

# Same formulas as kstwo's in these regions, so only rounding differs: the log-space sum
# of n terms loses about n * 1e-16 relative (1e-10 at n = 10^5).
RELATIVE = 1e-9


def _grid(n: int, points: int) -> np.ndarray:
    """Statistics d spanning sqrt(n) d in [0.05, 8], the regions Pelz-Good and 2*smirnov
    cover, both sides of the switch at n d^2 = 2.2."""
    z = np.concatenate(
        [np.linspace(0.05, 8.0, points), [math.sqrt(2.2) * (1 - 1e-9), math.sqrt(2.2) * (1 + 1e-9)]]
    )
    d = z / math.sqrt(n)
    return d[d < 1.0]


def _in_durbin_below_3000(d: float, n: int) -> bool:
    """Where `kstwo_sf` uses its own Durbin matrix (checked against 50 digits instead:
    `kstwo` itself is off there by up to 3e-5)."""
    return n < 3_000 and n * d**1.5 <= 1.4 and n * d > 1.0


@pytest.mark.parametrize("n", [141, 150, 1_000, 3_000, 4_545, 20_000])
def test_kstwo_sf_equals_scipy(n: int) -> None:
    for d in _grid(n, 60):
        if _in_durbin_below_3000(d, n):
            continue
        expected = float(stats.kstwo.sf(d, n))
        assert kstwo_sf(d, n) == pytest.approx(expected, rel=RELATIVE, abs=1e-300), (n, d)


def test_kstwo_sf_equals_scipy_at_streamed_sizes() -> None:
    # A 1M-row batch against a 100k-row reference: effective n = 90,909. scipy takes
    # 0.2 s per value in the upper tail here, so a few points only.
    n = 90_909
    for z in (0.6, 1.0, 1.3, 1.6, 3.0, 6.0):
        d = z / math.sqrt(n)
        assert kstwo_sf(d, n) == pytest.approx(float(stats.kstwo.sf(d, n)), rel=RELATIVE)


@pytest.mark.parametrize(
    ("d", "n"),
    [
        (0.3, 20),
        (0.05, 140),
        (0.0005, 5_000),
        (0.0001, 20_000),
        (1e-6, 10**6),
        (0.0, 500),
        (1.0, 500),
        (0.9999, 200),
    ],
)
def test_small_sizes_and_edges_match_scipy(d: float, n: int) -> None:
    # n <= 140 and Durbin's region below n = 5,000 go to kstwo itself; d <= 1/n, 0 or 1
    # are closed forms.
    assert kstwo_sf(d, n) == pytest.approx(float(stats.kstwo.sf(d, n)), rel=1e-12, abs=1e-300)


@pytest.mark.parametrize("n", [5, 141, 1_000, 20_000])
def test_smirnov_sf_equals_scipy_special(n: int) -> None:
    for z in np.linspace(0.1, 7.0, 25):
        d = z / math.sqrt(n)
        if d >= 1.0:
            continue
        expected = float(special.smirnov(n, d))
        assert smirnov_sf(n, d) == pytest.approx(expected, rel=RELATIVE, abs=1e-300), (n, d)


@pytest.mark.parametrize("n", [5_000, 12_345, 33_333, 100_000, 250_000])
def test_tiny_statistics_equal_scipy_without_it(n: int) -> None:
    """d <= 1/n (closed form) and kstwo's Durbin region (Pelz-Good from n = 5,000): what a
    column that did not move gives, at the sizes of batches from 5,000 rows up."""
    durbin_end = (1.4 / n) ** (2 / 3)  # n d^1.5 = 1.4
    for d in np.concatenate(
        [np.linspace(0.2 / n, 1.0 / n, 9), np.geomspace(1.0 / n, 1.5 * durbin_end, 30)]
    ):
        expected = float(stats.kstwo.sf(d, n))
        assert kstwo_sf(d, n) == pytest.approx(expected, rel=RELATIVE, abs=1e-300), (n, d)


@pytest.mark.parametrize("n", [141, 300, 1_000, 1_960, 2_999])
def test_durbins_matrix_equals_fifty_digit_arithmetic(n: int) -> None:
    """Durbin's region below n = 3,000 (the effective size of a 2,000-row batch against a
    large reference, for a column that did not move): our matrix power against the same
    formula in mpmath at 50 digits, within 1e-11 relative; scipy's `kstwo` is farther."""
    mpmath = pytest.importorskip("mpmath", reason="mpmath comes with torch's sympy")
    mpmath.mp.dps = 50

    def exact(d: float) -> float:
        x = mpmath.mpf(d)
        k = int(mpmath.floor(n * x)) + 1
        h, m = k - n * x, 2 * k - 1
        matrix = mpmath.matrix(m, m)
        for i in range(m):
            for j in range(m):
                if i - j + 1 >= 0:
                    matrix[i, j] = 1 / mpmath.factorial(i - j + 1)
        for i in range(m):
            matrix[i, 0] -= h ** (i + 1) / mpmath.factorial(i + 1)
            matrix[m - 1, i] -= h ** (m - i) / mpmath.factorial(m - i)
        if 2 * h > 1:
            matrix[m - 1, 0] += (2 * h - 1) ** m / mpmath.factorial(m)
        return float((matrix**n)[k - 1, k - 1] * mpmath.factorial(n) / mpmath.mpf(n) ** n)

    end = (1.4 / n) ** (2 / 3) * (1 - 1e-9)
    for d in np.linspace(1.0 / n * 1.01, end, 5):
        assert _in_durbin_below_3000(d, n)
        assert durbin_cdf(d, n) == pytest.approx(exact(d), rel=1e-11), (n, d)
        assert kstwo_sf(d, n) == pytest.approx(1.0 - exact(d), rel=1e-11), (n, d)


def test_sf_is_monotone_across_the_formula_switch() -> None:
    n = 50_000
    d = np.linspace(0.001, 0.03, 400)
    p = np.array([kstwo_sf(x, n) for x in d])
    assert np.all(np.diff(p) <= 1e-12) and p[0] > 0.99 and p[-1] < 1e-30


def test_streamed_p_values_do_not_import_scipy_stats() -> None:
    # scipy.stats takes 0.4-1 s to import: a fifth of a 1M-row evaluation, and most of a
    # 50,000-row one (tiny statistics fell in kstwo's Durbin region). Exact p-values of
    # unequal sizes (up to 10,000 rows) do import it, for scipy's compiled loop.
    code = (
        "import sys\n"
        "import monitoring.evaluation.batch, monitoring.measure.drift\n"
        "from monitoring.stats import ks_pvalue\n"
        "for d in (1e-6, 1e-5, 5e-4, 0.001, 0.004, 0.01, 0.05):\n"
        "    for batch in (1_000_000, 50_000, 20_000):\n"
        "        ks_pvalue(d, 100_000, batch)\n"
        "        ks_pvalue(d, 3_000, 3_000)\n"  # exact, equal sizes: no scipy.stats either
        "print('scipy.stats' in sys.modules)\n"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "False"


def _scipy_two_sample(n1: int, n2: int, rng: np.random.Generator) -> list[tuple[float, float]]:
    """(statistic, p-value) of `ks_2samp`'s default method on samples that shift, a
    discrete pair with many ties, and two that coincide."""
    pairs = []
    for shift in (0.0, 0.05, 0.15, 0.4, 1.5):
        pairs.append((rng.normal(size=n1), rng.normal(shift, 1.0, size=n2)))
    pairs.append((rng.integers(0, 6, size=n1), rng.integers(0, 7, size=n2)))  # ties
    pairs.append((np.zeros(n1), np.zeros(n2)))  # d = 0
    return [
        (float(r.statistic), float(r.pvalue))
        for r in (stats.ks_2samp(a, b) for a, b in pairs)
    ]


@pytest.mark.parametrize(
    ("n1", "n2"),
    [(1, 1), (1, 7), (3, 5), (8, 8), (20, 30), (37, 100), (150, 150), (500, 123),
     (2_000, 3_000), (3_000, 3_000), (999, 10_000)],
)
def test_exact_two_sample_p_value_equals_scipy_default(n1: int, n2: int) -> None:
    rng = np.random.default_rng(n1 * 10_007 + n2)
    for statistic, expected in _scipy_two_sample(n1, n2, rng):
        assert ks_2samp_exact_sf(statistic, n1, n2) == pytest.approx(
            expected, rel=1e-9, abs=1e-300
        ), (n1, n2, statistic)
        assert ks_pvalue(statistic, n1, n2) == pytest.approx(expected, rel=1e-9, abs=1e-300)
        assert ks_pvalue(statistic, n2, n1) == pytest.approx(expected, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize(("n1", "n2"), [(7, 11), (1, 9), (2_000, 3_000), (999, 10_000)])
def test_numpy_band_recursion_equals_scipys_compiled_one(n1: int, n2: int) -> None:
    """`_outside_band` stands in for scipy's private compiled loop: the same numbers."""
    from scipy.stats._stats_pythran import _compute_outer_prob_inside_method

    from monitoring.stats.kolmogorov import _outside_band

    g = math.gcd(n1, n2)
    lcm = n1 * n2 // g
    for h in np.unique(np.linspace(1, lcm, 25).round().astype(int)):
        expected = _compute_outer_prob_inside_method(n1, n2, g, int(h))
        assert _outside_band(n1, n2, g, int(h)) == pytest.approx(expected, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize(("n1", "n2"), [(7, 11), (60, 90), (64, 64), (300, 200)])
def test_exact_two_sample_on_every_lattice_statistic(n1: int, n2: int) -> None:
    """Every attainable statistic h / lcm (lattice points of D), against scipy's own exact
    function, across the whole range from p = 1 to the extreme tail."""
    from scipy.stats._stats_py import _attempt_exact_2kssamp

    g = math.gcd(n1, n2)
    lcm = n1 * n2 // g
    for h in np.unique(np.linspace(1, lcm, 80).round().astype(int)):
        d = h / lcm
        ok, _, expected = _attempt_exact_2kssamp(n1, n2, g, d, "two-sided")
        assert ok
        assert ks_2samp_exact_sf(d, n1, n2) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_above_ten_thousand_rows_the_p_value_is_scipys_asymptotic_one() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=10_001), rng.normal(0.03, 1.0, size=4_000)
    expected = stats.ks_2samp(a, b)  # scipy's "auto" goes asymptotic here
    assert expected.pvalue == pytest.approx(stats.ks_2samp(a, b, method="asymp").pvalue)
    assert ks_pvalue(expected.statistic, 10_001, 4_000) == pytest.approx(
        expected.pvalue, rel=1e-9
    )
