"""Synthetic loan applications with a known default risk, and the demo's predictions table.

Each row is one loan application: ten numeric features (skewed, correlated, bounded and
count-valued), four categorical ones, an integer id, a timestamp and the truth ``defaulted``
("default" or "repaid"), drawn from a known logistic function of the features plus an
unobserved risk term.

``drift`` is a severity in [0, 1]: 0 is the training distribution and every change below
grows linearly with it, reaching at ``drift=1``:

- ``income``: log-mean lower by ``INCOME_LOG_SHIFT`` (the mean falls by about 0.2 sd);
  ``debt`` and ``loan_amount``, which scale with income, fall with it;
- ``utilization``: Beta(2, 5) becomes Beta(2 + ``UTILIZATION_ALPHA_SHIFT``, 5) (the mean
  rises by about 0.4 sd); ``n_late_payments`` and ``interest_rate`` follow it;
- ``channel``: the share of "partner" grows from 15% to ``PARTNER_SHARE_DRIFTED`` (40%);
- ``region``: "R7", a region never seen in training, takes ``NEW_REGION_SHARE`` (8%) of rows;
- the risk itself: the protective effect of income halves, partner loans and region R7 carry
  extra risk and the base rate rises, so a model fitted at drift 0 loses accuracy.

``income`` is missing in about ``MISSING_RATE`` (1%) of rows at every severity.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from monitoring.errors import ColumnNotFoundError, ConfigError

__all__ = [
    "DEMO_FEATURES_CATEGORICAL",
    "DEMO_FEATURES_NUMERIC",
    "DEMO_ID",
    "DEMO_LABELS",
    "DEMO_PREDICTION_COLUMNS",
    "DEMO_TARGET",
    "DEMO_TIMESTAMP",
    "build_predictions_db",
    "generate_frame",
]

DEMO_ID = "loan_id"
DEMO_TIMESTAMP = "timestamp"
DEMO_TARGET = "defaulted"
DEMO_LABELS = ("default", "repaid")
DEMO_FEATURES_NUMERIC = [
    "age",  # integer years, 21-80
    "income",  # yearly, lognormal; the feature with missing values
    "debt",  # income x a lognormal debt-to-income ratio
    "loan_amount",  # lognormal, by product, scales with income
    "utilization",  # Beta(2, 5), in [0, 1]
    "interest_rate",  # percent, priced on risk
    "credit_history_years",
    "n_accounts",  # count
    "n_late_payments",  # count
    "inquiries_6m",  # count
]
DEMO_FEATURES_CATEGORICAL = ["region", "channel", "product", "employment"]
DEMO_PREDICTION_COLUMNS = ("prediction", "proba_default", "proba_repaid")

MISSING_FEATURE = "income"
MISSING_RATE = 0.01
"""Share of rows whose ``income`` is missing, at every drift severity."""
INCOME_LOG_SHIFT = -0.15
"""Change of the income log-mean at drift 1."""
UTILIZATION_ALPHA_SHIFT = 0.7
"""Change of the first Beta parameter of ``utilization`` at drift 1."""
PARTNER_SHARE_DRIFTED = 0.40
"""Share of channel "partner" at drift 1 (0.15 in training)."""
NEW_REGION = "R7"
NEW_REGION_SHARE = 0.08
"""Share of the unseen region ``NEW_REGION`` at drift 1 (0 in training)."""

_REGIONS = ("R1", "R2", "R3", "R4", "R5", "R6")
_REGION_P = (0.25, 0.20, 0.18, 0.15, 0.12, 0.10)
_REGION_RISK = (0.0, 0.1, -0.1, 0.2, 0.0, -0.2, 1.0)  # the last one is NEW_REGION's
_CHANNELS = ("web", "branch", "partner")
_CHANNEL_P = (0.50, 0.35, 0.15)
_CHANNEL_P_DRIFTED = (0.38, 0.22, PARTNER_SHARE_DRIFTED)
_PRODUCTS = ("personal", "auto", "mortgage", "card")
_PRODUCT_P = (0.35, 0.25, 0.15, 0.25)
_PRODUCT_LOAN = (8_000.0, 22_000.0, 180_000.0, 3_000.0)
_PRODUCT_RATE = (2.0, 0.0, -1.5, 8.0)
_PRODUCT_RISK = (0.0, -0.2, -0.6, 0.4)
_EMPLOYMENTS = ("salaried", "self_employed", "retired", "unemployed")
_EMPLOYMENT_P = (0.65, 0.15, 0.12, 0.08)
_EMPLOYMENT_LOG_INCOME = (np.log(52_000), np.log(58_000), np.log(32_000), np.log(15_000))
_EMPLOYMENT_LOG_SD = (0.5, 0.7, 0.4, 0.5)
_EMPLOYMENT_RISK = (0.0, 0.3, -0.2, 1.0)
_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def generate_frame(
    n: int,
    *,
    start: datetime,
    days: float,
    drift: float = 0.0,
    seed: int,
    first_id: int = 1,
) -> pd.DataFrame:
    """Draw ``n`` loan applications with timestamps spread over ``[start, start + days)``.

    Rows are in time order with ids ``first_id, first_id + 1, ...``; give each frame of a
    database its own id range. The same arguments always give the same frame.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"`n` must be an integer >= 1, got {n!r}")
    if not days > 0:
        raise ConfigError(f"`days` must be a number > 0, got {days!r}")
    if not 0.0 <= drift <= 1.0:
        raise ConfigError(f"`drift` must be a number in [0, 1], got {drift!r}")
    rng = np.random.default_rng(seed)
    d = float(drift)

    offsets = pd.to_timedelta(np.sort(rng.uniform(0.0, days, size=n)), unit="D")
    timestamp = (pd.Timestamp(start) + offsets).floor("s")

    region_p = [p * (1.0 - NEW_REGION_SHARE * d) for p in _REGION_P] + [NEW_REGION_SHARE * d]
    region = rng.choice(len(region_p), size=n, p=region_p)
    channel_p = [(1.0 - d) * a + d * b for a, b in zip(_CHANNEL_P, _CHANNEL_P_DRIFTED, strict=True)]
    channel = rng.choice(len(_CHANNELS), size=n, p=channel_p)
    product = rng.choice(len(_PRODUCTS), size=n, p=_PRODUCT_P)
    employment = rng.choice(len(_EMPLOYMENTS), size=n, p=_EMPLOYMENT_P)
    retired = employment == _EMPLOYMENTS.index("retired")
    partner = channel == _CHANNELS.index("partner")

    age = np.where(
        retired,
        60.0 + rng.gamma(2.0, 4.0, size=n),
        rng.normal(40.0, 11.0, size=n),
    )
    age = np.clip(np.round(age), 21, 80).astype(np.int64)
    log_income = (
        np.take(_EMPLOYMENT_LOG_INCOME, employment)
        + 0.01 * np.clip(age - 40, -15, 15)
        + INCOME_LOG_SHIFT * d
        + np.take(_EMPLOYMENT_LOG_SD, employment) * rng.standard_normal(n)
    )
    income = np.exp(log_income)
    debt_to_income = np.exp(np.log(0.3) + 0.5 * rng.standard_normal(n))
    debt = income * debt_to_income
    loan_amount = (
        np.take(_PRODUCT_LOAN, product)
        * (income / 50_000.0) ** 0.6
        * np.exp(0.35 * rng.standard_normal(n))
    )
    utilization = rng.beta(2.0 + UTILIZATION_ALPHA_SHIFT * d, 5.0, size=n)
    history = (age - 18) * rng.beta(4.0, 2.0, size=n)
    n_accounts = 1 + rng.poisson(0.8 + history / 4.0)
    n_late = rng.poisson(0.15 + 1.5 * utilization)
    inquiries = rng.poisson(0.8 + 0.8 * partner)
    interest_rate = np.clip(
        3.0
        + 10.0 * utilization
        + 1.2 * n_late
        + np.take(_PRODUCT_RATE, product)
        + 1.5 * rng.standard_normal(n),
        1.0,
        35.0,
    )

    logit = (
        -1.8
        + 1.3 * (utilization - 0.29) / 0.16
        + 0.7 * (np.log1p(n_late) - 0.4) / 0.45
        - 0.9 * (1.0 - 0.5 * d) * (log_income - 10.8) / 0.55
        + 0.8 * (np.log(debt_to_income) - np.log(0.3)) / 0.5
        - 0.3 * (history - 12.0) / 7.0
        + 0.25 * inquiries
        + (0.4 + 0.8 * d) * partner
        + np.take(_PRODUCT_RISK, product)
        + np.take(_EMPLOYMENT_RISK, employment)
        + np.take(_REGION_RISK, region)
        + 0.5 * (age < 25)
        + 0.2 * d
        + 0.5 * rng.standard_normal(n)
    )
    defaulted = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))

    income = np.round(income, 2)
    income[rng.random(n) < MISSING_RATE] = np.nan
    return pd.DataFrame(
        {
            DEMO_ID: np.arange(first_id, first_id + n, dtype=np.int64),
            DEMO_TIMESTAMP: timestamp,
            "age": age,
            "income": income,
            "debt": np.round(debt, 2),
            "loan_amount": np.round(loan_amount, 2),
            "utilization": np.round(utilization, 4),
            "interest_rate": np.round(interest_rate, 2),
            "credit_history_years": np.round(history, 1),
            "n_accounts": n_accounts.astype(np.int64),
            "n_late_payments": n_late.astype(np.int64),
            "inquiries_6m": inquiries.astype(np.int64),
            "region": np.take((*_REGIONS, NEW_REGION), region),
            "channel": np.take(_CHANNELS, channel),
            "product": np.take(_PRODUCTS, product),
            "employment": np.take(_EMPLOYMENTS, employment),
            DEMO_TARGET: np.where(defaulted, DEMO_LABELS[0], DEMO_LABELS[1]),
        }
    )


