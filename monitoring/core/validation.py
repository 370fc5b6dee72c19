"""One message formula for every setting that fails its check, shared by the configuration
and the alert rules: "`drift.bins` must be an integer >= 2, got 1"."""

from __future__ import annotations

from monitoring.errors import ConfigError


def setting_error(key: str, requirement: str, value: object) -> ConfigError:
    """The error for setting `key`, which must be `requirement` and is `value`."""
    return ConfigError(f"`{key}` must be {requirement}, got {value!r}")


def check_int(key: str, value: object, minimum: int) -> None:
    """An integer (bools refused) >= minimum."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise setting_error(key, f"an integer >= {minimum}", value)


def check_fraction(key: str, value: object) -> None:
    """A number strictly between 0 and 1."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise setting_error(key, "a number between 0 and 1 (exclusive)", value)
