"""Performance estimated without labels, ours against NannyML's CBPE, batch after batch.

    python benchmarks/bench_performance_estimation.py [--sizes 500,5000,50000]
        [--batches 40,40,20] [--quick] [--skip-ours] [--skip-peers] [--workdir DIR]
        [--keep-data]

Generates (numpy, seeded) a binary classification task: five N(0, 1) features and a
three-level categorical one, the truth P(y=1 | x) = sigmoid(w.x + b + effect(c)). Two
models score the same rows: `calibrated` outputs that probability, `miscalibrated`
sigmoid(2.5 (w.x + b + effect(c))) (over-confident; same ranking, same predictions). A
20,000-row reference, then at each batch size a series of batches in two scenarios:

- `covariate shift`: the features' mean moves along a fixed direction, 0 to 1.5 sd over
  the series (and the categorical's frequencies tilt with it); P(y | x) stays the same;
- `concept drift`: the inputs stay, the truth's weight vector turns away from the model's,
  0 to 60 degrees over the series.

Each batch is evaluated with its labels, so the estimate (from the scores only) and the
realized value come from the same call; NannyML's CBPE (its own virtual environment, as in
bench_peers.py) estimates the same batches, one chunk each. The realized accuracy, F1 and
ROC AUC are computed here with numpy from the labels, the same for both tools. Prints per
scenario the mean absolute error of each estimate and the coverage of its interval, the
seconds per batch, and the issue's targets; writes WORKDIR/results.csv (the table),
batches.csv (every batch and metric), targets.csv and versions.txt. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import os
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_evaluate  # noqa: E402  (output folder, machine description)
import bench_peers  # noqa: E402  (peers' virtual environments, the child runner)

if TYPE_CHECKING:  # monitoring is imported where used: --skip-ours runs without it
    from monitoring import Reference

# --- the task -------------------------------------------------------------------------------

SEED = 0
REFERENCE_ROWS = 20_000
WEIGHTS = np.array([1.0, -0.8, 0.6, 0.4, -0.3])  # the truth's (and the model's) w
INTERCEPT = -0.3
CATEGORIES = np.array(["a", "b", "c"], dtype=object)
CATEGORY_P = np.array([0.5, 0.3, 0.2])  # the categorical's reference frequencies
CATEGORY_EFFECT = np.array([0.0, 0.4, -0.6])  # its term in the logit
CATEGORY_TILT = np.array([-0.5, 0.0, 0.5])  # shift s: frequencies times exp(s * tilt)
SHIFT_DIRECTION = np.array([1.0, 0.0, 1.0, 1.0, 0.0]) / math.sqrt(3)  # unit; w.u = 1.15
MAX_SHIFT = 1.5  # covariate shift at the end of a series, in standard deviations
TURN_AWAY = np.array([0.0, 1.0, 0.0, 0.0, 1.0])  # concept drift turns the truth's w towards
MAX_ROTATION = 60.0  # this (its part orthogonal to w) by up to this many degrees
OVERCONFIDENCE = 2.5  # the miscalibrated model's logit is this multiple of the truth's

SCENARIOS = ("covariate shift", "concept drift")
MODELS = ("calibrated", "miscalibrated")
DEFAULT_SIZES = (500, 5_000, 50_000)
# Batches per size, scenario and model: enough for the coverage to mean something. With a
# true coverage of 95%, less than 90% is read in 4.8% of runs of 40 batches, 7.5% of 20.
DEFAULT_BATCHES = (40, 20)  # below LARGE_ROWS, from it
QUICK_BATCHES = (6, 3)  # --quick: a smoke run
LARGE_ROWS = 50_000

# --- the tools ------------------------------------------------------------------------------

OURS, NANNYML = "ours", "nannyml"
TOOL_NAMES = {OURS: "ours", NANNYML: "NannyML CBPE"}
METRICS = ("accuracy", "roc_auc", "f1")  # the table's columns, in order
SHOWN = {"accuracy": "acc", "roc_auc": "AUC", "f1": "F1"}
TOOL_METRIC = {  # each tool's name for the column's metric; F1: ours macro, NannyML class 1
    OURS: {"accuracy": "accuracy", "roc_auc": "roc_auc", "f1": "f1_macro"},
    NANNYML: {"accuracy": "accuracy", "roc_auc": "roc_auc", "f1": "f1"},
}
REALIZED_TOLERANCE = 1e-9  # a tool's own realized value further from numpy's is logged
CHILD_LIMIT_S = 600  # one NannyML child (one scenario and size, both models)

# Targets (the issue): under covariate shift with the calibrated model, ours
COVERAGE_TARGET = 0.90  # covers the realized value at least this often at every size,
MAE_TARGET = 0.01  # and misses the realized accuracy by at most this on average
MAE_TARGET_ROWS = 5_000  # at this batch size.

# NannyML, in its own process and virtual environment: CBPE fitted on the reference, then
# estimating the concatenated batches with chunk_size = the batch size (one batch a chunk).
NANNYML_CODE = """
import json, sys, time, warnings
warnings.filterwarnings("ignore")  # "the resulting number of chunks is too low" and the like
started = time.perf_counter()
import pandas as pd
import nannyml
try:  # the band's half-width in sampling errors (3 in nannyml 0.13)
    from nannyml.sampling_error import SAMPLING_ERROR_RANGE
