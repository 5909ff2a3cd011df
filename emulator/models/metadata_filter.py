"""The image metadata `$filter` of GetImages and GetImageCount, parsed into SQL: a pure function, tested on its own.
"""

from __future__ import annotations

import re

# Bounds on one expression: each parenthesis level is a few Python frames and each condition a level of SQL nesting
# (SQLite refuses expression trees deeper than 1,000), so a hostile or generated filter must be refused, not crash.
MAX_FILTER_DEPTH = 32
MAX_FILTER_CONDITIONS = 100

_FILTER_TOKEN = re.compile(r"\s*(?:(?P<open>\()|(?P<close>\))|'(?P<value>(?:[^']|'')*)'|(?P<word>[^\s'()]+))")


def metadata_filter_sql(expression: str, column: str = "i.metadata") -> tuple[str, list[str]]:
    """SQL (with parameters) for a GetImages / GetImageCount `$filter` over image metadata.

    The grammar the spec describes: `key eq 'value'`, `key ne 'value'`, joined by `and` / `or` (`and` binds tighter),
    with parentheses; a value's quote is doubled (`'it''s'`), as in OData. The spec's example writes a leading
    `metadata=`, which is accepted. An image without the key is not `eq` any value and is `ne` every value.
    At most MAX_FILTER_DEPTH levels of parentheses and MAX_FILTER_CONDITIONS conditions.
    ValueError naming what is wrong otherwise.
    """
    text = expression.strip()
    if text.lower().startswith("metadata="):
        text = text[len("metadata="):]
    tokens, pos = [], 0
    while pos < len(text):
        m = _FILTER_TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            if not text[pos:].strip():
                break
            raise ValueError(f"cannot read {text[pos:]!r} (an unclosed quote?)")
        kind = m.lastgroup
        tokens.append((kind, m.group(kind).replace("''", "'") if kind == "value" else m.group(kind)))
        pos = m.end()
    depth = max_depth = 0
    for kind, _ in tokens:
        depth += {"open": 1, "close": -1}.get(kind, 0)
        max_depth = max(max_depth, depth)
    if max_depth > MAX_FILTER_DEPTH:
        raise ValueError(f"it nests parentheses {max_depth} deep; at most {MAX_FILTER_DEPTH} levels are allowed")
    conditions = sum(1 for kind, word in tokens if kind == "word" and word.lower() in ("eq", "ne"))
    if conditions > MAX_FILTER_CONDITIONS:
        raise ValueError(f"it has {conditions} conditions; at most {MAX_FILTER_CONDITIONS} are allowed")
    params: list[str] = []

    def take(n: int) -> tuple[str, str] | None:
        return tokens[n] if n < len(tokens) else None

    def parse_or(n: int) -> tuple[str, int]:
        sql, n = parse_and(n)
        while (t := take(n)) and t[0] == "word" and t[1].lower() == "or":
            right, n = parse_and(n + 1)
            sql = f"({sql} OR {right})"
        return sql, n

    def parse_and(n: int) -> tuple[str, int]:
        sql, n = parse_term(n)
        while (t := take(n)) and t[0] == "word" and t[1].lower() == "and":
            right, n = parse_term(n + 1)
            sql = f"({sql} AND {right})"
        return sql, n

    def parse_term(n: int) -> tuple[str, int]:
        t = take(n)
        if t is not None and t[0] == "open":
            sql, n = parse_or(n + 1)
            if take(n) != ("close", ")"):
                raise ValueError("a '(' is not closed")
            return sql, n + 1
        key, op, value = t, take(n + 1), take(n + 2)
        if key is None or key[0] != "word" or '"' in key[1]:
            raise ValueError(f"expected a metadata key at {key[1] if key else 'the end'!r}")
        if op is None or op[0] != "word" or op[1].lower() not in ("eq", "ne"):
            raise ValueError(f"expected eq or ne after {key[1]!r}")
        if value is None or value[0] != "value":
            raise ValueError(f"expected a quoted value after {key[1]} {op[1]}")
        params.extend([f'$."{key[1]}"', value[1]])
        compare = "=" if op[1].lower() == "eq" else "IS NOT"
        return f"(json_extract({column}, ?) {compare} ?)", n + 3

    if not tokens:
        raise ValueError("it is empty")
    sql, end = parse_or(0)
    if end != len(tokens):
        raise ValueError(f"unexpected {tokens[end][1]!r}; join conditions with and / or")
    return sql, params
