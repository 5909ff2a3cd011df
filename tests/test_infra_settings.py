"""The Bicep in infra/ sets exactly the settings the Function App reads, and names the same containers.

Why: a setting the Bicep forgets, or a container name that differs between the code and the infrastructure, fails
only in Azure, at run time, on the first image. The catalogue `functions/settings.py` is read at test time (never a
copy), so a setting added there fails this test until infra/modules/functionapp.bicep sets it too.

The Bicep CLI cannot be installed here (it downloads a binary), so the .bicep text is read by `parse_value` below: a
small parser for Bicep *literals* (objects, arrays, strings) that leaves every other expression as its source text.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from functions import routes
from functions import settings as catalogue

INFRA = Path(__file__).resolve().parents[1] / "infra"
FUNCTIONS = Path(__file__).resolve().parents[1] / "functions"
MAIN = INFRA / "main.bicep"
FUNCTION_APP = INFRA / "modules" / "functionapp.bicep"
BLOB_EVENTS = INFRA / "blob-events.bicep"

# Settings the Bicep sets that functions/settings.py does not catalogue, each with the one that reads it.
HOST_OWNED = {
    "AzureWebJobsStorage__accountName": "Functions host: its own storage, identity-based",
    "AzureWebJobsStorage__credential": "Functions host",
    "AzureWebJobsStorage__clientId": "Functions host",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "Functions host: telemetry",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Functions host: telemetry with Entra ID (local auth is off)",
    "AZURE_CLIENT_ID": "azure-identity's DefaultAzureCredential: which user-assigned identity to use",
}
# Set for operators (shown in the portal, read by verify.sh), whether or not the catalogue lists it.
FOR_OPERATORS = {"VISION_PREDICTION_RESOURCE_ID"}
# The parts of the identity-based storage connection the triggers use (functions/settings.py STORAGE_CONNECTION).
CONNECTION_PARTS = ("blobServiceUri", "queueServiceUri", "credential", "clientId")
# Containers the code has no setting for: the pipelines read training and holdout images from them.
PIPELINE_CONTAINERS = {"training", "holdout"}


# ----------------------------------------------------------------------------------------------------------------------
# A parser for Bicep literals.


@dataclass(frozen=True)
class Expr:
    """A Bicep expression that is not a plain literal (a reference, a call, a ternary, an interpolated string)."""

    source: str


class BicepSyntaxError(ValueError):
    """The text is not the Bicep this parser reads; the message says where."""


def _strip_comments(text: str) -> str:
    """`text` with // and /* */ comments blanked out (same length, so offsets still point into the original).

    Strings are kept: a `//` inside `'https://...'` is not a comment.
    """
    out = list(text)
    i, n = 0, len(text)
    while i < n:
        if text.startswith("'''", i):
            end = text.find("'''", i + 3)
            i = n if end < 0 else end + 3
        elif text[i] == "'":
            i = _string_end(text, i)
        elif text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            out[i:end] = " " * (end - i)
            i = end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out[i:end] = [c if c == "\n" else " " for c in text[i:end]]
            i = end
        else:
            i += 1
    return "".join(out)


def _string_end(text: str, start: int) -> int:
    """Offset just past the single-quoted string that starts at `start` (backslash escapes, `${...}` holes)."""
    i, depth = start + 1, 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if depth == 0 and c == "'":
            return i + 1
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if depth and c == "}":
            depth -= 1
        elif depth and c == "'":
            i = _string_end(text, i)
            continue
        i += 1
    raise BicepSyntaxError(f"unterminated string at offset {start}")


_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", "'": "'", "$": "$"}


def _skip_blank(text: str, i: int, newlines: bool = True) -> int:
    blank = " \t\r\n" if newlines else " \t\r"
    while i < len(text) and text[i] in blank:
        i += 1
    return i


def parse_value(text: str, i: int = 0) -> tuple[object, int]:
    """Parse the Bicep value at `text[i:]` (comments already stripped); return it and the offset after it.

    Objects become dicts, arrays lists, plain strings str, and anything else an `Expr` holding its source. Entries are
    separated by newlines or commas, as Bicep allows. `[for ...]` arrays and `if (...)` bodies stay expressions.
    """
    i = _skip_blank(text, i)
    if i >= len(text):
        raise BicepSyntaxError("a value was expected at the end of the text")
    c = text[i]
    if c == "{":
        return _parse_object(text, i + 1)
    if c == "[" and not re.match(r"\[\s*for\b", text[i:]):
        return _parse_array(text, i + 1)
    start = i
    if text.startswith("'''", i):
        end = text.find("'''", i + 3)
        if end < 0:
            raise BicepSyntaxError(f"unterminated multi-line string at offset {i}")
        value, i = text[i + 3:end], end + 3
    elif c == "'":
        end = _string_end(text, i)
        raw = text[i + 1:end - 1]
        value, i = (Expr(text[i:end]) if "${" in raw else re.sub(r"\\(.)", lambda m: _ESCAPES.get(m[1], m[1]), raw)), end
    else:
        return _parse_expression(text, i)
    # A string followed by an operator (`'a' == x ? ...`) is part of a larger expression.
    follow = _skip_blank(text, i, newlines=False)
    if follow < len(text) and text[follow] not in ",}]\n":
        return _parse_expression(text, start)
    return value, i


def _parse_expression(text: str, i: int) -> tuple[Expr, int]:
    """Read an expression up to a newline, comma, `}` or `]` outside brackets and strings."""
    start, depth = i, 0
    while i < len(text):
        c = text[i]
        if c == "'":
            i = _string_end(text, i)
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            if depth == 0:
                break
            depth -= 1
        elif depth == 0 and c in ",\n":
            break
        i += 1
    source = text[start:i].strip()
    if not source:
        raise BicepSyntaxError(f"a value was expected at offset {start}")
    return Expr(source), i


def _parse_object(text: str, i: int) -> tuple[dict[str, object], int]:
    entries: dict[str, object] = {}
    while True:
        i = _skip_blank(text, i)
        if i < len(text) and text[i] == ",":
            i += 1
            continue
        if i >= len(text):
            raise BicepSyntaxError("unterminated object")
        if text[i] == "}":
            return entries, i + 1
        key_match = re.compile(r"(?:'((?:[^'\\]|\\.)*)'|([A-Za-z_][A-Za-z0-9_]*))\s*:").match(text, i)
        if not key_match:
            raise BicepSyntaxError(f"an object key was expected at offset {i}: {text[i:i + 40]!r}")
        key = key_match[1] if key_match[1] is not None else key_match[2]
        entries[key], i = parse_value(text, key_match.end())


def _parse_array(text: str, i: int) -> tuple[list[object], int]:
    items: list[object] = []
    while True:
        i = _skip_blank(text, i)
        if i < len(text) and text[i] == ",":
            i += 1
            continue
        if i >= len(text):
            raise BicepSyntaxError("unterminated array")
        if text[i] == "]":
            return items, i + 1
        item, i = parse_value(text, i)
        items.append(item)


@dataclass(frozen=True)
class BicepFile:
    """The top-level declarations and property values of one .bicep file, read without the Bicep CLI."""

    path: Path

    @property
    def code(self) -> str:
        return _strip_comments(self.path.read_text(encoding="utf-8"))

    def var(self, name: str) -> object:
        """The value of `var <name> = ...`."""
        return self._declared(rf"^var\s+{name}\s*=", f"var {name}")

    def param_default(self, name: str) -> object:
        """The default of `param <name> <type> = ...`."""
        return self._declared(rf"^param\s+{name}\s+\w+\s*=", f"param {name} with a default")

    def properties(self, key: str) -> list[object]:
        """The value of every `<key>: ...` property, at any depth, in file order."""
        code = self.code
        return [parse_value(code, m.end())[0] for m in re.finditer(rf"(?<![\w.'])\b{key}\s*:", code)
                if not _inside_string(code, m.start())]

    def property(self, key: str) -> object:
        values = self.properties(key)
        if len(values) != 1:
            raise AssertionError(f"{self.path.name}: expected one '{key}:' property, found {len(values)}")
        return values[0]

    def _declared(self, pattern: str, what: str) -> object:
        match = re.search(pattern, self.code, re.MULTILINE)
        if not match:
            raise AssertionError(f"{self.path.name}: no '{what}' declaration")
        return parse_value(self.code, match.end())[0]


def _inside_string(code: str, offset: int) -> bool:
    """Whether `offset` falls inside a string literal (so `name:` in `'a name: b'` is not a property)."""
    i = 0
    while i < offset:
        if code[i] == "'":
            end = _string_end(code, i)
            if end > offset:
                return True
            i = end
        else:
            i += 1
    return False


# ----------------------------------------------------------------------------------------------------------------------
# The parser on small texts: what it reads, and that it says so when it cannot.


def test_parser_reads_objects_arrays_strings_and_keeps_expressions_as_source():
    text = """{
      name: 'a'   // a comment with 'quotes' and a: colon
      list: [
        'x', 'y'
        other.value
      ]
      url: 'https://${host}/p?x=${f('q')}'
      'quoted-key': cond ? { a: 1 } : {}
      escaped: 'it\\'s'
      /* block: 'comment' */ last: 3
    }"""
    value, end = parse_value(_strip_comments(text))
    assert end == len(text)
    assert value == {
        "name": "a",
        "list": ["x", "y", Expr("other.value")],
        "url": Expr("'https://${host}/p?x=${f('q')}'"),
        "quoted-key": Expr("cond ? { a: 1 } : {}"),
        "escaped": "it's",
        "last": Expr("3"),
    }


def test_parser_reads_single_line_entries_separated_by_commas():
    value, _ = parse_value("[{ name: 'A', value: x.y }, { name: 'B', value: 'b' }]")
    assert value == [{"name": "A", "value": Expr("x.y")}, {"name": "B", "value": "b"}]


def test_parser_keeps_a_string_that_starts_an_expression_whole():
    value, _ = parse_value("{ v: 'F0' == sku ? 2 : 10 }")
    assert value == {"v": Expr("'F0' == sku ? 2 : 10")}


def test_parser_names_the_place_of_a_syntax_error():
    with pytest.raises(BicepSyntaxError, match="object key was expected at offset 2"):
        parse_value("{ : 'x' }")
    with pytest.raises(BicepSyntaxError, match="unterminated"):
        parse_value("{ a: 'x' ")


# ----------------------------------------------------------------------------------------------------------------------
# The Bicep against the code.


def app_settings() -> dict[str, object]:
    """The Function App's settings as name -> value (parsed), from the one `appSettings: [...]` array."""
    entries = BicepFile(FUNCTION_APP).property("appSettings")
    assert isinstance(entries, list), "appSettings must be an array literal of { name: '...', value: ... }"
    names = [entry["name"] for entry in entries]
    assert all(isinstance(n, str) for n in names), f"every setting name must be a literal string: {names}"
    duplicates = sorted({n for n in names if names.count(n) > 1})
    assert not duplicates, f"settings set twice in {FUNCTION_APP.name}: {duplicates}"
    return {entry["name"]: entry["value"] for entry in entries}