except ImportError:
    SAMPLING_ERROR_RANGE = None

reference_path, batches_path = sys.argv[1], sys.argv[2]
size, models, metrics = int(sys.argv[3]), sys.argv[4].split(","), sys.argv[5].split(",")
imported = time.perf_counter()
reference = pd.read_parquet(reference_path)
batches = pd.read_parquet(batches_path)
out = {"import_s": imported - started, "load_s": time.perf_counter() - imported,
       "band_range": SAMPLING_ERROR_RANGE, "models": {}}
fields = ("value", "lower_confidence_boundary", "upper_confidence_boundary",
          "sampling_error", "realized")
for model in models:
    begun = time.perf_counter()
    estimator = nannyml.CBPE(
        problem_type="classification_binary", y_pred_proba=f"proba_{model}",
        y_pred="prediction", y_true="y", metrics=metrics, chunk_size=size,
    )
    estimator.fit(reference)
    fitted = time.perf_counter()
    table = estimator.estimate(batches).filter(period="analysis").to_df()
    done = time.perf_counter()
    if len(table) != len(batches) // size:
        sys.exit(f"{len(table)} chunks for {len(batches) // size} batches")
    out["models"][model] = {
        "fit_s": fitted - begun, "estimate_s": done - fitted,
        "recalibrated": bool(estimator.needs_calibration),
        "metrics": {m: {f: table[(m, f)].astype(float).tolist() for f in fields}
                    for m in metrics},
    }
print(json.dumps(out))
"""


@dataclass(frozen=True)
class Series:
    """One scenario's batches at one size: the model's logit, the truth, and what moved."""

    scenario: str
    rows: int
    drift: np.ndarray  # per batch: shift in sd, or rotation in degrees
    features: np.ndarray  # (batches * rows, 5)
    category: np.ndarray  # (batches * rows,) codes into CATEGORIES
    logit: np.ndarray  # the model's logit (the miscalibrated one's over OVERCONFIDENCE)
    y: np.ndarray  # int8 labels

    @property
    def batches(self) -> int:
        return len(self.drift)

    def batch(self, i: int) -> slice:
        return slice(i * self.rows, (i + 1) * self.rows)


@dataclass(frozen=True)
class Estimated:
    """One batch, one metric, one tool and model: the estimate and the realized value."""

    scenario: str
    rows: int
    model: str
    tool: str
    batch: int
    drift: float
    metric: str  # the table's column (accuracy, roc_auc, f1)
    realized: float
    value: float
    lower: float
    upper: float
    sampling_error: float = math.nan  # NannyML's, where it gives one

    @property
    def covered(self) -> bool:
        return self.lower <= self.realized <= self.upper


@dataclass(frozen=True)
class Timing:
    """A tool's time on one series: fitting its reference, and estimating all batches."""

    scenario: str
    rows: int
    model: str
    tool: str
    fit_s: float
    batches_s: float
    batches: int
    note: str = ""


