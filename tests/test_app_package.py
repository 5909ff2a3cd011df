"""The Function App's deployment package holds exactly what `function_app.py` runs, and runs with only requirements.txt.

The package is built as infra/deploy.sh builds it: the paths of infra/app-package.txt (the one list both read), their
files as git knows them (committed or new, never ignored ones such as __pycache__). Then, in a clean virtual
environment where only requirements.txt is installed (`pip install --require-hashes`, what Azure's remote build does),
a child process with the package as its working directory and no path to the repository imports `function_app` and
lists the functions the host would index. Read with `ast`: every module of the package imports only the standard
library, the package's own modules and distributions requirements.txt installs (no numpy unless it is there); and
every module is reached from `function_app.py`'s imports, so the app ships nothing it never runs.

The environment is cached under `.local/app-package-venv-<sha of requirements.txt>`: the first run installs (about a
minute), later runs take seconds.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from tests.test_packaging import REQUIREMENTS

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_LIST = ROOT / "infra" / "app-package.txt"
DEPLOY = ROOT / "infra" / "deploy.sh"


def package_paths() -> list[str]:
    """The paths infra/app-package.txt names, as deploy.sh reads them (comments and blank lines skipped)."""
    lines = (line.split("#", 1)[0].strip() for line in PACKAGE_LIST.read_text().splitlines())
    return [line for line in lines if line]


def package_files() -> list[str]:
    """The files deploy.sh's `git archive HEAD -- PATHS` takes, from the working tree (new files count once added)."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "--cached", "--others", "--exclude-standard", "-z",
                             "--", *package_paths()], capture_output=True, check=True).stdout.decode()
    return sorted(name for name in set(listed.split("\0")) if name and (ROOT / name).is_file())


def module_name(relative: str) -> str:
    parts = Path(relative).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(tree: ast.AST, module: str, is_package: bool) -> list[tuple[str, int, bool]]:
    """(absolute module name, line, is a name from `from X import a`) of every import in a module, inside functions
    too; `from X import a` gives X and X.a (a may be a submodule or a name in X); relative imports are resolved against
    the module's package."""
    names: list[tuple[str, int, bool]] = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(alias.name, node.lineno, False) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            names.append((base, node.lineno, False))
            names += [(f"{base}.{alias.name}", node.lineno, True) for alias in node.names if alias.name != "*"]
    return names


class Package:
    """The package's modules (name -> relative path) and their imports, read from a directory with `ast`."""

    def __init__(self, root: Path, files: list[str]) -> None:
        self.root = root
        self.modules = {module_name(f): f for f in files if f.endswith(".py")}
        self.imports = {name: imported_names(ast.parse((root / path).read_text()), name, path.endswith("__init__.py"))
                        for name, path in self.modules.items()}

    def own(self, name: str) -> list[str]:
        """The package's modules an import of `name` runs: the module and its parent packages."""
        parts = name.split(".")
        return [m for m in (".".join(parts[:i]) for i in range(1, len(parts) + 1)) if m in self.modules]

    def reachable_from(self, start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            module = todo.pop()
            if module in seen:
                continue
            seen.add(module)
            todo += [own for name, _, _ in self.imports[module] for own in self.own(name)]
        return seen

    def foreign_imports(self) -> dict[str, list[str]]:
        """Absolute module name -> where it is imported, for every import that is not one of the package's modules."""
        found: dict[str, list[str]] = {}
        for module, names in self.imports.items():
            # `from X import a` with X foreign: X is checked; X.a is a name in X or a module of X's own distribution
            for name, line, _ in (entry for entry in names if not (entry[2] and not self.own(entry[0]))):
                if name and not self.own(name):
                    found.setdefault(name, []).append(f"{self.modules[module]}:{line}")
        return found


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Package:
    root = tmp_path_factory.mktemp("app-package")
    files = package_files()
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, root / name)
    return Package(root, files)


