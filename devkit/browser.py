"""The browser the review page is driven with (the demo's review step, tests/browser): Debian's Chromium, launched by
Playwright as it is installed. No browser is ever downloaded; scripts/browser.sh installs the Debian package."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CHROMIUM_ARGS", "chromium_path", "missing_reason"]

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
"""No sandbox (CI runs as root in a container), no GPU, and nothing that reaches the network on its own."""


def chromium_path() -> Path:
    """``/usr/bin/chromium``, or ``CVOPS_CHROMIUM`` (what scripts/browser.sh also reads)."""
    return Path(os.environ.get("CVOPS_CHROMIUM") or "/usr/bin/chromium")


def missing_reason() -> str | None:
    """One line naming the missing browser and how to install it; None when it is there."""
    path = chromium_path()
    return None if path.exists() else f"chromium not found at {path}: apt-get install chromium"