Cell = tuple[str, str]  # a table column: (tool, or "" for the row's own cells; its name)


@dataclass(frozen=True)
class Target:
    what: str
    value: str
    met: bool | None  # None: not measured


# --- data -----------------------------------------------------------------------------------


def expit(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def true_weights(rotation_deg: float) -> np.ndarray:
    """WEIGHTS turned by `rotation_deg` towards TURN_AWAY (made orthogonal), same length."""
    away = TURN_AWAY - (TURN_AWAY @ WEIGHTS) / (WEIGHTS @ WEIGHTS) * WEIGHTS
    away *= np.linalg.norm(WEIGHTS) / np.linalg.norm(away)
    angle = math.radians(rotation_deg)
    return math.cos(angle) * WEIGHTS + math.sin(angle) * away


def draw(
    rng: np.random.Generator, rows: int, *, shift: float = 0.0, rotation: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`rows` rows: features, category codes, the model's logit and the labels.

    `shift` moves the features' mean along SHIFT_DIRECTION (in sd) and tilts the
    categorical's frequencies; `rotation` turns the truth's weights away from the model's.
    """
    x = rng.standard_normal((rows, len(WEIGHTS))) + shift * SHIFT_DIRECTION
    p = CATEGORY_P * np.exp(shift * CATEGORY_TILT)
    c = rng.choice(len(CATEGORIES), size=rows, p=p / p.sum())
    base = INTERCEPT + CATEGORY_EFFECT[c]
    y = (rng.random(rows) < expit(x @ true_weights(rotation) + base)).astype(np.int8)
    return x, c, x @ WEIGHTS + base, y


def make_series(scenario: str, rows: int, batches: int) -> Series:
    """The scenario's batches at `rows`, drift growing from none to the maximum (seeded)."""
    top = MAX_SHIFT if scenario == "covariate shift" else MAX_ROTATION
    drift = np.linspace(0.0, top, batches) if batches > 1 else np.array([top])
    parts = []
    for i, d in enumerate(drift):
        rng = np.random.default_rng([SEED, SCENARIOS.index(scenario) + 1, rows, i])
        shifted = {"shift": d} if scenario == "covariate shift" else {"rotation": d}
        parts.append(draw(rng, rows, **shifted))
    x, c, logit, y = (np.concatenate(column) for column in zip(*parts, strict=True))
    return Series(scenario, rows, drift, x, c, logit, y)


def reference_series() -> Series:
    x, c, logit, y = draw(np.random.default_rng([SEED, 0]), REFERENCE_ROWS)
    return Series("reference", REFERENCE_ROWS, np.zeros(1), x, c, logit, y)


def proba_1(logit: np.ndarray, model: str) -> np.ndarray:
    return expit(logit if model == "calibrated" else OVERCONFIDENCE * logit)


def ours_frame(series: Series, model: str, rows: slice = slice(None)) -> pd.DataFrame:
    """Our input: features, the label and prediction as "0"/"1", proba_0 and proba_1."""
    labels = np.array(["0", "1"], dtype=object)
    p1 = proba_1(series.logit[rows], model)
    frame = pd.DataFrame(series.features[rows], columns=[f"x{j}" for j in range(len(WEIGHTS))])
    frame["c"] = CATEGORIES[series.category[rows]]
    frame["y"] = labels[series.y[rows]]
    frame["prediction"] = labels[(series.logit[rows] >= 0).astype(np.int8)]
    frame["proba_0"] = 1.0 - p1
    frame["proba_1"] = p1
    return frame


def write_scores(path: Path, series: Series) -> None:
    """NannyML's input: 0/1 label and prediction, and each model's score for class 1."""
    columns = {"y": series.y, "prediction": (series.logit >= 0).astype(np.int8)}
    columns |= {f"proba_{m}": proba_1(series.logit, m) for m in MODELS}
    pq.write_table(pa.table(columns), path)


# --- realized metrics (numpy, the same for both tools) --------------------------------------


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their positions."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(values)]  # exclusive
    group = np.repeat(np.arange(len(starts)), ends - starts)
    ranks = np.empty(len(values))
    ranks[order] = ((starts + 1 + ends) / 2.0)[group]
    return ranks


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Mann-Whitney: (rank sum of the positives - n1 (n1 + 1) / 2) / (n1 n0), ties halved."""
    positive = y == 1
    n1 = int(positive.sum())
    n0 = len(y) - n1
    if n1 == 0 or n0 == 0:
        return math.nan
    return float((average_ranks(score)[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def f1_of(y: np.ndarray, prediction: np.ndarray, positive: int) -> float:
    """F1 of class `positive`: 2 TP / (2 TP + FP + FN); 0 when the class is never seen."""
    tp = int(np.sum((prediction == positive) & (y == positive)))
    wrong = int(np.sum(prediction != y))  # FP + FN, for either class
    return 2 * tp / (2 * tp + wrong) if tp + wrong else 0.0


def realized(y: np.ndarray, prediction: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """Accuracy, ROC AUC, F1 of class 1 (NannyML's f1) and macro F1 (ours)."""
    f1_1, f1_0 = f1_of(y, prediction, 1), f1_of(y, prediction, 0)
    return {
        "accuracy": float(np.mean(y == prediction)),
        "roc_auc": roc_auc(y, score),
        "f1": f1_1,
        "f1_macro": (f1_1 + f1_0) / 2,
    }


def realized_per_batch(series: Series, model: str) -> list[dict[str, float]]:
    prediction = (series.logit >= 0).astype(np.int8)
    score = proba_1(series.logit, model)
    return [
        realized(series.y[s], prediction[s], score[s])
        for s in (series.batch(i) for i in range(series.batches))
    ]


# --- ours -----------------------------------------------------------------------------------


def fit_ours(reference: Series, model: str) -> Reference:
    import monitoring

    return monitoring.fit_reference(
        ours_frame(reference, model), target="y", prediction="prediction", task="classification"
    )


def describe_estimator(fitted: Reference) -> str:
    """The reference's `estimator` in one line: its scalar fields (the calibration check)."""
    estimator = getattr(fitted, "estimator", None)
    if estimator is None:
        return "no `estimator` on the fitted reference"
    if dataclasses.is_dataclass(estimator):
        fields = {f.name: getattr(estimator, f.name) for f in dataclasses.fields(estimator)}
    else:
        fields = dict(vars(estimator)) if hasattr(estimator, "__dict__") else {}
    shown = []
    for name, value in fields.items():
        if isinstance(value, bool | int | str):
            shown.append(f"{name}={value}")
        elif isinstance(value, float):
            shown.append(f"{name}={value:.4g}")
        elif isinstance(value, Mapping) and all(isinstance(v, float) for v in value.values()):
            shown.append(f"{name}={{" + ", ".join(f"{k}: {v:.4g}" for k, v in value.items()) + "}")
    return f"{type(estimator).__name__}(" + ", ".join(shown) + ")"


def run_ours(
    series: Series, model: str, fitted: Reference, fit_s: float
) -> tuple[list[Estimated], Timing]:
    """Evaluate every batch with its labels: our estimates, checked against numpy's values."""
    import monitoring

    truth = realized_per_batch(series, model)
    out: list[Estimated] = []
    gaps: dict[str, float] = {}  # the largest gap between our realized value and numpy's
    spent = 0.0
    for i in range(series.batches):
        frame = ours_frame(series, model, series.batch(i))
        started = time.perf_counter()
        report = monitoring.evaluate(frame, fitted)
        spent += time.perf_counter() - started
        estimates = report.estimated_performance
        for metric in METRICS:
            name = TOOL_METRIC[OURS][metric]
            e = estimates[name]
            expected = truth[i][name]
            theirs = report.performance.get(name)
            if theirs is not None:
                gaps[name] = max(gaps.get(name, 0.0), abs(theirs - expected))
            out.append(
                Estimated(
                    series.scenario, series.rows, model, OURS, i, float(series.drift[i]),
                    metric, expected, e.value, e.lower, e.upper,
                )
            )  # fmt: skip
    for name, gap in gaps.items():
        if gap > REALIZED_TOLERANCE:
            bench_peers.log(f"  ours: realized {name} differs from numpy's by up to {gap:.2g}")
    timing = Timing(series.scenario, series.rows, model, OURS, fit_s, spent, series.batches)
    return out, timing


# --- NannyML --------------------------------------------------------------------------------


def run_nannyml(
    series: Series, peer: bench_peers.Peer, workdir: Path, reference_path: Path, *, keep: bool
) -> tuple[list[Estimated], list[Timing], str, float | None]:
    """CBPE on the series for both models in one child.

    The scores go to WORKDIR/batches-SCENARIO-ROWS.parquet (deleted unless `keep`).
    Returns the estimates, the timings, the child's status (ok, failed, timeout) and the
    width of NannyML's band in sampling errors (its SAMPLING_ERROR_RANGE).
    """
    path = workdir / f"batches-{series.scenario.replace(' ', '-')}-{series.rows}.parquet"
    write_scores(path, series)
    assert peer.python is not None
    command = [str(peer.python), "-c", NANNYML_CODE, str(reference_path), str(path)]
    command += [str(series.rows), ",".join(MODELS), ",".join(TOOL_METRIC[NANNYML].values())]
    env = {**os.environ, **bench_peers.PEER_ENV}
    status, child = bench_peers.run_limited(command, cwd=workdir, env=env, limit_s=CHILD_LIMIT_S)
    if not keep:
        path.unlink()
    if status != "ok":
        return [], [], status, None
    found = bench_peers.last_json(child.stdout)
    out: list[Estimated] = []
    timings: list[Timing] = []
    for model, result in found["models"].items():
        truth = realized_per_batch(series, model)
        for metric in METRICS:
            name = TOOL_METRIC[NANNYML][metric]
            got = result["metrics"][name]
            gap = max(abs(a - t[name]) for a, t in zip(got["realized"], truth, strict=True))
            if gap > REALIZED_TOLERANCE:
                bench_peers.log(f"  nannyml: realized {name} differs from numpy's by {gap:.2g}")
            for i, t in enumerate(truth):
                out.append(
                    Estimated(
                        series.scenario, series.rows, model, NANNYML, i,
                        float(series.drift[i]), metric, t[name], got["value"][i],
                        got["lower_confidence_boundary"][i],
                        got["upper_confidence_boundary"][i], got["sampling_error"][i],
                    )
                )  # fmt: skip
        note = "recalibrated" if result["recalibrated"] else "not recalibrated"
        timings.append(
            Timing(
                series.scenario, series.rows, model, NANNYML,
                result["fit_s"], result["estimate_s"], series.batches, note,
            )
        )  # fmt: skip
    band = found["band_range"]
    return out, timings, status, None if band is None else float(band)


# --- report ---------------------------------------------------------------------------------


def summarize(
    estimated: list[Estimated], timings: list[Timing]
) -> dict[tuple[str, int, str, str], dict[str, float]]:
    """Per (scenario, rows, model, tool) and metric: the mean absolute error, the mean error
    (bias), the coverage (and the batches covered, of n), the interval's mean width, the
    realized range; the fit's seconds and the seconds per batch."""
    groups: dict[tuple[str, int, str, str], list[Estimated]] = {}
    for e in estimated:
        groups.setdefault((e.scenario, e.rows, e.model, e.tool), []).append(e)
    out: dict[tuple[str, int, str, str], dict[str, float]] = {}
    for key, found in groups.items():
        cells: dict[str, float] = {}
        for metric in METRICS:
            rows = [e for e in found if e.metric == metric and math.isfinite(e.value)]
            errors = [abs(e.value - e.realized) for e in rows]
            cells[f"mae_{metric}"] = float(np.mean(errors)) if errors else math.nan
            cells[f"coverage_{metric}"] = (
                float(np.mean([e.covered for e in rows])) if rows else math.nan
            )
            cells[f"covered_{metric}"] = sum(e.covered for e in rows)
            cells[f"n_{metric}"] = len(rows)
            widths = [e.upper - e.lower for e in rows]
            cells[f"width_{metric}"] = float(np.mean(widths)) if widths else math.nan
            cells[f"bias_{metric}"] = (
                float(np.mean([e.value - e.realized for e in rows])) if rows else math.nan
            )
            truth = [e.realized for e in rows]
            cells[f"realized_min_{metric}"] = min(truth, default=math.nan)
            cells[f"realized_max_{metric}"] = max(truth, default=math.nan)
        out[key] = cells
    for t in timings:
        cells = out.setdefault((t.scenario, t.rows, t.model, t.tool), {})
        cells["fit_s"] = t.fit_s
        cells["s_per_batch"] = t.batches_s / t.batches
    return out


def table(scenario: str, summary: Mapping, sizes: Sequence[int]) -> list[dict[Cell, str]]:
    """One row per (size, model); cells keyed by (tool, column) for a two-line header."""
    rows = []
    for size in sizes:
        for model in MODELS:
            ours = summary.get((scenario, size, model, OURS), {})
            theirs = summary.get((scenario, size, model, NANNYML), {})
            either = ours or theirs
            spread = "-"
            if either:
                spread = (
                    f"{either['realized_min_accuracy']:.3f}-{either['realized_max_accuracy']:.3f}"
                )
            cells: dict[Cell, str] = {
                ("", "rows"): f"{size:,}",
                ("", "model"): model,
                ("", "realized acc"): spread,
            }
            for tool, found in ((OURS, ours), (NANNYML, theirs)):
                for metric in METRICS:
                    cells[(tool, f"MAE {SHOWN[metric]}")] = _num(found.get(f"mae_{metric}"), 4)
                cells[(tool, "cover % acc/AUC/F1")] = "/".join(
                    _num(100 * found[f"coverage_{m}"], 0) if f"coverage_{m}" in found else "-"
                    for m in METRICS
                )
                cells[(tool, "s/batch")] = _num(found.get("s_per_batch"), 3)
            rows.append(cells)
    return rows


def format_table(rows: list[dict[Cell, str]]) -> str:
    """Text columns; a first header line names each tool over its columns."""
    header = list(rows[0])
    widths = {h: max(len(h[1]), *(len(r[h]) for r in rows)) for h in header}
    groups: dict[str, int] = {}  # tool -> width of its columns with their separators
    for h in header:
        groups[h[0]] = groups.get(h[0], -2) + widths[h] + 2
    top = "  ".join(
        f"-- {TOOL_NAMES[g]} ".ljust(w, "-") if g else " " * w for g, w in groups.items()
    )

    def line(cells: dict[Cell, str]) -> str:
        return "  ".join(
            cells[h].ljust(widths[h]) if h[1] == "model" else cells[h].rjust(widths[h])
            for h in header
        ).rstrip()

    rule = "  ".join("-" * widths[h] for h in header)
    names = line({h: h[1] for h in header})
    return "\n".join([top.rstrip(), names, rule, *(line(r) for r in rows)])


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def targets(summary: Mapping, sizes: Sequence[int]) -> list[Target]:
    """Ours, covariate shift, calibrated: coverage at every size, MAE of accuracy at 5,000."""
    out = []
    for size in sizes:
        found = summary.get(("covariate shift", size, "calibrated", OURS), {})
        value, met = "-", None
        if "coverage_accuracy" in found:
            value = ", ".join(
                f"{SHOWN[m]} {found[f'covered_{m}']:.0f}/{found[f'n_{m}']:.0f}" for m in METRICS
            )
            met = all(found[f"coverage_{m}"] >= COVERAGE_TARGET for m in METRICS)
        what = f"covariate shift, calibrated, {size:,} rows: coverage >= {COVERAGE_TARGET:.0%}"
        out.append(Target(what, value, met))
    found = summary.get(("covariate shift", MAE_TARGET_ROWS, "calibrated", OURS), {})
    mae = found.get("mae_accuracy")
    what = (
        f"covariate shift, calibrated, {MAE_TARGET_ROWS:,} rows: MAE of accuracy <= {MAE_TARGET:g}"
    )
    out.append(Target(what, _num(mae, 4), None if mae is None else mae <= MAE_TARGET))
    return out


def format_targets(found: list[Target]) -> str:
    width = max(len(t.what) for t in found)
    value_width = max(len(t.value) for t in found)
    shown = {True: "met", False: "NOT met", None: "not measured"}
    return "\n".join(
        f"{t.what.ljust(width)}  {t.value.rjust(value_width)}  {shown[t.met]}" for t in found
    )


def write_csvs(
    workdir: Path, summary: Mapping, estimated: list[Estimated], found: list[Target]
) -> None:
    keys = sorted({k for cells in summary.values() for k in cells})
    with (workdir / "results.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["scenario", "rows", "model", "tool", *keys])
        for (scenario, rows, model, tool), cells in sorted(summary.items()):
            values = [cells.get(k, math.nan) for k in keys]
            writer.writerow([scenario, rows, model, tool, *(f"{v:.6g}" for v in values)])
    with (workdir / "batches.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        names = [f.name for f in dataclasses.fields(Estimated)]
        writer.writerow([*names, "covered"])
        for e in estimated:
            writer.writerow([*(getattr(e, n) for n in names), e.covered])
    with (workdir / "targets.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["target", "value", "met"])
        for t in found:
            writer.writerow([t.what, t.value, "" if t.met is None else str(t.met).lower()])


# --- main -----------------------------------------------------------------------------------


def default_batches(rows: int, *, quick: bool) -> int:
    small, large = QUICK_BATCHES if quick else DEFAULT_BATCHES
    return large if rows >= LARGE_ROWS else small


def parse_batches(text: str) -> tuple[int, ...]:
    counts = bench_peers.parse_sizes(text)
    if min(counts) < 1:
        raise argparse.ArgumentTypeError(f"batch counts must be >= 1, got {text!r}")
    return counts


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=bench_peers.parse_sizes,
        default=DEFAULT_SIZES,
        help="comma-separated batch rows (default 500,5000,50000)",
    )
    parser.add_argument(
        "--batches",
        type=parse_batches,
        help="batches per size, scenario and model: one count for every size, or one per "
        f"size (default {DEFAULT_BATCHES[0]} below {LARGE_ROWS:,} rows, {DEFAULT_BATCHES[1]} "
        "from it)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a smoke run: {QUICK_BATCHES[0]} batches below {LARGE_ROWS:,} rows, "
        f"{QUICK_BATCHES[1]} from it (unless --batches)",
    )
    parser.add_argument("--skip-ours", action="store_true", help="run NannyML only")
    parser.add_argument("--skip-peers", action="store_true", help="run ours only")
    parser.add_argument(
        "--workdir", type=Path, help="default: a new temporary folder under benchmarks/output/"
    )
    parser.add_argument(
        "--keep-data",
        action="store_true",
        help="keep the Parquet files given to NannyML (labels, predictions, scores)",
    )
    args = parser.parse_args(argv)
    if args.skip_ours and args.skip_peers:
        parser.error("--skip-ours and --skip-peers leave nothing to run")
    if args.batches is None:
        args.batches = tuple(default_batches(size, quick=args.quick) for size in args.sizes)
    elif len(args.batches) == 1:
        args.batches = args.batches * len(args.sizes)
    elif len(args.batches) != len(args.sizes):
        parser.error(f"--batches gives {len(args.batches)} counts for {len(args.sizes)} sizes")
    return args


def open_workdir(given: Path | None) -> Path:
    if given is None:
        bench_evaluate.OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="estimation-", dir=bench_evaluate.OUTPUT_DIR))
    workdir = given.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir


def fit_both(reference: Series) -> tuple[dict[str, tuple[Reference, float]], list[str]]:
    """Our reference for each model (and its seconds), and lines on the fitted estimator."""
    fitted: dict[str, tuple[Reference, float]] = {}
    lines = []
    for model in MODELS:
        begun = time.perf_counter()
        fitted[model] = (fit_ours(reference, model), time.perf_counter() - begun)
        lines.append(f"ours, {model}: {describe_estimator(fitted[model][0])}")
        bench_peers.log(lines[-1])
    return fitted, lines


def interval_notes(ours: bool, band: float | None, timings: list[Timing]) -> list[str]:
    """What each tool's interval is, and what the F1 column compares."""
    lines = ["F1: ours macro F1, NannyML F1 of class 1, each against its own realized value"]
    if ours:
        from monitoring.measure.performance.estimates import CONFIDENCE

        lines.append(f"ours' intervals: {CONFIDENCE:.0%} (estimates.CONFIDENCE)")
    if band is not None:
        recalibrated = {t.model: t.note for t in timings if t.tool == NANNYML}
        lines.append(
            f"NannyML's band: estimate +- {band:g} sampling errors (SAMPLING_ERROR_RANGE; the "
            "reference's spread of the metric over sqrt(batch rows), no term for the "
            "estimate's own error), clipped to [0, 1]; its isotonic recalibration on the "
            "reference: " + ", ".join(f"{m} {n}" for m, n in recalibrated.items())
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    log = bench_peers.log
    workdir = open_workdir(args.workdir)
    log(f"workdir: {workdir}")
    plan = ", ".join(f"{n} x {s:,}" for s, n in zip(args.sizes, args.batches, strict=True))
    header = [
        *bench_evaluate.machine(("numpy", "pandas", "pyarrow")),
        f"reference {REFERENCE_ROWS:,} rows; covariate shift 0-{MAX_SHIFT:g} sd, concept drift "
        f"0-{MAX_ROTATION:g} degrees over each series; batches per scenario and model: {plan}",
    ]
    log(header[-1])
    peer = None
    if not args.skip_peers:
        peer = bench_peers.ensure_peer(NANNYML, bench_peers.PEER_REQUIREMENTS[NANNYML])
        header.append(
            f"peer {peer.name} {peer.version} ({peer.environment})"
            + (f": {peer.error}" if peer.error else "")
        )
        log(header[-1])

    reference = reference_series()
    reference_path = workdir / "reference.parquet"
    write_scores(reference_path, reference)
    fitted: dict[str, tuple[Reference, float]] = {}
    if not args.skip_ours:
        version = bench_evaluate.metadata.version("monitoring")
        header.append(f"monitoring {version}, {bench_peers.git_commit()} (at the start)")
        fitted, lines = fit_both(reference)
        header += lines

    estimated: list[Estimated] = []
    timings: list[Timing] = []
    band = None
    for scenario in SCENARIOS:
        for size, batches in zip(args.sizes, args.batches, strict=True):
            series = make_series(scenario, size, batches)
            for model, (reference_fit, fit_s) in fitted.items():
                log(f"{scenario}, {size:,} rows, {model}: ours, {batches} batches")
                found, timing = run_ours(series, model, reference_fit, fit_s)
                estimated += found
                timings.append(timing)
            if peer is not None and peer.python is not None:
                log(f"{scenario}, {size:,} rows: nannyml CBPE, {batches} batches x 2 models")
                found, timed, status, width = run_nannyml(
                    series, peer, workdir, reference_path, keep=args.keep_data
                )
                estimated += found
                timings += timed
                band = width if width is not None else band
                if status != "ok":
                    log(f"{scenario}, {size:,} rows: nannyml {status}")

    summary = summarize(estimated, timings)
    found_targets = targets(summary, args.sizes)
    write_csvs(workdir, summary, estimated, found_targets)
    if not args.keep_data:
        reference_path.unlink(missing_ok=True)
    header += interval_notes(bool(fitted), band, timings)
    (workdir / "versions.txt").write_text("\n".join(header) + "\n")
    print("\n".join(header))
    for scenario in SCENARIOS:
        print(
            f"\n{scenario}: mean absolute error of the estimate against the realized value, "
            "share of batches whose interval covers it, seconds per batch"
        )
        print(format_table(table(scenario, summary, args.sizes)))
    print()
    print(format_targets(found_targets))
    print(
        f"results: {workdir / 'results.csv'}, batches.csv, targets.csv, versions.txt "
        f"({time.perf_counter() - started:.0f} s in all)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
