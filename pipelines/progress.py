"""Progress reporting, kept out of the operations: they call ``reporter.task(...)`` and ``advance``; the CLI decides
whether that becomes a rich progress bar on stderr (a person at a terminal) or nothing (tests, `--json`, CI logs).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Task(Protocol):
    def advance(self, n: int = 1) -> None: ...
    def describe(self, text: str) -> None: ...


class Reporter(Protocol):
    def task(self, description: str, total: int | None = None): ...  # a context manager yielding a Task


class _NullTask:
    def advance(self, n: int = 1) -> None:
        pass

    def describe(self, text: str) -> None:
        pass


class NullReporter:
    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Task]:
        yield _NullTask()


class _RichTask:
    def __init__(self, progress, task_id):
        self._progress = progress
        self._id = task_id

    def advance(self, n: int = 1) -> None:
        self._progress.advance(self._id, n)

    def describe(self, text: str) -> None:
        self._progress.update(self._id, description=text)


class RichReporter:
    """Bars on stderr. rich draws nothing animated when stderr is not a terminal, so CI logs stay clean."""

    def __init__(self, console):
        self.console = console

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Task]:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        columns = [SpinnerColumn(), TextColumn("{task.description}")]
        if total is not None:
            columns += [BarColumn(), MofNCompleteColumn()]
        columns.append(TimeElapsedColumn())
        with Progress(*columns, console=self.console, transient=True) as progress:
            yield _RichTask(progress, progress.add_task(description, total=total))
