"""What Azure installs for the Function App (requirements.txt) is exactly the package's runtime dependencies."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _requirements() -> set[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return {line.strip().lower() for line in lines if line.strip() and not line.lstrip().startswith("#")}


def test_requirements_txt_matches_pyproject_runtime_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert _requirements() == {d.lower() for d in project["dependencies"]}


def test_function_runtime_pins_every_package_exactly():
    loose = [r for r in _requirements() if "==" not in r]
    assert loose == [], f"pin these with == so a deployment installs what the tests ran: {loose}"


def test_function_runtime_leaves_out_the_local_service_and_cli_extras():
    heavy = {"numpy", "scikit-learn", "werkzeug", "matplotlib", "click", "rich", "pytest"}
    names = {r.split("==")[0] for r in _requirements()}
    assert names.isdisjoint(heavy), "these belong in an optional group of pyproject.toml, not on every cold start"
