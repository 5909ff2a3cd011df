"""JSON for configuration (an inline ``CVOPS_POLICY``, a ``policy.json``): a key given twice is an error.

Why: ``json.loads`` keeps the last of two equal keys without a word, so ``{"default_threshold": 0.9, ...,
"default_threshold": 0.1}`` in an app setting would route by whichever came last. The same rule as
:mod:`cvops.strict_yaml`, for the JSON a policy may be written in.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["DuplicateKeyError", "loads"]


class DuplicateKeyError(ValueError):
    """A JSON object holds the same key twice."""


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise DuplicateKeyError(f"duplicate key {key!r} in one JSON object: keep one of them")
        seen[key] = value
    return seen


def loads(text: str | bytes) -> Any:
    """``json.loads`` that refuses an object holding the same key twice (DuplicateKeyError, a ValueError)."""
    return json.loads(text, object_pairs_hook=_unique)
