"""The project spec: a YAML file that declares one classification project, read into plain frozen data.

Why a JSON schema (``spec.schema.json``) and not only code: the schema is the documentation an editor can use, and
`jsonschema` names the exact field that is wrong. The few rules a schema cannot say well (duplicate tag names that differ
only in case, a budget without Advanced training, export platforms on a non-compact domain) are checked here after it.
Everything in this module is pure except :func:`load`, which reads the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

import jsonschema
import yaml

from cvops import strict_yaml
from cvops.errors import ConfigurationError
from cvops.numbers import refuse_non_finite

COMPACT_DOMAINS = frozenset({
    "General (compact)", "General (compact) [S1]", "Food (compact)", "Landmarks (compact)", "Retail (compact)",
})
SOURCE_SCHEME = "az://"

SourceKind = Literal["blob", "folder", "manifest"]


@dataclass(frozen=True)
class SourceSpec:
    """Where labelled images are. ``blob``: container + prefix, one folder per tag under the prefix; ``folder``: a local
    directory laid out the same way; ``manifest``: a CSV or JSON Lines file of (path, tags), local or ``az://``."""

    kind: SourceKind
    container: str = ""
    prefix: str = ""
    path: str = ""

    def __str__(self) -> str:
        if self.kind == "blob":
            return f"{SOURCE_SCHEME}{self.container}/{self.prefix}"
        return self.path


@dataclass(frozen=True)
class TagSpec:
    name: str
    description: str = ""
    threshold: float | None = None


@dataclass(frozen=True)
class Gates:
    """Minimums an iteration must reach before `cvops publish` publishes it; ``None`` means not gated."""

    min_precision: float | None = None
    min_recall: float | None = None
    min_map: float | None = None


@dataclass(frozen=True)
class ProjectSpec:
    name: str
    classification_type: Literal["Multiclass", "Multilabel"]
    domain: str
    tags: tuple[TagSpec, ...]
    description: str = ""
    export_platforms: tuple[str, ...] = ()
    training_type: Literal["Regular", "Advanced"] = "Regular"
    budget_hours: int = 0
    training_timeout: float = 3600.0
    threshold: float = 0.5
    target_precision: float | None = None
    target_recall: float | None = None
    gates: Gates = field(default_factory=Gates)
    publish_name: str | None = None
    keep: int | None = None
    training_source: SourceSpec | None = None
    holdout_source: SourceSpec | None = None

    @property
    def tag_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tags)

    def tag_threshold(self, name: str) -> float:
        """The threshold for one tag: its own when declared, else the project's evaluation threshold."""
        for tag in self.tags:
            if tag.name == name and tag.threshold is not None:
                return tag.threshold
        return self.threshold


@cache
def schema() -> dict[str, Any]:
    return json.loads(Path(__file__).with_name("spec.schema.json").read_text(encoding="utf-8"))


def _where(error: jsonschema.ValidationError) -> str:
    """A jsonschema error path as people write it: ``tags[2].threshold``."""
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _message(error: jsonschema.ValidationError, shown: int = 5) -> str:
    """jsonschema's message, short: it quotes the whole offending value (a list of 501 tags on one line), so a long
    list is shown as its first few items "and N more", and any other long value is cut."""
    instance = error.instance
    if isinstance(instance, list) and error.validator in ("maxItems", "minItems"):
        items = [repr(i.get("name", i) if isinstance(i, dict) else i)[:40] for i in instance[:shown]]
        more = f" and {len(instance) - shown} more" if len(instance) > shown else ""
        bound = "at most" if error.validator == "maxItems" else "at least"
        return f"{len(instance)} items ({', '.join(items)}{more}); {bound} {error.validator_value} allowed"
    message = error.message
    return message if len(message) <= 200 else f"{message[:200]}… ({len(message) - 200} more characters)"


