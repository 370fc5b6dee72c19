"""A plan's accumulators as one state, and states merged back into a plan.

A distributed pass (`evaluation.spark_pass`) runs the same decided plan over each
partition; each partition's accumulators travel as one byte string (`core.state`), and
the driver merges them, in partition order, into its own plan, which then reads like a
plan that saw every row in one pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from monitoring.core.state import pack_many, unpack_many

BATCH_ACCUMULATORS = (
    "counts",
    "digest",
    "time_range",
    "segments",
    "duplicates",
    "samples",
    "anomalies",
    "multivariate",
    "embedding",
    "performance",
    "performance_kept",
    "estimated",
    "worst",
)
"""`BatchPlan`'s accumulators (None where the batch has none)."""

FIT_ACCUMULATORS = ("sample", "outputs", "error_sample", "duplicates")
"""`_FitPlan`'s single accumulators; its column collectors are in `numeric`, `categorical`."""


def _accumulators(plan: Any, names: Sequence[str]) -> list[tuple[str, Any]]:
    """(name, accumulator) of a plan: its single ones, then its column collectors."""
    found = [(name, getattr(plan, name)) for name in names]
    for group in ("numeric", "categorical"):
        columns = getattr(plan, group, None)
        if isinstance(columns, dict):
            found += [(f"{group}:{column}", acc) for column, acc in columns.items()]
    return found


def plan_state(plan: Any, names: Sequence[str]) -> bytes:
    """Every accumulator of `plan` (`names`, and any column collectors) as one state."""
    parts = [acc.to_state() if acc is not None else b"" for _, acc in _accumulators(plan, names)]
    return pack_many(parts)


def merge_into(plan: Any, names: Sequence[str], states: Sequence[bytes]) -> None:
    """Replace `plan`'s (empty) accumulators by the merge of `states`, in their order."""
    if not states:
        return
    unpacked = [unpack_many(state) for state in states]
    for position, (name, acc) in enumerate(_accumulators(plan, names)):
        if acc is None:
            continue
        merged = None
        for parts in unpacked:
            twin = acc.from_state(parts[position])
            merged = twin if merged is None else merged.merge(twin)
        if ":" in name:
            group, column = name.split(":", 1)
            getattr(plan, group)[column] = merged
        else:
            setattr(plan, name, merged)
