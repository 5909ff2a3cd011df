"""Keep keys, SAS signatures and connection strings out of log lines, result records and command output.

Why two layers, and a filter on the way out too: exception messages from the SDKs echo request URLs (with a SAS
query) and header values (``Invalid ... in header value: 'k1\\nk2'`` for a key holding a line break), and a malformed
setting can echo a connection string. Records are read by Power BI users who must never see a credential, and logs
are kept for months. So

* every value read from a *secret setting* (keys, connection strings, SAS tokens) is registered here with
  :func:`register_secret` when the setting is read, and :func:`redact` replaces it, whatever its shape, in every
  form it can take in a message: as is, ``repr()``-escaped, JSON-escaped, URL-encoded, base64, and with its
  whitespace collapsed (cvops errors are one line);
* the patterns below catch credentials that never went through a setting (a SAS URL a user passed, a key header an
  SDK logs).

:func:`redact` is applied to every string written to a record, to the CLI's output and errors, to the HTTP trigger's
answers, and by :class:`RedactingFilter` to the app's and the SDKs' loggers. :func:`check_key` and
:func:`check_connection_string` refuse the shapes that can never be a valid credential, naming the setting, never
echoing the value.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
import unicodedata
from urllib.parse import parse_qsl, quote, quote_plus

from cvops.errors import ConfigurationError

__all__ = ["REDACTED", "RedactingFilter", "check_connection_string", "check_key", "install_log_redaction", "redact",
           "register_secret", "registered_secret_count", "secret_forms", "strip_query"]

REDACTED = "REDACTED"

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

# A registered value shorter than this is not replaced on its own (it would mangle ordinary words); its pieces
# (a value split at whitespace or a connection string's parts) must be at least _MIN_PIECE long.
_MIN_SECRET = 4
_MIN_PIECE = 8

_lock = threading.Lock()
_secrets: set[str] = set()
_forms: tuple[str, ...] = ()


def secret_forms(value: str) -> set[str]:
    """Every form ``value`` can take in a message: as is, stripped, whitespace-collapsed, repr/ascii/JSON-escaped,
    unicode-escaped, URL-encoded, as UTF-8 bytes' repr, base64 (standard and URL-safe, with and without padding).
    Pure."""
    forms: set[str] = set()
    for v in {value, value.strip(), " ".join(value.split())}:
        if not v:
            continue
        raw = v.encode("utf-8", "surrogatepass")
        b64 = base64.b64encode(raw).decode()
        url64 = base64.urlsafe_b64encode(raw).decode()
        forms |= {
            v, repr(v)[1:-1], ascii(v)[1:-1], json.dumps(v)[1:-1], json.dumps(v, ensure_ascii=False)[1:-1],
            v.encode("unicode_escape").decode("ascii"), repr(raw)[2:-1],
            quote(v, safe=""), quote(v), quote_plus(v), quote(v, safe="/:"),
            b64, b64.rstrip("="), url64, url64.rstrip("="),
        }
    return {f for f in forms if len(f) >= _MIN_SECRET}


def _pieces(value: str) -> set[str]:
    """The parts of a secret that may be printed on their own: each line or word of it (``az ... -o tsv`` prints
    two keys on two lines), and the credential parts of a connection string or SAS token."""
    pieces = {p for p in value.split() if len(p) >= _MIN_PIECE}
    if "=" in value:
        for part in value.split(";"):
            name, _, v = part.partition("=")
            if name.strip().lower() in ("accountkey", "sharedaccesskey", "sharedaccesssignature") and v.strip():
                pieces.add(v.strip())
                if name.strip().lower() == "sharedaccesssignature":
                    pieces |= _sas_pieces(v.strip())
        pieces |= _sas_pieces(value.split("?", 1)[1] if "?" in value else "")
    return {p for p in pieces if len(p) >= _MIN_PIECE}


def _sas_pieces(query: str) -> set[str]:
    """The signature of a SAS query string (the rest of it, dates and permissions, is not secret)."""
    return {v for k, v in parse_qsl(query, keep_blank_values=False) if k.lower() == "sig" and v}


def register_secret(value: str | None) -> None:
    """Remember a value read from a secret setting, so :func:`redact` removes it (and its pieces) from every output.

    Called where the settings are read (``pipelines.config``, ``functions.settings``, ``functions.config``);
    idempotent and thread-safe. Values are held for the life of the process, as the settings themselves are.
    """
    global _forms
    if not isinstance(value, str) or len(value.strip()) < _MIN_SECRET:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets.add(value)
        forms = set(_forms) | secret_forms(value)
        for piece in _pieces(value):
            forms |= secret_forms(piece)
        # Longest first: a form that contains another must be replaced whole.
        _forms = tuple(sorted(forms, key=lambda f: (-len(f), f)))


def registered_secret_count() -> int:
    """How many distinct secret values are registered (for tests and diagnostics; never the values)."""
    return len(_secrets)


def redact(text: str) -> str:
    """``text`` with every registered secret (in any of its forms) and every credential-looking value replaced by
    ``REDACTED``."""
    for form in _forms:
        if form in text:
            text = text.replace(form, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def strip_query(url: str | None) -> str | None:
    """A URL without its query string (where a SAS lives) and fragment."""
    if not url:
        return url
    return url.split("?", 1)[0].split("#", 1)[0]


# --- checking secret settings where they are read --------------------------------------------------------------------

# Azure keys are 32 hex digits (Cognitive Services) or 84-88 base64 characters (storage, newer multi-service keys);
# a value far longer is something else pasted by mistake (a file, a whole connection string, a token).
MAX_KEY_LENGTH = 256


def _bad_character(value: str) -> str | None:
    """What makes ``value`` unusable in an HTTP header, in words that never quote it; None if nothing does."""
    if "\n" in value or "\r" in value:
        return "holds a line break"
    for index, char in enumerate(value):
        if char.isspace():
            return f"holds whitespace (character {index + 1})"
        if unicodedata.category(char).startswith("C"):
            return f"holds a control character (character {index + 1})"
        if ord(char) > 127:
            return f"holds a non-ASCII character (character {index + 1})"
    return None


def check_key(setting: str, value: str) -> str:
    """``value`` (a key read from ``setting``) stripped of surrounding whitespace, or a ConfigurationError that names
    the setting and what is wrong, never the value. Registers the value as a secret either way."""
    register_secret(value)
    key = value.strip()
    problem = _bad_character(key)
    if problem == "holds a line break":
        hint = ("it looks like two keys (e.g. from az ... --query \"[key1,key2]\" -o tsv): copy one key only "
                "(Azure portal > the resource > Keys and Endpoint)")
    elif problem:
        hint = "copy the key again (Azure portal > the resource > Keys and Endpoint): keys are ASCII letters and digits"
    elif len(key) > MAX_KEY_LENGTH:
        problem = f"is {len(key):,} characters long, far longer than a key"
        hint = "copy only the key (Azure portal > the resource > Keys and Endpoint)"
    elif key.lower().startswith(("http://", "https://")):
        problem = "holds a URL, not a key"
        hint = "put the key there and the URL in the matching endpoint setting"
    else:
        return key
    raise ConfigurationError(f"{setting} {problem}", setting=setting, hint=hint)


def check_connection_string(setting: str, value: str) -> str:
    """A storage connection string read from ``setting``, stripped, or a ConfigurationError naming the setting and
    the part that is wrong, never the value: a line break or non-ASCII character, an AccountKey that is not base64
    (the SDK would fail deep in request signing with ``Incorrect padding``). Registers it as a secret either way."""
    register_secret(value)
    text = value.strip()
    problem = _bad_character(text.replace(" ", ""))
    if problem:
        raise ConfigurationError(f"{setting} {problem}", setting=setting,
                                 hint="copy the connection string again, on one line (storage account > Access keys)")
    for part in text.split(";"):
        name, _, key = part.partition("=")
        if name.strip().lower() == "accountkey":
            try:
                base64.b64decode(key.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise ConfigurationError(
                    f"the AccountKey in {setting} is not valid base64", setting=setting,
                    hint="copy the connection string again from the storage account's 'Access keys' page") from None
    return text


class RedactingFilter(logging.Filter):
    """Redacts each record's formatted message (and drops its args, already merged) before handlers see it; the
    text of an attached exception is redacted too, as it is what a handler prints after the message."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep the record as logging would, but never its raw args
            message = f"{record.msg} {record.args}"
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            import traceback

            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
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


_factory_lock = threading.Lock()
_factory_installed = False


def _install_record_factory() -> None:
    """Redact every log record of every logger as it is made: a logger filter only sees the records of its own
    logger, not its children's (``azure.storage.blob._shared.policies`` is not ``azure``), nor those of the Functions
    host's or a library's loggers nobody listed. The factory runs only for records a logger is enabled for."""
    global _factory_installed
    with _factory_lock:
        if _factory_installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: object, **kwargs: object) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            if _forms:  # nothing registered yet: the pattern rules run in the filters
                _FILTER.filter(record)
            return record

        logging.setLogRecordFactory(factory)
        _factory_installed = True


def install_log_redaction() -> None:
    """Attach the redacting filter to every sensitive logger, and redact every record of any logger once a secret
    setting has been registered (idempotent)."""
    for name in SENSITIVE_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    _install_record_factory()
