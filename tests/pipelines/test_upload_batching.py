"""Batches respect the service's limits, and source keys survive the trip through batch metadata."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from pipelines import batching


@dataclass(frozen=True)
class It:
    key: str
    tags: tuple[str, ...]


def test_a_folder_per_tag_set_of_up_to_20_tags_takes_ceil_n_over_64_calls():
    items = [It(f"t{i % 7}/{i}.jpg", (f"t{i % 7}",)) for i in range(2000)]
    batches = batching.plan_batches(items)
    assert len(batches) == math.ceil(2000 / 64)
    assert sorted(it.key for b in batches for it in b) == sorted(it.key for it in items)


def test_no_batch_holds_more_than_64_images_or_20_tags():
    items = [It(f"{i}", (f"tag{i % 45}", f"tag{(i * 7) % 45}")) for i in range(1000)]
    batches = batching.plan_batches(items)
    assert all(len(b) <= 64 and len({t for it in b for t in it.tags}) <= 20 for b in batches)
    assert sum(len(b) for b in batches) == 1000


def test_an_image_with_more_tags_than_a_batch_allows_is_named():
    with pytest.raises(ValueError, match=r"big\.jpg has 21 tags"):
        batching.plan_batches([It("big.jpg", tuple(f"t{i}" for i in range(21)))])


def test_sixty_four_digests_fit_the_metadata_limits_and_come_back():
    digests = [batching.source_digest(f"tag/{i}.jpg") for i in range(64)]
    meta = batching.pack_keys(digests, augment="flip")
    assert len(meta) <= 10 and all(len(k) <= 128 and len(v) <= 256 for k, v in meta.items())
    assert batching.unpack_keys(meta) == set(digests)


def test_a_short_batch_writes_every_slot_so_an_update_replaces_them_all():
    meta = batching.pack_keys([batching.source_digest("a")])
    assert [meta[f"cvops_k{i}"] for i in range(1, 4)] == ["-", "-", "-"]
    assert batching.unpack_keys(meta) == {batching.source_digest("a")}


def test_images_without_cvops_metadata_list_no_keys():
    assert batching.uploaded_digests([None, {}, {"owner": "someone"}]) == set()


def test_digests_are_a_fixed_function_of_the_key():
    # A changed digest would make every existing project re-upload everything: pin it.
    assert batching.source_digest("beach/0001.jpg") == "45fffc087f0333a1"
