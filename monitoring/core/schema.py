"""Column roles: which columns are features, the target, the prediction, the id.

Roles given in the config are taken as they are; the rest is inferred from a sample of the
reference (its first chunk), and every inference is written down in `notes` so the CLI
can print it and the tracking layer can log it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from monitoring.core.config import SchemaConfig
from monitoring.errors import (
    ColumnNotFoundError,
    ConfigError,
    DtypeMismatchError,
    SchemaError,
)

TARGET_NAMES = ("target", "label", "y", "y_true", "ground_truth", "truth", "actual")
PREDICTION_NAMES = ("prediction", "pred", "y_pred", "predicted", "yhat")
SCORE_PREFIXES = ("proba_", "prob_", "score_")
TIMESTAMP_NAMES = ("timestamp", "time", "ts", "datetime", "date", "event_time")
ID_NAMES = ("id", "row_id", "sample_id", "uid")
MAX_CLASSES_FOR_INTEGER_TARGET = 20


@dataclass(frozen=True)
class Schema:
    """Resolved roles of the columns. `prediction_scores` maps class label -> column."""

    numerical: tuple[str, ...]
    categorical: tuple[str, ...]
    target: str | None = None
    prediction: str | None = None
    prediction_scores: Mapping[str, str] = field(default_factory=dict)
    id: str | None = None
    timestamp: str | None = None
    task: str | None = None
    ignored: tuple[str, ...] = ()

    @property
    def features(self) -> tuple[str, ...]:
        return self.numerical + self.categorical

    @property
    def has_prediction(self) -> bool:
        return self.prediction is not None or bool(self.prediction_scores)

    @property
    def prediction_columns(self) -> tuple[str, ...]:
        named = (self.prediction,) if self.prediction else ()
        return named + tuple(self.prediction_scores.values())

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column the schema reads, in a stable order."""
        extra = (self.id, self.timestamp, self.target)
        return self.features + tuple(c for c in extra if c) + self.prediction_columns

    def to_dict(self) -> dict[str, object]:
        return {
            "numerical": list(self.numerical),
            "categorical": list(self.categorical),
            "target": self.target,
            "prediction": self.prediction,
            "prediction_scores": dict(self.prediction_scores),
            "id": self.id,
            "timestamp": self.timestamp,
            "task": self.task,
            "ignored": list(self.ignored),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Schema:
        return cls(
            numerical=tuple(data["numerical"]),  # type: ignore[arg-type]
            categorical=tuple(data["categorical"]),  # type: ignore[arg-type]
            target=data.get("target"),  # type: ignore[arg-type]
            prediction=data.get("prediction"),  # type: ignore[arg-type]
            prediction_scores=dict(data.get("prediction_scores") or {}),  # type: ignore[arg-type]
            id=data.get("id"),  # type: ignore[arg-type]
            timestamp=data.get("timestamp"),  # type: ignore[arg-type]
            task=data.get("task"),  # type: ignore[arg-type]
            ignored=tuple(data.get("ignored") or ()),  # type: ignore[arg-type]
        )


def _first_present(columns: list[str], names: tuple[str, ...]) -> str | None:
    lowered = {c.lower(): c for c in columns}
    return next((lowered[n] for n in names if n in lowered), None)


def _require(frame: pd.DataFrame, role: str, column: str | None) -> None:
    if column is not None and column not in frame.columns:
        raise ColumnNotFoundError(
            f"{role} column {column!r} is not in the data; "
            f"columns are: {', '.join(map(str, frame.columns))}"
        )


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _infer_task(target: pd.Series | None, scores: Mapping[str, str]) -> str | None:
    if scores:
        return "classification"
    if target is None:
        return None
    if not _is_numeric(target):
        return "classification"
    values = target.dropna()
    integral = pd.api.types.is_integer_dtype(target) or bool((values == values.round()).all())
    if integral and values.nunique() <= MAX_CLASSES_FOR_INTEGER_TARGET:
        return "classification"
    return "regression"


def infer_schema(
    sample: pd.DataFrame, config: SchemaConfig, *, require_features: bool = True
) -> tuple[Schema, list[str]]:
    """Resolve every role from `config`, inferring what it leaves open. Returns (schema, notes).

    No feature column is an error unless `require_features` is False: a batch-level test
    (the embedding of images or text) then decides drift alone."""
    notes: list[str] = []
    columns = [str(c) for c in sample.columns]
    for role in ("id", "timestamp", "target"):
        _require(sample, role, getattr(config, role))
    for column in (config.prediction, *config.prediction_scores.values()):
        if column is not None and column not in sample.columns:
            notes.append(
                f"prediction column {column!r} is not in the reference: prediction drift is not "
                "measured for it"
            )
    for column in config.exclude:  # a batch-only column (a week, an audit stamp) is fine
        if column not in sample.columns:
            notes.append(f"excluded column {column!r} is not in the reference: nothing to exclude")
    _refuse_excluded_roles(config)
    excluded = set(config.exclude)
    columns = [c for c in columns if c not in excluded]  # no role is inferred for these

    def infer(role: str, given: str | None, names: tuple[str, ...]) -> str | None:
        if given is not None:
            return given
        found = _first_present(columns, names)
        if found is not None:
            notes.append(f"{role}: {found!r} (inferred from its name)")
        return found

    id_column = infer("id", config.id, ID_NAMES)
    if id_column is None:
        id_column = next((c for c in columns if c.lower().endswith("_id")), None)
        if id_column is not None:
            notes.append(f"id: {id_column!r} (inferred from its name)")
    timestamp = config.timestamp
    if timestamp is None:
        datetimes = [c for c in columns if pd.api.types.is_datetime64_any_dtype(sample[c])]
        timestamp = datetimes[0] if datetimes else _first_present(columns, TIMESTAMP_NAMES)
        if timestamp is not None:
            notes.append(f"timestamp: {timestamp!r} (inferred)")
    target = infer("target", config.target, TARGET_NAMES)
    prediction = infer("prediction", config.prediction, PREDICTION_NAMES)
    scores = dict(config.prediction_scores)
    if not scores:
        for column in columns:
            prefix = next((p for p in SCORE_PREFIXES if column.lower().startswith(p)), None)
            if prefix and _is_numeric(sample[column]):
                scores[column[len(prefix) :]] = column
        if scores:
            notes.append(f"class scores: {', '.join(scores.values())} (inferred from prefixes)")

    task = config.task or _infer_task(sample[target] if target else None, scores)
    if config.task is None and task is not None:
        notes.append(f"task: {task} (inferred from the target)")
    if task == "regression" and scores:
        raise SchemaError("class score columns were given for a regression task")

    taken = {c for c in (id_column, timestamp, target, prediction, *scores.values()) if c}
    taken |= set(config.exclude)
    free = [c for c in columns if c not in taken]
    numerical = list(config.numerical) if config.numerical is not None else None
    categorical = list(config.categorical) if config.categorical is not None else None
    for role, listed in (("numerical", numerical), ("categorical", categorical)):
        for column in listed or ():
            _require(sample, f"{role} feature", column)
    if numerical is None:
        pool = [c for c in free if c not in (categorical or [])]
        numerical = [c for c in pool if _is_numeric(sample[c])]
        listed = ", ".join(numerical) or "(none)"
        notes.append(f"numerical features: {listed} (inferred from dtypes)")
    if categorical is None:
        pool = [c for c in free if c not in numerical]
        categorical = [c for c in pool if not pd.api.types.is_datetime64_any_dtype(sample[c])]
        notes.append(
            f"categorical features: {', '.join(categorical) or '(none)'} (inferred from dtypes)"
        )
    overlap = sorted(set(numerical) & set(categorical))
    if overlap:
        raise SchemaError(f"column {overlap[0]!r} is listed as both numerical and categorical")
    if not numerical and not categorical:
        if require_features:
            raise SchemaError(
                "no feature columns: give numerical or categorical columns, or an embedding "
                "test (`drift.embedding_layer` with the model)"
            )
        notes.append("no feature columns: batch-level tests (embedding) decide input drift")
    schema = Schema(
        numerical=tuple(numerical),
        categorical=tuple(categorical),
        target=target,
        prediction=prediction,
        prediction_scores=scores,
        id=id_column,
        timestamp=timestamp,
        task=task,
    )
    used = set(schema.columns)
    ignored = tuple(str(c) for c in sample.columns if str(c) not in used)
    if ignored:
        notes.append(f"ignored columns: {', '.join(ignored)}")
    return dataclasses.replace(schema, ignored=ignored), notes


def _refuse_excluded_roles(config: SchemaConfig) -> None:
    """A column given a role (`--target`, `--numerical`, ...) cannot be excluded too."""
    excluded = set(config.exclude)
    given = [
        (f"schema.{name}", getattr(config, name))
        for name in ("id", "timestamp", "target", "prediction")
    ]
    given += [("schema.prediction_scores", c) for c in config.prediction_scores.values()]
    given += [("schema.numerical", c) for c in config.numerical or ()]
    given += [("schema.categorical", c) for c in config.categorical or ()]
    for setting, column in given:
        if column is not None and column in excluded:
            raise ConfigError(
                f"column {column!r} is both in {setting} and in schema.exclude: "
                "leave it out of one of them"
            )


def check_columns(
    frame: pd.DataFrame,
    schema: Schema,
    *,
    where: str,
    need_prediction: bool,
    need_target: bool = True,
    exclude: tuple[str, ...] = (),
    extra_columns: str = "error",
) -> list[str]:
    """Fail when `frame` lacks a schema column; return the columns the reference did not
    have (outside `exclude`), which fail too when `extra_columns` is "error".

    The prediction and the target may be absent from a batch (predictions made by a model,
    ground truth not known yet) unless `need_prediction` / `need_target` say otherwise.
    """
    required = set(schema.features) | {c for c in (schema.id,) if c}
    if need_target and schema.target:
        required.add(schema.target)
    if need_prediction:
        required |= set(schema.prediction_columns)
    present = {str(c) for c in frame.columns}
    missing = sorted(required - present)
    if missing:
        raise ColumnNotFoundError(
            f"{where} lacks column(s) {', '.join(map(repr, missing))} that the reference has"
        )
    known = set(schema.columns) | set(schema.ignored) | set(exclude)
    extra = [str(c) for c in frame.columns if str(c) not in known]
    if extra and extra_columns == "error":
        raise SchemaError(
            f"{where} has column(s) {', '.join(map(repr, extra))} that the reference does not "
            "have; drop them, exclude them (`schema.exclude`, --exclude), or set "
            '`schema.extra_columns = "ignore"` to leave them unmonitored'
        )
    for column in schema.columns:
        if column in present:
            check_scalar_column(frame[column], column=column, where=where)
    return extra


# Each role a reference fixes: (config field, CLI option, what the reference calls it).
_ROLES = (
    ("target", "--target", "target column"),
    ("prediction", "--prediction", "prediction column"),
    ("id", "--id-col", "id column"),
    ("timestamp", "schema.timestamp", "timestamp column"),
    ("task", "--task", "task"),
)


def check_roles_against(schema: Schema, config: SchemaConfig, *, reference: str) -> None:
    """ConfigError when a role given now (CLI option, argument or config) differs from the
    fitted reference's: its roles were fixed when it was fitted. A role equal to the
    reference's is fine; an excluded column may not be one the reference monitors."""
    for name, option, label in _ROLES:
        given, stored = getattr(config, name), getattr(schema, name)
        if given is not None and given != stored:
            _conflict(option, given, f"the reference's {label} {stored!r}", reference)
    for name, option in (("numerical", "--numerical"), ("categorical", "--categorical")):
        given, stored = getattr(config, name), getattr(schema, name)
        if given is not None and set(given) != set(stored):
            shown = ", ".join(stored) or "(none)"
            _conflict(
                option, ",".join(given), f"the reference's {name} features: {shown}", reference
            )
    if config.prediction_scores and dict(config.prediction_scores) != dict(
        schema.prediction_scores
    ):
        _conflict(
            "schema.prediction_scores",
            dict(config.prediction_scores),
            f"the reference's class scores {dict(schema.prediction_scores)!r}",
            reference,
        )
    used = set(schema.columns)
    for column in config.exclude:
        if column in used:
            raise ConfigError(
                f"--exclude {column!r} is a column that reference {reference} monitors; a "
                "reference's columns are fixed when it is fitted: fit a new reference with "
                "--exclude"
            )


def _conflict(option: str, given: object, stored: str, reference: str) -> None:
    raise ConfigError(
        f"{option} {given!r} differs from {stored} (reference {reference}); a reference's "
        "roles are fixed when it is fitted: leave the option out, or fit a new reference"
    )


def check_scalar_column(series: pd.Series, *, column: str, where: str) -> None:
    """DtypeMismatchError when a text column's first value is a list or a struct (a dict),
    as Parquet lists and structs and JSON arrays arrive: such values have no histogram or
    category to monitor. Only the first present value is looked at (a cheap check per
    chunk); `collect.columns` names a list found further down when it hashes the column."""
    if series.dtype != object:
        return
    present = series.notna().to_numpy()
    if not present.any():
        return
    position = int(present.argmax())
    value = series.iat[position]
    if isinstance(value, str) or not pd.api.types.is_list_like(value):
        return
    kind = "struct (dict)" if isinstance(value, Mapping) else "list"
    raise DtypeMismatchError(
        f"{where}: column {column!r} holds {kind} values ({repr(value)[:60]} at row "
        f"{series.index[position]}); list and struct columns cannot be monitored: exclude "
        "the column (`schema.exclude`, --exclude) or flatten it into scalar columns"
    )
