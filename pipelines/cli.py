"""`cvops`: the command line for operators and CI (also `python -m pipelines`).

The commands are thin: they read settings and the spec, call one operation module, and print its result, for people
(rich tables, progress bars on stderr) or for machines (`--json`, one JSON document on stdout). Errors are one line on
stderr, never a stack trace, with an exit code a pipeline can branch on:

    0  success (also "nothing to do")
    1  the operation ran and failed: lint errors, images the service refused, training failed or timed out,
       a publish gate not met
    2  bad input or configuration: a missing setting, a wrong spec, an unknown tag or project (fix, then rerun)
    3  the service refused a request (its code is printed)
    4  the service was unavailable or throttled through all retries (rerun later)
   70  a bug in cvops (the message says how to get the traceback)
"""

from __future__ import annotations

import functools
import math
import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from cvops import finite_json, limits
from cvops.errors import ConfigurationError, CvopsError, ServiceError, TransientServiceError, from_exception
from cvops.redaction import install_log_redaction, redact
from pipelines import config
from pipelines.spec import ProjectSpec, SourceSpec, parse_source

EXIT_FAILED, EXIT_CONFIG, EXIT_SERVICE, EXIT_TRANSIENT, EXIT_BUG = 1, 2, 3, 4, 70
SPEC_ENV = "CVOPS_SPEC"
PROJECT_ENV = "CVOPS_PROJECT"


class FiniteFloatRange(click.FloatRange):
    """click's FloatRange refusing NaN and infinities: click reads "nan" and "inf" as floats, and NaN passes every
    range check (``--min-precision nan`` would switch a gate off)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if isinstance(number, float) and not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


def exit_code(error: CvopsError) -> int:
    if isinstance(error, TransientServiceError):
        return EXIT_TRANSIENT
    if isinstance(error, ServiceError):
        return EXIT_SERVICE
    if isinstance(error, ConfigurationError):
        return EXIT_CONFIG
    return EXIT_CONFIG if not getattr(error, "code", None) else EXIT_SERVICE


@dataclass
class Run:
    """What one command invocation shares: flags, settings, the spec, the service, the consoles."""

    overrides: dict[str, str | None] = field(default_factory=dict)
    env_file: str | None = None
    json: bool = False
    spec_path: str | None = None
    project_ref: str | None = None
    _settings: config.Settings | None = None
    _spec: ProjectSpec | None = None
    _service: Any = None

    @property
    def settings(self) -> config.Settings:
        if self._settings is None:
            self._settings = config.load(self.env_file, self.overrides)
        return self._settings

    @property
    def spec(self) -> ProjectSpec | None:
        if self._spec is None and self.spec_path:
            from pipelines.spec import load

            self._spec = load(self.spec_path)
        return self._spec

    def require_spec(self, what: str) -> ProjectSpec:
        if self.spec is None:
            raise ConfigurationError(f"{what} comes from the project spec, and no spec was given", setting="--spec",
                                     hint=f"pass --spec SPEC.yaml (or set {SPEC_ENV}), or give it as an option")
        return self.spec

    @property
    def service(self):
        if self._service is None:
            from pipelines.service import Service

            self._service = Service(self.settings)
        return self._service

    def project_id(self) -> str:
        ref = self.project_ref or (self.spec.name if self.spec else None)
        if not ref:
            raise ConfigurationError("which project? none was named", setting="--project",
                                     hint=f"pass --spec SPEC.yaml or --project NAME|ID (or set {SPEC_ENV} / {PROJECT_ENV})")
        return self.service.project(ref).id

    def source(self, spec: SourceSpec):
        from pipelines.sources import ImageSource

        return ImageSource(spec, lambda: self.service.blob_service)

    @property
    def console(self):
        from rich.console import Console

        return Console(file=_RedactingStream(sys.stdout), soft_wrap=False,
                       width=None if sys.stdout.isatty() else 120, highlight=False)

    @property
    def reporter(self):
        from pipelines.progress import NullReporter, RichReporter

        if self.json or not sys.stderr.isatty():
            return NullReporter()
        from rich.console import Console

        return RichReporter(Console(stderr=True))

    def emit(self, data: dict[str, Any], human: Callable[[Any], None]) -> None:
        if self.json:
            click.echo(redact(finite_json.dumps(data, indent=2, default=str)))
        else:
            human(self.console)


class _RedactingStream:
    """stdout for rich's tables: every write is redacted (a row could echo a URL with a SAS, or a setting)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(redact(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


# One error line stays readable: an SDK message (an XML body, a list of 500 tags) is cut here.
MAX_ERROR_CHARS = 600


def _fail(run: Run | None, message: str, status: int, **extra: Any) -> None:
    """One line on stderr; with --json also a JSON document on stdout; then exit with ``status``.

    The message is redacted (an SDK or HTTP error can echo a SAS URL, a connection string or a key that reached a
    header), collapsed to one line and cut at :data:`MAX_ERROR_CHARS`; CI logs are kept.
    """
    message = redact(" ".join(message.split()))
    if len(message) > MAX_ERROR_CHARS:
        message = message[: MAX_ERROR_CHARS - 1] + "…"
    click.echo(f"cvops: error: {message}", err=True)
    if run is not None and run.json:
        click.echo(finite_json.dumps({"ok": False, "error": message, "exit_code": status, **extra}, default=str))
    raise click.exceptions.Exit(status)


class Group(click.Group):
    """Turns cvops errors into one line and an exit code, for every subcommand."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CvopsError as e:
            run = ctx.find_object(Run)
            _fail(run, str(e), exit_code(e), **({"code": e.code} if getattr(e, "code", None) else {}))
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except Exception as e:
            # The user's environment (a wrong storage key, an unreachable account, a missing container, an
            # unwritable path) is mapped in one place, cvops.errors.from_exception; what is left is a bug.
            mapped = from_exception(e)
            if mapped is not None:
                _fail(ctx.find_object(Run), str(mapped), exit_code(mapped),
                      **({"code": mapped.code} if getattr(mapped, "code", None) else {}))
            if os.environ.get("CVOPS_DEBUG"):
                raise
            _fail(ctx.find_object(Run), f"internal error: {type(e).__name__}: {e} "
                                        "(set CVOPS_DEBUG=1 for the traceback and report it)", EXIT_BUG)


def common(needs_project: bool = True) -> Callable:
    """Options every command takes: --spec/--project (which project), --json, --env-file, --tier."""

    def decorate(f: Callable) -> Callable:
        @click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout instead of tables.")
        @click.option("--env-file", type=click.Path(dir_okay=False), default=None,
                      help="Read settings from this file (default: ./.env when it exists).")
        @click.option("--tier", type=click.Choice(["S0", "F0"], case_sensitive=False), default=None,
                      help="Pricing tier: sets the client-side call rates (env CVOPS_TIER, default S0).")
        @click.option("--spec", "spec_path", envvar=SPEC_ENV, type=click.Path(dir_okay=False), default=None,
                      help=f"Project spec (YAML). Env {SPEC_ENV}.")
        @click.option("--project", "project_ref", envvar=PROJECT_ENV, default=None, hidden=not needs_project,
                      help=f"Project name or id, instead of the spec's name. Env {PROJECT_ENV}.")
        @click.pass_context
        @functools.wraps(f)
        def wrapper(ctx: click.Context, as_json: bool, env_file: str | None, tier: str | None,
                    spec_path: str | None, project_ref: str | None, **kwargs: Any) -> Any:
            run = ctx.ensure_object(Run)
            run.json, run.env_file = as_json, env_file
            run.spec_path = spec_path or run.spec_path
            run.project_ref = project_ref
            if tier:
                run.overrides[config.TIER] = tier.upper()
            return f(run, **kwargs)

        return wrapper

    return decorate


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--training-endpoint", default=None, help=f"Overrides {config.TRAINING_ENDPOINT}.")
@click.option("--training-key", default=None, help=f"Overrides {config.TRAINING_KEY} (prefer the env variable).")
@click.option("--prediction-endpoint", default=None, help=f"Overrides {config.PREDICTION_ENDPOINT}.")
@click.option("--prediction-key", default=None, help=f"Overrides {config.PREDICTION_KEY} (prefer the env variable).")
@click.option("--prediction-resource-id", default=None, help=f"Overrides {config.PREDICTION_RESOURCE_ID}.")
@click.option("--storage-account-url", default=None, help=f"Overrides {config.STORAGE_ACCOUNT_URL}.")
@click.version_option(package_name="cvops")
@click.pass_context
def cli(ctx: click.Context, **flags: str | None) -> None:
    """Run image classification on Azure Custom Vision: declare, upload, train, evaluate, publish, predict.

    \b
    Settings (environment, ./.env, or the options here; options win):
      VISION_TRAINING_ENDPOINT, VISION_TRAINING_KEY, VISION_PREDICTION_ENDPOINT, VISION_PREDICTION_KEY,
      VISION_PREDICTION_RESOURCE_ID, AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT_URL
      (with your Azure identity / managed identity), CVOPS_TIER (S0 | F0).

    \b
    A release pipeline, from nothing:
      cvops project apply examples/scenes/project.yaml
      cvops images lint   --spec examples/scenes/project.yaml
      cvops images upload --spec examples/scenes/project.yaml
      cvops train         --spec examples/scenes/project.yaml --wait
      cvops evaluate      --spec examples/scenes/project.yaml --holdout az://holdout/scenes --report reports/
      cvops publish       --spec examples/scenes/project.yaml --min-map 0.9
      cvops predict       --spec examples/scenes/project.yaml photo.jpg

    \b
    Exit codes: 0 ok; 1 the operation failed (lint errors, refused images, training failed, gate not met);
    2 bad input or settings; 3 the service refused a request; 4 service unavailable or throttled (rerun later).
    """
    names = {"training_endpoint": config.TRAINING_ENDPOINT, "training_key": config.TRAINING_KEY,
             "prediction_endpoint": config.PREDICTION_ENDPOINT, "prediction_key": config.PREDICTION_KEY,
             "prediction_resource_id": config.PREDICTION_RESOURCE_ID,
             "storage_account_url": config.STORAGE_ACCOUNT_URL}
    install_log_redaction()  # the SDKs log request headers at DEBUG; this CLI's output must not carry a key either
    run = ctx.ensure_object(Run)
    run.overrides.update({names[k]: v for k, v in flags.items() if v})


def _table(console: Any, title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
    """A table whose every string is plain text: cells are data (tags, blob names, EXIF text), and Rich would read
    ``[link=...]`` or ``[/]`` in a plain ``str`` as markup."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(title) if title else None, title_justify="left", show_edge=False)
    for c in columns:
        table.add_column(Text(c), overflow="fold")
    for r in rows:
        table.add_row(*[Text(_cell(v)) for v in r])
    console.print(table)


