"""Odd secret values and a scanner that looks for them, in every form, in any text a run produced.

Shared by the secrets suites (CLI and Function App). The forms are computed here independently of
:mod:`cvops.redaction`, so a form the redaction forgets is a failing test, not a shared blind spot.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import quote, quote_plus

# Each shape builds an odd value from two random parts; a and b are 16 hex digits, so either found alone in an output
# is a leak too (e.g. one of the two keys `az ... -o tsv` printed on two lines).
SHAPES: dict[str, Callable[[str, str], str]] = {
    "newline": lambda a, b: f"{a}\n{b}",
    "cr": lambda a, b: f"{a}\r{b}",
    "crlf-trailing": lambda a, b: f"{a}{b}\r\n",
    "tab": lambda a, b: f"{a}\t{b}",
    "spaces": lambda a, b: f"{a}  {b}",
    "surrounding-whitespace": lambda a, b: f"  \t{a}{b} \n",
    "latin-1": lambda a, b: f"{a}é{b}",
    "non-latin-1": lambda a, b: f"{a}łódź水{b}",
    "bidi-control": lambda a, b: f"{a}\u202e{b}",
    "10kb": lambda a, b: a + secrets.token_hex(5112) + b,
    "url-like": lambda a, b: f"https://{a}.example.net/path?sv=2024-01-01&sig={b}",
    "percent": lambda a, b: f"{a}%2F%0A%{b}",
}


@dataclass(frozen=True)
class OddSecret:
    shape: str
    value: str
    parts: tuple[str, str]

    def forms(self) -> set[str]:
        """The value and its two random parts, each as is, stripped, whitespace-collapsed, repr/JSON/unicode-escaped,
        URL-encoded and base64."""
        found: set[str] = set()
        for v in {self.value, self.value.strip(), " ".join(self.value.split()), *self.parts}:
            raw = v.encode("utf-8")
            found |= {v, repr(v)[1:-1], ascii(v)[1:-1], json.dumps(v)[1:-1], json.dumps(v, ensure_ascii=False)[1:-1],
                      v.encode("unicode_escape").decode(), quote(v, safe=""), quote(v), quote_plus(v),
                      base64.b64encode(raw).decode().rstrip("="), base64.urlsafe_b64encode(raw).decode().rstrip("=")}
        return {f for f in found if len(f) >= 8}


def odd_secrets(shapes: Iterable[str] | None = None) -> list[OddSecret]:
    """One fresh odd value per shape (fresh: a value from another test cannot hide or fake a leak)."""
    out = []
    for shape in shapes or SHAPES:
        a, b = secrets.token_hex(8), secrets.token_hex(8)
        out.append(OddSecret(shape, SHAPES[shape](a, b), (a, b)))
    return out


@dataclass
class Scanner:
    """Counts what was scanned (secret values x outputs) and collects every leak with where it was found."""

    scanned: int = 0
    values: set[str] = field(default_factory=set)
    outputs: int = 0
    leaks: list[str] = field(default_factory=list)

    def scan(self, secret: OddSecret, where: str, text: str | bytes | None) -> None:
        if text is None:
            return
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        self.scanned += 1
        self.values.add(secret.value)
        for form in secret.forms():
            if form in text:
                at = text.index(form)
                self.leaks.append(f"{secret.shape} value found in {where} as {form[:40]!r}...: "
                                  f"...{text[max(0, at - 60):at][-60:]!r}")
                return