def main_containers() -> dict[str, str]:
    """main.bicep's container names by role; a name taken from a parameter (``acceptedContainer``) is its default."""
    main = BicepFile(MAIN)
    value = main.var("containers")
    assert isinstance(value, dict), value
    value = {role: main.param_default(v.source) if isinstance(v, Expr) else v for role, v in value.items()}
    assert all(isinstance(v, str) for v in value.values()), value
    return value


def resolve(expr: object, bindings: dict[str, object]) -> object:
    """The literal behind `name` or `name.key` when `bindings` has it; the expression otherwise."""
    if not isinstance(expr, Expr):
        return expr
    head, _, tail = expr.source.partition(".")
    bound = bindings.get(head, expr)
    return bound.get(tail, expr) if tail and isinstance(bound, dict) else bound


def test_bicep_sets_every_setting_the_code_reads():
    connection = {f"{catalogue.STORAGE_CONNECTION}__{part}" for part in CONNECTION_PARTS}
    missing = sorted(({s.name for s in catalogue.SETTINGS} | connection) - set(app_settings()))
    assert not missing, f"functions/settings.py reads these but infra/modules/functionapp.bicep does not set them: {missing}"


def test_bicep_sets_no_setting_that_nothing_reads():
    known = {s.name for s in catalogue.SETTINGS} | set(HOST_OWNED) | FOR_OPERATORS
    known |= {f"{catalogue.STORAGE_CONNECTION}__{part}" for part in CONNECTION_PARTS}
    unknown = sorted(set(app_settings()) - known)
    assert not unknown, (f"infra/modules/functionapp.bicep sets settings no code reads: {unknown}; add them to "
                         "functions/settings.py, or to HOST_OWNED here with the reader's name")


