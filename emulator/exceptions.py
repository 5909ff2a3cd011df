"""The service's own errors: each carries the HTTP status and the `CustomVisionError` code the real service answers with.

The code strings come from the `CustomVisionError` enum in the official spec (the contract tests check every code used
here is in it), except what Azure's API gateway answers before the service sees the request: a wrong key (401, the
gateway's nested `{"error": {...}}` body and reason phrase `Access Denied`, see emulator/README.md) and a rate limit
(429, flat, as the service's clients read it).
"""

from __future__ import annotations

from typing import Any


class CustomVisionError(Exception):
    """An error answer: `{"code": code, "message": message}` with `status`."""

    status = 400
    code = "BadRequest"
    reason: str | None = None  # an HTTP reason phrase other than the standard one for `status`

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}


class BadRequest(CustomVisionError):
    """400 with a specific code, e.g. `BadRequest("...", code="BadRequestTagNameNotUnique")`."""

    status = 400


class NotFound(CustomVisionError):
    status = 404
    code = "NotFound"


class Unauthorized(CustomVisionError):
    """What Azure's gateway answers for a missing or wrong key: it never reaches the service, so neither the flat
    `{code, message}` shape nor the enum applies. 401 `Access Denied` with `{"error": {"code": "401", "message"}}`, as
    users report it (Azure/azure-sdk-for-python#2800, #19935; MicrosoftDocs/azure-docs#80749). The Custom Vision SDK
    reads only a flat body, so its exception says "Operation returned an invalid status code 'Access Denied'" with
    `error.code` None, exactly as on Azure: clients must decide on the status.
    """

    status = 401
    code = "401"
    reason = "Access Denied"

    def __init__(self) -> None:
        super().__init__(
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key "
            "for an active subscription and use a correct regional API endpoint for your resource."
        )

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


class TooManyRequests(CustomVisionError):
    """Over the configured calls per second; the text mirrors Azure's so clients that parse it keep working."""

    status = 429
    code = "429"

    def __init__(self, operation: str, api: str, retry_after: int = 1) -> None:
        tier = "Prediction" if api == "prediction" else "Training"
        unit = "second" if retry_after == 1 else "seconds"
        super().__init__(
            f"Requests to the {operation} Operation under Custom Vision {tier} API have exceeded rate limit of your "
            f"current {tier} S0 pricing tier. Please retry after {retry_after} {unit}.",
            headers={"Retry-After": str(retry_after)},
        )


class ServiceUnavailable(CustomVisionError):
    """An injected fault (`--fault-rate`): what a transient Azure outage looks like to the client."""

    status = 503
    code = "ErrorPredictionServiceUnavailable"


def not_found_project(project_id: str) -> NotFound:
    return NotFound(f"Project {project_id} not found. Check the project id (GetProjects lists them).",
                    code="NotFoundProject")


def not_found_iteration(iteration_id: str) -> NotFound:
    return NotFound(f"Iteration {iteration_id} not found in this project.", code="NotFoundIteration")


def not_found_tag(tag_id: str) -> NotFound:
    return NotFound(f"Tag {tag_id} not found in this project. Create it with CreateTag first.", code="NotFoundTag")