def app_venv() -> Path:
    """A virtual environment with requirements.txt installed and nothing else, cached by the file's digest."""
    digest = hashlib.sha256((ROOT / "requirements.txt").read_bytes()).hexdigest()[:16]
    target = ROOT / ".local" / f"app-package-venv-{digest}"
    python = target / "bin" / "python"
    if python.exists():
        return python
    building = target.with_name(f"{target.name}.building-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(building)
    install = subprocess.run([str(building / "bin" / "python"), "-m", "pip", "install", "--quiet", "--require-hashes",
                              "--no-input", "-r", str(ROOT / "requirements.txt")],
                             capture_output=True, text=True, timeout=900, check=False)
    assert install.returncode == 0, f"pip install -r requirements.txt failed:\n{install.stdout}\n{install.stderr}"
    try:
        building.rename(target)
    except OSError:  # another run finished first: use its environment
        shutil.rmtree(building, ignore_errors=True)
    return python


def run_in_app_venv(package: Package, code: str, *args: str) -> str:
    """Run `code` with the app's environment, in the package directory, with no path to the repository."""
    env = {"PATH": os.defpath, "HOME": str(package.root), "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run([str(app_venv()), "-I", "-c", code, *args], cwd=package.root, env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


_LIST_FUNCTIONS = """
import json, sys
sys.path.insert(0, ".")   # the host puts the app root on the path
import function_app
print(json.dumps({fn.get_function_name(): json.loads(fn.get_function_json()) for fn in function_app.app.get_functions()}))
"""

_WHO_PROVIDES = """
import importlib.metadata, importlib.util, json, os, sys
sys.path.insert(0, ".")
owner = {}
for dist in importlib.metadata.distributions():
    for file in dist.files or []:
        owner[os.path.realpath(dist.locate_file(file))] = dist.metadata["Name"]
answer = {}
for name in json.loads(sys.argv[1]):
    try:
        spec = importlib.util.find_spec(name)
    except ImportError as exc:
        answer[name] = ["missing", str(exc)]
        continue
    if spec is None:
        answer[name] = ["missing", ""]
    elif name.split(".")[0] in sys.stdlib_module_names or spec.origin in ("built-in", "frozen"):
        answer[name] = ["stdlib", ""]
    elif spec.origin is None:   # a namespace package (azure): holds nothing itself
        answer[name] = ["namespace", ""]
    else:
        answer[name] = ["dist", owner.get(os.path.realpath(spec.origin), "")]
print(json.dumps(answer))
"""


def test_the_package_list_is_what_deploy_sh_zips():
    result = subprocess.run(["bash", str(DEPLOY), "-g", "rg-cvops", "--dry-run"], capture_output=True, text=True,
                            timeout=60, check=False, env={"PATH": os.defpath, "HOME": os.environ.get("HOME", "/")})
    assert result.returncode == 0, result.stderr
    archive = next(line for line in result.stderr.splitlines() if " archive --format=zip " in line)
    assert archive.split(" HEAD -- ", 1)[1].split() == package_paths()


def test_function_app_imports_from_the_package_with_only_requirements_txt_and_registers_its_functions(package: Package):
    functions = json.loads(run_in_app_venv(package, _LIST_FUNCTIONS))
    triggers = {name: next(b for b in spec["bindings"] if b["type"].endswith("Trigger")) for name, spec in functions.items()}
    assert {name: binding["type"] for name, binding in triggers.items()} == {
        "route_new_blob": "blobTrigger", "classify_http": "httpTrigger", "route_backlog_blob": "queueTrigger"}
    assert triggers["route_new_blob"]["source"] == "EventGrid"
    assert triggers["classify_http"]["route"] == "classify"


def not_provided(package: Package) -> dict[str, tuple[str, str, list[str]]]:
    """Imports of the package that neither the standard library, the package nor requirements.txt provides, with
    what the app's environment says of them and where they are imported."""
    foreign = package.foreign_imports()
    provided = json.loads(run_in_app_venv(package, _WHO_PROVIDES, json.dumps(sorted(foreign))))
    return {name: (kind, detail or "not from requirements.txt", foreign[name])
            for name, (kind, detail) in provided.items()
            if kind == "missing" or (kind == "dist" and canonicalize_name(detail) not in REQUIREMENTS)}


def test_every_import_of_the_package_is_the_standard_library_its_own_code_or_a_requirement(package: Package):
    assert not_provided(package) == {}, "the app package imports what requirements.txt does not install"


def test_an_import_requirements_txt_does_not_install_is_named_with_its_line(tmp_path: Path):
    # (scikit-learn: the local service's, never the app's; numpy is the app's since onnxruntime runs exported models)
    (tmp_path / "function_app.py").write_text("import json\n\ndef f():\n    import sklearn\n    import pip\n")
    assert not_provided(Package(tmp_path, ["function_app.py"])) == {
        "sklearn": ("missing", "not from requirements.txt", ["function_app.py:4"]),
        "pip": ("dist", "pip", ["function_app.py:5"]),
    }


def test_no_module_of_the_package_imports_numpy_unless_requirements_txt_installs_it(package: Package):
    users = [where for name, where in package.foreign_imports().items() if name.split(".")[0] == "numpy"]
    assert "numpy" in REQUIREMENTS or users == []


def test_every_module_of_the_package_is_imported_by_function_app(package: Package):
    unused = set(package.modules) - package.reachable_from("function_app")
    assert sorted(package.modules[m] for m in unused) == [], "the package ships modules the app never imports"


def test_the_package_holds_no_dev_kit_local_service_or_pipeline():
    top = {Path(name).parts[0] for name in package_files()}
    assert top.isdisjoint({"devkit", "emulator", "pipelines", "bench", "tests"}), top


def test_the_import_reader_resolves_relative_and_submodule_imports():
    source = "from . import sibling\nfrom .sub import thing\nimport a.b\nfrom c import d\ndef f():\n    import e\n"
    assert sorted(imported_names(ast.parse(source), "pkg.mod", is_package=False)) == [
        ("a.b", 3, False), ("c", 4, False), ("c.d", 4, True), ("e", 6, False), ("pkg", 1, False),
        ("pkg.sibling", 1, True), ("pkg.sub", 2, False), ("pkg.sub.thing", 2, True)]


if __name__ == "__main__":  # pragma: no cover - build the cached environment ahead of a test run
    print(app_venv(), file=sys.stderr)
