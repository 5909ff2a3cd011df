"""QueryPredictions' PredictionQueryToken checked and normalised, and the tag-threshold test it asks for: pure
functions over the request's JSON and the stored predictions.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from ..exceptions import BadRequest

MAX_PREDICTION_QUERY_TAGS = 2

# PredictionQueryToken's fields and their JSON types (the spec's definition); the nullable ones may be null.
TOKEN_FIELDS: dict[str, type] = {"session": str, "continuation": str, "maxCount": int, "orderBy": str, "tags": list,
                                 "iterationId": str, "startTime": str, "endTime": str, "application": str}
NULLABLE_TOKEN_FIELDS = frozenset({"iterationId", "startTime", "endTime"})
_TYPE_NAMES = {str: "a string", int: "an integer", list: "an array"}


def parse_prediction_query(token: Any) -> dict[str, Any]:
    """A PredictionQueryToken checked and normalised (times in the stored format); BadRequest naming a bad field."""
    def bad(message: str, code: str = "BadRequestPredictionInvalidQueryParameters") -> BadRequest:
        return BadRequest(f"The prediction query is not valid: {message}.", code=code)

    if not isinstance(token, dict):
        raise bad("the body must be a PredictionQueryToken object")
    for name, kind in TOKEN_FIELDS.items():
        value = token.get(name)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise bad(f"{name} must be {_TYPE_NAMES[kind]}")
    order_by = token.get("orderBy") or "Newest"
    if order_by not in ("Newest", "Oldest", "Suggested"):
        raise bad(f"orderBy must be Newest, Oldest or Suggested, not {order_by!r}")
    max_count = token.get("maxCount") or 50
    if not isinstance(max_count, int) or isinstance(max_count, bool) or not 1 <= max_count <= 2**31 - 1:
        raise bad(f"maxCount must be a positive integer, not {max_count!r}")
    continuation = str(token.get("continuation") or "0")
    if not continuation.isdigit():
        raise bad("continuation must be the value a previous answer's token gave")
    iteration_id = token.get("iterationId")
    if iteration_id:
        try:
            iteration_id = str(uuid.UUID(str(iteration_id)))
        except ValueError:
            raise bad(f"iterationId {iteration_id!r} is not a uuid") from None
    times = {}
    for name in ("startTime", "endTime"):
        value = token.get(name)
        if value:
            try:
                t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
                t = (t if t.tzinfo else t.replace(tzinfo=UTC)).astimezone(UTC)
            except (ValueError, OverflowError):  # OverflowError: year 1 at +01:00 is before year 1 in UTC
                raise bad(f"{name} {value!r} is not an ISO 8601 date-time") from None
            # The year padded by hand: strftime's %Y writes year 276 as "276", which is no date-time
            times[name] = f"{t.year:04d}-" + t.strftime("%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
    tags = token.get("tags") or []
    if not all(isinstance(t, dict) and isinstance(t.get("id"), str) for t in tags):
        raise bad("tags must be a list of {id, minThreshold, maxThreshold}")
    if len(tags) > MAX_PREDICTION_QUERY_TAGS:
        raise bad(f"{len(tags)} tags given; at most {MAX_PREDICTION_QUERY_TAGS} can be combined",
                  code="BadRequestPredictionTagsExceededCount")
    thresholds = []
    for t in tags:
        low, high = t.get("minThreshold", 0.0), t.get("maxThreshold", 1.0)
        low, high = 0.0 if low is None else low, 1.0 if high is None else high
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)) or low > high:
            raise bad(f"tag {t['id']}: minThreshold and maxThreshold must be numbers with min <= max")
        try:
            uuid.UUID(t["id"])
        except ValueError:
            raise bad(f"tags: id {t['id']!r} is not a uuid") from None
        thresholds.append((str(t["id"]).lower(), float(low), float(high)))
    return {"orderBy": order_by, "maxCount": max_count, "skip": int(continuation), "iterationId": iteration_id or None,
            "application": token.get("application") or None, "startTime": times.get("startTime"),
            "endTime": times.get("endTime"), "tags": thresholds}


def answer_token(token: dict[str, Any], query: dict[str, Any], continuation: str) -> dict[str, Any]:
    """The token an answer carries: the request's PredictionQueryToken fields, nothing else and never a value its
    schema refuses: free fields as sent (no null where the spec has none), the parsed ones as read (`query`: an empty
    orderBy is Newest, an empty id or time null, thresholds filled in), and the continuation of the next page ("" when
    there is none)."""
    out = {k: token[k] for k in ("session", "maxCount", "application") if token.get(k) is not None}
    out.update({k: query[k] for k in NULLABLE_TOKEN_FIELDS if k in token})
    if "orderBy" in token:
        out["orderBy"] = query["orderBy"]
    if "tags" in token:
        out["tags"] = [{"id": tag, "minThreshold": low, "maxThreshold": high} for tag, low, high in query["tags"]]
    out["continuation"] = continuation
    return out


def within_thresholds(predictions: list[dict[str, Any]], thresholds: list[tuple[str, float, float]]) -> bool:
    """Whether a stored prediction's probability for every queried tag lies in its [min, max]."""
    probability = {p["tagId"]: p["probability"] for p in predictions}
    return all(tag in probability and low <= probability[tag] <= high for tag, low, high in thresholds)
