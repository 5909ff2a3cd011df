"""Custom Vision's client-side limits are written once, in cvops/limits.py (issue 12).

The scan reads every project module except cvops/limits.py itself, emulator/ (the local service keeps its own copy on
purpose: a stand-in must not share the client's assumptions) and tests/ (tests build images just over or under a
limit, and say so next to the number). It parses the code (ast), so prose in docstrings and messages is not flagged.

What counts as a limit literal, precise enough to leave unrelated numbers alone:
* a number that is only ever a limit (6 MB and 4 MB in bytes, 10,240 px), anywhere, also when written as a product
  (``6 * 1024 * 1024``, ``4 * MiB``);
* a smaller limit value (64, 20, 256, 25, 5...) only where it is a limit: assigned to, defaulted for, passed as, or
  compared with a name that says so (max, min, limit, page, batch, per_tag, aspect...), or a click option's default or
  range whose flag says so;
* a collection of the four accepted format names.
"""

from __future__ import annotations

import ast
import operator
import re
from pathlib import Path

import pytest

from cvops import limits

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("cvops", "functions", "pipelines", "devkit", "bench", "scripts", "function_app.py")
EXEMPT = {Path("cvops/limits.py")}
LIMIT_WORDS = frozenset({"max", "min", "limit", "limits", "page", "batch", "aspect", "longest", "upload", "take"})

ALLOWED = {
    # (path, name the number is given to): why it is not a Custom Vision limit
    ("functions/naming.py", "MAX_PREFIX"): "a destination prefix's length: this app's own naming rule",
    ("cvops/redaction.py", "MAX_KEY_LENGTH"): "longest key the secret check accepts: this project's own sanity bound",
    ("cvops/retry.py", "max_delay"): "retry backoff cap in seconds",
    ("functions/images.py", "_MIN_SNIFFED_BYTES"): "bytes needed to tell a damaged header by its magic number",
    ("functions/images.py", "max_pixels"): "this app's decode cap, not the service's",
    ("pipelines/review/stats.py", "DEFAULT_MIN_SUPPORT"): "reviews needed before a score may become a threshold",
    ("pipelines/review/access.py", "MIN_DISTINCT"): "different characters a review page token needs: its own rule",
    ("pipelines/review/server.py", "max_connections"): "the review page's connection cap: its own server's bound",
    ("functions/exported_model.py", "MAX_COMPRESSION_RATIO"): "a model zip's inflate ratio: the runner's zip-bomb bound",
    ("pipelines/cli.py", "--min-support"): "review stats' reviews needed before a score may become a threshold",
    ("pipelines/automl_dataset.py", "MIN_IMAGES"): "Azure ML AutoML for images' own minimum training set, not Custom "
                                                   "Vision's",
}

_VALUES = {name: getattr(limits, name) for name in limits.__all__}
NUMBERS = {v for v in _VALUES.values() if isinstance(v, int | float) and not isinstance(v, bool)}
DISTINCTIVE = {v for v in NUMBERS if v >= 1000}
_OPERATORS = {ast.Mult: operator.mul, ast.Add: operator.add, ast.Sub: operator.sub, ast.FloorDiv: operator.floordiv,
              ast.Pow: operator.pow, ast.LShift: operator.lshift}


def _fold(node: ast.AST, env: dict[str, float]) -> float | None:
    """The number an expression of literals (and module-level numeric names) evaluates to, else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.Name):
        return env.get(node.id)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        value = _fold(node.operand, env)
        return None if value is None else -value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _fold(node.left, env), _fold(node.right, env)
        if left is None or right is None or (isinstance(node.op, ast.Pow | ast.LShift) and abs(right) > 64):
            return None
        try:
            return _OPERATORS[type(node.op)](left, right)
        except (ArithmeticError, ValueError, TypeError):
            return None
    return None


def _name(node: ast.AST) -> str:
    """What an operand is called: ``len(batch)`` is "len batch", ``self.max_side`` is "max_side"."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Call):
        return " ".join([_name(node.func), *(_name(a) for a in node.args)])
    return ""


def _says_limit(name: str) -> bool:
    """Whether a name has a limit word as one of its words (``max_side``, ``--min-per-tag``, ``perTagMin``; not
    ``minutes``)."""
    words = re.split(r"[^A-Za-z]+|(?<=[a-z])(?=[A-Z])", name)
    return bool(LIMIT_WORDS & {w.lower() for w in words}) or "per_tag" in name.lower().replace("-", "_")


