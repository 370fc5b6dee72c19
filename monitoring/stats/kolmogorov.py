"""KS distributions without `scipy.stats`: the two-sided one-sample statistic D_n
(`kstwo_sf`, the asymptotic two-sample p-value) and the exact two-sample one
(`ks_2samp_exact_sf`, used up to 10,000 rows a side, as `scipy.stats.ks_2samp` does).

One-sample D_n:

`scipy.stats.kstwo.sf(d, n)` is the reference: it follows Simard & L'Ecuyer (2011),
"Computing the Two-Sided Kolmogorov-Smirnov Distribution". Importing `scipy.stats` costs
0.4-0.7 s, a fifth of a whole 1M-row evaluation, for one function. For the sizes that
streamed batches have (n > 140), the same paper's two large-n formulas need only
`scipy.special`:

- n d^2 >= 2.2: P(D_n >= d) = 2 P(D_n+ >= d), the one-sided exact tail (Birnbaum &
  Tingey's sum); the two one-sided events almost never happen together there;
- otherwise 1 - the Pelz-Good (1976) expansion of P(D_n <= d) in powers of 1/sqrt(n).

They are the ones `kstwo` itself picks in those regions. Two more regions need no
`scipy.stats` either:

- d <= 1/n: the closed form P(D_n <= d) = n! (2d - 1/n)^n (0 for d <= 1/(2n));
- the tiny-d region where `kstwo` uses Durbin's matrix (n <= 10^5, n d^1.5 <= 1.4), from
  n = 3,000 on: there the p-value is near 1 and Pelz-Good gives `kstwo`'s value within
  1e-9 relative (measured on a grid of z = d sqrt(n) over the whole region: 9.9e-10 at
  n = 3,000, 1.3e-10 at 4,545, 9.6e-11 at most from 5,000 to 10^5; 4.8e-9 at 2,000, so
  not below 3,000). n = 4,545 is a 50,000-row batch against a 5,000-row reference.

Below n = 3,000 Durbin's region is computed here by Durbin's matrix (`durbin_cdf`), the
method `kstwo` uses there, more precisely than `kstwo` (checked against 50-digit
arithmetic). Only n <= 140 defers to `kstwo`, importing `scipy.stats` then.

The one-sided tail is summed here in log space, in one vectorised pass:
`scipy.special.smirnov` sums the same n terms in a scalar loop, 0.17 s at n = 90,000 and
1.9 s at n = 10^6, for each drifted column. Here: 13 ms and 0.15 s, equal within 1e-9
relative. `tests/test_stats.py` checks `kstwo_sf` against `kstwo.sf` on a grid of n and d.
"""

from __future__ import annotations

import functools
import math
import sys

import numpy as np
from scipy import special

_SMALL_N = 140  # up to here kstwo uses exact recursions
_ONE_SIDED_FROM = 2.2  # n d^2 from which 2 * smirnov is used
_ZERO_FROM = 370.0  # n d^2 from which the tail is below double precision
_DURBIN_N, _DURBIN_NX = 100_000, 1.4  # kstwo's Durbin-matrix region: n <= 1e5, n d^1.5 <= 1.4
_PELZ_GOOD_IN_DURBIN_FROM = 3_000  # from here Pelz-Good matches kstwo there within 1e-9 (measured)
_SQRT_2PI = math.sqrt(2.0 * math.pi)
_PI2 = math.pi**2


def kstwo_sf(d: float, n: int) -> float:
    """P(D_n >= d) for the two-sided one-sample KS statistic of a sample of size n."""
    if d >= 1.0:
        return 0.0
    if d <= 0.0:
        return 1.0
    nd2 = n * d * d
    durbin = n <= _DURBIN_N and n * d**1.5 <= _DURBIN_NX
    if n <= _SMALL_N:
        return _scipy_kstwo_sf(d, n)
    if durbin and n < _PELZ_GOOD_IN_DURBIN_FROM and n * d > 1.0:
        return _clip(1.0 - durbin_cdf(d, n))
    if n * d <= 1.0:
        return _at_most_one_over_n(d, n)
    if nd2 >= _ZERO_FROM:
        return 0.0
    if nd2 >= _ONE_SIDED_FROM:
        return _clip(2.0 * smirnov_sf(n, d))
    return _clip(1.0 - _pelz_good_cdf(d, n))


