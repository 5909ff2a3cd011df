"""The moderation APIs' own errors (Computer Vision 3.2 and Content Safety, served on the same endpoint).

Both wrap their errors as `{"error": {...}}` (their specs' ComputerVisionErrorResponse and
Azure.Core.Foundations.ErrorResponse), not Custom Vision's flat `{code, message}`. They subclass CustomVisionError only
so that the server answers every service's errors through one path (status, body(), headers, reason). Kept apart from
`exceptions.py` so each file's codes are checked against its own spec (tests/contract).
"""

from __future__ import annotations

from typing import Any

from .exceptions import CustomVisionError


class ComputerVisionError(CustomVisionError):
    """A Computer Vision 3.2 error: `{"error": {"code", "message", "innererror": {"code", "message"}}}`.

    `code` is the spec's `ComputerVisionErrorCodes` (InvalidRequest, InvalidArgument, InternalServerError,
    ServiceUnavailable); `inner` the spec's `ComputerVisionInnerErrorCodeValue` (InvalidImageFormat, InvalidImageSize...).
    """

    code = "InvalidRequest"

    def __init__(self, message: str, *, inner: str | None = None, code: str | None = None,
                 status: int | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message, code=code, status=status, headers=headers)
        self.inner = inner

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.inner:
            error["innererror"] = {"code": self.inner, "message": self.message}
        return {"error": error}


class ContentSafetyError(CustomVisionError):
    """A Content Safety error: `{"error": {"code", "message"}}` and the header `x-ms-error-code` carrying the code
    (the spec's `default` response). Codes as Microsoft Learn lists them: InvalidRequestBody, InvalidResourceName,
    ResourceNotFound, InternalError, ServerBusy, TooManyRequests (and Azure REST API guidelines' api-version codes)."""

    code = "InvalidRequestBody"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message, code=code, status=status, headers=headers)
        self.headers = {**self.headers, "x-ms-error-code": self.code}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


class GatewayError(CustomVisionError):
    """What Azure's API gateway answers for the moderation APIs before the service sees a request (a path no
    operation has, a rate limit): the nested `{"error": {"code": "<status>", "message"}}` shape of its 401."""

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


def moderation_throttled(api: str, operation: str, retry_after: int) -> CustomVisionError:
    """429 for Computer Vision (the gateway's shape, as its 401) or Content Safety (`TooManyRequests`, its own code)."""
    unit = "second" if retry_after == 1 else "seconds"
    headers = {"Retry-After": str(retry_after)}
    if api == "contentsafety":
        return ContentSafetyError(f"Rate limit is exceeded. Please retry after {retry_after} {unit}.",
                                  code="TooManyRequests", status=429, headers=headers)
    return GatewayError(f"Requests to the {operation} Operation under Computer Vision API (v3.2) have exceeded rate "
                        f"limit of your current ComputerVision S1 pricing tier. Please retry after {retry_after} {unit}.",
                        code="429", status=429, headers=headers)


def moderation_fault(api: str) -> CustomVisionError:
    """An injected fault (`--fault-rate`, `--fault-every`) in each moderation API's own words."""
    if api == "contentsafety":
        return ContentSafetyError("The server is busy (fault injected by the local service). Retry later.",
                                  code="ServerBusy", status=503)
    return ComputerVisionError("The service is temporarily unavailable (fault injected by the local service). "
                               "Retry later.", code="ServiceUnavailable", status=503)


def server_error(api: str, message: str, status: int) -> CustomVisionError:
    """An error the server itself answers (a malformed request its guard caught, an unexpected failure, a method not
    allowed) in the moderation API's shape."""
    if api == "contentsafety":
        return ContentSafetyError(message, code="InternalError" if status >= 500 else "InvalidRequestBody",
                                  status=status)
    return ComputerVisionError(message, code="InternalServerError" if status >= 500 else "InvalidRequest",
                               inner="BadArgument" if status < 500 else None, status=status)
