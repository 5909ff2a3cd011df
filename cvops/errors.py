"""Errors that name the thing that failed and what to do about it.

Every error cvops raises on purpose derives from :class:`CvopsError`. Its ``str()`` is one line, because it is the user
interface: the CLI prints it instead of a stack trace and the Function App writes it into a quarantine/result record.
The split between :class:`ServiceError` (permanent: fix something, then run again) and :class:`TransientServiceError`
(try again later) is what callers branch on: a Functions host should let a transient error fail the invocation so the
blob is retried, but record a permanent one and move on.
"""

from __future__ import annotations

import binascii
import re
from typing import Any

from azure.core import exceptions as az

__all__ = [
    "ConfigurationError",
    "CvopsError",
    "ServiceError",
    "ThrottledError",
    "TransientServiceError",
    "from_exception",
]


def _one_line(text: str) -> str:
    """Collapse whitespace so a message never spans several log lines (services put newlines in their messages),
    and redact it: an error's text ends up in logs, records and HTTP answers, so no secret setting's value may
    be in it (see :mod:`cvops.redaction`)."""
    from cvops.redaction import redact  # here, not at the top: cvops.redaction raises ConfigurationError

    return redact(" ".join(str(text).split()))


class CvopsError(Exception):
    """Base of every cvops error.

    ``message`` says what failed and names the thing (an image path, a setting, a project, an endpoint);
    ``hint`` says what to do. ``str()`` joins them on one line.
    """

    def __init__(self, message: str, *, hint: str | None = None):
        self.message = _one_line(message)
        self.hint = _one_line(hint) if hint else None
        super().__init__(self.message)

    def __str__(self) -> str:
        if not self.hint:
            return self.message
        return f"{self.message.rstrip('.')}. {self.hint}"


class ConfigurationError(CvopsError):
    """A setting is missing or invalid. ``setting`` names it (an environment variable, a spec field, a parameter)."""

    def __init__(self, message: str, *, setting: str | None = None, hint: str | None = None):
        self.setting = setting
        super().__init__(message, hint=hint)


class ServiceError(CvopsError):
    """A service refused the request for a reason that retrying will not fix (bad key, unknown project, bad image...).

    ``code`` is the service's own error code (for Custom Vision one of the ``CustomVisionError`` enum values, e.g.
    ``BadRequestImageFormat``), ``status`` the HTTP status; either may be ``None`` when the service gave none.
    """

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None, hint: str | None = None):
        self.code = code
        self.status = status
        super().__init__(message, hint=hint)