def smirnov_sf(n: int, d: float) -> float:
    """P(D_n+ >= d), the exact one-sided tail (`scipy.special.smirnov(n, d)`), 0 < d < 1:

        d * sum_{j=0}^{floor(n (1 - d))} C(n, j) (1 - d - j/n)^(n-j) (d + j/n)^(j-1)

    (Birnbaum & Tingey 1951), with every term taken through its logarithm so that none
    under- or overflows before the sum.
    """
    j = np.arange(0, math.floor(n * (1.0 - d)) + 1, dtype=np.float64)
    with np.errstate(divide="ignore"):  # the last term is 0 when n (1 - d) is whole
        log_terms = (
            special.gammaln(n + 1.0)
            - special.gammaln(j + 1.0)
            - special.gammaln(n - j + 1.0)
            + (n - j) * np.log1p(-d - j / n)
            + (j - 1.0) * np.log(d + j / n)
        )
    top = float(np.max(log_terms))
    return d * math.exp(top) * float(np.sum(np.exp(log_terms - top)))


def _at_most_one_over_n(d: float, n: int) -> float:
    """P(D_n >= d) for d <= 1/n, from the exact P(D_n <= d) = n! (2d - 1/n)^n (Simard &
    L'Ecuyer, section 2; 0 when d <= 1/(2n))."""
    if 2.0 * n * d <= 1.0:
        return 1.0
    return _clip(1.0 - math.exp(special.gammaln(n + 1.0) + n * math.log(2.0 * d - 1.0 / n)))


def durbin_cdf(d: float, n: int) -> float:
    """P(D_n < d) by Durbin's matrix (Marsaglia, Tsang & Wang 2003): with k = floor(n d) + 1,
    h = k - n d and m = 2k - 1, the k-th diagonal entry of H^n times n! / n^n, where
    H[i, j] = 1 / (i - j + 1)! (0 above the first superdiagonal), less h^(i+1) / (i+1)! in
    the first column and h^(m-j) / (m-j)! in the last row, plus (2h - 1)^m / m! in their
    corner when 2h > 1. The power by squaring, each product rescaled to its largest entry
    with the scale kept as a logarithm, so nothing overflows. What `kstwo` uses in its
    tiny-d region; equal to a 50-digit computation within 1e-12 where `kstwo`'s own value
    is off by up to 3e-5 (tests/test_kolmogorov.py)."""
    k = math.floor(n * d) + 1
    h = k - n * d
    m = 2 * k - 1
    power = np.arange(m)[:, None] - np.arange(m)[None, :] + 1
    matrix = np.where(power >= 0, np.exp(-special.gammaln(np.maximum(power, 0) + 1.0)), 0.0)
    r = np.arange(1, m + 1, dtype=np.float64)
    corner = np.exp(r * math.log(h) - special.gammaln(r + 1.0))  # h^r / r!
    matrix[:, 0] -= corner
    matrix[m - 1, :] -= corner[::-1]
    if 2.0 * h > 1.0:
        matrix[m - 1, 0] += math.exp(m * math.log(2.0 * h - 1.0) - special.gammaln(m + 1.0))
    result, result_log = None, 0.0
    base, base_log = matrix, 0.0
    exponent = n
    while exponent:
        if exponent & 1:
            if result is None:
                result, result_log = base, base_log
            else:
                result = result @ base
                scale = float(np.abs(result).max())
                result, result_log = result / scale, result_log + base_log + math.log(scale)
        exponent >>= 1
        if exponent:
            base = base @ base
            scale = float(np.abs(base).max())
            base, base_log = base / scale, 2.0 * base_log + math.log(scale)
    assert result is not None
    value = float(result[k - 1, k - 1])
    if value <= 0.0:
        return 0.0
    return _clip(
        math.exp(special.gammaln(n + 1.0) - n * math.log(n) + result_log + math.log(value))
    )


