"""Data sources: CSV, Parquet, a folder of either, a SQL query, or a DataFrame.

Every source yields the same thing, pandas DataFrame chunks in one bounded-memory pass
(see `monitoring.collect.sources.base` for the contract). ``open_source`` turns what a user types
(a path, a database URL and a query) or passes from Python into the right source.
"""

from __future__ import annotations

from typing import Any

from monitoring.collect.sources.base import Source
from monitoring.collect.sources.files import CsvSource, FolderSource, ParquetSource
from monitoring.collect.sources.frame import DataFrameSource
from monitoring.collect.sources.opening import open_source
from monitoring.collect.sources.sql import SqlSource, mask_url, parse_params

__all__ = [
    "Chunk",
    "ChunkDataset",
    "CsvSource",
    "DataFrameSource",
    "FolderSource",
    "LoaderSource",
    "ParquetSource",
    "Source",
    "SqlSource",
    "chunk_loader",
    "mask_url",
    "open_source",
    "parse_params",
]


_DATASET_NAMES = {"Chunk", "ChunkDataset", "chunk_loader"}


def __getattr__(name: str) -> Any:
    """The PyTorch data pieces load torch, so they are imported on first use only."""
    if name in _DATASET_NAMES:
        from monitoring.collect.sources import torch_dataset

        return getattr(torch_dataset, name)
    if name == "LoaderSource":
        from monitoring.collect.sources.loader_source import LoaderSource

        return LoaderSource
    raise AttributeError(f"module 'monitoring.collect.sources' has no attribute {name!r}")
