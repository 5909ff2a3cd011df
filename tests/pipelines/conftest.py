"""Fixtures shared by the pipelines tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from review_helpers import ReviewWorld, make_world


@pytest.fixture
def review_world(blob_service) -> Iterator[ReviewWorld]:
    """Fresh containers in Azurite with review copies written the way the Function App writes them; dropped after."""
    world = make_world(blob_service)
    yield world
    world.drop()
