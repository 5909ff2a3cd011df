"""scripts/browser.sh, which `make test` runs before pytest: nothing when the browser is there, Debian's package when
it is missing and apt-get can install it (root), one line and no failure otherwise. apt-get is a recording stand-in."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "browser.sh"
BASH = shutil.which("bash") or "/bin/bash"


def _run(tmp_path: Path, apt_get: str | None) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    chromium, calls, bin_dir = tmp_path / "chromium", tmp_path / "apt-calls.log", tmp_path / "bin"
    bin_dir.mkdir()
    if apt_get is not None:
        fake = bin_dir / "apt-get"
        fake.write_text(f'#!{BASH}\nprintf "%s\\n" "$*" >> "{calls}"\n{apt_get}\n', encoding="utf-8")
        fake.chmod(0o755)
    for tool in ("bash", "id", "mktemp", "rm", "tail", "touch", "chmod"):  # PATH is this folder alone: no real apt-get
        (bin_dir / tool).symlink_to(shutil.which(tool))
    path = str(bin_dir)
    result = subprocess.run([BASH, str(SCRIPT)], capture_output=True, text=True, timeout=60, check=False,
                            env={"PATH": path, "HOME": str(tmp_path), "CVOPS_CHROMIUM": str(chromium)})
    return result, chromium, calls


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the install branch runs only as root")


def test_nothing_happens_when_chromium_is_there(tmp_path):
    (tmp_path / "chromium").write_text("#!/bin/sh\n")
    (tmp_path / "chromium").chmod(0o755)
    result, _, calls = _run(tmp_path, apt_get="exit 0")
    assert result.returncode == 0 and result.stderr == "" and not calls.exists()


@needs_root
def test_a_missing_chromium_is_installed_quietly_with_apt_get(tmp_path):
    chromium = tmp_path / "chromium"
    result, _, calls = _run(tmp_path, apt_get=f'[ "$1" = install ] && printf "#!/bin/sh\\n" > "{chromium}" && '
                                              f'chmod +x "{chromium}"; exit 0')
    assert result.returncode == 0, result.stderr
    assert calls.read_text().splitlines() == ["install -y -qq --no-install-recommends chromium"]
    assert chromium.exists() and result.stderr.count("\n") == 1


@needs_root
def test_package_lists_are_updated_once_when_the_first_install_fails(tmp_path):
    chromium = tmp_path / "chromium"
    result, _, calls = _run(tmp_path, apt_get=f'if [ "$1" = update ]; then touch "{tmp_path}/updated"; exit 0; fi\n'
                                              f'[ -e "{tmp_path}/updated" ] || exit 100\n'
                                              f'printf "#!/bin/sh\\n" > "{chromium}"; chmod +x "{chromium}"')
    assert result.returncode == 0, result.stderr
    assert calls.read_text().splitlines() == ["install -y -qq --no-install-recommends chromium", "update -qq",
                                              "install -y -qq --no-install-recommends chromium"]


@needs_root
def test_an_install_that_fails_says_the_tests_will_be_skipped_and_does_not_fail(tmp_path):
    result, chromium, _ = _run(tmp_path, apt_get='echo "E: Unable to locate package chromium" >&2; exit 100')
    assert result.returncode == 0 and not chromium.exists()
    assert result.stderr.rstrip().endswith("apt-get could not install chromium; the browser tests will be skipped")
    assert "Unable to locate package chromium" in result.stderr


def test_without_apt_get_one_line_says_the_browser_tests_will_be_skipped(tmp_path):
    result, chromium, _ = _run(tmp_path, apt_get=None)
    assert result.returncode == 0 and not chromium.exists()
    assert result.stderr.count("\n") == 1 and "not found" in result.stderr
    assert result.stderr.rstrip().endswith("the browser tests will be skipped")
