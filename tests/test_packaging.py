"""Every installed package comes from a lock, and what Azure installs for the Function App (requirements.txt) is exactly
the locked closure of the package's runtime dependencies (locks/README.md says how the locks are made and updated)."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)(?:\s*;\s*(?P<marker>[^\\]+?))?\s*\\?$")


def _lock(path: Path) -> dict[str, dict]:
    """name -> {version, hashes, marker} of a pip requirements file written by scripts/lock.sh."""
    pins: dict[str, dict] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _PIN.match(line)
        if match:
            current = {"version": match["version"], "hashes": [], "marker": match["marker"]}
            pins[canonicalize_name(match["name"])] = current
        elif line.startswith("--hash=sha256:") and current is not None:
            current["hashes"].append(line.split(":", 1)[1].rstrip(" \\"))
        else:
            raise AssertionError(f"{path.name}: not a pinned requirement or a hash: {raw!r}")
    return pins


def _runtime_dependencies() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(d) for d in project["dependencies"]]


def _closure(roots: list[Requirement]) -> set[str]:
    """The runtime dependencies and everything they need here (Linux, CPython 3.11), from installed metadata."""
    seen: set[str] = set()
    todo = [(r, frozenset()) for r in roots]
    while todo:
        requirement, extras = todo.pop()
        name = canonicalize_name(requirement.name)
        if requirement.marker is not None and not any(
            requirement.marker.evaluate({"extra": e}) for e in (extras or {""})
        ):
            continue
        if name in seen:
            continue
        seen.add(name)
        for child in metadata.requires(requirement.name) or []:
            todo.append((Requirement(child), frozenset(requirement.extras)))
    return seen


REQUIREMENTS = _lock(ROOT / "requirements.txt")
DEV = _lock(ROOT / "locks" / "dev.txt")


def test_requirements_txt_is_exactly_the_closure_of_the_runtime_dependencies():
    closure = _closure(_runtime_dependencies())
    assert set(REQUIREMENTS) == closure, (
        f"missing: {sorted(closure - set(REQUIREMENTS))}, not needed: {sorted(set(REQUIREMENTS) - closure)}; run make lock"
    )


def test_requirements_txt_pins_the_versions_pyproject_declares():
    for requirement in _runtime_dependencies():
        assert requirement.specifier.contains(REQUIREMENTS[canonicalize_name(requirement.name)]["version"]), requirement


def test_every_locked_package_is_pinned_exactly_with_hashes():
    for path in (ROOT / "requirements.txt", *sorted((ROOT / "locks").glob("*.txt"))):
        unhashed = [name for name, pin in _lock(path).items() if not pin["hashes"]]
        assert unhashed == [], f"{path.name}: no hash for {unhashed}"
        assert _lock(path), f"{path.name} pins nothing"


def test_dev_lock_holds_the_runtime_set_at_the_same_versions():
    differing = {name: (pin["version"], DEV.get(name, {}).get("version"))
                 for name, pin in REQUIREMENTS.items() if DEV.get(name, {}).get("version") != pin["version"]}
    assert differing == {}, "requirements.txt and locks/dev.txt disagree (run make lock)"


def test_this_environment_is_exactly_the_dev_lock():
    """What `make setup` installed is the lock: every locked package at its version, and nothing it does not name."""
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    applicable = {name: pin["version"] for name, pin in DEV.items()
                  if pin["marker"] is None or Requirement(f"x; {pin['marker']}").marker.evaluate()}
    wrong = {name: (version, installed.get(name)) for name, version in applicable.items() if installed.get(name) != version}
    assert wrong == {}, "installed versions differ from locks/dev.txt: rebuild the environment with make setup"
    unlocked = set(installed) - set(applicable) - {"pip", "cvops"}
    assert unlocked == set(), f"installed but not locked: {sorted(unlocked)}"


def test_function_runtime_leaves_out_the_local_service_and_cli_extras():
    # (werkzeug is here all the same: azure-functions itself requires it; numpy too: onnxruntime, which runs an
    # exported model in-process, requires it)
    heavy = {"scikit-learn", "scipy", "matplotlib", "click", "rich", "pytest", "hypothesis"}
    assert set(REQUIREMENTS).isdisjoint(heavy), "these belong in an optional group of pyproject.toml, not on every cold start"
