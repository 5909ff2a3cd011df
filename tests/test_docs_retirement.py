"""docs/retirement.md is the transition plan a team follows before 2028-09-25: every `cvops` line of its checklist must
be a command and options the CLI has, or the plan sends people to commands that do not exist. Each line is checked
through `cvops <command> --help` (click's runner), and a value given to a choice option is checked against its
choices."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
from click.testing import CliRunner

from pipelines.cli import cli

DOC = Path(__file__).resolve().parents[1] / "docs" / "retirement.md"
CHECKLIST_STEPS = 6


def checklist() -> str:
    """The text of the checklist section (from its heading to the next second-level heading)."""
    text = DOC.read_text()
    start = text.index("## The checklist")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def checklist_commands(section: str) -> list[list[str]]:
    """Every `cvops ...` line inside the section's code blocks, split as a shell would."""
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    return [shlex.split(line.strip())[1:] for block in blocks for line in block.splitlines()
            if line.strip().startswith("cvops ")]


def problems(args: list[str], runner: CliRunner) -> list[str]:
    """What is wrong with `cvops ARGS` as a command line (an empty list: nothing): an unknown command, a group where a
    command is needed, a `--help` that fails, an option the command does not show in its help, a choice value it does
    not accept."""
    line = "cvops " + " ".join(args)
    command: click.Command = cli
    path: list[str] = []
    rest = list(args)
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        sub = command.get_command(click.Context(command), rest[0])
        if sub is None:
            return [f"{line}: no command {' '.join([*path, rest[0]])!r}"]
        command, path = sub, [*path, rest.pop(0)]
    if isinstance(command, click.Group):
        return [f"{line}: {' '.join(path) or 'cvops'} is a group, not a command"]
    shown = runner.invoke(cli, [*path, "--help"], env={"NO_COLOR": "1", "COLUMNS": "200"})
    if shown.exit_code != 0:
        return [f"{line}: cvops {' '.join(path)} --help exits {shown.exit_code}"]
    options = {opt: param for param in command.params if isinstance(param, click.Option) for opt in param.opts}
    found = []
    for i, token in enumerate(rest):
        if not token.startswith("--"):
            continue
        name = token.split("=", 1)[0]
        if name not in options or name not in shown.output:
            found.append(f"{line}: {name} is not an option of cvops {' '.join(path)}")
            continue
        param = options[name]
        if isinstance(param.type, click.Choice) and not param.is_flag:
            value = token.split("=", 1)[1] if "=" in token else (rest[i + 1] if i + 1 < len(rest) else "")
            if value not in param.type.choices:
                found.append(f"{line}: {name} {value!r} is not one of {', '.join(param.type.choices)}")
    return found


def test_retirement_checklist_has_its_six_steps_in_order_with_a_moderation_section():
    section = checklist()
    steps = re.findall(r"^(\d)\. \*\*", section, flags=re.M)
    assert steps == [str(i) for i in range(1, CHECKLIST_STEPS + 1)]
    order = [section.index(word) for word in ("project backup", "cvops export", "Content Safety", "dataset export",
                                              "--model automl-model.zip", "Switch `CVOPS_MODEL`")]
    assert order == sorted(order)
    assert "](#moderation)" in section and "\n## Moderation\n" in DOC.read_text()


def test_every_cvops_command_in_the_retirement_checklist_exists_with_its_options():
    commands = checklist_commands(checklist())
    assert len(commands) >= 8      # the extraction finds the checklist's lines, not nothing
    runner = CliRunner()
    assert [p for args in commands for p in problems(args, runner)] == []


def test_checklist_check_names_an_unknown_command_option_or_choice():
    runner = CliRunner()
    assert problems(["project", "backup", "--spec", "x.yaml", "--outt", "dir"], runner) == [
        "cvops project backup --spec x.yaml --outt dir: --outt is not an option of cvops project backup"]
    assert problems(["projects", "backup"], runner) == ["cvops projects backup: no command 'projects'"]
    assert problems(["dataset", "export", "--format", "coco"], runner) == [
        "cvops dataset export --format coco: --format 'coco' is not one of automl"]
    assert problems(["dataset"], runner) == ["cvops dataset: dataset is a group, not a command"]
