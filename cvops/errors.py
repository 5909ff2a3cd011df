"""Errors that name the thing that failed and what to do about it.

Every error cvops raises on purpose derives from :class:`CvopsError`. Its ``str()`` is one line, because it is the user
interface: the CLI prints it instead of a stack trace and the Function App writes it into a quarantine/result record.
The split between :class:`ServiceError` (permanent: fix something, then run again) and :class:`TransientServiceError`
(try again later) is what callers branch on: a Functions host should let a transient error fail the invocation so the
blob is retried, but record a permanent one and move on.
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "CvopsError",
    "ServiceError",
    "ThrottledError",
    "TransientServiceError",
]


def _one_line(text: str) -> str:
    """Collapse whitespace so a message never spans several log lines (services put newlines in their messages)."""
    return " ".join(str(text).split())


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
