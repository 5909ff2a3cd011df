"""Refuse non-finite numbers (NaN, inf, -inf) in configuration documents, naming where they are.

Why a check of its own: YAML reads ``.nan`` and ``.inf``, Python's ``json`` reads ``NaN`` and ``Infinity``, and
JSON Schema cannot refuse them: every comparison with NaN is false, so ``minimum: 0, maximum: 1`` lets NaN through, and
a NaN threshold then makes every ``score > limit`` false (a moderation band with ``reject_above: NaN`` rejects nothing).
The routing policy and the project spec both run this walk before their schema, so each file gets one message that
names the field (``moderation.adult.reject_above``, ``tags[0].threshold``) and the file.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from cvops.errors import ConfigurationError

__all__ = ["describe_path", "is_finite_number", "non_finite_paths", "refuse_non_finite"]

Path = tuple[str | int, ...]


def is_finite_number(value: Any) -> bool:
    """True for an int or a finite float (bool is not a number here, as in JSON Schema)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)


def non_finite_paths(data: Any, path: Path = ()) -> Iterator[tuple[Path, float]]:
    """Every (path, value) in a loaded JSON/YAML document whose value, or mapping key, is a non-finite float. Pure."""
    if isinstance(data, float) and not math.isfinite(data):
        yield path, data
    elif isinstance(data, dict):
        for key, value in data.items():
            if isinstance(key, float) and not math.isfinite(key):
                yield (*path, repr(key)), key
            yield from non_finite_paths(value, (*path, key if isinstance(key, str | int) else repr(key)))
    elif isinstance(data, list | tuple):
        for index, value in enumerate(data):
            yield from non_finite_paths(value, (*path, index))


def describe_path(path: Path) -> str:
    """A path as people write it: ``tags[2].threshold``, ``moderation.adult.reject_above``; ``(top level)`` if empty."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def refuse_non_finite(data: Any, *, origin: str, setting: str | None = None, hint: str | None = None) -> None:
    """Raise a ConfigurationError naming ``origin`` (the file) and every field holding NaN or an infinity."""
    found = list(non_finite_paths(data))
    if not found:
        return
    fields = "; ".join(f"{describe_path(path)} is {value!r}" for path, value in found)
    raise ConfigurationError(f"{origin}: {fields}: not a finite number", setting=setting or describe_path(found[0][0]),
                             hint=hint or "write a number (NaN and infinities are refused: they make every "
                                          "comparison false and switch the rule off)")
