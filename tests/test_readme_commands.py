"""The README's two commands are the ones CI runs, and both are real Makefile targets: the README cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    """The commands of the first `sh` block under the README's 'Two commands' heading, comments stripped."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Two commands", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "the README's 'Two commands' section has no ```sh block"
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.split("#")[0].strip()]


def ci_commands() -> list[str]:
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    return [line.strip() for line in lines if line.strip().startswith("make ")]


def test_readme_shows_make_demo_and_make_test():
    assert readme_commands() == ["make demo", "make test"]


def test_ci_runs_exactly_the_readme_commands():
    assert sorted(ci_commands()) == sorted(readme_commands())
    assert ci_commands()[0] == "make test", "CI runs the tests first, so a broken demo never hides a failing test"


def test_each_readme_command_is_a_makefile_target():
    makefile = (ROOT / "Makefile").read_text()
    for command in readme_commands():
        target = command.split()[1]
        assert re.search(rf"^{re.escape(target)}:", makefile, re.M), f"Makefile has no target {target!r}"


def test_make_demo_runs_the_module_the_readme_names():
    recipe = re.search(r"^demo:.*\n\t\$\(PY\) -m (?P<module>[\w.]+)$", (ROOT / "Makefile").read_text(), re.M)
    assert recipe, "the Makefile's demo target does not run a module with $(PY) -m"
    module = recipe["module"]
    assert (ROOT / Path(*module.split("."))).with_suffix(".py").is_file(), f"{module} is not a module of the repository"
    assert f"`make demo` runs `python -m {module}`" in (ROOT / "README.md").read_text()
