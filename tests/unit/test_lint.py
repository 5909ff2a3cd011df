"""pipelines.lint on real image bytes generated with Pillow: one test per rule, plus the counting rules."""

from __future__ import annotations

import io
import struct
import zlib
from itertools import count

import pytest
from PIL import Image, PngImagePlugin

from pipelines.lint import MAX_TRAINING_BYTES, Finding, ImageInfo, has_errors, inspect_image, lint

_colours = count(1)


def encode(fmt: str = "JPEG", size: tuple[int, int] = (320, 288), mode: str = "RGB") -> bytes:
    """A small real image; each call has a different colour so no two are byte-identical by accident."""
    n = next(_colours)
    colour = (n % 251, (n * 7) % 253, (n * 13) % 255) if mode == "RGB" else n % 2
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, fmt)
    return buffer.getvalue()


def image(path: str, tags: list[str], fmt: str = "JPEG", size: tuple[int, int] = (320, 288)) -> ImageInfo:
    return inspect_image(path, encode(fmt, size), tags)


def good_set(tags: dict[str, int]) -> list[ImageInfo]:
    return [image(f"{tag}/{i}.jpg", [tag]) for tag, n in tags.items() for i in range(n)]


def codes(findings: list[Finding], path: str | None = None, tag: str | None = None) -> set[str]:
    return {f.code for f in findings
            if (path is None or f.path == path) and (tag is None or f.tag == tag)}


def lint_one(info: ImageInfo, classification_type: str = "Multilabel") -> list[Finding]:
    """Lint one image among enough good ones that only the image's own findings show."""
    others = good_set({tag: 5 for tag in info.tags or ["x"]})
    return [f for f in lint([*others, info], classification_type=classification_type, recommended_per_tag=5)
            if f.path == info.path]


# --- inspect_image ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "BMP", "GIF"])
def test_inspect_reads_format_size_and_hash_of_supported_formats(fmt: str) -> None:
    data = encode(fmt, (300, 260))
    info = inspect_image("a", data, ["beach"])
    assert (info.format, info.width, info.height, info.error) == (fmt, 300, 260, None)
    assert info.size_bytes == len(data) and len(info.sha256) == 64 and info.tags == ("beach",)
    assert lint_one(info) == []


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares the given size, with no pixel data: enough for a header-only reader."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + \
        chunk(b"IEND", b"")


def test_a_huge_image_is_reported_from_its_header_without_decoding() -> None:
    findings = lint_one(inspect_image("huge.png", png_header_only(30_000, 20_000), ["x"]))
    assert codes(findings) == {"dimensions-too-large"}


# --- one rule each ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["WEBP", "TIFF"])
def test_unsupported_format_is_an_error(fmt: str) -> None:
    findings = lint_one(image(f"a.{fmt.lower()}", ["x"], fmt))
    assert codes(findings) == {"unsupported-format"}
    assert fmt in findings[0].message and "JPEG" in findings[0].message


@pytest.mark.parametrize(("name", "data"), [
    ("truncated.jpg", encode("JPEG", (640, 480))[:700]),
    ("truncated.png", encode("PNG", (640, 480))[:60]),
    ("notes.jpg", b"This is a text file that was saved with a .jpg extension.\n"),
    ("empty.jpg", b""),
])
def test_undecodable_file_is_an_error(name: str, data: bytes) -> None:
    findings = lint_one(inspect_image(name, data, ["x"]))
    assert codes(findings) == {"undecodable"}
    assert "BytesIO" not in findings[0].message  # Pillow's object repr is no use to anyone


def test_file_over_6_mb_is_an_error() -> None:
    meta = PngImagePlugin.PngInfo()
    meta.add_text("padding", "x" * (MAX_TRAINING_BYTES + 10))  # uncompressed tEXt: a valid, big PNG made fast
    buffer = io.BytesIO()
    Image.new("RGB", (300, 300)).save(buffer, "PNG", pnginfo=meta)
    findings = lint_one(inspect_image("big.png", buffer.getvalue(), ["x"]))
    assert codes(findings) == {"file-too-large"}
    assert "6 MB" in findings[0].message


def test_longest_side_over_10240_is_an_error() -> None:
    findings = lint_one(inspect_image("wide.png", encode("PNG", (10_241, 600), mode="1"), ["x"]))
    assert codes(findings) == {"dimensions-too-large"}


def test_aspect_ratio_over_25_to_1_is_an_error() -> None:
    findings = lint_one(image("strip.png", ["x"], "PNG", (6_656, 260)))
    assert codes(findings) == {"aspect-ratio"}
    assert "26:1" in findings[0].message


def test_aspect_ratio_of_exactly_25_to_1_is_fine() -> None:
    assert codes(lint_one(image("strip.png", ["x"], "PNG", (6_400, 256)))) == set()


def test_small_image_is_a_warning_and_a_tiny_one_an_error() -> None:
    small = lint_one(image("small.jpg", ["x"], size=(300, 200)))
    assert [(f.severity, f.code) for f in small] == [("warning", "small")]
    tiny = lint_one(image("icon.png", ["x"], "PNG", (16, 16)))
    assert [(f.severity, f.code) for f in tiny] == [("error", "too-small")]


def test_multiclass_image_with_two_tags_is_an_error_but_fine_in_multilabel() -> None:
    info = image("both.jpg", ["beach", "forest"])
    assert codes(lint_one(info, "Multiclass")) == {"multiclass-several-tags"}
    assert codes(lint_one(info, "Multilabel")) == set()


