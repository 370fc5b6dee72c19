"""The accumulator protocol: everything computed over a batch is one.

    acc.update(chunk)          add one chunk (a `Chunk`: the rows and what was derived)
    acc = acc.merge(other)     hold both: other's rows come after acc's (may return self)
    acc.result()               what the rows seen so far give
    acc.to_state() -> bytes    what it holds, compact and free of code (`core.state`)
    acc.from_state(state)      a twin configured like acc, holding `state`

`from_state` is a method of an (empty) accumulator rather than a class method because an
accumulator's configuration (the fitted reference it measures against) does not travel in
its state: the receiving side builds the same accumulators and loads states into them.
Partial results from another thread, process or Spark executor are merged this way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

import pandas as pd

R_co = TypeVar("R_co", covariant=True)


@dataclass
class Chunk:
    """One chunk of rows in a pass, and what accumulators derived from it for the ones that
    run after them (sorted columns, category codes, per-row errors), keyed by `derived`
    keys that the producing module names."""

    frame: pd.DataFrame
    offset: int  # the batch's row number of the chunk's first row
    where: str  # what is read, for error messages ("batch day-12.csv")
    derived: dict[Any, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frame)


@runtime_checkable
class Accumulator(Protocol[R_co]):
    """See the module docstring."""

    def update(self, chunk: Chunk) -> None: ...

    def merge(self, other: Any) -> Any: ...

    def result(self) -> R_co: ...

    def to_state(self) -> bytes: ...

    def from_state(self, state: bytes) -> Any: ...