class TransientServiceError(CvopsError):
    """The service is busy or unreachable (429, 5xx, timeouts) and still was after the retry budget.

    The request is not known to be wrong: the caller may retry it later (a Functions host by failing the invocation so
    the trigger fires again, an operator by running the command again). ``attempts`` is how many tries were made.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        attempts: int | None = None,
        hint: str | None = None,
    ):
        self.code = code
        self.status = status
        self.attempts = attempts
        super().__init__(message, hint=hint)


class ThrottledError(TransientServiceError):
    """The service kept answering 429 (the tier's calls per second or a quota) through the whole retry budget."""


# --- one mapping from the SDKs' and the OS's errors to cvops errors ----------------------------------------------------
# Why here and once: a wrong storage key, a blob-only SAS, an unreachable account, a missing container or an
# unwritable report folder are the user's environment, not bugs, and every command (and the Function App's local
# runner) must say so the same way: one line naming the thing and what to do, and the exit code of its kind.

_NOT_FOUND = {"ContainerNotFound": "container", "QueueNotFound": "queue", "BlobNotFound": "blob",
              "ResourceNotFound": "resource", "ShareNotFound": "share"}
_BAD_NAME = {"InvalidResourceName", "OutOfRangeInput", "InvalidUri"}
_NOT_ALLOWED = {"AuthorizationFailure", "AuthorizationPermissionMismatch", "AuthorizationResourceTypeMismatch",
                "AuthorizationServiceMismatch", "AuthorizationSourceIPMismatch", "AuthorizationProtocolMismatch",
                "KeyBasedAuthenticationNotPermitted", "InsufficientAccountPermissions"}
_OBJECT_AT = re.compile(r"<[^<>]* object at 0x[0-9a-f]+>:?\s*")


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps (``__cause__``/``__context__``, azure-core's ``inner_exception``), outermost first."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not e for e in seen) and len(seen) < 10:
        seen.append(current)
        inner = getattr(current, "inner_exception", None)
        current = inner if isinstance(inner, BaseException) else (current.__cause__ or current.__context__)
    return seen


def _first_line(text: str, limit: int = 200) -> str:
    """The first line of an SDK message, without Python object addresses, at most ``limit`` characters; redacted
    before it is cut, so a cut can never leave a secret's prefix that redaction would no longer recognise."""
    from cvops.redaction import redact

    line = redact(_OBJECT_AT.sub("", (str(text).strip().splitlines() or [""])[0]).strip())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _request_url(exc: BaseException) -> str | None:
    """The URL (without its query: a SAS lives there) of the request an azure-core error answers."""
    response = getattr(exc, "response", None)
    url = getattr(getattr(response, "request", None), "url", None) or getattr(response, "url", None)
    return str(url).split("?", 1)[0] if url else None


def from_exception(exc: BaseException) -> CvopsError | None:
    """The cvops error an SDK or OS failure stands for, or ``None`` when it is not one the user's environment
    explains (a bug, which the caller reports as such).

    * an account key that is not base64 (``binascii.Error``, the SDK's ``AzureSigningError``): ConfigurationError;
    * azure-core ``ClientAuthenticationError`` (wrong key, expired SAS): ServiceError naming the URL;
    * ``HttpResponseError`` by its ``error_code``: a missing container/queue/blob or an invalid name is a
      ConfigurationError; a SAS or identity not allowed the operation (e.g. a blob-only SAS used for a queue) a
      ServiceError; 408/429/5xx a TransientServiceError; any other answer a ServiceError with its code;
    * ``ServiceRequestError``/``ServiceResponseError``, ``ConnectionError``, ``TimeoutError`` (unreachable):
      TransientServiceError;
    * any other ``OSError`` naming a file (``--report /proc/nope``): ConfigurationError naming the path;
    * ``UnicodeEncodeError`` from ``latin-1`` (a header value, i.e. a key, with a character HTTP cannot carry):
      ConfigurationError.
    cvops errors are returned as they are.
    """
    if isinstance(exc, CvopsError):
        return exc
    chain = _chain(exc)
    if any(isinstance(e, binascii.Error) for e in chain) or type(exc).__name__ == "AzureSigningError":
        return ConfigurationError(
            "the storage account key is not valid base64, so no request can be signed", setting="storage account key",
            hint="copy the connection string (or key) again from the storage account's 'Access keys' page")
    if isinstance(exc, az.HttpResponseError):
        return _from_storage_answer(exc)
    if isinstance(exc, az.ServiceRequestError | az.ServiceResponseError | ConnectionError | TimeoutError):
        return TransientServiceError(
            f"the service could not be reached ({type(exc).__name__}: {_first_line(str(exc))})",
            hint="check the endpoint or connection string and the network (is the service or Azurite running?), "
                 "then try again")
    if isinstance(exc, UnicodeEncodeError) and exc.encoding.lower().replace("-", "") in ("latin1", "iso88591"):
        return ConfigurationError(
            f"a key or header value holds a character HTTP headers cannot carry (character {exc.start + 1})",
            setting="key", hint="copy the key again: keys are ASCII letters and digits")
    if isinstance(exc, OSError) and exc.filename is not None:
        path = exc.filename
        reason = exc.strerror or type(exc).__name__
        return ConfigurationError(
            f"cannot use {path}: {reason}", setting=str(path),
            hint="pass a path that exists and this user may read and write (e.g. a folder under the working "
                 "directory)")
    return None


def _from_storage_answer(exc: Any) -> CvopsError:
    """An azure-core ``HttpResponseError``: the service answered; decide by its error code, then its status."""
    code = getattr(exc, "error_code", None) or None
    code = str(getattr(code, "value", code)) if code else None  # azure-storage gives a StorageErrorCode enum
    status = getattr(exc, "status_code", None)
    url = _request_url(exc) or "the storage account"
    detail = f"HTTP {status}" + (f" {code}" if code else "")
    if code in _NOT_FOUND:
        thing = _NOT_FOUND[code]
        return ConfigurationError(f"the {thing} at {url} does not exist ({detail})", setting=thing,
                                  hint=f"create the {thing}, or fix its name in the command or settings")
    if code in _BAD_NAME:
        return ConfigurationError(
            f"{url} is not a valid storage name ({detail})", setting="name",
            hint="container and queue names are 3-63 lowercase letters, digits and single hyphens")
    if code in _NOT_ALLOWED:
        return ServiceError(
            f"the storage account refused the operation on {url}: the SAS or identity does not allow it ({detail})",
            code=code, status=status,
            hint="use a SAS that covers this service and operation (e.g. ss=bq for blobs and the backlog queue, "
                 "with the needed permissions), or give the identity a Storage Blob/Queue Data role")
    if code == "AuthenticationFailed" or status == 401 or type(exc).__name__ == "ClientAuthenticationError":
        return ServiceError(
            f"the storage account refused the credential for {url} ({detail})", code=code, status=status,
            hint="the account key or SAS in the storage setting is wrong or expired: copy it again "
                 "(storage account > Access keys), or check the identity's role")
    if status is not None and (status >= 500 or status in (408, 429)):
        return TransientServiceError(f"the storage account at {url} is busy or failing ({detail})", code=code,
                                     status=status, hint="try again later")
    return ServiceError(f"the storage account refused a request on {url} ({detail}: {_first_line(exc.message or '')})",
                        code=code, status=status,
                        hint="fix the request (see the code) and run again; retrying as-is will not help")