def test_storage_connection_is_identity_based_with_the_apps_identity():
    values = app_settings()
    prefix = catalogue.STORAGE_CONNECTION
    assert values[f"{prefix}__credential"] == "managedidentity"
    assert values["AzureWebJobsStorage__credential"] == "managedidentity"
    assert values[f"{prefix}__clientId"] == values["AzureWebJobsStorage__clientId"] == values["AZURE_CLIENT_ID"] \
        == Expr("identityClientId")
    assert prefix not in values, "a plain connection string would need the shared key, which is off on the account"


def test_secret_settings_are_empty_or_key_vault_references_never_keys():
    values = app_settings()
    main = BicepFile(MAIN)
    passed = main.properties("predictionKeyReference") + main.properties("moderationKeyReference")
    assert len(passed) == 2, passed
    for setting in (s for s in catalogue.SETTINGS if s.secret):
        value = values[setting.name]
        assert isinstance(value, Expr) and value.source.endswith("KeyReference"), (setting.name, value)
    for value in passed:
        # keyless ? '' : '@Microsoft.KeyVault(SecretUri=...)'
        assert isinstance(value, Expr) and "''" in value.source and "@Microsoft.KeyVault(SecretUri=" in value.source
    # A key is read (listKeys) only where it goes straight into its one consumer, on the Azure side.
    readers = {path.name for path in INFRA.rglob("*.bicep") if "listKeys" in BicepFile(path).code}
    assert readers <= {"account-key-secret.bicep", "blob-events.bicep"}, \
        f"{sorted(readers)}: keys go only into Key Vault secrets (account-key-secret) or the webhook URL (blob-events)"