def _scipy_kstwo_sf(d: float, n: int) -> float:
    from scipy import stats  # 0.4-1 s: only small n gets here

    return _clip(float(stats.kstwo.sf(d, n)))


def _clip(p: float) -> float:
    return min(max(p, 0.0), 1.0)


def _pelz_good_cdf(d: float, n: int) -> float:
    """Pelz-Good: P(D_n <= d) ~ K0(z) + K1(z)/n^0.5 + K2(z)/n + K3(z)/n^1.5, z = d sqrt(n).

    Each K_i is a theta-function series in q^(m^2), q = exp(-pi^2 / (8 z^2)), over odd m,
    plus (K2, K3) a series over all k in exp(-pi^2 k^2 / (2 z^2)); terms past
    m = 32 z / pi are below double precision.
    """
    z = d * math.sqrt(n)
    z2 = z * z
    terms = max(int(math.ceil(16.0 * z / math.pi)), 1)
    k = np.arange(1, terms + 1, dtype=np.float64)
    m2 = (2.0 * k - 1.0) ** 2
    odd = np.exp(-_PI2 * m2 / (8.0 * z2))  # q^(m^2)
    every = np.exp(-_PI2 * k * k / (2.0 * z2))

    k0 = np.sum(odd) / z
    k1 = np.sum((_PI2 * m2 / 4.0 - z2) * odd) / (6.0 * z**4)
    k2 = np.sum(
        (
            6.0 * z**6
            + 2.0 * z**4
            + (2.0 * z**4 - 5.0 * z2) * _PI2 * m2 / 4.0
            + _PI2**2 * (1.0 - 2.0 * z2) * m2**2 / 16.0
        )
        * odd
    ) / (72.0 * z**7) - _PI2 * np.sum(k * k * every) / (36.0 * z**3)
    k3 = np.sum(
        (
            -30.0 * z**6
            - 90.0 * z**8
            + _PI2 * (135.0 * z**4 - 96.0 * z**6) * m2 / 4.0
            + _PI2**2 * (-60.0 * z2 + 212.0 * z**4) * m2**2 / 16.0
            + _PI2**3 * (5.0 - 30.0 * z2) * m2**3 / 64.0
        )
        * odd
    ) / (6480.0 * z**10) + _PI2 * np.sum((3.0 * z2 - _PI2 * k * k) * k * k * every) / (216.0 * z**6)
    root = math.sqrt(n)
    return float(_SQRT_2PI * (k0 + k1 / root + k2 / n + k3 / (n * root)))


EXACT_TWO_SAMPLE_MAX_N = 10_000  # scipy's `ks_2samp(method="auto")`: exact up to this size


