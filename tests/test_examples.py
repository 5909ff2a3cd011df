"""The scenario playbooks in examples/ cannot rot: every example spec and policy loads with the project's own loaders
(pipelines.spec, functions.policy), each playbook says what its scenario promises (retail: Multiclass at 0.8 with a
review band; medical: Multilabel at 0.3, never rejected), and the first block of each README, the offline checks a
pull request runs, is run as written against the local Custom Vision service and Azurite over a small generated set.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from devkit import scenes
from functions.policy import load_policy
from pipelines import spec as spec_module
from pipelines.cli import cli

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
PLAYBOOKS = ("retail", "medical")
SIZE = (256, 192)


def _specs() -> list[Path]:
    return sorted(EXAMPLES.glob("*/project.yaml"))


def _policies() -> list[Path]:
    return sorted(EXAMPLES.glob("*/policy.yaml"))


def readme_blocks(name: str) -> list[list[str]]:
    """The commands of each ```sh block of examples/<name>/README.md (crontab lines are not commands: skipped)."""
    text = (EXAMPLES / name / "README.md").read_text(encoding="utf-8")
    blocks = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        lines = [line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]
        blocks.append([line for line in lines if not re.match(r"^[\d*]", line)])
    return blocks


def test_every_example_spec_loads_with_the_spec_loader():
    assert len(_specs()) >= 4
    for path in _specs():
        loaded = spec_module.load(path)
        assert loaded.name and loaded.tag_names, path


def test_every_example_policy_loads_with_the_apps_policy_loader():
    assert {p.parent.name for p in _policies()} >= set(PLAYBOOKS)
    for path in _policies():
        policy = load_policy(path.name, path.parent)
        assert policy.version, path


def test_the_retail_playbook_is_multiclass_at_0_8_with_a_review_band_and_augmentation():
    spec = spec_module.load(EXAMPLES / "retail" / "project.yaml")
    policy = load_policy("policy.yaml", EXAMPLES / "retail")
    assert spec.classification_type == "Multiclass" and policy.classification_type == "multiclass"
    assert policy.default_threshold == 0.8 and policy.review_band > 0
    assert spec.threshold == 0.8
    commands = [c for block in readme_blocks("retail") for c in block]
    assert any(c.startswith("cvops images upload") and "--augment" in c.split() for c in commands)


def test_the_medical_playbook_is_multilabel_at_0_3_retrains_and_monitors_by_camera():
    spec = spec_module.load(EXAMPLES / "medical" / "project.yaml")
    policy = load_policy("policy.yaml", EXAMPLES / "medical")
    assert spec.classification_type == "Multilabel" and policy.classification_type == "multilabel"
    assert policy.default_threshold == 0.3 and spec.threshold == 0.3 and policy.no_tag_passes == "review"
    commands = [c for block in readme_blocks("medical") for c in block]
    assert any(c.startswith("cvops retrain --spec examples/medical/project.yaml") for c in commands)
    assert any(c.startswith("cvops monitor") and "--by camera" in c for c in commands)


def test_every_readme_command_is_a_cvops_command_that_exists():
    """Each cvops line's command path resolves in the CLI and its options parse (--help short-circuits the run)."""
    for name in PLAYBOOKS:
        for block in readme_blocks(name):
            for line in block:
                argv = shlex.split(line)
                if argv[0] != "cvops":
                    continue
                words = [a for a in argv[1:] if not a.startswith("-")][:2]
                result = CliRunner().invoke(cli, [*words, "--help"])
                assert result.exit_code == 0, f"{name}: {line!r}: {result.output}"
                options = {a.split("=")[0] for a in argv[1:] if a.startswith("--")}
                for option in options:
                    assert option in result.output, f"{name}: {line!r}: no option {option}"


def _put_training_set(blob_service, name: str) -> int:
    """A small generated set where the playbook's spec expects it (the scenes' pictures under the scenario's tags)."""
    loaded = spec_module.load(EXAMPLES / name / "project.yaml")
    source = loaded.training_source
    assert source is not None and source.kind in ("blob", "manifest"), source
    tags = list(loaded.tag_names)
    if source.kind == "blob":
        container_name, prefix = source.container, source.prefix
    else:  # az://<container>/<folder>/labels.csv: the images beside the manifest, listed relative to it
        container_name, _, path = source.path.removeprefix("az://").partition("/")
        prefix = path.rpartition("/")[0] + "/"
        assert path == f"{prefix}labels.csv", source.path
    container = blob_service.get_container_client(container_name)
    if not container.exists():
        container.create_container()
    for old in list(container.list_blobs(name_starts_with=prefix)):
        container.delete_blob(old.name)
    pictures = scenes.dataset(scenes.CLASSES[:len(tags)], 6, seed=7, size=SIZE)
    by_class = dict(zip(scenes.CLASSES, tags, strict=False))
    if loaded.classification_type == "Multiclass":
        for item in pictures:
            container.upload_blob(f"{prefix}{by_class[item.labels[0]]}/{item.name}", item.data, overwrite=True)
        return len(pictures)
    lines = ["path,tags"]
    for i, item in enumerate(pictures):
        found = [by_class[item.labels[0]], *([tags[(tags.index(by_class[item.labels[0]]) + 1) % len(tags)]]
                                             if i % 3 == 0 else [])]
        container.upload_blob(f"{prefix}img/{item.name}", item.data, overwrite=True)
        lines.append(f"img/{item.name},{';'.join(found)}")
    container.upload_blob(f"{prefix}labels.csv", "\n".join(lines) + "\n", overwrite=True)
    return len(pictures)


@pytest.mark.emulator
@pytest.mark.azurite
@pytest.mark.parametrize("name", PLAYBOOKS)
def test_the_readmes_first_block_runs_as_written_against_the_local_service(name, local_cv, azurite, blob_service,
                                                                          training_client, monkeypatch):
    monkeypatch.chdir(ROOT)  # the README's paths are relative to the repository root
    images = _put_training_set(blob_service, name)
    env = {
        "VISION_TRAINING_ENDPOINT": local_cv.endpoint, "VISION_TRAINING_KEY": local_cv.training_key,
        "VISION_PREDICTION_ENDPOINT": local_cv.endpoint, "VISION_PREDICTION_KEY": local_cv.prediction_key,
        "VISION_PREDICTION_RESOURCE_ID": local_cv.prediction_resource_id,
        "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string, "AZURE_STORAGE_ACCOUNT_URL": "",
        "CVOPS_SPEC": "", "CVOPS_PROJECT": "", "CVOPS_TIER": "",
    }
    first = readme_blocks(name)[0]
    assert [shlex.split(c)[1:3] for c in first] == [["project", "apply"], ["images", "lint"]], first
    outputs = {}
    for line in first:
        argv = shlex.split(line)
        assert argv[0] == "cvops"
        result = CliRunner().invoke(cli, [*argv[1:], "--json"], env=env, catch_exceptions=False)
        assert result.exit_code == 0, f"{line}: {result.stderr}"
        outputs[argv[2]] = json.loads(result.stdout)
    spec = spec_module.load(EXAMPLES / name / "project.yaml")
    plan = outputs["apply"]["changes"]
    assert [c["action"] for c in plan] == ["create_project"] + ["create_tag"] * len(spec.tag_names)
    assert not any(p.name == spec.name for p in training_client.get_projects()), "--dry-run created the project"
    assert (outputs["lint"]["images"], outputs["lint"]["errors"]) == (images, 0), outputs["lint"]["findings"]