def validate(data: Any, *, origin: str = "spec") -> None:
    """Raise a ConfigurationError naming the first wrong field (the most relevant one, per jsonschema's best_match).

    NaN and infinities are refused first: the schema's ``minimum``/``maximum`` let NaN through (``threshold: .nan``
    would be applied), see :mod:`cvops.numbers`.
    """
    refuse_non_finite(data, origin=origin,
                      hint="write a finite number (the spec's schema is pipelines/spec.schema.json)")
    validator = jsonschema.Draft202012Validator(schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is None:
        return
    where = _where(error)
    raise ConfigurationError(f"{origin}: {where}: {_message(error)}", setting=where,
                             hint="fix the spec (its schema is pipelines/spec.schema.json) and run again")


def parse_source(value: Any, *, base_dir: Path | None = None) -> SourceSpec:
    """A source from a spec mapping or from the command-line form.

    Command-line forms: ``az://container/prefix`` (Blob), a path ending in ``.csv``/``.jsonl`` (manifest, local or
    ``az://``), any other path (local folder). Relative local paths in a spec are relative to the spec's directory, so a
    spec works from any working directory.
    """
    base = base_dir or Path(".")
    if isinstance(value, dict):
        if "container" in value:
            return SourceSpec("blob", container=value["container"], prefix=_norm_prefix(value.get("prefix", "")))
        if "manifest" in value:
            return SourceSpec("manifest", path=_local_or_az(value["manifest"], base))
        return SourceSpec("folder", path=_local_or_az(value["folder"], base))
    text = str(value).strip()
    if not text:
        raise ConfigurationError("empty image source", hint="give az://container/prefix, a folder, or a .csv/.jsonl manifest")
    if text.lower().endswith((".csv", ".jsonl")):
        return SourceSpec("manifest", path=_local_or_az(text, base))
    if text.startswith(SOURCE_SCHEME):
        container, _, prefix = text[len(SOURCE_SCHEME):].partition("/")
        if not container:
            raise ConfigurationError(f"image source {text!r} names no container", hint="write az://<container>/<prefix>")
        return SourceSpec("blob", container=container, prefix=_norm_prefix(prefix))
    return SourceSpec("folder", path=_local_or_az(text, base))


def _norm_prefix(prefix: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/" if prefix else ""


def _local_or_az(path: str, base: Path) -> str:
    if path.startswith(SOURCE_SCHEME):
        return path
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else base / p)


def parse(data: Any, *, origin: str = "spec", base_dir: Path | None = None) -> ProjectSpec:
    """Validate a loaded YAML document and turn it into a ProjectSpec (pure: no file or network access)."""
    validate(data, origin=origin)
    project = data["project"]
    tags = tuple(TagSpec(t["name"], t.get("description", ""), t.get("threshold")) for t in data["tags"])
    seen: dict[str, str] = {}
    for tag in tags:
        key = tag.name.casefold()
        if key in seen:
            raise ConfigurationError(f"{origin}: tags: {tag.name!r} is declared twice (tag names ignore case: {seen[key]!r})",
                                     setting="tags", hint="keep one of them")
        seen[key] = tag.name
    training = data.get("training", {})
    training_type = training.get("type", "Regular")
    if "budget_hours" in training and training_type != "Advanced":
        raise ConfigurationError(f"{origin}: training.budget_hours is only used by Advanced training",
                                 setting="training.budget_hours", hint="set training.type: Advanced or drop budget_hours")
    platforms = tuple(project.get("export_platforms", ()))
    if platforms and project["domain"] not in COMPACT_DOMAINS:
        raise ConfigurationError(
            f"{origin}: project.export_platforms needs a compact domain, not {project['domain']!r}",
            setting="project.export_platforms",
            hint=f"choose one of {', '.join(sorted(COMPACT_DOMAINS))}, or drop export_platforms")
    evaluation = data.get("evaluation", {})
    gates = data.get("gates", {})
    publish = data.get("publish", {})
    sources = data.get("data", {})
    return ProjectSpec(
        name=project["name"],
        description=project.get("description", ""),
        classification_type=project["classification_type"],
        domain=project["domain"],
        export_platforms=platforms,
        tags=tags,
        training_type=training_type,
        budget_hours=int(training.get("budget_hours", 1 if training_type == "Advanced" else 0)),
        training_timeout=float(training.get("timeout_seconds", 3600.0)),
        threshold=float(evaluation.get("threshold", 0.5)),
        target_precision=evaluation.get("target_precision"),
        target_recall=evaluation.get("target_recall"),
        gates=Gates(gates.get("min_precision"), gates.get("min_recall"), gates.get("min_map")),
        publish_name=publish.get("name"),
        keep=publish.get("keep"),
        training_source=parse_source(sources["training"], base_dir=base_dir) if "training" in sources else None,
        holdout_source=parse_source(sources["holdout"], base_dir=base_dir) if "holdout" in sources else None,
    )


def load(path: str | Path) -> ProjectSpec:
    """Read and parse a spec file; errors name the file and the field."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(f"spec file {p} does not exist", setting="spec",
                                 hint="pass the path of a project spec (see examples/scenes/project.yaml)") from None
    except OSError as e:
        raise ConfigurationError(f"cannot read spec file {p}: {e.strerror}", setting="spec") from None
    except UnicodeDecodeError as e:
        raise ConfigurationError(f"spec {p} is not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start})",
                                 setting="spec", hint="save the file as UTF-8 (most editors: File > Save with "
                                                      "encoding) and run again") from None
    try:
        data = strict_yaml.safe_load(text)  # a key given twice is refused, naming it and its lines
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigurationError(f"spec {p} is not valid YAML{where}: {getattr(e, 'problem', e)}", setting="spec") from None
    return parse(data, origin=str(p), base_dir=p.parent)