def build_predictions_db(
    url_or_path: str | os.PathLike[str],
    frames: Mapping[int, pd.DataFrame],
    *,
    table: str = "predictions",
    chunksize: int = 5_000,
) -> str:
    """Write ``frames`` (day number -> scored frame) into one table and return its database URL.

    ``url_or_path`` is a SQLAlchemy URL or the path of a SQLite file. The table is replaced if
    it exists; its columns are the id, the timestamp (ISO-8601 text), ``day`` (integer, indexed),
    the features, ``defaulted`` and the prediction columns ``DEMO_PREDICTION_COLUMNS``, which
    every frame must carry (NaN / None where a row has no prediction).
    """
    import sqlalchemy as sa

    if not _TABLE_NAME.fullmatch(table):
        raise ConfigError(f"`table` must be a plain SQL identifier, got {table!r}")
    if not frames:
        raise ConfigError("`frames` must hold at least one day, got none")
    url = str(url_or_path)
    if "://" not in url:
        url = f"sqlite:///{Path(url).resolve()}"
    parts = [_table_part(day, frame) for day, frame in sorted(frames.items())]
    dtypes = _sql_types(parts[0])
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            for number, part in enumerate(parts):
                part.to_sql(
                    table,
                    connection,
                    if_exists="replace" if number == 0 else "append",
                    index=False,
                    chunksize=chunksize,
                    dtype=dtypes,
                )
            connection.execute(sa.text(f'CREATE INDEX "ix_{table}_day" ON "{table}" (day)'))
    finally:
        engine.dispose()
    return url