def test_untagged_image_is_a_warning() -> None:
    findings = lint([*good_set({"x": 5}), image("loose.jpg", [])], classification_type="Multiclass",
                    recommended_per_tag=5)
    assert [(f.severity, f.code, f.path) for f in findings] == [("warning", "untagged", "loose.jpg")]


def test_more_than_100_tags_on_an_image_is_an_error() -> None:
    info = image("crowded.jpg", [f"t{i}" for i in range(101)])
    assert "too-many-tags" in codes(lint([info], classification_type="Multilabel"), path="crowded.jpg")


def test_exact_duplicate_with_same_tags_is_a_warning_naming_both_paths() -> None:
    data = encode()
    images = [*good_set({"x": 5}), inspect_image("a/1.jpg", data, ["x"]), inspect_image("b/1.jpg", data, ["x"])]
    findings = [f for f in lint(images, classification_type="Multiclass", recommended_per_tag=5)
                if f.code.startswith("duplicate")]
    assert [(f.severity, f.path, f.related) for f in findings] == [("warning", "b/1.jpg", ("a/1.jpg",))]
    assert "a/1.jpg" in findings[0].message


def test_exact_duplicate_with_different_tags_is_an_error() -> None:
    data = encode()
    images = [*good_set({"x": 5, "y": 5}), inspect_image("x/dup.jpg", data, ["x"]),
              inspect_image("y/dup.jpg", data, ["y"])]
    findings = lint(images, classification_type="Multiclass", recommended_per_tag=5)
    assert codes(findings, path="y/dup.jpg") == {"duplicate-conflicting-tags"}
    assert has_errors(findings)


# --- tag rules ----------------------------------------------------------------------------------------------------

def test_fewer_than_5_images_for_a_tag_is_an_error_and_fewer_than_50_a_warning() -> None:
    findings = lint(good_set({"rare": 4, "some": 6}), classification_type="Multiclass")
    assert [(f.severity, f.code, f.tag) for f in findings if f.tag] == [
        ("error", "too-few-images", "rare"), ("warning", "few-images", "some")]
    assert "at least 5" in str(findings[0])


def test_only_usable_images_count_towards_a_tag() -> None:
    images = [*good_set({"x": 4}), inspect_image("x/broken.jpg", b"not an image", ["x"])]
    findings = lint(images, classification_type="Multiclass", recommended_per_tag=5)
    assert codes(findings, tag="x") == {"too-few-images"}
    assert "4 usable" in next(f.message for f in findings if f.tag == "x")


def test_a_tag_whose_images_are_all_broken_is_still_reported() -> None:
    images = [*good_set({"x": 5}), inspect_image("y/a.webp", encode("WEBP"), ["y"])]
    assert codes(lint(images, classification_type="Multiclass", recommended_per_tag=5), tag="y") == {"too-few-images"}


def test_imbalance_over_the_ratio_is_a_warning_with_what_to_do() -> None:
    findings = lint(good_set({"big": 11, "small": 5}), classification_type="Multiclass", recommended_per_tag=5)
    (warning,) = [f for f in findings if f.code == "imbalance"]
    assert warning.severity == "warning" and warning.tag == "small"
    assert "2.2:1" in warning.message and "augment" in warning.message
    balanced = lint(good_set({"big": 10, "small": 5}), classification_type="Multiclass", recommended_per_tag=5)
    assert "imbalance" not in codes(balanced)


def test_expected_tags_flag_missing_and_undeclared_tags() -> None:
    findings = lint(good_set({"beach": 5, "typo": 5}), classification_type="Multiclass", recommended_per_tag=5,
                    expected_tags=["beach", "forest"])
    assert codes(findings, tag="forest") == {"too-few-images"}
    assert codes(findings, tag="typo") == {"unknown-tag"}


def test_findings_put_errors_first_and_read_as_one_line() -> None:
    images = [*good_set({"x": 6}), image("z.jpg", ["x"], size=(100, 100)), image("a.tiff", ["x"], "TIFF")]
    findings = lint(images, classification_type="Multiclass")
    severities = [f.severity for f in findings]
    assert severities == sorted(severities, key=lambda s: s != "error")
    assert str(findings[0]) == ("error: a.tiff: format TIFF is not accepted (only JPEG, PNG, BMP, GIF); "
                                "convert it to JPEG or PNG [unsupported-format]")
    assert all("\n" not in str(f) for f in findings)


def test_lint_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="classification_type"):
        lint([], classification_type="multiclass")
    with pytest.raises(ValueError, match="min_per_tag"):
        lint([], classification_type="Multiclass", min_per_tag=60)


def test_condense_keeps_every_error_and_cuts_repeated_warnings_per_code():
    from pipelines.lint import Finding, condense

    findings = [Finding("warning", "small", f"img {i} is small", path=f"a/{i}.jpg") for i in range(8)]
    findings += [Finding("error", "too-large", f"img {i} is too large", path=f"b/{i}.jpg") for i in range(7)]
    findings.append(Finding("warning", "few-images", "40 images", tag="beach"))
    shown, hidden = condense(findings, per_code=5)
    assert [f.code for f in shown].count("small") == 5
    assert [f.code for f in shown].count("too-large") == 7
    assert hidden == {"small": 3}
    assert any(f.code == "few-images" for f in shown)
