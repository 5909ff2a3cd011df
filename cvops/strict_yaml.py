"""YAML for configuration files (project specs, routing policies): safe, and a key given twice is an error.

Why: PyYAML keeps the last of two equal keys without a word, so a spec with ``name: scenes`` and, further down,
``name: scenes-v2`` silently creates the second project, and a policy with two ``reject_above`` under one band
applies whichever came last. The loader refuses the document instead, naming the key and both lines; the error is a
``yaml.YAMLError`` (a ``ConstructorError`` with a mark), so every caller's existing YAML error handling reports it.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode

__all__ = ["UniqueKeyLoader", "safe_load"]

_MERGE_TAG = "tag:yaml.org,2002:merge"


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping holding the same key twice (merge keys ``<<`` may still be
    overridden, as YAML intends)."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                continue  # SafeLoader reports an unhashable key itself
            line = key_node.start_mark.line + 1
            if key in first_line:
                raise ConstructorError(
                    None, None,
                    f"duplicate key {key!r} (line {line}; first given at line {first_line[key]}): keep one of them",
                    key_node.start_mark)
            first_line[key] = line
        return super().construct_mapping(node, deep=deep)


def safe_load(text: str | bytes) -> Any:
    """``yaml.safe_load`` that refuses duplicate keys."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader: no arbitrary objects