def _table_part(day: int, frame: pd.DataFrame) -> pd.DataFrame:
    """One day's rows in table order: id, timestamp, day, features, truth, predictions."""
    required = [DEMO_ID, DEMO_TIMESTAMP, DEMO_TARGET, *DEMO_PREDICTION_COLUMNS]
    missing = [name for name in required if name not in frame.columns]
    if missing:
        raise ColumnNotFoundError(f"the frame of day {day} has no column(s) {missing}")
    features = [name for name in frame.columns if name not in {*required, "day"}]
    part = frame[[DEMO_ID, DEMO_TIMESTAMP, *features, DEMO_TARGET, *DEMO_PREDICTION_COLUMNS]]
    part = part.copy()
    timestamps = pd.to_datetime(part[DEMO_TIMESTAMP])
    part[DEMO_TIMESTAMP] = timestamps.dt.strftime("%Y-%m-%dT%H:%M:%S")
    part.insert(2, "day", np.int64(day))
    return part


def _sql_types(part: pd.DataFrame) -> dict[str, object]:
    """The SQLAlchemy column types of the predictions table, from its first day."""
    import sqlalchemy as sa

    types: dict[str, object] = {}
    for name, dtype in part.dtypes.items():
        if name in DEMO_PREDICTION_COLUMNS:
            types[name] = sa.Text() if name == "prediction" else sa.Float()
        elif pd.api.types.is_integer_dtype(dtype):
            types[name] = sa.BigInteger()
        elif pd.api.types.is_float_dtype(dtype):
            types[name] = sa.Float()
        else:
            types[name] = sa.Text()
    return types