def test_no_output_holds_a_key():
    for path in INFRA.rglob("*.bicep"):
        for line in BicepFile(path).code.splitlines():
            if line.startswith("output "):
                assert "listKeys" not in line and not re.search(r"\.key[12s]?\b", line, re.IGNORECASE), \
                    f"{path.name}: {line.strip()}"


def test_container_settings_name_the_containers_the_bicep_creates_with_the_code_defaults():
    containers = main_containers()
    values = app_settings()
    for setting in catalogue.SETTINGS:
        if setting.name.endswith("_CONTAINER"):
            value = resolve(values[setting.name], {"containers": containers})
            assert value == setting.default, f"{setting.name}: Bicep gives {value!r}, the code defaults to {setting.default!r}"


def test_the_accepted_container_is_a_parameter_so_a_deployment_can_keep_its_former_classified_container():
    """Issue 12 renamed CVOPS_CLASSIFIED_CONTAINER (container ``classified``) to CVOPS_ACCEPTED_CONTAINER (``accepted``);
    an existing deployment passes ``acceptedContainer=classified``, and the app setting and the created container
    must both follow that one parameter, while the former setting is no longer set by the Bicep."""
    route = routes.BY_OUTCOME["accepted"]
    main = BicepFile(MAIN)
    assert main.param_default("acceptedContainer") == route.default == "accepted"
    assert main.var("containers")[route.key] == Expr("acceptedContainer")
    assert app_settings()[route.setting] == Expr(f"containers.{route.key}")
    assert Expr(f"containers.{route.key}") in main.property("containerNames")
    assert not set(route.legacy_settings) & set(app_settings())


def test_storage_creates_every_container_the_code_and_the_pipelines_use():
    containers = main_containers()
    created = {resolve(item, {"containers": containers}) for item in BicepFile(MAIN).property("containerNames")}
    wanted = {s.default for s in catalogue.SETTINGS if s.name.endswith("_CONTAINER")} | PIPELINE_CONTAINERS
    assert wanted <= created, f"containers the code uses but main.bicep does not create: {sorted(wanted - created)}"
    assert set(containers.values()) <= created


