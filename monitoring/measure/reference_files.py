"""Save a fitted reference to a folder and read it back (`reference.json` + `reference.npz`).

Plain files, no MLflow: the tracking layer logs the folder as a run's artifacts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from monitoring.core.schema import Schema
from monitoring.errors import NotFittedError
from monitoring.measure.anomaly import AnomalyModel
from monitoring.measure.multivariate import ReconstructionModel
from monitoring.measure.performance.estimator_fit import estimator_from_dict, estimator_to_dict
from monitoring.measure.performance.summary import PerformanceSummary
from monitoring.measure.reference import (
    CategoricalReference,
    ColumnReference,
    EmbeddingReference,
    NumericalReference,
    Reference,
)
from monitoring.stats.calibration import BridgeNull

FORMAT_VERSION = 1
JSON_NAME = "reference.json"
ARRAYS_NAME = "reference.npz"
_ARRAYS = ("edges", "counts", "support", "support_counts")
_SEGMENT_ARRAYS = ("segment_error_sum", "segment_error_count", "segment_error_sq_sum")
_PERFORMANCE = "performance."  # prefix of the reference performance's arrays
_EMBEDDING = "embedding.sample"  # the embedding layer's activations (float32, exact)


def save_reference(reference: Reference, folder: str | Path) -> Path:
    """Write the reference into `folder` (created if needed); returns the folder."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    profiles = []
    for index, (column, p) in enumerate(reference.profiles.items()):
        entry: dict[str, object] = {
            "column": column,
            "role": p.role,
            "kind": p.kind,
            "n": p.n,
            "n_missing": p.n_missing,
        }
        if isinstance(p, NumericalReference):
            entry.update(mean=p.mean, std=p.std, minimum=p.minimum, maximum=p.maximum)
            for name in _ARRAYS:
                arrays[f"{index}.{name}"] = getattr(p, name)
            if p.wasserstein_null is not None:
                null = p.wasserstein_null
                arrays[f"{index}.wasserstein_null"] = null.values
                entry["wasserstein_null"] = {
                    "n_reference": null.n_reference,
                    "simulations": null.simulations,
                    "seed": null.seed,
                }
        else:
            entry.update(vocabulary=list(p.vocabulary), singletons=p.singletons)
            arrays[f"{index}.counts"] = p.counts
        for name in _SEGMENT_ARRAYS:
            if getattr(p, name) is not None:
                arrays[f"{index}.{name}"] = getattr(p, name)
        profiles.append(entry)
    performance = None
    if reference.performance is not None:
        performance, parts = reference.performance.to_parts()
        arrays.update({f"{_PERFORMANCE}{name}": array for name, array in parts.items()})
    embedding = reference.embedding
    if embedding is not None:
        arrays[_EMBEDDING] = embedding.sample
    meta = {
        "format_version": FORMAT_VERSION,
        "id": reference.id,
        "schema": reference.schema.to_dict(),
        "n_rows": reference.n_rows,
        "classes": list(reference.classes),
        "bins": reference.bins,
        "smoothing": reference.smoothing,
        "max_categories": reference.max_categories,
        "source": reference.source,
        "notes": list(reference.notes),
        "id_duplicate_rows": reference.id_duplicate_rows,
        "performance": performance,
        "estimator": estimator_to_dict(reference.estimator),
        "embedding": (
            None if embedding is None else {"layer": embedding.layer, "n_rows": embedding.n_rows}
        ),
        "profiles": profiles,
        "anomaly": reference.anomaly.to_dict() if reference.anomaly is not None else None,
        "multivariate": (
            reference.multivariate.to_dict() if reference.multivariate is not None else None
        ),
    }
    (out / JSON_NAME).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    np.savez_compressed(out / ARRAYS_NAME, **arrays)
    return out


def _stored_null(entry: dict, arrays: Any, index: int) -> BridgeNull | None:
    """The Wasserstein null saved with a numeric profile; None in files from before it."""
    found = entry.get("wasserstein_null")
    if not found or f"{index}.wasserstein_null" not in arrays:
        return None
    return BridgeNull(
        arrays[f"{index}.wasserstein_null"],
        int(found["n_reference"]),
        int(found["simulations"]),
        int(found["seed"]),
    )


def _stored_performance(meta: dict, arrays: Any) -> PerformanceSummary | None:
    """The reference's own performance; None in files from before it, or without truth."""
    if not meta.get("performance"):
        return None
    names = [name for name in arrays.files if name.startswith(_PERFORMANCE)]
    parts = {name.removeprefix(_PERFORMANCE): arrays[name] for name in names}
    return PerformanceSummary.from_parts(meta["performance"], parts)


def _stored_embedding(meta: dict, arrays: Any) -> EmbeddingReference | None:
    """The embedding layer's activations; None in files from before them, or without."""
    found = meta.get("embedding")
    if not found or _EMBEDDING not in arrays:
        return None
    return EmbeddingReference(str(found["layer"]), arrays[_EMBEDDING], int(found["n_rows"]))


def load_reference_files(folder: str | Path) -> Reference:
    """Read a reference written by `save_reference`; checks its digest."""
    source = Path(folder)
    try:
        meta = json.loads((source / JSON_NAME).read_text(encoding="utf-8"))
        arrays = np.load(source / ARRAYS_NAME)
    except FileNotFoundError as error:
        raise NotFittedError(
            f"no fitted reference in {source}: {error.filename} is missing"
        ) from None
    profiles: dict[str, ColumnReference] = {}
    for index, entry in enumerate(meta["profiles"]):
        column = entry["column"]
        segments = {name: arrays.get(f"{index}.{name}") for name in _SEGMENT_ARRAYS}
        if entry["kind"] == "numerical":
            profiles[column] = NumericalReference(
                column=column,
                role=entry["role"],
                n=entry["n"],
                n_missing=entry["n_missing"],
                mean=entry["mean"],
                std=entry["std"],
                **{name: arrays[f"{index}.{name}"] for name in _ARRAYS},
                **segments,
                wasserstein_null=_stored_null(entry, arrays, index),
                minimum=entry.get("minimum"),
                maximum=entry.get("maximum"),
            )
        else:
            profiles[column] = CategoricalReference(
                column=column,
                role=entry["role"],
                vocabulary=tuple(entry["vocabulary"]),
                counts=arrays[f"{index}.counts"],
                n=entry["n"],
                n_missing=entry["n_missing"],
                **segments,
                singletons=entry.get("singletons"),
            )
    reference = Reference(
        schema=Schema.from_dict(meta["schema"]),
        profiles=profiles,
        n_rows=meta["n_rows"],
        classes=tuple(meta["classes"]),
        bins=meta["bins"],
        smoothing=meta["smoothing"],
        max_categories=meta["max_categories"],
        source=meta["source"],
        notes=tuple(meta["notes"]),
        id=meta["id"],
        id_duplicate_rows=meta.get("id_duplicate_rows"),
        performance=_stored_performance(meta, arrays),
        embedding=_stored_embedding(meta, arrays),
        estimator=estimator_from_dict(meta.get("estimator")),
        anomaly=AnomalyModel.from_dict(meta["anomaly"]) if meta.get("anomaly") else None,
        multivariate=(
            ReconstructionModel.from_dict(meta["multivariate"])
            if meta.get("multivariate")
            else None
        ),
    )
    if reference.digest() != reference.id:
        raise NotFittedError(f"reference files in {source} do not match their id {reference.id}")
    return reference