def _cell(value: Any) -> str:
    from functions.naming import printable

    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return printable(str(value))


# project ----------------------------------------------------------------------------------------------------------
@cli.group(cls=Group)
def project() -> None:
    """Declare a project from a YAML spec."""


@project.command("apply")
@click.argument("spec_file", type=click.Path(dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@common(needs_project=False)
def project_apply(run: Run, spec_file: str, dry_run: bool) -> None:
    """Create what is missing and change what differs, from SPEC_FILE. Never duplicates a project or a tag,
    never deletes one; a change the service cannot make is refused with the reason.

    \b
    Examples:
      cvops project apply examples/scenes/project.yaml --dry-run
      cvops project apply examples/scenes/project.yaml --json
    """
    from pipelines.project import apply

    run.spec_path = spec_file
    spec = run.require_spec("the project")
    result = apply(run.service, spec, dry_run=dry_run)

    def human(console: Any) -> None:
        verb = "would" if dry_run else "did"
        if not result.changes:
            console.print(f"project {spec.name!r} matches the spec: nothing to change")
        for action in result.actions:
            console.print(f"{verb + ':' if action.kind != 'note' else ''} {action.describe()}".strip())
        if result.project_id:
            console.print(f"project id: {result.project_id}")

    run.emit({"ok": True, "dry_run": dry_run, **result.to_dict()}, human)


@project.command("backup")
@click.option("--out", required=True, help="The backup folder, or az://container/prefix (resumed if it exists).")
@click.option("--concurrency", type=click.IntRange(1, 32), default=8, show_default=True, help="Downloads at once.")
@common()
def project_backup(run: Run, out: str, concurrency: int) -> None:
    """Everything the project holds, into OUT: every image's original bytes with its tags, regions and metadata
    (manifest.jsonl, which `images upload` reads), the tags, every iteration with its performance, what is published
    (project.json). Reads only. A rerun resumes: it downloads only what is missing or damaged. Checked at the end
    against the service's counts and the files' SHA-256; a difference is named and the exit code is 1.

    \b
    Examples:
      cvops project backup --spec examples/scenes/project.yaml --out backups/scenes
      cvops project backup --project 0f3c... --out az://backups/scenes --json
    """
    from pipelines.backup import backup
    from pipelines.backup_folders import open_folder

    if not out.startswith("az://"):
        _writable_folder(out, "--out")
    spec = run.spec
    folder = open_folder(out, lambda: run.service.blob_service)
    report = backup(run.service, run.project_id(), folder, concurrency=concurrency,
                    threshold=spec.threshold if spec else 0.5, reporter=run.reporter)
    run.emit({"ok": report.ok, **report.to_dict()}, lambda c: c.print(
        f"backed up {report.project}: {report.images} images ({report.tagged} tagged, {report.untagged} untagged), "
        f"{report.tags} tags, {report.iterations} iterations into {out}; {report.downloaded} downloaded, "
        f"{report.already_there} already there; " + ("verified" if report.ok else "NOT verified")))
    if not report.ok:
        _fail(None, f"the backup in {out} differs from the service: " + "; ".join(report.mismatches[:10]), EXIT_FAILED)


@project.command("restore")
@click.option("--from", "from_dir", required=True,
              help="A folder (or az://container/prefix) `cvops project backup` wrote.")
@click.option("--name", default=None, help="The project's name on the target (default: the spec's, else the backup's).")
@click.option("--concurrency", type=click.IntRange(1, 32), default=8, show_default=True)
@common(needs_project=False)
def project_restore(run: Run, from_dir: str, name: str | None, concurrency: int) -> None:
    """Create the project and its tags on this endpoint (--spec: the target's name, domain and type) and upload the
    backup's images with their tags, 64 per call; a rerun adds nothing. Then the project's counts are compared with
    the manifest (a difference: exit 1). Training is left to `cvops train`.

    \b
    Examples:
      cvops project restore --from backups/scenes --spec examples/scenes/project.yaml
      cvops project restore --from backups/scenes --name scenes-copy --training-endpoint https://other...
    """
    from pipelines.backup_folders import open_folder
    from pipelines.restore import restore

    folder = open_folder(from_dir, lambda: run.service.blob_service)
    report = restore(run.service, folder, spec=run.spec, name=name, concurrency=concurrency,
                     reporter=run.reporter)
    up = report.upload
    run.emit({"ok": report.ok, **report.to_dict()}, lambda c: c.print(
        f"restored {report.images} images into {report.project} ({report.project_id}): {up.created} uploaded, "
        f"{up.skipped} already there, {len(up.failures)} failed; project counts {report.counts['tagged']} tagged, "
        f"{report.counts['untagged']} untagged"))
    if not report.ok:
        problems = [f"{f.path}: {f.reason}" for f in up.failures[:5]] + report.mismatches[:10]
        _fail(None, f"the restore into {report.project} is incomplete: " + "; ".join(problems), EXIT_FAILED)


@project.command("copy")
@click.option("--to-endpoint", envvar="CVOPS_TARGET_TRAINING_ENDPOINT", required=True,
              help="The target resource's training endpoint (env CVOPS_TARGET_TRAINING_ENDPOINT).")
@click.option("--to-key", envvar="CVOPS_TARGET_TRAINING_KEY", required=True,
              help="The target's training key (env CVOPS_TARGET_TRAINING_KEY; prefer the env variable).")
@click.option("--name", default=None, help="The copy's name (default: the source's).")
@click.option("--fallback", "fallback_dir", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="When the import fails or loses images: back up the source into DIR and restore it into the copy.")
@click.option("--timeout", type=FiniteFloatRange(min=1), default=1800, show_default=True,
              help="Seconds to wait for the import.")
@common()
def project_copy(run: Run, to_endpoint: str, to_key: str, name: str | None, fallback_dir: str | None,
                 timeout: float) -> None:
    """Copy the project to another resource with Custom Vision's ExportProject / ImportProject, wait, then compare
    the copy's image and tag counts with the source's. An import that fails or loses images is named (exit 1);
    with --fallback DIR the copy is completed by backup + restore and checked again.

    \b
    Examples:
      CVOPS_TARGET_TRAINING_KEY=... cvops project copy --spec examples/scenes/project.yaml \\
          --to-endpoint https://westeurope.api.cognitive.microsoft.com/
      cvops project copy --project scenes --to-endpoint https://... --fallback backups/scenes
    """
    from cvops.redaction import register_secret
    from pipelines.project_copy import copy_project
    from pipelines.service import Service

    register_secret(to_key)
    target = Service(config.Settings({config.TRAINING_ENDPOINT: to_endpoint, config.TRAINING_KEY: to_key,
                                      config.TIER: run.settings.tier}))
    report = copy_project(run.service, run.project_id(), target, name=name,
                          fallback_dir=Path(fallback_dir) if fallback_dir else None, timeout=timeout,
                          reporter=run.reporter)
    run.emit({"ok": report.ok, **report.to_dict()}, lambda c: c.print(
        f"copied {report.source_project} to {report.target_name} ({report.target_project_id}): import "
        f"{report.import_status}; {report.found['tagged']} tagged, {report.found['untagged']} untagged images"
        + (" (completed by backup + restore)" if report.fallback else "")))
    if not report.ok:
        hint = "" if fallback_dir else "; run again with --fallback DIR to complete it by backup + restore"
        _fail(None, f"the copy of {report.source_project} is incomplete: " + "; ".join(report.mismatches[:10]) + hint,
              EXIT_FAILED)


@cli.group(cls=Group)
def dataset() -> None:
    """Hand the labelled data to a successor (Azure ML AutoML for images)."""


@dataset.command("export")
@click.option("--format", "fmt", type=click.Choice(["automl"]), required=True, help="The successor's data format.")
@click.option("--from", "from_dir", required=True,
              help="A folder (or az://container/prefix) `cvops project backup` wrote.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Where to write train/ (and validation/).")
@click.option("--datastore", required=True, help="The Azure ML datastore the backup folder is uploaded to.")
@click.option("--prefix", default=None, help="The folder in the datastore holding the backup (default: its name).")
@click.option("--validation-fraction", type=FiniteFloatRange(0, 0.5, max_open=True), default=0.0, show_default=True,
              help="Keep this share of each label set for validation/ (0: train/ only).")
@common(needs_project=False)
def dataset_export(run: Run, fmt: str, from_dir: str, out: str, datastore: str, prefix: str | None,
                   validation_fraction: float) -> None:
    """AutoML for images' JSON Lines (image_url azureml://datastores/NAME/paths/..., image_details, label: a string
    for Multiclass, a list for Multilabel) and their MLTable, from a backup; untagged images are left out. What
    AutoML refuses (fewer than 10 images, a tag with no image, a GIF) is refused before anything is written.

    \b
    Examples:
      cvops dataset export --format automl --from backups/scenes --out automl/ --datastore workspaceblobstore
      azcopy copy backups/scenes "https://ACCOUNT.blob.core.windows.net/CONTAINER/" --recursive
    """
    from pipelines.automl_dataset import export_automl
    from pipelines.backup_folders import open_folder

    _writable_folder(out, "--out")
    data = export_automl(open_folder(from_dir, lambda: run.service.blob_service), Path(out), datastore=datastore, prefix=prefix,
                         validation_fraction=validation_fraction)
    run.emit({"ok": True, "format": fmt, **data}, lambda c: c.print(
        f"{data['images']} images ({data['task']}, {data['untagged_left_out']} untagged left out) written to "
        + ", ".join(f"{k} ({v['images']})" for k, v in data["written"].items())
        + f"; upload {from_dir} to datastore {datastore} at {data['prefix']}/"))


# images -----------------------------------------------------------------------------------------------------------
@cli.group(cls=Group)
def images() -> None:
    """Check and upload labelled images."""


def _source_spec(run: Run, source: str | None, container: str | None, prefix: str | None, *,
                 holdout: bool = False) -> SourceSpec:
    if container:
        if source:
            raise ConfigurationError("give either SOURCE or --container, not both", setting="--container")
        return SourceSpec("blob", container=container, prefix=(prefix or "").strip("/") + ("/" if prefix else ""))
    if source:
        return parse_source(source)
    spec = run.spec
    declared = (spec.holdout_source if holdout else spec.training_source) if spec else None
    if declared is None:
        which = "data.holdout" if holdout else "data.training"
        raise ConfigurationError(f"no image source given and the spec declares no {which}", setting="SOURCE",
                                 hint="pass az://container/prefix, a folder or a manifest (.csv/.jsonl), "
                                      f"or declare {which} in the spec")
    return declared


_SOURCE_HELP = ("SOURCE: az://container/prefix (Blob, one folder per tag), a local folder laid out the same way, or a "
                "manifest (.csv with columns path,tags or .jsonl with {\"path\", \"tags\"}); default: the spec's "
                "data.training.")


@images.command("lint", help=f"""Check a labelled set before uploading it: formats, sizes, dimensions, duplicates,
    tags, balance. Prints a table; exits 1 when there is an error. {_SOURCE_HELP}

    \b
    Examples:
      cvops images lint --spec examples/scenes/project.yaml
      cvops images lint ./data/scenes --json
      cvops images lint labels.csv --spec examples/multilabel/project.yaml
    """)
@click.argument("source", required=False)
@click.option("--container", default=None, help="Blob container (instead of SOURCE).")
@click.option("--prefix", default=None, help="Prefix inside --container.")
@click.option("--min-per-tag", type=click.IntRange(1), default=limits.MIN_IMAGES_PER_TAG, show_default=True,
              help=f"Fewer images of a tag is an error (the service needs {limits.MIN_IMAGES_PER_TAG} to train).")
@common()
def images_lint(run: Run, source: str | None, container: str | None, prefix: str | None, min_per_tag: int) -> None:
    from pipelines import lint

    src = run.source(_source_spec(run, source, container, prefix))
    with run.reporter.task(f"listing {src}"):
        listed = src.list()
    with run.reporter.task(f"reading {len(listed)} images", total=len(listed)) as task, \
            ThreadPoolExecutor(max_workers=8) as pool:
        infos = []
        for info in pool.map(lambda im: lint.inspect_image(im.location, src.read(im), list(im.tags)), listed):
            infos.append(info)
            task.advance()
    spec = run.spec
    classification = spec.classification_type if spec else (
        "Multilabel" if any(len(im.tags) > 1 for im in listed) else "Multiclass")
    recommended = max(min_per_tag, limits.RECOMMENDED_IMAGES_PER_TAG)
    findings = lint.lint(infos, classification_type=classification, min_per_tag=min_per_tag,
                         recommended_per_tag=recommended, expected_tags=list(spec.tag_names) if spec else None)
    errors = lint.has_errors(findings)
    data = {"ok": not errors, "source": str(src), "images": len(infos),
            "errors": sum(f.severity == "error" for f in findings),
            "warnings": sum(f.severity != "error" for f in findings),
            "findings": [{"severity": f.severity, "code": f.code, "subject": f.subject, "message": f.message}
                         for f in findings]}

    def human(console: Any) -> None:
        shown, hidden = lint.condense(findings)
        if findings:
            _table(console, None, ["severity", "code", "image / tag", "message"],
                   [[f.severity, f.code, f.subject, f.message] for f in shown]
                   + [["warning", code, f"… {n} more", "not shown; --json lists every finding"]
                      for code, n in hidden.items()])
        console.print(f"{len(infos)} images from {src}: {data['errors']} errors, {data['warnings']} warnings")

    run.emit(data, human)
    if errors:
        click.echo(f"cvops: error: {data['errors']} lint errors in {src}; fix them before uploading", err=True)
        raise click.exceptions.Exit(EXIT_FAILED)


@images.command("upload", help=f"""Upload a labelled set in batches of 64; from Blob by short-lived read-only SAS
    URLs, so image bytes never pass through this machine. OK and OKDuplicate count as success; every other outcome is
    listed with the image's path and reason, and the exit code is 1. A rerun uploads nothing twice: the source key of
    every uploaded image is kept in the project's image metadata. {_SOURCE_HELP}

    \b
    Examples:
      cvops images upload --spec examples/scenes/project.yaml
      cvops images upload az://training/scenes --spec examples/scenes/project.yaml --json
      cvops images upload labels.jsonl --project scenes-multilabel --via-bytes
    """)
@click.argument("source", required=False)
@click.option("--container", default=None, help="Blob container (instead of SOURCE).")
@click.option("--prefix", default=None, help="Prefix inside --container.")
@click.option("--via-bytes", is_flag=True,
              help="Download and send image bytes instead of SAS URLs (for storage the service cannot reach).")
@click.option("--augment", is_flag=True,
              help="Add flipped/rotated/re-lit variants of under-represented tags (marked in image metadata).")
@click.option("--concurrency", type=click.IntRange(1, 32), default=8, show_default=True,
              help="Batches in flight at once (the tier's rate still applies).")
@common()
def images_upload(run: Run, source: str | None, container: str | None, prefix: str | None, via_bytes: bool,
                  augment: bool, concurrency: int) -> None:
    from pipelines.upload import upload

    src = run.source(_source_spec(run, source, container, prefix))
    report = upload(run.service, src, run.project_id(), via_bytes=via_bytes, augment=augment,
                    concurrency=concurrency, reporter=run.reporter)

    def human(console: Any) -> None:
        if report.failures:
            _table(console, "images the service refused", ["image", "status", "reason"],
                   [[f.path, f.status, f.reason] for f in report.failures])
        console.print(
            f"{report.listed} images in {report.source} (+{report.augmented} variants): {report.created} uploaded, "
            f"{report.duplicates} duplicates, {report.skipped} already there, {len(report.failures)} failed; "
            f"{report.create_calls} create calls by {report.mode}, {report.image_bytes_sent} image bytes sent")
        if report.unrecorded:
            console.print(f"{report.unrecorded} uploaded images could not be marked as uploaded; the next run sends them "
                          "again and the service answers OKDuplicate")

    run.emit({"ok": report.ok, **report.to_dict()}, human)
    if not report.ok:
        click.echo(f"cvops: error: {len(report.failures)} of {report.listed + report.augmented} images were not "
                   f"uploaded (listed above); fix them and run again", err=True)
        raise click.exceptions.Exit(EXIT_FAILED)


# train ------------------------------------------------------------------------------------------------------------
def _perf_table(console: Any, perf: dict[str, Any], title: str) -> None:
    rows = [[t["tag"], t["precision"], t["recall"], t["average_precision"]] for t in perf["tags"]]
    rows.append(["(all)", perf["precision"], perf["recall"], perf["mean_average_precision"]])
    _table(console, f"{title} at threshold {perf['threshold']:g}", ["tag", "precision", "recall", "AP"], rows)


@cli.command("train")
@click.option("--advanced", is_flag=True, help="Advanced training (searches settings longer; uses a budget).")
@click.option("--budget-hours", type=click.IntRange(1, 96), default=None, help="Budget for --advanced.")
@click.option("--force", is_flag=True, help="Train even if nothing changed since the last iteration.")
@click.option("--wait", is_flag=True, help="Wait for Completed or Failed, showing progress.")
@click.option("--timeout", type=FiniteFloatRange(min=1), default=None,
              help="With --wait: give up waiting after this many seconds (the spec's training.timeout_seconds, else 3600).")
@common()
def train_cmd(run: Run, advanced: bool, budget_hours: int | None, force: bool, wait: bool,
              timeout: float | None) -> None:
    """Start training. With --wait, end on Completed (prints the metrics table) or Failed/timeout (exit 1).
    "Nothing new to train" is reported as such, with exit 0.

    \b
    Examples:
      cvops train --spec examples/scenes/project.yaml --wait
      cvops train --spec examples/scenes/project.yaml --advanced --budget-hours 2 --wait --timeout 9000
    """
    from pipelines.training import explain, train

    spec = run.spec
    training_type = "Advanced" if advanced else (spec.training_type if spec else "Regular")
    if budget_hours is not None and training_type != "Advanced":
        raise ConfigurationError("--budget-hours is only used by Advanced training", setting="--budget-hours",
                                 hint="add --advanced")
    budget = budget_hours or (spec.budget_hours if spec and spec.budget_hours else 1)
    project_id = run.project_id()
    try:
        result = train(run.service, project_id, training_type=training_type, budget_hours=budget, force=force,
                       wait=wait, timeout=timeout or (spec.training_timeout if spec else 3600.0),
                       threshold=spec.threshold if spec else 0.5, reporter=run.reporter)
    except CvopsError as e:
        raise explain(e) from None

    def human(console: Any) -> None:
        if result.outcome == "not_needed":
            console.print(f"nothing new to train since iteration {result.iteration_name} ({result.status})")
        elif result.outcome == "started":
            console.print(f"training started: iteration {result.iteration_name} ({result.iteration_id})")
        elif result.outcome == "completed":
            console.print(f"iteration {result.iteration_name} completed in {result.seconds:.0f} s")
            _perf_table(console, result.performance, f"{result.iteration_name}: service metrics")

    run.emit({"ok": result.ok, **result.to_dict()}, human)
    if not result.ok:
        click.echo(f"cvops: error: {result.error}", err=True)
        raise click.exceptions.Exit(EXIT_FAILED)


# evaluate ---------------------------------------------------------------------------------------------------------
@cli.command("evaluate")
@click.option("--iteration", "iteration_ref", default=None, help="Iteration id or name (default: newest Completed).")
@click.option("--threshold", type=FiniteFloatRange(0, 1), default=None,
              help="One threshold for every tag (default: the spec's per-tag thresholds, else 0.5).")
@click.option("--holdout", default=None, help="Held-out labelled images (same forms as upload SOURCE); default: "
                                              "the spec's data.holdout, if any.")
@click.option("--no-holdout", is_flag=True, help="Only the service's numbers, even if the spec declares a holdout.")
@click.option("--target-precision", type=FiniteFloatRange(0, 1, min_open=True), default=None,
              help="Recommend per-tag thresholds reaching this precision.")
@click.option("--target-recall", type=FiniteFloatRange(0, 1, min_open=True), default=None,
              help="Recommend per-tag thresholds reaching this recall.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False), default=None,
              help="Write evaluation.json, .md and .html (with plots) into this folder.")
@click.option("--concurrency", type=click.IntRange(1, 32), default=4, show_default=True)
@click.option("--model", "model_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Evaluate an exported ONNX model (cvops export) in this process on the holdout set, instead of "
                   "an iteration: same metrics and reports. Without --spec: Multiclass.")
@click.option("--model-contract", type=click.Choice(["custom-vision", "azureml-automl"]), default=None,
              help="With --model: its contract, when the files cannot say (both labels.txt and labels.json).")
@common()
def evaluate_cmd(run: Run, iteration_ref: str | None, threshold: float | None, holdout: str | None,
                 no_holdout: bool, target_precision: float | None, target_recall: float | None,
                 report_dir: str | None, concurrency: int, model_file: str | None, model_contract: str | None) -> None:
    """Precision, recall and AP per tag and mAP: the service's, and with a holdout set our own (from quick-test
    predictions, which work on unpublished iterations), plus a confusion matrix (Multiclass) and a threshold sweep.

    \b
    Examples:
      cvops evaluate --spec examples/scenes/project.yaml
      cvops evaluate --spec examples/scenes/project.yaml --holdout az://holdout/scenes --target-precision 0.9 \\
          --report reports/
    """
    from pipelines.evaluation import service_report

    if target_precision is not None and target_recall is not None:
        raise ConfigurationError("give --target-precision or --target-recall, not both", setting="--target-recall")
    if report_dir:
        _writable_folder(report_dir, "--report")  # before minutes of predictions, not after
    spec = run.spec
    if model_file:
        _evaluate_model(run, model_file, threshold=threshold, holdout=None if no_holdout else holdout,
                        target_precision=target_precision, target_recall=target_recall, report_dir=report_dir,
                        concurrency=concurrency, contract=model_contract)
        return
    project_id = run.project_id()
    result, tags, iteration = _evaluate_iteration(
        run, project_id, iteration_ref=iteration_ref, threshold=threshold, holdout=None if no_holdout else holdout,
        use_spec_holdout=not no_holdout, target_precision=target_precision, target_recall=target_recall,
        concurrency=concurrency)
    if report_dir:
        from pipelines.report import write_reports

        doc = result["holdout"] or service_report(result["service"], {t.name: t.image_count for t in tags})
        doc = {**doc, "project": spec.name if spec else project_id, "iteration": iteration.name}
        paths = write_reports(doc, Path(report_dir), title=f"{doc['project']}: {iteration.name}")
        result["reports"] = {k: str(v) for k, v in paths.items() if k in ("json", "markdown", "html")}

    def human(console: Any) -> None:
        _perf_table(console, result["service"], f"{iteration.name}: service metrics")
        _holdout_tables(console, result, iteration.name)

    run.emit({"ok": True, **result}, human)


def _evaluate_model(run: Run, model_file: str, *, threshold: float | None, holdout: str | None,
                    target_precision: float | None, target_recall: float | None, report_dir: str | None,
                    concurrency: int, contract: str | None = None) -> None:
    """`cvops evaluate --model`: the exported model on the holdout set, in this process; no service involved."""
    from pipelines.evaluation import evaluate_model

    spec = run.spec
    model = _load_model(model_file, classification=spec.classification_type if spec is not None else None,
                        contract=contract)
    if holdout:
        source = run.source(parse_source(holdout))
    elif spec and spec.holdout_source:
        source = run.source(spec.holdout_source)
    else:
        raise ConfigurationError("--model is evaluated on a holdout set, and none was given", setting="--holdout",
                                 hint="pass --holdout FOLDER|az://container/prefix (or declare data.holdout in the spec)")
    tag_names = list(model.labels)
    if spec:
        order = {n.casefold(): i for i, n in enumerate(spec.tag_names)}
        tag_names.sort(key=lambda n: (order.get(n.casefold(), len(order)), n))
    thresholds: float | dict[str, float] = (
        threshold if threshold is not None else ({n: spec.tag_threshold(n) for n in tag_names} if spec else 0.5))
    tp = target_precision if target_precision is not None else (spec.target_precision if spec else None)
    tr = target_recall if target_recall is not None else (spec.target_recall if spec else None)
    if tp is not None and tr is not None:
        tr = None if target_precision is not None else tr
        tp = None if target_recall is not None else tp
    multiclass = (spec.classification_type if spec else "Multiclass") != "Multilabel"
    result = evaluate_model(model, source, tag_names=tag_names, threshold=thresholds, multiclass=multiclass,
                            target_precision=tp, target_recall=tr, concurrency=min(concurrency, 2),
                            reporter=run.reporter)
    name = f"{Path(model_file).name} (sha256 {model.sha256[:12]})"
    if report_dir:
        from pipelines.report import write_reports

        doc = {**result["holdout"], "project": spec.name if spec else Path(model_file).stem, "iteration": name}
        paths = write_reports(doc, Path(report_dir), title=f"{doc['project']}: {name}")
        result["reports"] = {k: str(v) for k, v in paths.items() if k in ("json", "markdown", "html")}
    run.emit({"ok": True, **result}, lambda console: _holdout_tables(console, result, name))


def _holdout_tables(console: Any, result: dict[str, Any], name: str) -> None:
    """The holdout part of `cvops evaluate`'s report (service and --model paths alike)."""
    ev = result["holdout"]
    if ev:
        _table(console, f"{name}: holdout ({ev['n_images']} images from {ev['holdout_source']})",
               ["tag", "threshold", "precision", "recall", "AP", "support"],
               [[t["tag"], t["threshold"], t["precision"], t["recall"], t["average_precision"], t["support"]]
                for t in ev["tags"]])
        console.print(f"holdout mAP {ev['mean_average_precision']:.3f}, micro precision "
                      f"{ev['micro_precision']:.3f}, micro recall {ev['micro_recall']:.3f}"
                      + (f", accuracy {ev['accuracy']:.3f}" if ev.get("accuracy") is not None else ""))
        if ev.get("confusion_matrix") is not None:
            labels = ev["confusion_labels"]
            _table(console, "confusion (rows: true, columns: predicted)", ["", *labels],
                   [[labels[i], *row] for i, row in enumerate(ev["confusion_matrix"])])
        if ev.get("threshold_sweep"):
            _table(console, "recommended thresholds", ["tag", "threshold", "precision", "recall", "met"],
                   [[tag, s["recommended_threshold"], s["precision"], s["recall"], s["met"]]
                    for tag, s in ev["threshold_sweep"].items()])
    for kind, path in result.get("reports", {}).items():
        console.print(f"{kind} report: {path}")


def _evaluate_iteration(run: Run, project_id: str, *, iteration_ref: str | None, threshold: float | None,
                        holdout: str | None, use_spec_holdout: bool, target_precision: float | None,
                        target_recall: float | None, concurrency: int) -> tuple[dict[str, Any], list[Any], Any]:
    """What `cvops evaluate` measures, also for `cvops policy suggest` without --evaluation: (result, the project's
    tags, the iteration)."""
    from pipelines.evaluation import evaluate_iteration

    spec = run.spec
    service = run.service
    iteration = service.iteration(project_id, iteration_ref)
    tags = service.tags(project_id)
    tag_names = [t.name for t in tags]
    if spec:
        order = {n.casefold(): i for i, n in enumerate(spec.tag_names)}
        tag_names.sort(key=lambda n: (order.get(n.casefold(), len(order)), n))
    thresholds: float | dict[str, float] = (
        threshold if threshold is not None else
        ({n: spec.tag_threshold(n) for n in tag_names} if spec else 0.5))
    base = threshold if threshold is not None else (spec.threshold if spec else 0.5)
    holdout_src = None
    if holdout:
        holdout_src = run.source(parse_source(holdout))
    elif use_spec_holdout and spec and spec.holdout_source:
        holdout_src = run.source(spec.holdout_source)
    tp = target_precision if target_precision is not None else (spec.target_precision if spec else None)
    tr = target_recall if target_recall is not None else (spec.target_recall if spec else None)
    if tp is not None and tr is not None:
        tr = None if target_precision is not None else tr
        tp = None if target_recall is not None else tp
    multiclass = (spec.classification_type if spec else
                  service.training_call("get project", lambda c: c.get_project(project_id)).settings.classification_type
                  ) != "Multilabel"
    result = evaluate_iteration(service, project_id, iteration, tag_names=tag_names, threshold=thresholds,
                                service_threshold=base, multiclass=multiclass, holdout=holdout_src,
                                target_precision=tp, target_recall=tr, concurrency=concurrency, reporter=run.reporter)
    return result, tags, iteration


def _writable_folder(path: str, option: str) -> Path:
    """``path`` as a folder this user can write (created if missing), or a ConfigurationError naming ``option``."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigurationError(f"{option} {path}: cannot create the folder ({e.strerror or type(e).__name__})",
                                 setting=option, hint="choose a folder this user can write") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigurationError(f"{option} {path}: the folder is not writable", setting=option,
                                 hint="choose a folder this user can write")
    return folder


# publish ----------------------------------------------------------------------------------------------------------
@cli.command("publish")
@click.option("--iteration", "iteration_ref", default="latest", show_default=True, help="Iteration id, name or latest.")
@click.option("--name", "publish_name", default=None, help="Publish name (default: the spec's publish.name).")
@click.option("--min-precision", type=FiniteFloatRange(0, 1), default=None, help="Gate (default: the spec's gates).")
@click.option("--min-recall", type=FiniteFloatRange(0, 1), default=None, help="Gate.")
@click.option("--min-map", type=FiniteFloatRange(0, 1), default=None, help="Gate on mean average precision.")
@click.option("--threshold", type=FiniteFloatRange(0, 1), default=None,
              help="Threshold of the gated precision/recall (default: the spec's evaluation threshold, else 0.5).")
@click.option("--keep", type=click.IntRange(0, limits.MAX_ITERATIONS), default=None,
              help="Delete unpublished iterations beyond the newest K (default: the spec's publish.keep).")
@common()
def publish_cmd(run: Run, iteration_ref: str, publish_name: str | None, min_precision: float | None,
                min_recall: float | None, min_map: float | None, threshold: float | None, keep: int | None) -> None:
    """Publish an iteration behind metric gates; refuse (exit 1, with the numbers) when a gate fails. Moves the
    publish name off the previous iteration and prunes old unpublished iterations.

    \b
    Examples:
      cvops publish --spec examples/scenes/project.yaml
      cvops publish --spec examples/scenes/project.yaml --min-precision 0.9 --min-map 0.95 --keep 3
    """
    from pipelines.publishing import publish

    spec = run.spec
    name = publish_name or (spec.publish_name if spec else None)
    if not name:
        raise ConfigurationError("no publish name", setting="--name", hint="pass --name or set publish.name in the spec")
    gates = _gates(run, min_precision, min_recall, min_map)
    result = publish(run.service, run.project_id(), iteration_ref, publish_name=name, gates=gates,
                     threshold=threshold if threshold is not None else (spec.threshold if spec else 0.5),
                     keep=keep if keep is not None else (spec.keep if spec else None))

    def human(console: Any) -> None:
        for gate in result.gates:
            console.print(f"gate {gate.describe()}")
        if result.outcome == "already_published":
            console.print(f"{result.iteration_name} is already published as {name!r}: nothing to do")
        elif result.outcome == "published":
            moved = f" (moved from {result.unpublished})" if result.unpublished else ""
            console.print(f"published {result.iteration_name} as {name!r}{moved}")
        for deleted in result.deleted:
            console.print(f"deleted old iteration {deleted}")

    run.emit({"ok": result.ok, **result.to_dict()}, human)
    if not result.ok:
        failing = "; ".join(g.describe() for g in result.gates if not g.passed)
        click.echo(f"cvops: error: not publishing {result.iteration_name}: {failing}", err=True)
        raise click.exceptions.Exit(EXIT_FAILED)


# predict ----------------------------------------------------------------------------------------------------------
@cli.command("predict")
@click.argument("target")
@click.option("--threshold", type=FiniteFloatRange(0, 1), default=None,
              help="One threshold for every tag (default: the spec's per-tag thresholds, else 0.5).")
@click.option("--no-store", is_flag=True, help="Do not keep the image in the project's prediction history.")
@click.option("--name", "publish_name", default=None, help="Publish name (default: the spec's publish.name).")
@click.option("--policy", "policy_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Route with this policy file, as the Function App would (default: the spec's thresholds, no "
                   "review band). Its moderation bands apply when VISION_MODERATION_ENDPOINT is set (key: "
                   "VISION_MODERATION_KEY, or the signed-in identity; API: CVOPS_MODERATION_API).")
@click.option("--model", "model_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Classify in this process with an exported ONNX model (cvops export), as the Function App does "
                   "with CVOPS_MODEL: no prediction endpoint, no quota. Without --spec or --policy: Multiclass.")
@click.option("--model-contract", type=click.Choice(["custom-vision", "azureml-automl"]), default=None,
              help="With --model: its contract, when the files cannot say (both labels.txt and labels.json).")
@common()
def predict_cmd(run: Run, target: str, threshold: float | None, no_store: bool, publish_name: str | None,
                policy_file: str | None, model_file: str | None, model_contract: str | None) -> None:
    """Classify TARGET (a file, an http(s) URL or az://container/blob) with the published iteration and route it
    with the Function App's own decision: accepted, review or rejected, with the reasons and the passing tags.

    \b
    Examples:
      cvops predict --spec examples/scenes/project.yaml photo.jpg
      cvops predict --spec examples/scenes/project.yaml photo.jpg --policy policy.yaml
      cvops predict --spec examples/scenes/project.yaml az://incoming/2024/photo.jpg --no-store --json
      cvops predict --model model.zip photo.jpg --policy policy.yaml
    """
    from functions.policy import load_policy
    from pipelines.policy_suggest import spec_policy
    from pipelines.predicting import predict

    spec = run.spec
    if model_file:
        _predict_with_model(run, target, threshold=threshold, policy_file=policy_file, model_file=model_file,
                            contract=model_contract)
        return
    name = publish_name or (spec.publish_name if spec else None)
    if not name:
        raise ConfigurationError("no publish name", setting="--name", hint="pass --name or set publish.name in the spec")
    if policy_file and threshold is not None:
        raise ConfigurationError("give --policy or --threshold, not both", setting="--threshold",
                                 hint="a policy file holds each tag's threshold")
    project_id = run.project_id()
    moderate = None
    if policy_file:
        moderation = _moderation_settings(run)
        policy = load_policy(str(Path(policy_file).resolve()), Path.cwd(), setting="--policy",
                             moderation_api=moderation[0] if moderation else None)
        if moderation and policy.uses_moderation:
            from pipelines.predicting import moderator

            moderate = moderator(*moderation)
    else:
        policy = spec_policy(spec, threshold=threshold, classification_type=None if spec else
                             run.service.project(project_id).classification_type)
    result = predict(run.service, project_id, name, target, store=not no_store, policy=policy, moderate=moderate)
    _emit_prediction(run, f"{target} ({name})", result, policy)


def _moderation_settings(run: Run) -> tuple[str, str, str] | None:
    """(API, endpoint, key) for `cvops predict --policy` when VISION_MODERATION_ENDPOINT is set, as the app reads them."""
    endpoint = run.settings.get(config.MODERATION_ENDPOINT)
    if not endpoint:
        return None
    api = (run.settings.get(config.MODERATION_API) or "computer-vision").lower()
    key = run.settings.require(config.MODERATION_KEY) if run.settings.get(config.MODERATION_KEY) else ""
    return api, endpoint, key


def _emit_prediction(run: Run, title: str, result: dict[str, Any], policy: Any) -> None:
    """One report for `cvops predict`, by the service or by an exported model: the scores table, the decision."""

    def human(console: Any) -> None:
        _table(console, title, ["tag", "probability", "threshold", "passes"],
               [[r["tag"], r["probability"], r["threshold"], r["passes"]] for r in result["predictions"]])
        console.print(f"{result['outcome']} (policy {policy.version}): "
                      + "; ".join(r["message"] for r in result["reasons"]))
        console.print("passing: " + (", ".join(result["passing"]) or "none"))

    run.emit({"ok": True, **result}, human)


def _predict_with_model(run: Run, target: str, *, threshold: float | None, policy_file: str | None,
                        model_file: str, contract: str | None = None) -> None:
    """`cvops predict --model`: the exported model in this process, the same policy and the same report."""
    from functions.policy import load_policy
    from pipelines.policy_suggest import spec_policy
    from pipelines.predicting import predict_with_model

    if policy_file and threshold is not None:
        raise ConfigurationError("give --policy or --threshold, not both", setting="--threshold",
                                 hint="a policy file holds each tag's threshold")
    if policy_file:
        policy = load_policy(str(Path(policy_file).resolve()), Path.cwd(), setting="--policy")
    else:
        policy = spec_policy(run.spec, threshold=threshold)
    model = _load_model(model_file, classification=policy.classification_type, contract=contract)
    result = predict_with_model(
        model, target, policy=policy,
        read_blob=lambda c, n: run.service.blob_service.get_blob_client(c, n).download_blob().readall())
    _emit_prediction(run, f"{target} ({Path(model_file).name}, sha256 {model.sha256[:12]})", result, policy)


# policy -----------------------------------------------------------------------------------------------------------
@cli.group(cls=Group)
def policy() -> None:
    """Routing policies for the Function App, from measured numbers."""


@policy.command("suggest")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Where to write the policy (YAML).")
@click.option("--evaluation", "evaluation_file", type=click.Path(dir_okay=False), default=None,
              help="The JSON of `cvops evaluate --json`, or the evaluation.json of `cvops evaluate --report` "
                   "(default: evaluate now, as cvops evaluate does).")
@click.option("--target-precision", type=FiniteFloatRange(0, 1, min_open=True), default=None,
              help="Per tag, the threshold finding the most images at this precision (default: the spec's "
                   "evaluation.target_precision or target_recall, else its gates.min_precision or min_recall).")
@click.option("--target-recall", type=FiniteFloatRange(0, 1, min_open=True), default=None,
              help="Per tag, the highest threshold reaching this recall.")
@click.option("--review-band", type=FiniteFloatRange(0, 1), default=None,
              help="A review band of this width under every threshold (default: the policy's own, review_band "
                   "in functions/policy.schema.json).")
@click.option("--review-precision", type=FiniteFloatRange(0, 1, min_open=True), default=None,
              help="With a precision target: the band reaches down to where precision falls to this.")
@click.option("--review-recall", type=FiniteFloatRange(0, 1, min_open=True), default=None,
              help="With a recall target: the band reaches down to where recall rises to this.")
@click.option("--no-tag-passes", type=click.Choice(["review", "rejected"]), default="review", show_default=True,
              help="Where an image goes when no tag reaches its threshold or band.")
@click.option("--moderation-from", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Copy the moderation bands of this policy file (e.g. policy.yaml).")
@click.option("--moderation-reviews", type=click.Path(exists=True, dir_okay=False), default=None,
              help="With --moderation-from: move the copied bands' limits where people's reviews support it (the "
                   "JSON of `cvops review stats --json`).")
@click.option("--policy-version", default=None, help="The policy's version (default: <project>-<iteration>).")
@click.option("--iteration", "iteration_ref", default=None,
              help="Without --evaluation: iteration id or name (default: newest Completed).")
@click.option("--holdout", default=None, help="Without --evaluation: held-out labelled images (default: the spec's "
                                              "data.holdout; with none, the service's numbers every 0.05).")
@click.option("--concurrency", type=click.IntRange(1, 32), default=4, show_default=True)
@common()
def policy_suggest(run: Run, out: str, evaluation_file: str | None, target_precision: float | None,
                   target_recall: float | None, review_band: float | None, review_precision: float | None,
                   review_recall: float | None, no_tag_passes: str, moderation_from: str | None,
                   moderation_reviews: str | None, policy_version: str | None, iteration_ref: str | None, holdout: str | None,
                   concurrency: int) -> None:
    """Write a routing policy for the spec's tags from an evaluation: per tag, the threshold that meets a target
    precision or recall, a review band under it, and the numbers behind each in comments. The file is validated
    against functions/policy.schema.json. A target not met is said in the file and on stderr (exit 0).

    \b
    Examples:
      cvops policy suggest --spec examples/scenes/project.yaml --out policy.yaml
      cvops evaluate --spec examples/scenes/project.yaml --json > eval.json
      cvops policy suggest --spec examples/scenes/project.yaml --evaluation eval.json \\
          --target-precision 0.95 --review-precision 0.8 --no-tag-passes rejected --out policy.yaml
    """
    from functions.policy import load_policy
    from pipelines import policy_suggest as ps

    spec = run.require_spec("the tags and their thresholds")
    target = ps.target_from(spec, precision=target_precision, recall=target_recall)
    review = ps.review_from(target, width=review_band, precision=review_precision, recall=review_recall)
    moderation = (load_policy(str(Path(moderation_from).resolve()), Path.cwd(), setting="--moderation-from")
                  if moderation_from else None)
    reviews = ps.read_moderation_reviews(moderation_reviews, moderation_from) if moderation_reviews else None
    if evaluation_file:
        evidence = ps.read_evaluation(evaluation_file)
    else:
        evidence = _measure_for_policy(run, iteration_ref=iteration_ref, holdout=holdout, concurrency=concurrency)
    suggestion = ps.suggest(spec, evidence, target, review, no_tag_passes=no_tag_passes,  # type: ignore[arg-type]
                            version=policy_version, moderation=moderation, moderation_reviews=reviews)
    Path(out).write_text(suggestion.text, encoding="utf-8")
    for line in suggestion.warnings():
        click.echo(f"cvops: warning: {line}", err=True)

    def human(console: Any) -> None:
        for c in suggestion.choices:
            measured = c.measured(c.at) if c.at else "not measured"
            verdict = "met" if c.met else ("NOT met" if c.at else "spec threshold")
            console.print(f"{c.tag}: threshold {c.threshold:g}, review band {c.review_band:g}; {measured}; {verdict}")
        for note in suggestion.moderation_notes:
            console.print(f"moderation {note}", markup=False, highlight=False)
        console.print(f"wrote {out} (version {suggestion.policy['version']}; target {target.describe()}, "
                      f"measured on {suggestion.source})")

    run.emit({"ok": True, "out": out, "policy": suggestion.policy, "source": suggestion.source,
              "target": {"metric": target.metric, "value": target.value, "from": target.origin},
              "tags": [c.to_dict() for c in suggestion.choices]}, human)


def _measure_for_policy(run: Run, *, iteration_ref: str | None, holdout: str | None, concurrency: int) -> Any:
    """`cvops evaluate`'s numbers for `policy suggest`: the holdout curve when there is a holdout set, else the
    service's numbers at every 0.05 (one threshold says little about where precision falls)."""
    from pipelines import policy_suggest as ps
    from pipelines.training import performance

    project_id = run.project_id()
    result, tags, iteration = _evaluate_iteration(
        run, project_id, iteration_ref=iteration_ref, threshold=None, holdout=holdout, use_spec_holdout=True,
        target_precision=None, target_recall=None, concurrency=concurrency)
    project = run.spec.name if run.spec else project_id
    if result["holdout"]:
        return ps.evidence_from({**result["holdout"], "iteration": iteration.name, "project": project})
    measured = [result["service"], *(performance(run.service, project_id, iteration.id, t) for t in ps.SERVICE_SWEEP
                                     if t != result["service"]["threshold"])]
    return ps.service_evidence(measured, {t.name: t.image_count for t in tags}, iteration=iteration.name)

# status / export --------------------------------------------------------------------------------------------------
@cli.command("status")
@common()
def status_cmd(run: Run) -> None:
    """The project, its tags with image counts, its iterations with status and metrics, and what is published.

    \b
    Examples:
      cvops status --spec examples/scenes/project.yaml
      cvops status --project scenes --json
    """
    from pipelines.inventory import status

    spec = run.spec
    data = status(run.service, run.project_id(), threshold=spec.threshold if spec else 0.5)

    def human(console: Any) -> None:
        p = data["project"]
        console.print(f"project {p['name']} ({p['id']}): {p['classification_type']}, {p['domain']}, "
                      f"{data['images']} images")
        _table(console, "tags", ["tag", "images"], [[t["name"], t["images"]] for t in data["tags"]])
        _table(console, "iterations", ["name", "status", "type", "precision", "recall", "mAP", "published as"],
               [[i["name"], i["status"], i["training_type"], i.get("precision"), i.get("recall"), i.get("map"),
                 i["publish_name"]] for i in data["iterations"]])

    run.emit({"ok": True, **data}, human)


@cli.command("export")
@click.option("--platform", type=click.Choice(["ONNX", "TensorFlow", "DockerFile", "CoreML"]), required=True)
@click.option("--flavor", default=None, help="e.g. Linux/Windows/ARM (DockerFile), TensorFlowLite/TensorFlowJs.")
@click.option("--out", type=click.Path(dir_okay=False, writable=True), required=True, help="Where to save the model.")
@click.option("--iteration", "iteration_ref", default="latest", show_default=True)
@click.option("--timeout", type=FiniteFloatRange(min=1), default=600, show_default=True)
@common()
def export_cmd(run: Run, platform: str, flavor: str | None, out: str, iteration_ref: str, timeout: float) -> None:
    """Export an iteration trained on a compact domain, wait for it, and download it (with a progress bar). An ONNX
    export is then loaded with the runner `predict --model`, `evaluate --model` and the Function App's CVOPS_MODEL
    use, so a file they could not interpret is named now, not when it is deployed.

    \b
    Examples:
      cvops export --spec examples/scenes/project.yaml --platform ONNX --out model.zip
      cvops export --project scenes --platform DockerFile --flavor Linux --out model.zip
    """
    from pipelines.inventory import export

    _writable_folder(str(Path(out).parent), "--out")  # before the export runs, not after it is downloaded
    project_id = run.project_id()
    iteration = run.service.iteration(project_id, iteration_ref)
    data = export(run.service, project_id, iteration, platform=platform, flavor=flavor, out=Path(out),
                  timeout=timeout, reporter=run.reporter)
    if platform == "ONNX":
        model = _load_model(out, "--out")
        data["model"] = {**model.describe(), "input_size": model.size}

    def human(console: Any) -> None:
        console.print(f"exported {data['iteration']} ({platform}{', ' + flavor if flavor else ''}) to "
                      f"{Path(out).resolve()} ({data['bytes']:,} bytes)")
        if "model" in data:
            console.print(f"loads with the runner: {len(data['model']['labels'])} tags, input "
                          f"{data['model']['input_size']}x{data['model']['input_size']}, sha256 "
                          f"{data['model']['sha256']}")

    run.emit({"ok": True, **data}, human)


def _load_model(path: str, option: str = "--model", *, classification: str | None = None,
                contract: str | None = None) -> Any:
    """An exported model (Custom Vision's or Azure ML AutoML's, recognised from the files, or ``contract``), or a
    ConfigurationError naming ``option`` and what the runner found. ``classification``: the policy's or spec's project
    type (a Multiclass model must answer probabilities summing to 1; a Multilabel AutoML model's logits take sigmoid)."""
    from functions.exported_model import ModelRefused
    from functions.model_loader import load_model

    try:
        return load_model(path, classification=classification, contract=contract)
    except ModelRefused as e:
        raise ConfigurationError(f"{option} {path}: {e}", setting=option,
                                 hint="give a Custom Vision ONNX export (cvops export --platform ONNX) or an Azure ML "
                                      "AutoML ONNX export (a zip, or model.onnx with labels.json beside it)") from None


# wired to other modules (their owners implement them) -------------------------------------------------------------
@cli.group(cls=Group)
def function() -> None:
    """The routing Function App."""


@function.command("run-local")
@click.option("--settings", "settings_file", type=click.Path(dir_okay=False), default="local.settings.json",
              show_default=True, help="The Function App's local settings (Values are put in the environment).")
@click.option("--once", is_flag=True, help="One pass over the incoming container and the backlog queue, then stop.")
@click.option("--concurrency", type=click.IntRange(1, 32), default=None,
              help="Parallel deliveries (default: as the Python worker, capped by host.json).")
@common(needs_project=False)
def function_run_local(run: Run, settings_file: str, once: bool, concurrency: int | None) -> None:
    """Run the Function App's handlers locally, as the Functions host would (which cannot be installed here):
    new blobs in the incoming container and backlog queue messages go to the registered functions.

    \b
    Examples:
      cvops function run-local --once
      cvops function run-local --settings local.settings.json   # until Ctrl-C
    """
    import threading
    from pathlib import Path as _Path

    from pipelines import run_local

    settings = run_local.load_local_settings(_Path(settings_file)) if _Path(settings_file).is_file() else None
    stop = threading.Event()
    try:
        stats = run_local.run_local(settings=settings, stop_event=stop, once=once, concurrency=concurrency)
    except KeyboardInterrupt:
        stop.set()
        raise click.exceptions.Exit(130) from None
    data = stats.to_dict()
    run.emit(data, lambda c: c.print(", ".join(f"{k}: {v}" for k, v in data.items())))
    if not stats.ok:  # by how each blob ended: a failure a later retry fixed is counted, not fatal
        raise click.exceptions.Exit(EXIT_FAILED)


@cli.command("classify-backlog")
@click.option("--container", envvar="CVOPS_INCOMING_CONTAINER", default="incoming", show_default=True,
              help="The Function App's incoming container, whose existing blobs are queued (env CVOPS_INCOMING_CONTAINER);"
                   " the app refuses messages naming any other container.")
@click.option("--prefix", default=None, help="Only blobs under this prefix.")
@click.option("--queue", "queue_name", envvar="CVOPS_BACKLOG_QUEUE", default="cvops-backlog", show_default=True,
              help="Backlog queue the Function App listens on (env CVOPS_BACKLOG_QUEUE).")
@click.option("--limit", type=click.IntRange(1), default=None, help="Stop after this many blobs (a trial run).")
@click.option("--concurrency", type=click.IntRange(1, 64), default=8, show_default=True)
@common(needs_project=False)
def classify_backlog(run: Run, container: str, prefix: str | None, queue_name: str, limit: int | None,
                     concurrency: int) -> None:
    """Queue existing blobs for the Function App (Event Grid only reports new ones): one message per blob.

    \b
    Examples:
      cvops classify-backlog --container incoming --prefix 2024/ --limit 100
      cvops classify-backlog --container incoming --json
    """
    from cvops.clients import queue_service_client
    from functions.naming import Location
    from pipelines import backlog

    Location.parse(container, "--container")  # a bad name is the user's typo, not the service's 400
    incoming = Location.parse(os.environ.get("CVOPS_INCOMING_CONTAINER", "incoming"), "CVOPS_INCOMING_CONTAINER").container
    if container != incoming:
        # The app routes only its incoming container's blobs (functions.backlog_message.refusal): queueing another
        # container's would only fill the results with refusals.
        raise ConfigurationError(
            f"--container {container!r} is not the Function App's incoming container {incoming!r}: the app routes only "
            "blobs of its incoming container", setting="--container",
            hint="copy the blobs into the incoming container (azcopy), or set CVOPS_INCOMING_CONTAINER as the app has it")
    backlog.check_queue_name(queue_name)
    queue = backlog.backlog_queue_client(queue_service_client(**run.settings.queue_storage()), queue_name)
    with run.reporter.task(f"queueing blobs of {container}/{prefix or ''}") as task:
        result = backlog.enqueue_backlog(run.service.blob_service, queue, container, prefix, concurrency=concurrency,
                                         limit=limit, progress=lambda n: task.describe(f"queued {n} blobs"))
    run.emit({"ok": True, "container": container, "prefix": prefix, "queue": queue_name,
              "listed": result.listed, "enqueued": result.enqueued},
             lambda c: c.print(f"queued {result.enqueued} of {result.listed} blobs from {container}/{prefix or ''} "
                               f"on {queue_name}"))


def _gates(run: Run, min_precision: float | None, min_recall: float | None, min_map: float | None) -> Any:
    """The publish gates: each option given, else the spec's."""
    from pipelines.spec import Gates

    declared = run.spec.gates if run.spec else Gates()
    return Gates(min_precision if min_precision is not None else declared.min_precision,
                 min_recall if min_recall is not None else declared.min_recall,
                 min_map if min_map is not None else declared.min_map)


# retrain ----------------------------------------------------------------------------------------------------------
@cli.command("retrain")
@click.option("--since", default=None, help="Review decisions from this date or time (default: an hour before the "
                                            "last trained iteration started).")
@click.option("--holdout", default=None, help="Held-out labelled images (default: the spec's data.holdout).")
@click.option("--margin", type=FiniteFloatRange(0, 1), default=0.01, show_default=True,
              help="How much worse than the champion the challenger may be on holdout mAP, micro precision and micro "
                   "recall.")
@click.option("--min-precision", type=FiniteFloatRange(0, 1), default=None, help="Gate (default: the spec's gates).")
@click.option("--min-recall", type=FiniteFloatRange(0, 1), default=None, help="Gate.")
@click.option("--min-map", type=FiniteFloatRange(0, 1), default=None, help="Gate on mean average precision.")
@click.option("--state", "state_dir", type=click.Path(file_okay=False), default=None,
              help="Where the reviewed manifest and the exported model go (default: .cvops/retrain/<project>).")
@click.option("--report", "report_dir", type=click.Path(file_okay=False), default=None,
              help="Write retrain.json and retrain.md (before/after per tag) here.")
@click.option("--no-reviews", is_flag=True, help="Train on what the project holds; read no review decisions.")
@click.option("--no-export", is_flag=True, help="Do not export the published challenger.")
@click.option("--timeout", type=FiniteFloatRange(min=1), default=None,
              help="Seconds to wait for training (default: the spec's training.timeout_seconds or 3600).")
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@common()
def retrain_cmd(run: Run, since: str | None, holdout: str | None, margin: float, min_precision: float | None,
                min_recall: float | None, min_map: float | None, state_dir: str | None, report_dir: str | None,
                no_reviews: bool, no_export: bool, timeout: float | None, dry_run: bool) -> None:
    """Review export, upload, train, evaluate the new iteration and the published one on the same holdout, publish
    only if the challenger is not worse than the champion beyond --margin and passes the gates, export a compact
    model. Resumable: a rerun after a kill at any step continues and never trains twice on the same data. Exit 0
    published (or nothing new), 1 kept the champion (with the numbers).

    \b
    Examples:
      cvops retrain --spec examples/scenes/project.yaml --dry-run
      cvops retrain --spec examples/scenes/project.yaml --report reports/retrain --json
    """
    from pipelines import retrain
    from pipelines.inventory import export
    from pipelines.publishing import publish
    from pipelines.review import commands
    from pipelines.upload import upload

    spec = run.require_spec("retrain")
    service, project_id = run.service, run.project_id()
    if not spec.publish_name:
        raise ConfigurationError("the spec has no publish.name", setting="publish.name",
                                 hint="retrain publishes under the spec's publish.name: set it")
    holdout_text = holdout or (None if spec.holdout_source is None else "spec")
    retrain.require_holdout(holdout_text)
    start = commands.parse_since(since) if since else retrain.since_default(service, project_id)
    state = _writable_folder(state_dir or str(Path(".cvops") / "retrain" / spec.name), "--state")
    review = None if no_reviews else commands.open_review(run.settings)
    gates = _gates(run, min_precision, min_recall, min_map)

    def export_reviews(when: Any, out: Path) -> dict[str, Any]:
        from datetime import UTC, datetime

        summary, _ = commands.export(*review, since=when or datetime.min.replace(tzinfo=UTC),  # type: ignore[misc]
                                     out=str(out))
        return {"images": summary["images"], "manifest": str(out)}

    def on_holdout(iteration: Any) -> dict[str, Any]:
        result, _, _ = _evaluate_iteration(run, project_id, iteration_ref=iteration.id, threshold=None,
                                           holdout=holdout, use_spec_holdout=True, target_precision=None,
                                           target_recall=None, concurrency=4)
        return result["holdout"]

    plan = retrain.Plan(
        service=service, project_id=project_id, publish_name=spec.publish_name, since=start, state_dir=state,
        export_reviews=None if review is None else export_reviews,
        upload=lambda manifest: upload(service, run.source(parse_source(str(manifest))), project_id,
                                       reporter=run.reporter).to_dict(),
        evaluate=on_holdout,
        publish=lambda it: publish(service, project_id, it.id, publish_name=spec.publish_name, gates=gates,
                                   threshold=spec.threshold, keep=spec.keep),
        export_model=None if no_export else (lambda it, out: export(service, project_id, it, platform="ONNX",
                                                                    flavor=None, out=out, reporter=run.reporter)),
        margins=retrain.Margins(margin, margin, margin), training_type=spec.training_type,
        budget_hours=spec.budget_hours or 0, timeout=timeout or spec.training_timeout,
        threshold=spec.threshold)
    if dry_run:
        from pipelines.review import decisions

        count = None if review is None else len(decisions.list_decisions(*review, since=start))
        result = retrain.dry_run(plan, decisions_since=count)
    else:
        result = retrain.run(plan)
    data = {"ok": result.ok, "project": spec.name, **result.to_dict()}
    if report_dir:
        folder = _writable_folder(report_dir, "--report")
        (folder / "retrain.json").write_text(finite_json.dumps(data, indent=2, default=str) + "\n",
                                             encoding="utf-8")
        (folder / "retrain.md").write_text(retrain.markdown(result, spec.name), encoding="utf-8")
        data["reports"] = {"json": str(folder / "retrain.json"), "markdown": str(folder / "retrain.md")}

    def human(console: Any) -> None:
        for step in result.steps:
            facts = ", ".join(f"{k} {v}" for k, v in step.items() if k != "step" and v is not None)
            console.print(f"{step['step']}: {facts}", markup=False)
        for comparison in result.comparisons:
            console.print(comparison.describe(), markup=False)
        console.print(f"outcome: {result.outcome.replace('_', ' ')}", markup=False)

    run.emit(data, human)
    if not result.ok:
        failing = "; ".join(c.describe() for c in result.comparisons if not c.passed) or "a gate failed"
        click.echo(f"cvops: error: kept the champion: {failing}", err=True)
        raise click.exceptions.Exit(EXIT_FAILED)


# monitor ----------------------------------------------------------------------------------------------------------
@cli.command("monitor")
@click.option("--since", default=None, help="Window start (YYYY-MM-DD or ISO 8601, UTC); default: 28 days before --until.")
@click.option("--until", default=None, help="Window end (a date includes that day); default: now.")
@click.option("--every", type=click.Choice(["day", "week"]), default="day", show_default=True, help="Period length.")
@click.option("--baseline", default=None, metavar="START..END",
              help="Baseline window of records (dates, END included); default: as long as the window, just before it.")
@click.option("--by", type=click.Choice(["prefix", "camera", "tag"]), default="prefix", show_default=True,
              help="Slices: the blob name's first folders, the EXIF camera, or the model's top tag.")
@click.option("--depth", type=click.IntRange(1, 16), default=1, show_default=True, help="Folders per --by prefix slice.")
@click.option("--rules", "rules_file", type=click.Path(dir_okay=False), default=None,
              help="YAML with psi_above, min_images, review_share_ratio, review_share_increase, agreement_below, min_reviews.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False), default=None,
              help="Write monitor.json, monitor.md and monitor.html (with plots) here.")
@common(needs_project=False)
def monitor_cmd(run: Run, since: str | None, until: str | None, every: str, baseline: str | None, by: str, depth: int,
                rules_file: str | None, report_dir: str | None) -> None:
    """Model health over time from the Function App's result records and people's review decisions: per period and
    slice, volume, outcome and tag shares, top scores, the review share, review agreement, and drift against a
    baseline (PSI on top scores and image statistics). Exit 1 when a rule is crossed, naming rule, slice and numbers.

    \b
    Examples:
      cvops monitor --since 2026-11-01 --every week --by camera --report reports/monitor
      cvops monitor --baseline 2026-10-01..2026-10-31 --rules monitor-rules.yaml --json
    """
    from datetime import UTC, datetime

    from functions.naming import printable
    from pipelines import monitor_io
    from pipelines.review import commands, decisions

    window = monitor_io.parse_window(since, until, now=datetime.now(UTC))
    base = monitor_io.parse_baseline(baseline, window)
    rules = monitor_io.load_rules(rules_file)
    blob_service, review_config = commands.open_review(run.settings)
    found = decisions.list_decisions(blob_service, review_config, since=window.since)
    result = monitor_io.monitor(blob_service, review_config.results, window=window, baseline=base, every=every, by=by,
                                depth=depth, rules=rules, decisions=found)
    paths = {}
    if report_dir:
        from pipelines.monitor_report import write_monitor_reports

        paths = write_monitor_reports(result, _writable_folder(report_dir, "--report"))
        result = {**result, "reports": {k: str(v) for k, v in paths.items() if k in ("json", "markdown", "html")}}

    def human(console: Any) -> None:
        periods = result["periods"]
        _table(console, f"{result['records']} records in {len(periods)} period(s), by {by}; baseline "
                        f"{result['baseline']['images']} images", ["period", "slice", "images", "review share",
                                                                   "agreement", "worst PSI"],
               [[p["period"], r["slice"], r["images"], r["review_share"], r["agreement"],
                 max((d["psi"] for d in r["drift"].values() if d.get("psi") is not None), default=None)]
                for p in periods for r in p["slices"]])
        for finding in result["findings"]:
            console.print(f"{finding['rule']}: {printable(finding['message'])}", markup=False)
        if not result["findings"]:
            console.print("no rule crossed", markup=False)
        if "html" in paths:
            console.print(f"report: {paths['html']}", markup=False)

    run.emit(result, human)
    if result["findings"]:
        raise click.exceptions.Exit(EXIT_FAILED)


# review -----------------------------------------------------------------------------------------------------------
@cli.group(cls=Group)
def review() -> None:
    """Human review of the Function App's review band: decide, export decisions for training, threshold stats."""


@review.command("export")
@click.option("--since", required=True, help="Decisions made from this date (YYYY-MM-DD, UTC) or ISO 8601 time.")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Write the manifest here (.jsonl, or .csv when every tag fits); default: stdout.")
@common(needs_project=False)
def review_export(run: Run, since: str, out: str | None) -> None:
    """A manifest of the images people decided, with their tags (JSON Lines or CSV of az:// paths, as
    `images upload` reads); rejected images are left out and counted. Interrupted moves are finished first.

    \b
    Examples:
      cvops review export --since 2026-11-01 --out reviewed.jsonl
      cvops images upload --source reviewed.jsonl --spec project.yaml && cvops train --spec project.yaml --wait
    """
    from functions.naming import printable
    from pipelines.review import commands

    summary, text = commands.export(*commands.open_review(run.settings), since=commands.parse_since(since), out=out)
    if out is None:
        click.echo(text, nl=False)
        click.echo(finite_json.dumps(summary, default=str) if run.json else "\n".join([
            f"{summary['images']} reviewed images, {summary['rejected_left_out']} rejected left out",
            *commands.malformed_lines(summary)]), err=True)
        return

    def human(console: Any) -> None:
        console.print(f"{summary['images']} reviewed images written to {printable(out)} "
                      f"({summary['rejected_left_out']} rejected left out)", markup=False, highlight=False)
        for line in commands.malformed_lines(summary):
            console.print(line, markup=False, highlight=False)

    run.emit({"ok": True, **summary}, human)


@review.command("stats")
@click.option("--since", default=None, help="Only decisions from this date (YYYY-MM-DD, UTC) or ISO 8601 time.")
@click.option("--target", type=FiniteFloatRange(0.5, 1.0), default=0.95, show_default=True,
              help="Agreement the suggested threshold must keep (precision, with people as the truth).")
@click.option("--min-support", type=click.IntRange(1), default=10, show_default=True,
              help="Reviews at or above a score before it may become a threshold.")
@click.option("--policy", "policy_file", type=click.Path(dir_okay=False), default=None,
              help="The routing policy in force (its thresholds; default: the ones the records state).")
@common(needs_project=False)
def review_stats(run: Run, since: str | None, target: float, min_support: int, policy_file: str | None) -> None:
    """Per tag, how often people agreed with the model's tag in the review band, and how far the accept threshold
    could move down at the target agreement (the rule `evaluate` and `policy suggest` use).

    \b
    Examples:
      cvops review stats
      cvops review stats --policy policy.yaml --target 0.98 --json
    """
    from functions.naming import printable
    from pipelines.review import commands

    report = commands.stats_report(*commands.open_review(run.settings),
                                   since=commands.parse_since(since) if since else None, target=target,
                                   min_support=min_support, policy_file=policy_file)

    def human(console: Any) -> None:
        _table(console, f"{report['decisions']} decisions, {report['agreed_with_top_tag']} agreed with the model's "
                        "top tag", ["tag", "reviewed", "agreed", "rejected", "other tag", "agreement", "threshold",
                                    "could be"],
               [[t["tag"], t["reviewed"], t["agreed"], t["rejected"], t["other_tag"], t["agreement"], t["threshold"],
                 t["suggested"]] for t in report["tags"]])
        for t in report["tags"]:
            console.print(f"{printable(str(t['tag']))}: {t['note']}", markup=False, highlight=False)
        for band in report.get("moderation", []):
            console.print(f"moderation {printable(str(band['name']))}: {band['note']}", markup=False, highlight=False)
        for line in commands.malformed_lines(report):
            console.print(line, markup=False, highlight=False)

    run.emit({"ok": True, **report}, human)


@review.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback needs --allow-remote (and then a token).")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="0 picks a free port.")
@click.option("--reviewer", default=None, help="Your name on every decision (default: the OS user).")
@click.option("--allow-remote", is_flag=True,
              help="Allow a non-loopback --host; every request must then carry the token. Give --tls-cert and "
                   "--tls-key so the token and the images cross the network encrypted (an SSH tunnel to loopback "
                   "needs neither).")
@click.option("--token", envvar="CVOPS_REVIEW_TOKEN", default=None,
              help="The page's access token (env CVOPS_REVIEW_TOKEN; with --allow-remote and none given, one is generated "
                   "and printed once). A chosen one needs at least 128 bits, e.g. 22 characters mixing lower- and "
                   "uppercase letters and digits; wrong tokens slow further tries from the same address.")
@click.option("--tls-cert", envvar="CVOPS_REVIEW_TLS_CERT", default=None, metavar="PEM",
              help="Serve HTTPS with this certificate (chain), PEM (env CVOPS_REVIEW_TLS_CERT); needs --tls-key.")
@click.option("--tls-key", envvar="CVOPS_REVIEW_TLS_KEY", default=None, metavar="PEM",
              help="The certificate's unencrypted private key, PEM (env CVOPS_REVIEW_TLS_KEY).")
@common(needs_project=False)
def review_serve(run: Run, host: str, port: int, reviewer: str | None, allow_remote: bool, token: str | None,
                 tls_cert: str | None, tls_key: str | None) -> None:
    """The review page: each image the Function App sent to review, its scores, the policy's reason, when it arrived
    and which model judged it; pick a tag (keys 1-9 or the tag's initial), reject (x) or skip (s). Storage comes from
    the CLI's settings, the containers from the app's (CVOPS_REVIEW_CONTAINER, CVOPS_ACCEPTED_CONTAINER, ...).

    \b
    Examples:
      cvops review serve                                   # http://127.0.0.1:8765/, until Ctrl-C
      cvops review serve --reviewer alice --port 9000
      cvops review serve --host 0.0.0.0 --allow-remote --tls-cert cert.pem --tls-key key.pem
    """
    from pipelines.review import commands, web

    options = web.listen_options(host, port, reviewer=reviewer, token=token, allow_remote=allow_remote,
                                 tls_cert=tls_cert, tls_key=tls_key)
    page = web.start(*commands.open_review(run.settings), options)
    web.log_requests()
    address = page.url + (f"?token={options.token}" if options.generated_token else "")
    click.echo(f"review page: {address} (reviewing as {options.reviewer}; Ctrl-C stops)")
    if options.generated_token:
        click.echo("the token above is printed only now; every request must carry it", err=True)
    if options.remote and not options.tls:
        click.echo("warning: plain HTTP: the token and the images cross the network unencrypted; pass --tls-cert "
                   "and --tls-key, or reach the page through an SSH tunnel to loopback", err=True)
    try:
        page.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        page.server.server_close()


def main() -> None:
    cli(prog_name="cvops")
