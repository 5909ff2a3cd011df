"""Keep keys, SAS signatures and connection strings out of log lines and result records.

Why a filter on the way out and not only care on the way in: exception messages from the SDKs echo request URLs
(with a SAS query) and a malformed setting can echo a connection string. Records are read by Power BI users who must
never see a credential, and logs are kept for months. So every string written to a record goes through
:func:`redact`, and :class:`RedactingFilter` does the same for the app's loggers.
"""

from __future__ import annotations

import logging
import re

__all__ = ["RedactingFilter", "install_log_redaction", "redact", "strip_query"]

_PATTERNS = (
    # connection-string parts that carry a credential
    (re.compile(r"(?i)\b(AccountKey|SharedAccessKey|SharedAccessSignature)=[^;\s'\"]+"), r"\1=REDACTED"),
    # SAS and key query parameters
    (re.compile(r"(?i)([?&](?:sig|se|st|skoid|sktid|skt|ske|sks|skv|code|subscription-key)=)[^&\s'\"]+"),
     r"\1REDACTED"),
    # bearer tokens first: the header rule below would stop at the word "Bearer"
    (re.compile(r"(?i)\bBearer\s+[A-Za-z0-9._~+/=-]+"), "Bearer REDACTED"),
    # key headers as the SDKs print them in debug messages
    (re.compile(r"(?i)\b(prediction-key|training-key|ocp-apim-subscription-key|authorization)(['\"]?\s*[:=]\s*['\"]?)"
                r"(?!Bearer REDACTED)[^'\"\s,}]+"), r"\1\2REDACTED"),
)


def redact(text: str) -> str:
    """``text`` with every credential-looking value replaced by ``REDACTED``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def strip_query(url: str | None) -> str | None:
    """A URL without its query string (where a SAS lives) and fragment."""
    if not url:
        return url
    return url.split("?", 1)[0].split("#", 1)[0]


class RedactingFilter(logging.Filter):
    """Redacts each record's formatted message (and drops its args, already merged) before handlers see it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True


# Loggers whose records can carry a credential: ours, and the SDKs' HTTP loggers (msrest logs request headers
# verbatim at DEBUG, key headers included). A filter applies to the records a logger creates, not its children's,
# hence the full names.
SENSITIVE_LOGGERS = (
    "cvops", "cvops.functions", "cvops.retry", "cvops.run_local", "cvops.backlog",
    "msrest", "msrest.http_logger", "msrest.service_client", "msrest.universal_http", "msrest.universal_http.requests",
    "msrest.pipeline", "msrest.pipeline.requests", "msrest.exceptions",
    "azure", "azure.core.pipeline.policies.http_logging_policy", "azure.identity", "urllib3.connectionpool",
)
_FILTER = RedactingFilter()


def install_log_redaction() -> None:
    """Attach the redacting filter to every sensitive logger (idempotent)."""
    for name in SENSITIVE_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)