def _literal_numbers(node: ast.AST, env: dict[str, float]) -> list[float]:
    """Numbers written as literals in an expression (a folded product counts once), not ones read from a name."""
    if isinstance(node, ast.Name | ast.Attribute):
        return []
    value = _fold(node, env)
    if value is not None:
        return [value]
    return [n for child in ast.iter_child_nodes(node) for n in _literal_numbers(child, env)]


def _module_env(tree: ast.Module) -> dict[str, float]:
    env: dict[str, float] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            value = _fold(stmt.value, env)
            if value is not None:
                env[stmt.targets[0].id] = value
    return env


def _findings(path: Path) -> list[tuple[int, str, float | str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    env = _module_env(tree)
    found: list[tuple[int, str, float | str]] = []

    def limit_like(name: str, value_node: ast.AST) -> None:
        if name and _says_limit(name):
            found.extend((value_node.lineno, name, n) for n in _literal_numbers(value_node, env) if n in NUMBERS)

    for node in ast.walk(tree):
        value = _fold(node, env) if not isinstance(node, ast.Name) else None
        if value in DISTINCTIVE:
            found.append((node.lineno, "", value))
        if isinstance(node, ast.Assign):
            for target in node.targets:
                limit_like(_name(target), node.value)
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            limit_like(_name(node.target), node.value)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            args = node.args
            positional = args.posonlyargs + args.args
            for arg, default in zip(positional[len(positional) - len(args.defaults):], args.defaults, strict=True):
                limit_like(arg.arg, default)
            for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
                if default is not None:
                    limit_like(arg.arg, default)
        elif isinstance(node, ast.Call):
            flags = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)
                     and a.value.startswith("--")]
            for keyword in node.keywords:
                limit_like(keyword.arg or "", keyword.value)
                if flags and keyword.arg in ("default", "type"):
                    limit_like(flags[0], keyword.value)
        elif isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for named in operands:
                for other in operands:
                    if other is not named:
                        limit_like(_name(named), other)
        elif isinstance(node, ast.Set | ast.Tuple | ast.List):
            strings = {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
            if strings >= limits.ACCEPTED_FORMATS:
                found.append((node.lineno, "", "formats"))
    return found


def _scanned_files() -> list[Path]:
    files: list[Path] = []
    for entry in SCANNED:
        path = ROOT / entry
        files += [path] if path.is_file() else sorted(path.rglob("*.py")) if path.is_dir() else []
    return [f for f in files if f.relative_to(ROOT) not in EXEMPT and "__pycache__" not in f.parts]


def test_no_custom_vision_limit_is_written_outside_cvops_limits():
    offending = []
    for path in _scanned_files():
        relative = path.relative_to(ROOT).as_posix()
        for line, name, value in sorted(set(_findings(path))):
            if (relative, name) not in ALLOWED:
                offending.append(f"{relative}:{line}: {name or 'literal'} = {value}")
    assert not offending, "read these from cvops.limits (or allow-list them with a reason):\n" + "\n".join(offending)


@pytest.mark.parametrize("source, flagged", [
    ("MAX_UPLOAD = 6 * 1024 * 1024", True),
    ("MiB = 1024 * 1024\nlimit = 4 * MiB", True),
    ("x = 10_240", True),
    ("MAX_IMAGES_PER_BATCH = 64", True),
    ("def page(take=256): ...", True),
    ("if len(batch) > 64: pass", True),
    ("FORMATS = frozenset({'JPEG', 'PNG', 'BMP', 'GIF'})", True),
    ("@click.option('--min-per-tag', default=5)\ndef f(): ...", True),
    ("workers = 64", False),
    ("def wait(minutes=5): ...", False),
    ("noise = rng.integers(0, 256, size=(2, 3))", False),
    ("if k <= 25: pass", False),
    ("MAX_IMAGES_PER_BATCH = limits.MAX_IMAGES_PER_BATCH", False),
    ("HOST_ALLOWANCE = 256 * 1024 * 1024", False),
])
def test_the_scan_flags_limits_and_leaves_unrelated_numbers(tmp_path, source, flagged):
    module = tmp_path / "m.py"
    module.write_text(source + "\n", encoding="utf-8")
    assert bool(_findings(module)) is flagged
