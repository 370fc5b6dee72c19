"""Do drift decisions mean what users think, at every batch size? Rates per scenario.

Draws batches from a generated reference (20 features: 14 numeric with correlations,
skew, heavy tails and ties; 6 categorical; with the model's label, score and the truth)
and prints, per batch size and scenario, how often the batch verdict (`dataset_drift`)
fires, with a 95% Clopper-Pearson interval:

- `none`: batches drawn from the reference distribution (false alarms; target <= alpha);
- `negligible`: every numeric feature moved by up to 0.05 sd, every categorical one by
  1% of its rows (target <= 10%);
- `mean 0.2sd x2`, `variance x1.3 x2`, `category freq`, `correlation only`: real changes
  (target >= 90% from 5,000 rows);
- `concept drift`: the inputs do not move, P(label | inputs) does (n2's coefficient in
  the truth goes from 1 to CONCEPT_N2), so the model's accuracy falls by about 0.15
  (0.70 to 0.55) while the label rate stays within a point: no drift to find, a
  performance drop to find (target: status `degraded` >= 90% from 5,000 rows);
- `wrong units 15%`, `sentinel -999 10%`, `new category 5%`: broken rows, not drift
  (target: status `quality` or `drift` >= 90% at every size; quality findings named).

Then the batch status (`BatchReport.status` from the default drift decision, the
performance tests against the reference's and the data-quality checks) as the share of
batches `ok`, `quality`, `drift` and `degraded`.

Three rules decide on the same batch profile, side by side:
- `calibrated`: the default (thresholds simulated at the batch's size, Holm across the
  features and the multivariate reconstruction test, minimum effect sizes);
- `psi>0.2`: fixed PSI 0.2 on any feature;
- `ks/chi2 p<.05`: KS (numeric) or chi-squared (categorical) p < 0.05 on any feature.

Then the time per batch of `monitoring.evaluate` with the default methods on 50,000 rows
by 23 columns (20 features, target, prediction, score).

    .venv/bin/python benchmarks/bench_drift_decisions.py            # ~15 minutes
    .venv/bin/python benchmarks/bench_drift_decisions.py --quick    # fewer repetitions
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy import stats

import monitoring
from monitoring.core.config import DriftConfig, MonitoringConfig
from monitoring.core.engine import Engine
from monitoring.evaluation.batch_plan import BatchPlan
from monitoring.evaluation.report import BatchReport
from monitoring.measure.drift import decide_drift
from monitoring.measure.performance.tests import performance_tests
from monitoring.measure.quality import decide_quality

NUMERIC = [f"n{i}" for i in range(14)]
CATEGORICAL = [f"c{i}" for i in range(6)]
LEVELS = {
    "c0": np.array([0.5, 0.3, 0.2]),
    "c1": np.array([0.3, 0.25, 0.2, 0.15, 0.1]),
    "c2": 1 / np.arange(1, 11) / np.sum(1 / np.arange(1, 11)),
    "c3": 1 / np.arange(1, 21) ** 1.2 / np.sum(1 / np.arange(1, 21) ** 1.2),
    "c5": np.full(4, 0.25),
}
REFERENCE_ROWS = 20_000
SIZES = (500, 5_000, 50_000, 500_000)
REPETITIONS = {500: 400, 5_000: 200, 50_000: 100, 500_000: 30}
REFERENCE_EVERY = 10
CONCEPT_N2 = -0.4  # n2's coefficient in the truth under concept drift (1 in the reference)


def _categorical(rng: np.random.Generator, p: np.ndarray, n: int, name: str) -> np.ndarray:
    names = np.array([f"{name}_{i}" for i in range(len(p))], dtype=object)
    return names[rng.choice(len(p), size=n, p=p)]


def generate(n: int, rng: np.random.Generator, scenario: str = "none") -> pd.DataFrame:
    """n rows of the 20 features, with `scenario` applied."""
    rho01 = 0.0 if scenario == "correlation only" else 0.8
    z = rng.standard_normal((n, 5))
    x: dict[str, np.ndarray] = {}
    x["n0"] = 50 + 10 * z[:, 0]
    x["n1"] = rho01 * z[:, 0] + np.sqrt(1 - rho01**2) * z[:, 1]
    common = rng.standard_normal(n)
    x["n2"] = np.sqrt(0.5) * common + np.sqrt(0.5) * z[:, 2]
    x["n3"] = np.sqrt(0.5) * common + np.sqrt(0.5) * z[:, 3]
    x["n4"] = np.exp(0.5 * (np.sqrt(0.5) * common + np.sqrt(0.5) * z[:, 4]))
    x["n5"] = rng.lognormal(0.0, 0.75, n)
    x["n6"] = rng.exponential(2.0, n)
    x["n7"] = rng.gamma(2.0, 1.0, n)
    x["n8"] = rng.poisson(3.0, n).astype(np.float64)
    x["n9"] = rng.normal(0, 1, n)
    x["n10"] = rng.normal(100, 15, n)
    x["n11"] = rng.normal(0, 1, n)
    x["n12"] = rng.standard_t(5, n)
    x["n13"] = rng.uniform(0, 1, n)
    levels = dict(LEVELS)
    if scenario == "category freq":
        levels["c1"] = np.array([0.2, 0.25, 0.2, 0.15, 0.2])  # 10% of rows move
    cat = {c: _categorical(rng, levels[c], n, c) for c in levels}
    cat["c4"] = np.where(rng.random(n) < 1 / (1 + np.exp(-z[:, 0])), "c4_yes", "c4_no")
    if scenario == "mean 0.2sd x2":
        x["n9"] = x["n9"] + 0.2 * SD["n9"]
        x["n10"] = x["n10"] + 0.2 * SD["n10"]
    if scenario == "variance x1.3 x2":
        for c in ("n11", "n12"):
            x[c] = MEAN[c] + (x[c] - MEAN[c]) * np.sqrt(1.3)
    if scenario == "wrong units 15%":
        broken = rng.random(n) < 0.15
        x["n10"] = np.where(broken, x["n10"] / 100, x["n10"])
    if scenario == "sentinel -999 10%":
        x["n0"] = np.where(rng.random(n) < 0.10, -999.0, x["n0"])
    if scenario == "new category 5%":
        cat["c2"] = np.where(rng.random(n) < 0.05, "c2_new", cat["c2"])
    if scenario == "negligible":
        for c in NUMERIC:
            x[c] = x[c] + rng.uniform(-0.05, 0.05) * SD[c]
        for c in cat:
            moved = rng.random(n) < 0.01
            cat[c] = np.where(moved, np.roll(cat[c], 1), cat[c])
    frame = pd.DataFrame({**{c: x[c] for c in NUMERIC}, **{c: cat[c] for c in sorted(cat)}})
    return frame


SD: dict[str, float] = {}
MEAN: dict[str, float] = {}


def _moments() -> None:
    big = generate(400_000, np.random.default_rng(999))
    for c in NUMERIC:
        SD[c] = float(big[c].std())
        MEAN[c] = float(big[c].mean())


def with_outputs(
    frame: pd.DataFrame, rng: np.random.Generator, concept: float = 1.0
) -> pd.DataFrame:
    """Add target, prediction and score columns (23 columns in all); `concept` is n2's
    coefficient in the truth (the model keeps 1)."""
    base = 0.08 * (frame["n0"] - 50) - 0.7 * (frame["c0"] == "c0_0")
    logit = base + frame["n2"]
    proba = 1 / (1 + np.exp(-(logit + rng.normal(0, 0.5, len(frame)))))
    truth = rng.random(len(frame)) < 1 / (1 + np.exp(-(base + concept * frame["n2"])))
    return frame.assign(
        label=np.where(truth, "yes", "no"),
        prediction=np.where(proba > 0.5, "yes", "no"),
        proba_yes=proba,
    )


RULES: dict[str, DriftConfig] = {
    "calibrated": DriftConfig(),
    "psi>0.2": DriftConfig(decision_mode="fixed", multivariate=()),
    "ks/chi2 p<.05": DriftConfig(
        decision_mode="fixed", numerical_decision="ks", categorical_decision="chi2", multivariate=()
    ),
}


def decide_all(frame: pd.DataFrame, reference: monitoring.Reference) -> dict[str, object]:
    """The batch verdict of every rule, and the batch status, from one pass over the batch."""
    config = MonitoringConfig(drift=RULES["calibrated"])
    plan = BatchPlan(reference, config, None, where="bench")
    with Engine(config.evaluation.threads) as engine:
        engine.run((frame.iloc[i : i + 100_000] for i in range(0, len(frame), 100_000)), plan)
    out: dict[str, object] = {}
    for name, rule in RULES.items():
        dataset = plan.multivariate.result() if rule.calibrated else ()
        columns, tests = decide_drift(plan.counts, rule, dataset)
        features = [c for c in columns if c.role == "feature"]
        out[name] = any(c.drifted for c in features) or any(t.drifted for t in tests)
        if name == "calibrated":
            assert plan.performance is not None
            out["status"] = BatchReport(
                reference=reference,
                columns=columns,
                multivariate=tests,
                n_rows=len(frame),
                performance={},
                worst_samples=pd.DataFrame(),
                batch_digest="",
                source="bench",
                source_name="bench",
                profile={},
                performance_tests=performance_tests(
                    reference.performance, plan.performance.metrics, config.performance
                ),
                quality=decide_quality(plan.quality(), config.quality),
            ).status
    return out


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    low = stats.beta.ppf(0.025, k, n - k + 1) if k > 0 else 0.0
    high = stats.beta.ppf(0.975, k + 1, n - k) if k < n else 1.0
    return float(low), float(high)


SCENARIOS = (
    "none",
    "negligible",
    "mean 0.2sd x2",
    "variance x1.3 x2",
    "category freq",
    "correlation only",
    "concept drift",
    "wrong units 15%",
    "sentinel -999 10%",
    "new category 5%",
)
STATUSES = ("ok", "quality", "drift", "degraded")


def fit(rng: np.random.Generator) -> monitoring.Reference:
    """A reference of REFERENCE_ROWS fresh rows (with target, prediction and score)."""
    frame = with_outputs(generate(REFERENCE_ROWS, rng), rng)
    return monitoring.fit_reference(frame, target="label", prediction="prediction")


def rates(sizes: tuple[int, ...], scale: float, log: Callable[[str], None]) -> pd.DataFrame:
    """Verdict rates; a fresh reference every REFERENCE_EVERY batches, so that the rates
    average over references too (one reference sample that happens to sit off the
    population in some feature alarms more often on that feature, at every batch)."""
    rows = []
    rng = np.random.default_rng(7)
    for n in sizes:
        reps = max(10, int(REPETITIONS[n] * scale))
        for scenario in SCENARIOS:
            hits = dict.fromkeys(RULES, 0)
            statuses = dict.fromkeys(STATUSES, 0)
            started = time.perf_counter()
            for rep in range(reps):
                if rep % REFERENCE_EVERY == 0:
                    reference = fit(rng)
                concept = CONCEPT_N2 if scenario == "concept drift" else 1.0
                batch = with_outputs(generate(n, rng, scenario), rng, concept)
                verdict = decide_all(batch, reference)
                statuses[str(verdict.pop("status"))] += 1
                for name, fired in verdict.items():
                    hits[name] += bool(fired)
            for name, k in {**hits, **{f"status {s}": k for s, k in statuses.items()}}.items():
                low, high = clopper_pearson(k, reps)
                rows.append(
                    {
                        "rows": n,
                        "scenario": scenario,
                        "rule": name,
                        "reps": reps,
                        "rate": k / reps,
                        "ci95": f"[{low:.3f}, {high:.3f}]",
                    }
                )
            log(f"{n:>7} rows  {scenario:<18} {reps} reps  {time.perf_counter() - started:.0f} s")
    return pd.DataFrame(rows)


def timing(reference: monitoring.Reference, repeats: int = 5) -> pd.DataFrame:
    """Seconds per `monitoring.evaluate` call on 50,000 rows x 23 columns (default methods)."""
    rng = np.random.default_rng(3)
    frame = with_outputs(generate(50_000, rng), rng)
    monitoring.evaluate(frame, reference)  # warm caches and imports
    rows = []
    for scenario in ("none", "mean 0.2sd x2"):
        batch = with_outputs(generate(50_000, rng, scenario), rng)
        seconds = []
        for _ in range(repeats):
            started = time.perf_counter()
            monitoring.evaluate(batch, reference)
            seconds.append(time.perf_counter() - started)
        rows.append(
            {
                "scenario": scenario,
                "rows x cols": f"{len(batch)} x {batch.shape[1]}",
                "median s": float(np.median(seconds)),
                "min s": float(np.min(seconds)),
            }
        )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the repetitions")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    args = parser.parse_args()
    _moments()
    print(
        f"reference: {REFERENCE_ROWS} rows, a fresh one every {REFERENCE_EVERY} batches; "
        f"alpha = {DriftConfig().alpha}"
    )
    sizes = tuple(int(s) for s in args.sizes.split(","))
    table = rates(sizes, 0.1 if args.quick else 1.0, print)
    status = table["rule"].str.startswith("status ")
    wide = (
        table[~status]
        .pivot_table(index=["scenario", "rows"], columns="rule", values="rate", sort=False)
        .reset_index()
    )
    print("\nbatch verdict rate (share of batches called drifted)")
    print(wide.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    statuses = (
        table[status]
        .pivot_table(index=["scenario", "rows"], columns="rule", values="rate", sort=False)
        .reset_index()
    )
    print("\nbatch status (share of batches; drift, performance and data-quality decisions)")
    print(statuses.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print("\nwith 95% Clopper-Pearson intervals")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print("\ntime per batch, monitoring.evaluate, default methods")
    print(
        timing(fit(np.random.default_rng(1))).to_string(
            index=False, float_format=lambda v: f"{v:.3f}"
        )
    )


if __name__ == "__main__":
    main()
