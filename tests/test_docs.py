"""The README stays a first screen and the reference in docs/ stays reachable and true: every docs page is linked from
the README, every relative link resolves, and the command table in docs/commands.md names exactly the commands and
options `cvops --help` offers. A command added, renamed or dropped without its row fails here, not in a reader's shell."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from pipelines.cli import cli

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
COMMANDS_PAGE = ROOT / "docs" / "commands.md"

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def markdown_files() -> list[Path]:
    """The README, the docs pages and the READMEs they send a reader on to."""
    return [README, *DOCS, *(ROOT / part / "README.md" for part in ("emulator", "infra", "locks"))]


def prose(text: str) -> str:
    """The text outside fenced code blocks, where a `[x](y)` is a link rather than code."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def links(path: Path) -> list[str]:
    return [a or b for a, b in LINK.findall(prose(path.read_text()))]


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: link markup and punctuation dropped, lower case, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {anchor(line.lstrip("#")) for line in prose(path.read_text()).splitlines() if re.match(r"#{1,6} ", line)}


def test_readme_is_under_200_lines():
    assert len(README.read_text().splitlines()) < 200


def test_every_docs_page_is_linked_from_the_readme():
    assert DOCS, "docs/ holds no page"
    linked = {(README.parent / target.split("#")[0]).resolve() for target in links(README)}
    assert [page.name for page in DOCS if page.resolve() not in linked] == []


@pytest.mark.parametrize("page", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path):
    broken = []
    for target in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        file_part, _, fragment = target.partition("#")
        destination = (page.parent / file_part).resolve() if file_part else page
        if not destination.exists():
            broken.append(f"{target}: no such file")
        elif fragment and destination.suffix == ".md" and fragment not in anchors(destination):
            broken.append(f"{target}: no heading with that anchor")
    assert broken == []


def cli_commands(group: click.Group = cli, path: tuple[str, ...] = ()) -> dict[str, click.Command]:
    """Every command a user can run, by its full name (`images upload`), walking click's command tree."""
    context = click.Context(group)
    found: dict[str, click.Command] = {}
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        if command is None or command.hidden:
            continue
        if isinstance(command, click.Group):
            found.update(cli_commands(command, (*path, name)))
        else:
            found[" ".join((*path, name))] = command
    return found


def cli_groups(group: click.Group = cli, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], click.Group]:
    context = click.Context(group)
    found = {path: group}
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        if isinstance(command, click.Group) and not command.hidden:
            found.update(cli_groups(command, (*path, name)))
    return found


def table_rows() -> dict[str, str]:
    """The command table's rows by command name: the first cell's words up to the first argument or option."""
    rows: dict[str, str] = {}
    for line in COMMANDS_PAGE.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")] if line.startswith("| `") else []
        if not cells:
            continue
        words = cells[0].strip("`").split()
        name = " ".join(w for w in words[: next((i for i, w in enumerate(words) if not re.fullmatch(r"[a-z][a-z-]*", w)),
                                                  len(words))])
        assert name not in rows, f"docs/commands.md has two rows for {name!r}"
        rows[name] = line
    return rows


def help_text(*args: str) -> str:
    result = CliRunner().invoke(cli, [*args, "--help"], prog_name="cvops", env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def test_each_group_help_lists_the_commands_of_the_tree():
    for path, group in cli_groups().items():
        shown = help_text(*path)
        listed = re.findall(r"^  ([a-z][a-z-]*)\s", shown.split("Commands:", 1)[1], re.M) if "Commands:" in shown else []
        context = click.Context(group)
        expected = [n for n in group.list_commands(context) if not group.get_command(context, n).hidden]
        assert sorted(listed) == sorted(expected), f"cvops {' '.join(path)} --help"


def test_the_commands_table_lists_exactly_the_commands_cvops_offers():
    rows, commands = set(table_rows()), set(cli_commands())
    assert sorted(commands - rows) == [], "commands with no row in docs/commands.md (add one: what it does, an example)"
    assert sorted(rows - commands) == [], "rows in docs/commands.md for commands cvops does not offer"


def test_every_option_the_commands_table_names_is_in_that_commands_help():
    commands = cli_commands()
    global_options = {opt for param in cli.params for opt in (*param.opts, *param.secondary_opts)}
    missing = []
    for name, row in table_rows().items():
        command = commands.get(name)
        if command is None:
            continue  # reported by the test above
        own = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
        shown = help_text(*name.split())
        for option in set(OPTION.findall(row)):
            if option in global_options:
                continue
            if option not in own or option not in shown:
                missing.append(f"{name}: {option}")
    assert sorted(missing) == []


def test_the_options_every_command_takes_are_on_every_command():
    section = COMMANDS_PAGE.read_text().split("Options every command takes:", 1)[1].lstrip("\n")
    bullets = [line for line in section.split("\n\n", 1)[0].splitlines() if line.startswith("- ")]
    named = {option for line in bullets for option in OPTION.findall(line)}
    assert named, "docs/commands.md lists no common option"
    global_options = {opt for param in cli.params for opt in param.opts}
    for name, command in cli_commands().items():
        own = {opt for param in command.params for opt in param.opts}
        assert sorted(named - own - global_options) == [], name


def test_the_function_app_settings_table_is_the_catalogue():
    """docs/settings.md says its table comes from SETTINGS: same names in the same order, same defaults and required."""
    from functions.settings import SETTINGS

    section = (ROOT / "docs" / "settings.md").read_text().split("## The Function App", 1)[1]
    rows = re.findall(r"^\| `([A-Z_]+)` \|([^|]*)\|([^|]*)\|", section, re.M)
    documented = [(name, default.strip().strip("`"), required.strip() == "yes") for name, default, required in rows]
    expected = [(s.name, s.default if s.default is not None else ("empty" if not s.required else ""), s.required)
                for s in SETTINGS]
    assert documented == expected
