"""The CI templates in examples/ci/ are files teams copy unchanged, so they are checked as code.

Two checks, each able to fail:

- every workflow validates against the schema its CI publishes (check-jsonschema's built-in GitHub Actions and Azure
  Pipelines schemas, from the tool's own pinned venv that ``scripts/ci-schemas.sh`` builds);
- every step marked ``CVOPS_OFFLINE_STEP: "1"`` in the pull-request templates is run, as written in the YAML, by bash
  in a folder laid out as the template expects (a spec, a labelled sample, a holdout, an exported model and a team's
  own test file), against the local Custom Vision service from the test fixtures. The team's test step starts
  Azurite and a local service of its own through the cvops pytest plugin, as it would on the CI runner. A misspelt
  command or option in a template exits non-zero here.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.onnx_exports import build_zip

ROOT = Path(__file__).resolve().parent.parent
CI = ROOT / "examples" / "ci"
GITHUB = sorted((CI / "github").glob("*.yml"))
AZURE = sorted((CI / "azure-pipelines").glob("*.yml"))
CHECK_JSONSCHEMA = ROOT / ".venv-ci-schemas" / "bin" / "check-jsonschema"
OFFLINE_MARK = "CVOPS_OFFLINE_STEP"
# The offline steps each pull-request template must hold (GitHub step ids, Azure step names): if one is dropped or
# loses its mark, the test says so instead of running fewer commands.
EXPECTED_OFFLINE = {"github": ["lint", "plan", "evaluate", "team-tests"],
                    "azure-pipelines": ["lint", "plan", "evaluate", "team_tests"]}
LABELS = ("red", "green", "blue")  # tests/onnx_exports.py's model: the dominant input channel wins


def schema_arguments(path: Path) -> list[str]:
    """check-jsonschema's arguments for one template (the same as scripts/ci-schemas.sh passes)."""
    if path.parent.name == "github":
        return ["--builtin-schema", "vendor.github-workflows"]
    return ["--builtin-schema", "vendor.azure-pipelines", "--data-transform", "azure-pipelines",
            "--regex-variant", "python"]


def test_ci_template_folders_hold_three_workflows_each():
    names = ["monitor.yml", "pull-request.yml", "retrain.yml"]
    assert [p.name for p in GITHUB] == names
    assert [p.name for p in AZURE] == names


@pytest.mark.parametrize("path", GITHUB + AZURE, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_ci_template_validates_against_its_ci_schema(path: Path):
    if not CHECK_JSONSCHEMA.exists():
        pytest.skip("check-jsonschema is not installed: run `bash scripts/ci-schemas.sh` (make test does) first")
    done = subprocess.run([str(CHECK_JSONSCHEMA), *schema_arguments(path), str(path)],
                          capture_output=True, text=True, timeout=120)
    # check-jsonschema prints the whole document before the best match; its last lines name the field.
    assert done.returncode == 0, (
        f"{path.relative_to(ROOT)} is not a valid workflow:\n{(done.stdout + done.stderr)[-3000:]}")


def pull_request_steps(kind: str) -> tuple[dict[str, str], list[tuple[str, str, dict[str, str]]]]:
    """(the workflow's own environment, [(step id, bash script, step env)]) for the shell steps of a pull-request
    template (GitHub: ``id`` and ``run``; Azure Pipelines: ``name`` and ``bash``)."""
    data = yaml.safe_load((CI / kind / "pull-request.yml").read_text(encoding="utf-8"))
    if kind == "github":
        env = {k: str(v) for k, v in (data.get("env") or {}).items()}
        steps: list[dict[str, Any]] = []
        for job in data["jobs"].values():
            env.update({k: str(v) for k, v in (job.get("env") or {}).items()})
            steps += job["steps"]
        key, name = "run", "id"
    else:
        env = {k: str(v) for k, v in (data.get("variables") or {}).items()}
        steps, key, name = data["steps"], "bash", "name"
    return env, [(str(s.get(name)), s[key], {k: str(v) for k, v in (s.get("env") or {}).items()})
                 for s in steps if key in s]


def offline_steps(kind: str) -> tuple[dict[str, str], list[tuple[str, str, dict[str, str]]]]:
    """The steps marked ``CVOPS_OFFLINE_STEP: "1"``, in order."""
    env, steps = pull_request_steps(kind)
    return env, [step for step in steps if step[2].get(OFFLINE_MARK) == "1"]


def image(dominant: int, rng: random.Random) -> bytes:
    """A 256 x 256 PNG of noise with one channel dominant: distinct bytes for every image (lint finds no duplicate)."""
    import io

    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(rng.randrange(2**32)).integers(0, 60, size=(256, 256, 3), dtype=np.uint8)
    pixels[..., dominant] += 180
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, "PNG")
    return buffer.getvalue()