def ks_2samp_exact_sf(d: float, n1: int, n2: int) -> float:
    """P(D_{n1,n2} >= d) for the two-sided two-sample KS statistic, exact: the share of
    the C(n1 + n2, n1) equally likely lattice paths from (0, 0) to (n1, n2) that touch
    |x / n1 - y / n2| >= d (Hodges 1958). `scipy.stats.ks_2samp`'s exact method, to the
    bit: d is first rounded to the lattice, h / lcm(n1, n2); equal sizes use the same
    alternating closed form, unequal ones the same recursion (Viehmann 2021, arXiv:
    2102.08037) for the share Q(x, y) of paths to (x, y) that have left the band:

        Q = 1 outside the band, Q(0, 0) = 0,
        Q(x, y) = (x Q(x - 1, y) + y Q(x, y - 1)) / (x + y),

    which averages numbers in [0, 1], so nothing over- or underflows before the result and
    a tail of 1e-200 keeps its relative precision. scipy runs it column by column in a
    compiled loop; here it runs one anti-diagonal x + y = s at a time, a vector
    operation over the band (|n2 x - n1 y| < h gcd), with the same arithmetic in the same
    order. O((n1 + n2) * band) work, in n1 + n2 numpy steps: 20 ms at 2,000 x 3,000,
    0.07-0.17 s at 10,000 x 9,999 (2 CPU cores).
    """
    g = math.gcd(n1, n2)
    lcm = (n1 // g) * n2
    h = int(np.round(d * lcm))
    if h <= 0:
        return 1.0
    if h >= lcm:  # only the two paths along the edges reach d = 1
        h = lcm
    if n1 == n2:
        return _clip(_outside_square(n1, h))
    compiled = _compiled_outside_band()
    if compiled is not None:
        return _clip(float(compiled(n1, n2, g, h)))
    return _clip(_outside_band(n1, n2, g, h))


@functools.cache
def _compiled_outside_band():
    """scipy's compiled loop for the unequal-size recursion (the one `ks_2samp` runs),
    5 to 10 times faster than `_outside_band` (3 ms against 26 ms at 5,000 x 2,000). Its
    extension module is loaded from its file, alone: importing it by name imports the
    whole `scipy.stats` package first (0.45 s, which a batch in a fresh process paid for
    this one loop). It is private to scipy, so `_outside_band` (the same arithmetic, tested
    equal) stands in when a scipy release moves it."""
    import importlib.util
    from pathlib import Path

    import scipy

    name = "scipy.stats._stats_pythran"
    try:
        if name in sys.modules:  # scipy.stats is imported already: take it from there
            return sys.modules[name]._compute_outer_prob_inside_method
        found = sorted((Path(scipy.__file__).parent / "stats").glob("_stats_pythran.*"))
        spec = importlib.util.spec_from_file_location(name, found[0]) if found else None
        if spec is None or spec.loader is None:
            return None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module._compute_outer_prob_inside_method
    except (ImportError, AttributeError, OSError):
        return None


def _outside_square(n: int, h: int) -> float:
    """Equal sizes: P(D_{n,n} >= h/n) = 2 sum_k (-1)^(k+1) C(2n, n - k h) / C(2n, n),
    summed in scipy's Horner form (`_compute_prob_outside_square`), so that no term cancels
    another: 2 r_0 (1 - r_1 (1 - r_2 (...))) with r_k = C(2n, n - (k+1) h) / C(2n, n - k h).
    The ratios come from log-gamma all at once, not from h scalar steps each (1.2 ms a
    column at 5,000 x 5,000): within 1e-9 of scipy (tests/test_kolmogorov.py)."""
    from scipy.special import gammaln

    k = np.arange(0, n // h + 1, dtype=np.float64)
    log_term = -gammaln(n - k * h + 1.0) - gammaln(n + k * h + 1.0)  # + log n!^2, cancelled
    ratios = np.exp(np.diff(log_term)).tolist()  # r_0 .. r_{K-1}; r_K is 0
    total = 0.0
    for ratio in reversed(ratios):
        total = ratio * (1.0 - total)
    return 2.0 * total


def _outside_band(n1: int, n2: int, g: int, h: int) -> float:
    """Unequal sizes: Q(m, n) of `ks_2samp_exact_sf`'s recursion, by anti-diagonals."""
    m, n = max(n1, n2), min(n1, n2)
    hg = h * g  # inside the band: |n x - m y| < h g, with x <= m and y <= n
    total = m + n
    # Q on diagonal s, at x = k - 1 in slot k (slot 0: x = -1, whose weight is 0). Slots
    # outside the band hold 1: the band only moves up, so each step resets the one slot
    # below it that the next step reads.
    prev = np.ones(m + 2)
    cur = np.ones(m + 2)
    x_of_slot = np.arange(-1, m + 1, dtype=np.float64)
    prev[1] = 0.0
    for s in range(1, total + 1):
        lo = max((m * s - hg) // total + 1, s - n, 0)
        hi = min((m * s + hg - 1) // total, m, s)
        if hi < lo:  # every path has left the band
            return 1.0
        x = x_of_slot[lo + 1 : hi + 2]
        out = cur[lo + 1 : hi + 2]
        np.multiply(x, prev[lo : hi + 1], out=out)  # x Q(x - 1, y) ...
        out += (s - x) * prev[lo + 1 : hi + 2]  # ... + y Q(x, y - 1) ...
        out /= s  # ... over x + y
        cur[lo] = 1.0
        prev, cur = cur, prev
    return float(prev[m + 1])
