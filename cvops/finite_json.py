"""JSON out that every strict reader accepts: no bare ``NaN``, ``Infinity`` or ``-Infinity``, ever.

Why: Python's ``json.dumps`` writes a non-finite float as the bare word ``NaN`` or ``Infinity``, which is not JSON
(RFC 8259); JavaScript's ``JSON.parse``, Go, Power BI, Synapse's OPENROWSET and ``jq`` reject the whole document, so
one model answering NaN for one image would make a results folder, a sidecar or an HTTP answer unreadable. Every
record, sidecar, HTTP body and report the project writes goes through :func:`dumps` (``allow_nan=False``, so a
non-finite value that escaped :func:`finite` fails loudly here instead of writing bad JSON).

The representation of a non-finite number (one rule, documented in docs/records.md):

* an object member ``"x": nan`` becomes ``"x": null`` plus a sibling ``"x_not_finite": "NaN"`` (or ``"Infinity"``,
  ``"-Infinity"``), so a reader sees both that there was no usable number and what the model actually said;
* a non-finite number inside a list becomes ``null`` (a list has no room for a note; the project writes none).
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping
from typing import Any

__all__ = ["NOT_FINITE_SUFFIX", "dumps", "finite", "loads"]

NOT_FINITE_SUFFIX = "_not_finite"


def _word(value: float) -> str:
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _bad(value: Any) -> bool:
    """A non-finite float, Python's or numpy's (numpy registers its floats as ``numbers.Real``)."""
    return (isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral)
            and not math.isfinite(value))


def finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced as the module docstring says (new containers; pure)."""
    if _bad(value):
        return None
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            out[key] = finite(item)
            if _bad(item) and isinstance(key, str):
                out[key + NOT_FINITE_SUFFIX] = _word(item)
        return out
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`finite` ``(value)`` with ``allow_nan=False`` (other keyword arguments as json's)."""
    return json.dumps(finite(value), allow_nan=False, **kwargs)


def _refuse_constant(word: str) -> Any:
    raise ValueError(f"{word} is not JSON (RFC 8259 has no non-finite numbers)")


def loads(text: str | bytes) -> Any:
    """Parse as a strict reader does: ``NaN``, ``Infinity`` and ``-Infinity`` are errors, not numbers."""
    return json.loads(text, parse_constant=_refuse_constant)
