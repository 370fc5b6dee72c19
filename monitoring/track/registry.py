"""Resolve which registered model version a batch belongs to."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from monitoring.errors import ModelError
from monitoring.track.tags import UNVERSIONED

if TYPE_CHECKING:
    from mlflow import MlflowClient

_VERSION_URI = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$")
_ALIAS_URI = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/]+)$")
_LATEST_URI = re.compile(r"^models:/(?P<name>[^/@]+)/latest$")
_RUN_URI = re.compile(r"^runs:/(?P<run_id>[^/]+)(/.*)?$")
_LOGGED_MODEL_URI = re.compile(r"^models:/(?P<model_id>m-[0-9a-f]+)$")
DEFAULT_MODEL_NAME = "model"


@dataclass(frozen=True)
class ModelInfo:
    """The model a batch is tied to. `model_id` is MLflow 3's LoggedModel id, when known."""

    name: str
    version: str = UNVERSIONED
    uri: str | None = None
    model_id: str | None = None

    @property
    def registered(self) -> bool:
        return self.version != UNVERSIONED


def _model_id(source: str | None) -> str | None:
    if source and source.startswith("models:/m-"):
        return source[len("models:/") :].split("/")[0]
    return None


def _latest_version(client: MlflowClient, name: str, uri: str) -> str:
    versions = client.search_model_versions(f"name='{name}'")
    if not versions:
        raise ModelError(f"model URI {uri!r}: no registered model {name!r}")
    return str(max(int(v.version) for v in versions))


def _check_exists(client: MlflowClient, uri: str) -> None:
    """Fail now, not after the batch was read, when a non-registry URI points nowhere."""
    from mlflow.exceptions import MlflowException

    run, logged = _RUN_URI.match(uri), _LOGGED_MODEL_URI.match(uri)
    try:
        if run:
            client.get_run(run["run_id"])
        elif logged:
            client.get_logged_model(logged["model_id"])
        elif not _LATEST_URI.match(uri):
            raise ModelError(
                f"model URI {uri!r} is not supported: use models:/NAME/VERSION, "
                "models:/NAME@ALIAS, models:/NAME/latest, models:/m-ID or runs:/RUN_ID/PATH"
            )
    except MlflowException as error:
        raise ModelError(f"model URI {uri!r} does not exist ({error.error_code})") from None


def resolve_model(
    client: MlflowClient,
    *,
    model_uri: str | None = None,
    model_name: str | None = None,
    model_version: str | None = None,
) -> ModelInfo:
    """Resolve name, version and LoggedModel id from a `models:/` URI or name + version.

    A name that is not registered is accepted as a label for stored predictions (version
    `none`); a version or alias that does not exist in the registry is an error.
    """
    from mlflow.exceptions import MlflowException

    version: str | None = model_version
    name = model_name
    if model_uri:
        by_version, by_alias = _VERSION_URI.match(model_uri), _ALIAS_URI.match(model_uri)
        if by_version:
            name, version = by_version["name"], by_version["version"]
        elif by_alias:
            name = by_alias["name"]
            try:
                version = client.get_model_version_by_alias(name, by_alias["alias"]).version
            except MlflowException as error:
                raise ModelError(
                    f"model URI {model_uri!r}: alias {by_alias['alias']!r} of {name!r} does "
                    f"not exist ({error.error_code})"
                ) from None
        else:
            _check_exists(client, model_uri)
            latest = _LATEST_URI.match(model_uri)
            if latest:
                name, version = latest["name"], _latest_version(client, latest["name"], model_uri)
        if model_name and name and name != model_name:
            raise ModelError(f"--model-name {model_name!r} differs from the URI's {name!r}")
    name = name or DEFAULT_MODEL_NAME
    if version is None:
        return ModelInfo(name=name, uri=model_uri)
    try:
        found = client.get_model_version(name, str(version))
    except MlflowException as error:
        raise ModelError(
            f"registered model {name!r} has no version {version} ({error.error_code})"
        ) from None
    return ModelInfo(
        name=name,
        version=str(found.version),
        uri=model_uri or f"models:/{name}/{found.version}",
        model_id=_model_id(found.source),
    )
