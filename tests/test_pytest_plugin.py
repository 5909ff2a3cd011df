"""The pytest plugin (devkit/pytest_plugin.py) as a team would use it: a test file of theirs, run by pytest in a fresh
process in another folder, gets the local Custom Vision service and Azurite from installed cvops alone."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from devkit.local_services import REPO_ROOT

pytest_plugins = ["pytester"]

USERS_TESTS = textwrap.dedent('''
    import io

    import pytest
    from azure.cognitiveservices.vision.customvision.prediction.models import CustomVisionErrorException
    from azure.cognitiveservices.vision.customvision.training.models import ImageFileCreateBatch, ImageFileCreateEntry
    from PIL import Image


    def _png(colour):
        out = io.BytesIO()
        Image.new("RGB", (64, 64), colour).save(out, "PNG")
        return out.getvalue()


    def test_my_upload_code_against_the_local_service(cvops_training_client):
        project = cvops_training_client.create_project("team-project")
        tag = cvops_training_client.create_tag(project.id, "red")
        batch = ImageFileCreateBatch(images=[ImageFileCreateEntry(name="r.png", contents=_png("red"), tag_ids=[tag.id])])
        result = cvops_training_client.create_images_from_files(project.id, batch)
        assert result.is_batch_successful
        assert cvops_training_client.get_tagged_image_count(project.id) == 1


    def test_my_prediction_code_sees_the_services_error(cvops_custom_vision, cvops_prediction_client):
        with pytest.raises(CustomVisionErrorException) as caught:
            cvops_prediction_client.classify_image("00000000-0000-0000-0000-000000000000", "nothing", b"x")
        assert caught.value.response.status_code == 404
        assert cvops_custom_vision.endpoint.startswith("http://127.0.0.1:")


    def test_my_blob_code_against_azurite(cvops_blob_service):
        container = cvops_blob_service.create_container("uploads")
        container.upload_blob("a/b.jpg", b"bytes")
        assert container.download_blob("a/b.jpg").readall() == b"bytes"
''')


def test_a_teams_tests_get_both_local_services_from_the_installed_plugin(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_team=USERS_TESTS)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider",
                                           f"--cvops-azurite-bin={REPO_ROOT / 'node_modules' / '.bin'}")
    result.assert_outcomes(passed=3)


def test_a_missing_azurite_is_named_with_the_variable_that_finds_it(pytester: pytest.Pytester, tmp_path: Path) -> None:
    empty = tmp_path / "no-azurite-here"
    empty.mkdir()
    pytester.makepyfile(test_team="def test_blob(cvops_azurite):\n    pass\n")
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", f"--cvops-azurite-bin={empty}")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*CVOPS_AZURITE_BIN names*no-azurite-here*which holds no azurite*"])


def test_the_plugin_starts_nothing_for_tests_that_do_not_ask(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_team="def test_plain():\n    assert True\n")
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "--fixtures")
    result.stdout.fnmatch_lines(["*cvops_custom_vision*", "*cvops_azurite*", "*cvops_blob_service*"])
    plain = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "--durations=0")
    plain.assert_outcomes(passed=1)
    assert "cvops-custom-vision-log" not in plain.stdout.str()
