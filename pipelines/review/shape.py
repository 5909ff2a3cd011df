"""Is a decision record shaped as :func:`pipelines.review.decisions.build_decision` writes it? Pure.

Why check before reading: decision records sit in a container others can write to (an older version, a hand edit,
a script). Read without a check, ``"tags": "beach"`` was exported as the five tags ``b,e,a,c,h`` and a nested list
crashed ``review stats``. A record that fails here is named and left out of the export and the stats; it is never
split, coerced or guessed at.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["decision_problem"]

def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _names(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(t, str) and t for t in value)


def decision_problem(decision: Any) -> str | None:
    """Why ``decision`` is not a well-formed decision record (one short clause), or None when it is."""
    if not isinstance(decision, Mapping):
        return f"it is a JSON {type(decision).__name__}, not an object"
    if not isinstance(decision.get("key", ""), str):
        return "its key is not a string"
    verdict = decision.get("decision")
    if verdict not in ("accepted", "rejected"):
        return f"its decision is {str(verdict)[:40]!r}, not accepted or rejected"
    tags = decision.get("tags")
    if not _names(tags):
        return "its tags are not a list of tag names"
    if verdict == "accepted" and not tags:
        return "it accepts the image with no tag"
    if verdict == "rejected" and tags:
        return "it rejects the image and gives tags"
    destinations = decision.get("destinations", [])  # absent: nothing to export (counted as skipped), stats still count
    if not isinstance(destinations, list) or not all(isinstance(d, str) and "/" in d for d in destinations):
        return "its destinations are not a list of container/name paths"
    model = decision.get("model", {})
    if not isinstance(model, Mapping):
        return "its model is not an object"
    scores = model.get("scores", [])
    if not isinstance(scores, list) or not all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str)
                                               and (p[1] is None or _number(p[1])) for p in scores):
        return "its model scores are not [tag, score] pairs"
    if not isinstance(model.get("suggested", []), list) or not all(isinstance(t, str) for t in model.get("suggested", [])):
        return "its model's suggested tags are not a list of names"
    if model.get("top_tag") is not None and not isinstance(model.get("top_tag"), str):
        return "its model's top tag is not a name"
    return None
