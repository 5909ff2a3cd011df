"""The spec copies the contract tests rely on are the official files, byte for byte (as SOURCES.md records)."""

from __future__ import annotations

import hashlib
import re

from spec_schemas import SPECS


def git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def test_every_spec_copy_has_the_upstream_blob_sha_listed_in_sources():
    rows = re.findall(r"^\| (\S+) \| \S+ \| \w+ \| ([0-9a-f]{40}) \|", (SPECS / "SOURCES.md").read_text(), re.MULTILINE)
    listed = dict(rows)
    files = sorted(str(p.relative_to(SPECS)) for p in SPECS.rglob("*.json"))
    assert files == sorted(listed)
    for name in files:
        assert git_blob_sha((SPECS / name).read_bytes()) == listed[name], name


def test_the_schema_check_refuses_misspelled_fields_wrong_types_and_bad_ids():
    import pytest
    from jsonschema import ValidationError
    from spec_schemas import validate_response

    path = "/customvision/v3.4-preview/training/projects/9e27bc1b-7ae7-4e3b-a4e5-36153479dc01/tags"
    good = {"id": "9e27bc1b-7ae7-4e3b-a4e5-36153479dc01", "name": "Tag1", "description": None, "type": "Regular",
            "imageCount": 0}
    assert validate_response("training", "v3.4-preview", "POST", path, 200, good) == "CreateTag"
    for bad in ({**good, "imagecount": 0}, {**good, "imageCount": "0"}, {**good, "id": "not-a-uuid"},
                {**good, "type": "Odd"}):
        with pytest.raises(ValidationError):
            validate_response("training", "v3.4-preview", "POST", path, 200, bad)
    with pytest.raises(ValidationError):
        validate_response("training", "v3.4-preview", "POST", path, 400, {"code": "NotACode", "message": "x"})
