"""HTTP trigger ``POST /api/classify``: image bytes in, the routing decision out, for Logic Apps and other callers.

Function-key auth (``?code=`` or ``x-functions-key``). Nothing is written: the caller owns the image and decides
what to do with the answer, which is the same decision the blob trigger would make (same validation, model, policy).
Status codes say who should act: 200 decided (any outcome but quarantine), 422 the image is unusable (the body says
why), 400 no body, 503 the service is busy (retry after the Retry-After seconds), 500 the app is misconfigured or
failed. Error answers are generic (the caller is outside the app: no endpoint, project id or service message) with an
``error_id``; the log line with that id holds the detail, redacted (:mod:`cvops.redaction`).
"""

from __future__ import annotations

import logging
import uuid

import azure.functions as func

from cvops import finite_json
from cvops.errors import ConfigurationError, TransientServiceError
from functions import context
from functions.handler import judge_image

bp = func.Blueprint()
log = logging.getLogger("cvops.functions")

MAX_BODY_BYTES = 50 * 1024 * 1024


def _error_id() -> str:
    """A short id that ties an error answer to its log line: the answer names no endpoint, project or message (the
    caller is outside the app), the log has the detail, redacted."""
    return uuid.uuid4().hex[:12]


def _json(body: dict, status: int, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(finite_json.dumps(body, ensure_ascii=False), status_code=status,
                             mimetype="application/json", charset="utf-8", headers=headers)


@bp.route(route="classify", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def classify_http(req: func.HttpRequest) -> func.HttpResponse:
    """Classify the request body and return the decision as JSON."""
    body = req.get_body() or b""
    label = req.params.get("name") or "http request"
    if not body:
        return _json({"error": "the request has no body: POST the image bytes"}, 400)
    if len(body) > MAX_BODY_BYTES:
        return _json({"error": f"the image is {len(body):,} bytes; the limit is {MAX_BODY_BYTES:,}"}, 413)
    try:
        ctx = context.current()
        verdict = judge_image(body, ctx, what=label)
    except ConfigurationError as exc:
        error_id = _error_id()
        log.error("classify %r: error %s: %s", label, error_id, exc)
        return _json({"error": f"the classifier is misconfigured (setting {exc.setting or 'unknown'}); the app's "
                               f"log has the details under error id {error_id}",
                      "setting": exc.setting, "error_id": error_id}, 500)
    except TransientServiceError as exc:
        error_id = _error_id()
        log.warning("classify %r: error %s: %s", label, error_id, exc)
        return _json({"error": f"the classifier's services are busy or unreachable; retry later (error id "
                               f"{error_id})", "error_id": error_id}, 503, headers={"Retry-After": "5"})
    except Exception:
        error_id = _error_id()
        log.exception("classify %r: error %s", label, error_id)
        return _json({"error": f"the classifier failed; the app's log has the details under error id {error_id}",
                      "error_id": error_id}, 500)
    policy = ctx.config.policy
    answer = {
        **verdict.decision.to_dict(),
        "image": verdict.image,
        "predictions": verdict.predictions,
        "model": verdict.model,
        "moderation": verdict.moderation,
        "policy": {"version": policy.version, "sha256": policy.sha256},
        "timings_ms": {k: round(v, 2) for k, v in verdict.timings_ms.items()},
    }
    return _json(answer, 422 if verdict.decision.outcome == "quarantine" else 200)