def test_storage_creates_the_backlog_queue_the_code_reads():
    main = BicepFile(MAIN)
    backlog = catalogue.BY_NAME["CVOPS_BACKLOG_QUEUE"].default
    assert main.var("backlogQueueName") == backlog
    queues = [resolve(q, {"backlogQueueName": backlog}) for q in main.property("queueNames")]
    assert backlog in queues
    assert values_resolved("CVOPS_BACKLOG_QUEUE", {"backlogQueueName": backlog}) == backlog


def values_resolved(name: str, bindings: dict[str, object]) -> object:
    return resolve(app_settings()[name], bindings)


def test_event_subscription_is_filtered_to_new_blobs_in_the_incoming_container():
    events = BicepFile(BLOB_EVENTS)
    incoming = catalogue.BY_NAME["CVOPS_INCOMING_CONTAINER"].default
    assert events.param_default("incomingContainer") == incoming
    assert main_containers()["incoming"] == incoming
    event_filter = events.property("filter")
    assert event_filter["includedEventTypes"] == ["Microsoft.Storage.BlobCreated"]
    assert event_filter["subjectBeginsWith"] == Expr("'/blobServices/default/containers/${incomingContainer}/blobs/'")
    (api_filter,) = event_filter["advancedFilters"]
    assert api_filter["key"] == "data.api" and api_filter["operatorType"] == "StringIn"
    assert sorted(api_filter["values"]) == ["CopyBlob", "PutBlob", "PutBlockList"]


def blob_trigger_function_names() -> list[str]:
    """Names of the functions in functions/ decorated with `<blueprint>.blob_trigger(...)`, as the host names them
    (the Python function name, or the argument of a `function_name(...)` decorator)."""
    names = []
    for path in sorted(FUNCTIONS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.FunctionDef):
                continue
            calls = [d for d in node.decorator_list if isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute)]
            if any(call.func.attr == "blob_trigger" for call in calls):
                renamed = [c.args[0].value for c in calls if c.func.attr == "function_name" and c.args
                           and isinstance(c.args[0], ast.Constant)]
                names.append(renamed[0] if renamed else node.name)
    return names


def test_event_subscription_and_scripts_name_the_blob_triggered_function():
    names = blob_trigger_function_names()
    assert len(names) == 1, f"expected one blob-triggered function in functions/, found {names}"
    (name,) = names
    assert BicepFile(BLOB_EVENTS).param_default("functionName") == name, \
        "the webhook URL's functionName=Host.Functions.<name> must name the blob-triggered function"
    for script in ("deploy.sh", "verify.sh"):
        assert f'function_name="{name}"' in (INFRA / script).read_text(encoding="utf-8"), script


def test_content_safety_account_is_created_for_its_api_with_the_apps_role_and_settings():
    """moderationApi content-safety: an account of kind ContentSafety beside the Computer Vision one, its name given to
    the roles module (Cognitive Services User for the app's identity) and its endpoint and API to the app."""
    main = BicepFile(MAIN)
    code = main.code
    assert main.param_default("moderationApi") == "computer-vision"   # an existing deployment keeps its scale
    assert re.search(r"module contentSafetyAccount 'modules/moderation.bicep' = if \(moderation && contentSafety\)",
                     code)
    assert "kind: 'ContentSafety'" in code and "kind: 'ComputerVision'" in code
    assert "contentSafety ? contentSafetyAccount.outputs.name" in str(main.var("moderationName"))
    assert "contentSafety ? contentSafetyAccount.outputs.endpoint" in str(main.var("moderationEndpoint"))
    assert main.properties("moderationAccountName") == [Expr("moderationName"), Expr("moderationName")]  # vault, roles
    assert main.properties("moderationApi") == [Expr("moderationApi")]
    values = app_settings()
    assert values["CVOPS_MODERATION_API"] == Expr("moderationApi")
    assert values["VISION_MODERATION_ENDPOINT"] == Expr("moderationEndpoint")
    roles = (INFRA / "modules" / "roles.bicep").read_text()
    assert re.search(r"scope: moderation\s+name: guid\([^)]*roles\.cognitiveServicesUser\)", roles)
    module = BicepFile(INFRA / "modules" / "moderation.bicep")
    assert module.property("kind") == Expr("kind")
