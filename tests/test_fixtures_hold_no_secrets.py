"""Recorded HTTP fixtures are committed, so they must hold no key, SAS signature, account key or real endpoint.

Rules, one per leak that has happened to teams recording against Azure:
- key headers (`Training-Key`, `Prediction-Key`, `Ocp-Apim-Subscription-Key`, `Authorization`) kept with a value;
- SAS signatures (`sig=` with a value other than the scrubbed placeholder);
- storage account keys (`AccountKey=`, other than Azurite's public development key);
- real resource host names: `<name>.cognitiveservices.azure.com`, `<name>.blob|queue.core.windows.net` whose name is not a
  documented fake (starting with `fake` or `example`). Regional shared endpoints (`westeurope.api.cognitive.microsoft.com`)
  name no resource and are allowed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
FIXTURE_SUFFIXES = {".yaml", ".yml", ".json", ".jsonl", ".txt"}
AZURITE_PUBLIC_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
SCRUBBED = {"", "redacted", "<redacted>", "scrubbed", "<scrubbed>", "xxx", "null", "none"}

KEY_HEADER = re.compile(
    r"(?im)^[\s\-]*['\"]?(training-key|prediction-key|ocp-apim-subscription-key|authorization)['\"]?\s*:\s*\n?"
    r"[\s\-\[]*['\"]?([^'\"\]\n]*)")
SAS_SIG = re.compile(r"(?i)[?&]sig=([^&\s'\"]*)")
ACCOUNT_KEY = re.compile(r"AccountKey=([A-Za-z0-9+/=]+)")
RESOURCE_HOST = re.compile(r"(?i)\b([a-z0-9][a-z0-9-]*)\.(cognitiveservices\.azure\.com|blob\.core\.windows\.net|"
                           r"queue\.core\.windows\.net)")


def fixture_files() -> list[Path]:
    found = []
    for path in TESTS.rglob("*"):
        if path.is_file() and path.suffix.lower() in FIXTURE_SUFFIXES and "specs" not in path.parts:
            found.append(path)
    return sorted(found)


def leaks_in(text: str) -> list[str]:
    """Every leak the rules above find in one fixture's text, described for the failure message."""
    leaks = []
    for match in KEY_HEADER.finditer(text):
        value = match.group(2).strip().lower()
        if value not in SCRUBBED:
            leaks.append(f"header {match.group(1)} has a value")
    leaks += [f"SAS signature sig={m.group(1)[:6]}…" for m in SAS_SIG.finditer(text)
              if m.group(1).lower() not in SCRUBBED]
    leaks += ["an account key" for m in ACCOUNT_KEY.finditer(text) if m.group(1) != AZURITE_PUBLIC_KEY]
    leaks += [f"real endpoint {m.group(0)}" for m in RESOURCE_HOST.finditer(text)
              if not m.group(1).lower().startswith(("fake", "example"))]
    return leaks


@pytest.mark.parametrize("path", fixture_files(), ids=lambda p: str(p.relative_to(TESTS)))
def test_recorded_fixture_holds_no_secret(path: Path):
    leaks = leaks_in(path.read_text(errors="replace"))
    assert leaks == [], f"{path.relative_to(TESTS)} leaks: {sorted(set(leaks))}; re-record with scrubbing or scrub it by hand"


@pytest.mark.parametrize("text, leak", [
    ("request:\n  headers:\n    Training-Key:\n    - 0123456789abcdef0123456789abcdef\n", "header"),
    ("uri: https://x.blob.core.windows.net/c/b.jpg?sv=2024&sig=AbCdEf%2Bghij", "SAS"),
    ("DefaultEndpointsProtocol=https;AccountName=a;AccountKey=c2VjcmV0c2VjcmV0c2VjcmV0", "account key"),
    ("uri: https://contoso-vision.cognitiveservices.azure.com/customvision/v3.1/prediction", "real endpoint"),
])
def test_the_guard_finds_each_kind_of_leak(text: str, leak: str):
    assert any(leak in found for found in leaks_in(text))


def test_the_guard_accepts_scrubbed_text():
    text = ("request:\n  headers:\n    Prediction-Key:\n    - REDACTED\n"
            "  uri: https://fake-vision.cognitiveservices.azure.com/x?sig=REDACTED\n"
            f"AccountKey={AZURITE_PUBLIC_KEY}\nhttps://westeurope.api.cognitive.microsoft.com/vision/v3.2/analyze\n")
    assert leaks_in(text) == []