TEAM_TEST = '''
"""A team's own test, as it would sit in its repository: the cvops plugin's fixtures, nothing imported from cvops."""


def test_our_project_is_created_on_the_local_service(cvops_training_client):
    project = cvops_training_client.create_project("team-ci-check")
    assert project.id in [p.id for p in cvops_training_client.get_projects()]


def test_our_records_land_in_blob_storage(cvops_blob_service):
    container = cvops_blob_service.create_container("team-records")
    container.upload_blob("2026/12/07/record.json", b"{}")
    assert [b.name for b in container.list_blobs()] == ["2026/12/07/record.json"]
'''


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """A team's checkout as the pull-request templates expect it (their env block's defaults)."""
    rng = random.Random(20)
    spec = {"project": {"name": "ci-template-check", "classification_type": "Multiclass",
                        "domain": "General (compact)"},
            "tags": [{"name": label} for label in LABELS],
            "publish": {"name": "ci-template-check"},
            "data": {"holdout": {"folder": "cvops/holdout"}}}
    (tmp_path / "cvops").mkdir()
    (tmp_path / "cvops" / "project.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    for folder, count in (("sample", 6), ("holdout", 4)):
        for channel, label in enumerate(LABELS):
            tag_dir = tmp_path / "cvops" / folder / label
            tag_dir.mkdir(parents=True)
            for n in range(count):
                (tag_dir / f"{label}-{n}.png").write_bytes(image(channel, rng))
    (tmp_path / "cvops" / "model.zip").write_bytes(build_zip(LABELS))
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_team.py").write_text(TEAM_TEST, encoding="utf-8")
    # What the template's `npm install azurite` step leaves behind.
    (tmp_path / "node_modules").symlink_to(ROOT / "node_modules", target_is_directory=True)
    return tmp_path


def run_step(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-eo", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def step_environment(workflow_env: dict[str, str], step_env: dict[str, str], local_cv) -> dict[str, str]:
    """The runner's environment: this interpreter's bin first (cvops, python with the plugin), the workflow's and the
    step's env, then the endpoint and keys of the fixture's local service instead of the template's port 5080."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VISION_", "AZURE_", "CVOPS_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(workflow_env)
    env.update(step_env)
    env.update({"VISION_TRAINING_ENDPOINT": local_cv.endpoint, "VISION_TRAINING_KEY": local_cv.training_key,
                "VISION_PREDICTION_ENDPOINT": local_cv.endpoint, "VISION_PREDICTION_KEY": local_cv.prediction_key})
    return env


@pytest.mark.slow
@pytest.mark.emulator
@pytest.mark.azurite
@pytest.mark.parametrize("kind", sorted(EXPECTED_OFFLINE))
def test_pull_request_template_offline_steps_pass_as_written(kind: str, repository: Path, local_cv):
    if not (ROOT / "node_modules" / ".bin").is_dir():
        pytest.fail("node_modules/.bin is missing: run `npm ci` (make setup does) so the team's tests find Azurite")
    workflow_env, steps = offline_steps(kind)
    assert [step_id for step_id, _, _ in steps] == EXPECTED_OFFLINE[kind]
    for step_id, script, step_env in steps:
        assert "${{" not in script, (
            f"{kind} step {step_id!r} uses an expression this test cannot run; offline steps use env variables only")
        done = run_step(script, repository, step_environment(workflow_env, step_env, local_cv))
        assert done.returncode == 0, (
            f"{kind}/pull-request.yml step {step_id!r} exited {done.returncode}:\n{script}\n"
            f"--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}")
    report = repository / "reports" / "evaluate"
    assert {"evaluation.json", "evaluation.md"} <= {p.name for p in report.iterdir()}
    shutil.rmtree(repository / "reports")


def test_a_misspelt_option_in_an_offline_step_fails_the_run(repository: Path, local_cv):
    workflow_env, steps = offline_steps("github")
    _, script, step_env = next(s for s in steps if s[0] == "plan")
    done = run_step(script.replace("--dry-run", "--dry-runn"), repository,
                    step_environment(workflow_env, step_env, local_cv))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--dry-runn" in done.stderr


@pytest.mark.parametrize("kind", sorted(EXPECTED_OFFLINE))
def test_pull_request_template_starts_the_local_service_it_points_at(kind: str, tmp_path: Path):
    """The one step the offline steps rely on that the fixtures replace above: run as written, on a free port."""
    import requests

    from devkit.local_services import free_port

    workflow_env, steps = pull_request_steps(kind)
    _, script, step_env = next(s for s in steps if s[0] in ("local-service", "local_service"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VISION_", "AZURE_", "CVOPS_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update({**workflow_env, **step_env, "CVOPS_LOCAL_PORT": str(port),
                "VISION_TRAINING_ENDPOINT": f"http://127.0.0.1:{port}"})
    done = run_step(script, tmp_path, env)
    pid_file = tmp_path / "reports" / "local-custom-vision.pid"
    try:
        assert done.returncode == 0, done.stdout + done.stderr
        answer = requests.get(f"http://127.0.0.1:{port}/customvision/v3.3/training/domains",
                              headers={"Training-Key": workflow_env["VISION_TRAINING_KEY"]}, timeout=10)
        assert answer.status_code == 200 and any(d["name"] == "General (compact)" for d in answer.json())
    finally:
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGTERM)


def workflow_step(path: Path, step_id: str) -> tuple[dict[str, str], str]:
    """(the workflow's env or variables, the bash script) of one step: a GitHub ``run`` by ``id``, or an Azure
    Pipelines ``bash`` step or ``AzureCLI@2`` inline script by ``name``."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if path.parent.name == "github":
        env = {k: str(v) for k, v in (data.get("env") or {}).items()}
        step = next(s for job in data["jobs"].values() for s in job["steps"] if s.get("id") == step_id)
        return env, step["run"]
    env = {k: str(v) for k, v in (data.get("variables") or {}).items()}
    step = next(s for s in data["steps"] if s.get("name") == step_id)
    return env, step.get("bash") or step["inputs"]["inlineScript"]


def runner_environment(workflow_env: dict[str, str], **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VISION_", "AZURE_", "CVOPS_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **workflow_env, **settings}


@pytest.fixture(scope="module")
def empty_records_account(tmp_path_factory) -> Iterator[Any]:
    """An Azurite of its own with an empty results container: the session's Azurite holds other tests' records,
    which could cross a monitor rule."""
    from azure.storage.blob import BlobServiceClient

    from devkit.local_services import start_azurite

    service = start_azurite(log_dir=tmp_path_factory.mktemp("ci-azurite-log"))
    try:
        BlobServiceClient.from_connection_string(service.connection_string).create_container("results")
        yield service
    finally:
        service.stop()


@pytest.mark.azurite
@pytest.mark.parametrize("path", [CI / "github" / "monitor.yml", CI / "azure-pipelines" / "monitor.yml"],
                         ids=lambda p: p.parent.name)
def test_monitor_template_command_runs_and_writes_its_report(path: Path, tmp_path: Path, empty_records_account):
    """The monitor step as written, on Azurite in place of the records' account (after sign-in the runner has
    AZURE_STORAGE_ACCOUNT_URL and a token; here a connection string): no records, no rule crossed, exit 0, and the
    report the summary and artifact steps pick up. REPORT_DIR stands in for Azure's $(Build...) macro."""
    workflow_env, script = workflow_step(path, "monitor")
    env = runner_environment(workflow_env, REPORT_DIR=str(tmp_path / "reports" / "monitor"),
                             AZURE_STORAGE_CONNECTION_STRING=empty_records_account.connection_string,
                             AZURE_STORAGE_ACCOUNT_URL="")
    done = run_step(script, tmp_path, env)
    assert done.returncode == 0, f"{path.relative_to(ROOT)}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert {"monitor.json", "monitor.md", "monitor.html"} <= {p.name for p in (tmp_path / "reports" / "monitor").iterdir()}
    assert "no rule crossed" in done.stdout


@pytest.mark.emulator
@pytest.mark.azurite
def test_github_retrain_step_runs_as_written_in_dry_run(repository: Path, local_cv, empty_records_account):
    """GitHub's retrain step after sign-in (the endpoint, key and prediction resource id in its env, as the step
    before writes them to GITHUB_ENV), dispatched with dry_run: the command line parses, the plan is JSON on stdout in
    the artifact folder, and the exit code branch leaves the step green. The Azure Pipelines retrain script reads the
    key with `az`, which these tests do not have; its cvops line is the same."""
    project = subprocess.run(["cvops", "project", "apply", "cvops/project.yaml"], cwd=repository, capture_output=True,
                             text=True, timeout=120,
                             env=runner_environment({}, VISION_TRAINING_ENDPOINT=local_cv.endpoint,
                                                    VISION_TRAINING_KEY=local_cv.training_key))
    assert project.returncode == 0, project.stderr
    workflow_env, script = workflow_step(CI / "github" / "retrain.yml", "retrain")
    outputs = repository / "github-output.txt"
    env = runner_environment(workflow_env, SINCE="", DRY_RUN="true", GITHUB_OUTPUT=str(outputs),
                             VISION_TRAINING_ENDPOINT=local_cv.endpoint, VISION_TRAINING_KEY=local_cv.training_key,
                             VISION_PREDICTION_RESOURCE_ID=local_cv.prediction_resource_id,
                             AZURE_STORAGE_CONNECTION_STRING=empty_records_account.connection_string,
                             AZURE_STORAGE_ACCOUNT_URL="")
    done = run_step(script, repository, env)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert outputs.read_text() == "exit-code=0\n"
    plan = json.loads((repository / "reports" / "retrain" / "retrain-output.json").read_text())
    assert (plan["ok"], plan["outcome"], plan["project"]) == (True, "planned", "ci-template-check")
    assert (repository / "reports" / "retrain" / "retrain.md").is_file()  # what the summary step cats


@pytest.mark.emulator
def test_github_retrain_step_reports_a_failing_exit_code_instead_of_dying_at_it(repository: Path, local_cv,
                                                                                empty_records_account):
    """Under bash -e (GitHub's default shell) the step must still reach its exit-code branch: a spec without
    publish.name is exit 2, written to the step's outputs and failing the step, with the JSON error in the artifact."""
    spec = yaml.safe_load((repository / "cvops" / "project.yaml").read_text(encoding="utf-8"))
    del spec["publish"]
    (repository / "cvops" / "project.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    workflow_env, script = workflow_step(CI / "github" / "retrain.yml", "retrain")
    outputs = repository / "github-output.txt"
    env = runner_environment(workflow_env, SINCE="", DRY_RUN="true", GITHUB_OUTPUT=str(outputs),
                             VISION_TRAINING_ENDPOINT=local_cv.endpoint, VISION_TRAINING_KEY=local_cv.training_key,
                             AZURE_STORAGE_CONNECTION_STRING=empty_records_account.connection_string,
                             AZURE_STORAGE_ACCOUNT_URL="")
    done = run_step(script, repository, env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert outputs.exists(), "the step died at cvops's exit code before its case branch (bash -e; is set +e there?)"
    assert outputs.read_text() == "exit-code=2\n"
    assert "::error title=cvops retrain failed::exit 2" in done.stdout
    error = json.loads((repository / "reports" / "retrain" / "retrain-output.json").read_text())
    assert error["ok"] is False and "publish.name" in error["error"]
