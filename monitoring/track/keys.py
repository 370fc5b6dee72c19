"""MLflow-safe metric keys for column names that MLflow keys cannot hold.

MLflow keys allow letters, digits, `_ - . / :` and spaces. A column name is mapped by
replacing every other character (and `/`, which would split the UI's groups) with `_`;
when two names map to the same key, a short hash keeps them apart. The map of every
changed name is logged as `feature_keys.json`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. :]")
MAX_COMPONENT = 120


def safe_component(name: str) -> str:
    """The column name with unsafe characters replaced, never empty, never `.`/`..`."""
    cleaned = _UNSAFE.sub("_", name).strip() or "_"
    if set(cleaned) == {"."}:
        cleaned = cleaned.replace(".", "_")
    return cleaned[:MAX_COMPONENT]


def key_map(names: Iterable[str]) -> dict[str, str]:
    """Column name -> safe key component, unique across `names`.

    Names that are already safe keep their key whatever the order; an unsafe name whose
    cleaned form is taken gets a short hash of the original appended.
    """
    names = list(names)
    reserved = {n for n in names if safe_component(n) == n}
    out: dict[str, str] = {}
    used: set[str] = set()
    for name in names:
        key = safe_component(name)
        if key != name and (key in reserved or key in used):
            key = f"{key[:100]}_{hashlib.sha1(name.encode()).hexdigest()[:8]}"
        out[name] = key
        used.add(key)
    return out
