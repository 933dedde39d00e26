"""Load Falco rules files: read and validate items, apply overrides, resolve, compile.

The semantics follow Falco's rule loader (falcosecurity/falco `userspace/engine/
rule_loader_reader.cpp`, `_collector.cpp`, `_compiler.cpp`), including its error and warning
codes and wordings:

* Items are read in file order (several files load in order; later ones override earlier
  ones). `list`, `macro`, `rule`, `required_engine_version`, `required_plugin_versions`.
* `override:` appends or replaces exactly the keys Falco allows per item type; the deprecated
  `append: true` still works with a warning.
* Lists are substituted into condition text before parsing (as Falco does, so a list name
  works in any value position); list items naming earlier lists expand inline. Macros expand
  as parenthesised sub-expressions; a rule may use any macro, a macro the macros defined
  before it.
* Exceptions compile to `(<condition>) and not (...)`.

Unlike Falco, which stops at the first error, a load reports every error it can find (each
broken item is reported and skipped), and a load with any error yields no ruleset at all: a
broken rules file never half-loads. Every diagnostic carries the file, line and column.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from skanse.errors import InputError, YamlError
from skanse.model import Severity
from skanse.rules.compiler import (
    CompileError,
    Kleene,
    ModuleBuilder,
    RuleFn,
    event_types,
    kleene,
    missing_fields,
)
from skanse.rules.fields import SOURCES, UnknownFieldError, resolve_field
from skanse.rules.output import OutputError, OutputFormat, compile_output
from skanse.rules.parser import (
    BinaryCheck,
    ConditionSyntaxError,
    Expr,
    Identifier,
    LogicalExpr,
    NotExpr,
    Operand,
    Pos,
    TransformerExpr,
    TransformerList,
    UnaryCheck,
    parse_condition,
)
from skanse.sources.yamlpos import Limits, YamlDocument, join_pointer, load_documents

__all__ = [
    "ENGINE_VERSION",
    "Diagnostic",
    "LoadResult",
    "Priority",
    "Rule",
    "RulesFile",
    "Ruleset",
    "load_rules",
    "read_rules_files",
]

ENGINE_VERSION = (0, 63, 0)  # the Falco rules-engine version whose semantics we implement
MAX_RULES_FILE_BYTES = 64 * 1024 * 1024


class Priority(enum.IntEnum):
    """Falco priorities, most severe first (Falco's own order)."""

    EMERGENCY = 0
    ALERT = 1
    CRITICAL = 2
    ERROR = 3
    WARNING = 4
    NOTICE = 5
    INFORMATIONAL = 6
    DEBUG = 7

    @classmethod
    def parse(cls, text: str) -> Priority | None:
        """Case-insensitive; INFO is an alias of INFORMATIONAL."""
        name = text.strip().upper()
        if name == "INFO":
            return cls.INFORMATIONAL
        return cls.__members__.get(name)

    @property
    def label(self) -> str:
        """As Falco prints it: Emergency, Alert, ..., Informational, Debug."""
        return self.name.capitalize()

    @property
    def severity(self) -> Severity:
        """The skanse severity of this priority (documented in docs/rules.md)."""
        return _SEVERITY[self]


_SEVERITY = {
    Priority.EMERGENCY: Severity.CRITICAL,
    Priority.ALERT: Severity.CRITICAL,
    Priority.CRITICAL: Severity.CRITICAL,
    Priority.ERROR: Severity.HIGH,
    Priority.WARNING: Severity.MEDIUM,
    Priority.NOTICE: Severity.LOW,
    Priority.INFORMATIONAL: Severity.INFO,
    Priority.DEBUG: Severity.INFO,
}


@dataclass(frozen=True, slots=True)
class RulesFile:
    """One rules file: a name for messages and its content."""

    name: str
    content: str | bytes


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One error or warning of a load, in Falco's vocabulary plus a file position."""

    level: str  # "error" or "warning"
    code: str  # LOAD_ERR_VALIDATE, LOAD_UNUSED_MACRO, ...
    message: str
    item_type: str  # rule, macro, list, exception, rules content, ...
    item_name: str
    file: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        item = f"{self.item_type} '{self.item_name}'" if self.item_name else self.item_type
        return f"{where}: {self.level}: {item}: {self.message} [{self.code}]"


@dataclass(frozen=True, slots=True)
class Rule:
    """A compiled rule, ready for the engine."""

    name: str
    description: str
    priority: Priority
    source: str
    tags: tuple[str, ...]
    condition: str  # the condition as written (after appends and exceptions)
    ast: Expr  # macros and lists resolved
    output: OutputFormat
    evttypes: frozenset[str] | None  # None: every event type
    fn: RuleFn
    enabled: bool = True
    index: int = 0
    file: str = ""
    line: int | None = None

    def kleene(self) -> Kleene:
        return kleene(self.ast, self.source)

    def read_fields(self) -> tuple[str, ...]:
        return missing_fields(self.ast, self.source)


@dataclass(frozen=True, slots=True)
class Ruleset:
    """Everything a load produced: rules (in load order), and the counts of items."""

    rules: tuple[Rule, ...]
    macros: tuple[str, ...]
    lists: tuple[str, ...]
    required_engine_version: tuple[int, int, int] | None = None
    required_plugins: tuple[tuple[str, str], ...] = ()

    def enabled(self, source: str | None = None) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.enabled and (source is None or r.source == source))


@dataclass(frozen=True, slots=True)
class LoadResult:
    ruleset: Ruleset | None
    diagnostics: tuple[Diagnostic, ...]
    # items read per file: {"falco_rules.yaml": {"rule": 25, "rule_enabled": 25, ...}}
    item_counts: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.level == "error")

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.level == "warning")

    @property
    def ok(self) -> bool:
        return self.ruleset is not None


# -- context and errors --------------------------------------------------------------------
@dataclass(slots=True)
class _Ctx:
    file: str
    item_type: str
    item_name: str
    line: int | None = None
    column: int | None = None

    def named(self, item_type: str, name: str) -> _Ctx:
        return _Ctx(self.file, item_type, name, self.line, self.column)


class _ItemError(Exception):
    def __init__(self, code: str, message: str, ctx: _Ctx) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ctx = ctx


_YAML_VALIDATE = "LOAD_ERR_YAML_VALIDATE"
_VALIDATE = "LOAD_ERR_VALIDATE"
_COMPILE_CONDITION = "LOAD_ERR_COMPILE_CONDITION"
_COMPILE_OUTPUT = "LOAD_ERR_COMPILE_OUTPUT"

WARNING_APPEND = (
    "'append' key is deprecated. Add an 'append' entry (e.g. 'condition: append') under "
    "'override' instead."
)
WARNING_ENABLED = (
    "The standalone 'enabled' key usage is deprecated. The correct approach requires also a "
    "'replace' entry under the 'override' key (i.e. 'enabled: replace')."
)
ERROR_OVERRIDE_APPEND = (
    "Keys 'override' and 'append: true' cannot be used together. Add an 'append' entry (e.g. "
    "'condition: append') under 'override' instead."
)
ERROR_NO_PREVIOUS_MACRO = (
    "Macro uses 'append' or 'override.condition: append' but no macro by that name already exists"
)
ERROR_NO_PREVIOUS_LIST = (
    "List uses 'append' or 'override.items: append' but no list by that name already exists"
)
ERROR_NO_PREVIOUS_RULE_APPEND = (
    "Rule uses 'append' or 'override.<key>: append' but no rule by that name already exists"
)
ERROR_NO_PREVIOUS_RULE_REPLACE = (
    "An 'override.<key>: replace' to a rule was requested but no rule by that name already exists"
)
_RULE_APPENDABLE = ("condition", "output", "desc", "tags", "exceptions")
_RULE_REPLACEABLE = (
    "condition",
    "output",
    "desc",
    "priority",
    "capture",
    "capture_duration",
    "tags",
    "exceptions",
    "enabled",
    "warn_evttypes",
    "skip-if-unknown-filter",
)
_RULE_KEYS = frozenset(
    (
        "rule",
        "condition",
        "output",
        "desc",
        "priority",
        "source",
        "enabled",
        "capture",
        "capture_duration",
        "warn_evttypes",
        "skip-if-unknown-filter",
        "tags",
        "exceptions",
        "override",
        "append",
    )
)
_ITEM_KINDS = ("required_engine_version", "required_plugin_versions", "list", "macro", "rule")
_RX_IDENTIFIER = re.compile(r"[a-zA-Z]+[a-zA-Z0-9_]*")
_RX_BARESTR = re.compile(r"[^()\"' \t\n\r\f\v=,]+")
_SEMVER = re.compile(r"(\d+)\.(\d+)\.(\d+)")


# -- collected items -----------------------------------------------------------------------
@dataclass(slots=True)
class _Entry:
    """An exception's fields/comps/values entry: one string or a list of entries."""

    is_list: bool = False
    item: str = ""
    items: list[_Entry] = field(default_factory=list)
    defined: bool = False


@dataclass(slots=True)
class _Exception:
    name: str
    ctx: _Ctx
    fields: _Entry = field(default_factory=_Entry)
    comps: _Entry = field(default_factory=_Entry)
    values: list[_Entry] = field(default_factory=list)


@dataclass(slots=True)
class _List:
    name: str
    items: list[str]
    ctx: _Ctx
    index: int = 0
    visibility: int = 0


@dataclass(slots=True)
class _Macro:
    name: str
    cond: str
    ctx: _Ctx
    cond_at: tuple[str, int, int] | None = None
    index: int = 0
    visibility: int = 0
    # the conditions of its appends, joined to `cond` once, when the load ends: joining at
    # each append copied the whole text so far (80,000 appends took 5.5 s)
    cond_appends: list[str] = field(default_factory=list)

    def join_appends(self) -> None:
        if self.cond_appends:
            self.cond = " ".join((self.cond, *self.cond_appends))
            self.cond_appends.clear()


@dataclass(slots=True)
class _Rule:
    name: str
    ctx: _Ctx
    cond: str = ""
    cond_at: tuple[str, int, int] | None = None
    output: str = ""
    output_ctx: _Ctx | None = None
    desc: str = ""
    priority: Priority = Priority.WARNING
    source: str = "syscall"
    enabled: bool = True
    # in order, each once (an insertion-ordered set: an append looks a tag up, not a list)
    tags: dict[str, None] = field(default_factory=dict)
    exceptions: list[_Exception] = field(default_factory=list)
    # the first exception of each name, which an append of that name extends
    exception_named: dict[str, _Exception] = field(default_factory=dict)
    warn_evttypes: bool = True
    skip_if_unknown_filter: bool = False
    capture: bool = False
    capture_duration: int = 0
    unknown_source: bool = False
    index: int = 0
    visibility: int = 0
    # the condition, output and desc of its appends, joined once when the load ends (as a
    # macro's)
    cond_appends: list[str] = field(default_factory=list)
    output_appends: list[str] = field(default_factory=list)
    desc_appends: list[str] = field(default_factory=list)

    def join_appends(self) -> None:
        for attr, appends in (
            ("cond", self.cond_appends),
            ("output", self.output_appends),
            ("desc", self.desc_appends),
        ):
            if appends:
                setattr(self, attr, " ".join((getattr(self, attr), *appends)))
                appends.clear()


@dataclass(slots=True)
class _Update:
    """The keys an append/override/replace brings; None means the key was not given."""

    name: str
    ctx: _Ctx
    source: str = ""
    cond: str | None = None
    output: str | None = None
    desc: str | None = None
    tags: list[str] | None = None
    exceptions: list[_Exception] | None = None
    priority: Priority | None = None
    enabled: bool | None = None
    warn_evttypes: bool | None = None
    skip_if_unknown_filter: bool | None = None
    capture: bool | None = None
    capture_duration: int | None = None

    def has_any_value(self) -> bool:
        return any(
            v is not None
            for v in (
                self.cond,
                self.output,
                self.desc,
                self.tags,
                self.exceptions,
                self.priority,
                self.enabled,
                self.warn_evttypes,
                self.skip_if_unknown_filter,
                self.capture,
                self.capture_duration,
            )
        )


class _Loader:
    def __init__(self) -> None:
        self.diagnostics: list[Diagnostic] = []
        self.lists: dict[str, _List] = {}
        self.macros: dict[str, _Macro] = {}
        self.rules: dict[str, _Rule] = {}
        self.index = 0
        self.engine_version: tuple[int, int, int] | None = None
        self.plugins: list[tuple[str, str]] = []
        self.texts: dict[str, list[str]] = {}
        self.counts: dict[str, dict[str, int]] = {}

    # -- diagnostics -----------------------------------------------------------------------
    def error(self, code: str, message: str, ctx: _Ctx) -> None:
        self.diagnostics.append(
            Diagnostic(
                "error", code, message, ctx.item_type, ctx.item_name, ctx.file, ctx.line, ctx.column
            )
        )

    def warn(self, code: str, message: str, ctx: _Ctx) -> None:
        self.diagnostics.append(
            Diagnostic(
                "warning",
                code,
                message,
                ctx.item_type,
                ctx.item_name,
                ctx.file,
                ctx.line,
                ctx.column,
            )
        )

    @property
    def failed(self) -> bool:
        return any(d.level == "error" for d in self.diagnostics)

    # -- reading ---------------------------------------------------------------------------
    def read_file(self, rules_file: RulesFile) -> None:
        name = rules_file.name
        content = rules_file.content
        root = _Ctx(name, "rules content", "")
        if len(content) > MAX_RULES_FILE_BYTES:
            self.error(
                "LOAD_ERR_FILE_READ",
                f"rules file is larger than {MAX_RULES_FILE_BYTES // (1024 * 1024)} MiB",
                root,
            )
            return
        text = content.decode("utf-8", "replace") if isinstance(content, bytes) else content
        self.texts[name] = text.splitlines()
        try:
            docs = list(
                load_documents(
                    text, limits=Limits(max_depth=64, max_nodes=1_000_000), typing="yaml11"
                )
            )
        except YamlError as exc:
            root.line, root.column = exc.line, exc.column
            self.error("LOAD_ERR_YAML_PARSE", exc.message, root)
            return
        for doc in docs:
            if isinstance(doc, YamlError):
                ctx = _Ctx(name, "rules content", "", doc.line, doc.column)
                self.error("LOAD_ERR_YAML_PARSE", doc.message, ctx)
                continue
            self.read_document(doc, name)

    def read_document(self, doc: YamlDocument, name: str) -> None:
        data = doc.data
        line, column = doc.position("")
        ctx = _Ctx(name, "rules content", "", line, column)
        if not isinstance(data, dict | list):
            self.error(_YAML_VALIDATE, "Rules content is not yaml", ctx)
            return
        if not isinstance(data, list):
            self.error(_YAML_VALIDATE, "Rules content is not yaml array of objects", ctx)
            return
        for i, item in enumerate(data):
            if item is None:
                continue
            pointer = f"/{i}"
            line, column = doc.position(pointer)
            item_ctx = _Ctx(name, "rules content item", "", line, column)
            try:
                self.read_item(item, item_ctx, doc, pointer)
            except _ItemError as exc:
                self.error(exc.code, exc.message, exc.ctx)

    def read_item(self, item: Any, ctx: _Ctx, doc: YamlDocument, pointer: str) -> None:
        if not isinstance(item, dict):
            raise _ItemError(
                _YAML_VALIDATE,
                "Unexpected element type. Each element should be a yaml associative array.",
                ctx,
            )
        reader = _Item(item, doc, pointer)
        counts = self.counts.setdefault(ctx.file, {})
        kind = next((k for k in _ITEM_KINDS if k in item), "unknown")
        counts[kind] = counts.get(kind, 0) + 1
        if kind == "rule" and item.get("enabled") is not False:
            counts["rule_enabled"] = counts.get("rule_enabled", 0) + 1
        if "required_engine_version" in item:
            self.read_engine_version(reader, ctx.named("required_engine_version", ""))
        elif "required_plugin_versions" in item:
            self.read_plugin_versions(reader, ctx.named("required_plugin_versions", ""))
        elif "list" in item:
            self.read_list(reader, ctx)
        elif "macro" in item:
            self.read_macro(reader, ctx)
        elif "rule" in item:
            self.read_rule(reader, ctx)
        else:
            self.warn("LOAD_UNKNOWN_ITEM", "Unknown top level item", ctx)

    def warn_unknown_keys(self, item: _Item, expected: Iterable[str], ctx: _Ctx) -> None:
        allowed = set(expected)
        for key in item.data:
            if key not in allowed:
                self.warn("LOAD_UNKNOWN_KEY", f"Unknown key '{key}'. The key will be ignored.", ctx)

    def read_engine_version(self, item: _Item, ctx: _Ctx) -> None:
        raw = item.data["required_engine_version"]
        version: tuple[int, int, int] | None = None
        if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0:
            version = (0, raw, 0)
        else:
            text = item.text("required_engine_version", ctx)
            match = _SEMVER.fullmatch(text.strip())
            if text.strip().isdigit():
                version = (0, int(text.strip()), 0)
            elif match is None:
                raise _ItemError(
                    _YAML_VALIDATE,
                    f"Unable to parse engine version '{text}' as a semver string. "
                    'Expected "x.y.z" semver format.',
                    ctx,
                )
            else:
                version = (int(match[1]), int(match[2]), int(match[3]))
        if not _compatible(ENGINE_VERSION, version):
            raise _ItemError(
                _VALIDATE,
                f"Rules require engine version {_vtext(version)}, but engine version is "
                f"{_vtext(ENGINE_VERSION)}",
                ctx,
            )
        if self.engine_version is None or self.engine_version < version:
            self.engine_version = version
        self.warn_unknown_keys(item, ("required_engine_version",), ctx)

    def read_plugin_versions(self, item: _Item, ctx: _Ctx) -> None:
        value = item.data["required_plugin_versions"]
        if not isinstance(value, list):
            raise _ItemError(
                _YAML_VALIDATE, "Value of required_plugin_versions must be a sequence", ctx
            )
        for entry in value:
            if not isinstance(entry, dict):
                raise _ItemError(_YAML_VALIDATE, "Plugin version must be a mapping", ctx)
            name, version = entry.get("name"), entry.get("version")
            if not isinstance(name, str) or not name:
                raise _ItemError(_YAML_VALIDATE, "Item has no mapping for key 'name'", ctx)
            if version is None:
                raise _ItemError(_YAML_VALIDATE, "Item has no mapping for key 'version'", ctx)
            if _SEMVER.fullmatch(str(version)) is None:
                raise _ItemError(
                    _VALIDATE, f"Invalid required version '{version}' for plugin '{name}'", ctx
                )
            self.plugins.append((name, str(version)))
        self.warn_unknown_keys(item, ("required_plugin_versions",), ctx)

    def read_overrides(
        self, item: _Item, appendable: Sequence[str], replaceable: Sequence[str], ctx: _Ctx
    ) -> tuple[set[str], set[str]]:
        value = item.data.get("override")
        if value is None:
            return set(), set()
        if not isinstance(value, dict):
            raise _ItemError(_YAML_VALIDATE, "Value of 'override' must be a mapping", ctx)
        append: set[str] = set()
        replace: set[str] = set()
        for key, operation in value.items():
            if operation == "append":
                if key not in appendable:
                    raise _ItemError(
                        _YAML_VALIDATE,
                        f"Key '{key}' cannot be appended to, use 'replace' instead",
                        ctx,
                    )
                append.add(key)
            elif operation == "replace":
                if key not in replaceable:
                    raise _ItemError(_YAML_VALIDATE, f"Key '{key}' cannot be replaced", ctx)
                replace.add(key)
            else:
                allowed = ("append " if key in appendable else "") + (
                    "replace " if key in replaceable else ""
                )
                raise _ItemError(
                    _YAML_VALIDATE,
                    f"Invalid override operation for key '{key}': '{operation}'. "
                    f"Allowed values are: {allowed}",
                    ctx,
                )
        return append, replace

    def read_list(self, item: _Item, base: _Ctx) -> None:
        name = item.text("list", base.named("list", ""))
        ctx = base.named("list", name)
        if not _RX_BARESTR.fullmatch(name):
            self.warn(
                "LOAD_INVALID_LIST_NAME",
                "List has an invalid name. List names should match a regular expression: "
                "([^()\"'[:space:]=,]+)",
                ctx,
            )
        items = item.sequence("items", ctx)
        append = item.flag("append", ctx)
        if append:
            self.warn("LOAD_DEPRECATED_ITEM", WARNING_APPEND, ctx)
        add, replace = self.read_overrides(item, ("items",), ("items",), ctx)
        if append and (add or replace):
            raise _ItemError(_YAML_VALIDATE, ERROR_OVERRIDE_APPEND, ctx)
        if append or "items" in add:
            prev = self.lists.get(name)
            if prev is None:
                raise _ItemError(_VALIDATE, ERROR_NO_PREVIOUS_LIST, ctx)
            prev.items.extend(items)
            prev.visibility = self.next_index()
        else:
            self.define(self.lists, _List(name, items, ctx))
        self.warn_unknown_keys(item, ("list", "items", "append", "override"), ctx)

    def read_macro(self, item: _Item, base: _Ctx) -> None:
        name = item.text("macro", base.named("macro", ""))
        ctx = base.named("macro", name)
        if not _RX_IDENTIFIER.fullmatch(name):
            self.warn(
                "LOAD_INVALID_MACRO_NAME",
                "Macro has an invalid name. Macro names should match a regular expression: "
                "([a-zA-Z]+[a-zA-Z0-9_]*)",
                ctx,
            )
        cond = item.text("condition", ctx)
        cond_at = item.at("condition")
        append = item.flag("append", ctx)
        if append:
            self.warn("LOAD_DEPRECATED_ITEM", WARNING_APPEND, ctx)
        add, replace = self.read_overrides(item, ("condition",), ("condition",), ctx)
        if append and (add or replace):
            raise _ItemError(_YAML_VALIDATE, ERROR_OVERRIDE_APPEND, ctx)
        if append or "condition" in add:
            prev = self.macros.get(name)
            if prev is None:
                raise _ItemError(_VALIDATE, ERROR_NO_PREVIOUS_MACRO, ctx)
            prev.cond_appends.append(cond)
            prev.visibility = self.next_index()
        else:
            self.define(self.macros, _Macro(name, cond, ctx, cond_at))
        self.warn_unknown_keys(item, ("macro", "condition", "append", "override"), ctx)

    def next_index(self) -> int:
        self.index += 1
        return self.index - 1

    def define(self, table: dict[str, Any], info: Any) -> None:
        index = self.next_index()
        prev = table.get(info.name)
        if prev is not None:
            info.index = prev.index
            info.visibility = index
        else:
            info.index = index
            info.visibility = index
        table[info.name] = info  # a redefinition keeps its place (dicts keep first order)

    def read_rule(self, item: _Item, base: _Ctx) -> None:
        name = item.text("rule", base.named("rule", ""))
        ctx = base.named("rule", name)
        source = item.optional_text("source", ctx, can_be_empty=True) or ""
        append_flag = item.flag("append", ctx)
        if append_flag:
            self.warn("LOAD_DEPRECATED_ITEM", WARNING_APPEND, ctx)
        add, replace = self.read_overrides(item, _RULE_APPENDABLE, _RULE_REPLACEABLE, ctx)
        if append_flag and (add or replace):
            raise _ItemError(_YAML_VALIDATE, ERROR_OVERRIDE_APPEND, ctx)
        if add or replace:
            expected = {k for k in (*_RULE_APPENDABLE, *_RULE_REPLACEABLE) if k in item.data}
            for mode, keys in (("append", add), ("replace", replace)):
                if not keys:
                    continue
                update = _Update(name, ctx)
                for key in keys:
                    if key not in expected:
                        raise _ItemError(
                            _YAML_VALIDATE,
                            f"An {mode} override for '{key}' was specified but '{key}' is "
                            "not defined",
                            ctx,
                        )
                    expected.discard(key)
                self.read_update(item, update, keys, source, append=mode == "append")
                if mode == "append":
                    self.append_rule(update)
                else:
                    self.replace_rule(update)
            for key in sorted(expected):
                raise _ItemError(
                    _YAML_VALIDATE,
                    f"Unexpected key '{key}': no corresponding entry under 'override' is defined.",
                    ctx,
                )
        elif append_flag:
            update = _Update(name, ctx, source=source)
            if "condition" in item.data:
                update.cond = item.text("condition", ctx)
            if "exceptions" in item.data:
                update.exceptions = self.read_exceptions(item, ctx, append=True)
            self.append_rule(update)
        else:
            if not any(k in item.data for k in ("condition", "output", "desc", "priority")):
                enabled = item.flag("enabled", ctx, required=True)
                self.warn("LOAD_DEPRECATED_ITEM", WARNING_ENABLED, ctx)
                prev = self.rules.get(name)
                if prev is None:
                    raise _ItemError(
                        _VALIDATE,
                        "Rule has 'enabled' key but no rule by that name already exists",
                        ctx,
                    )
                prev.enabled = enabled
            else:
                rule = _Rule(name, ctx)
                rule.cond = item.text("condition", ctx)
                rule.cond_at = item.at("condition")
                rule.output = item.text("output", ctx).strip()
                out_line, out_col = item.position("output")
                rule.output_ctx = _Ctx(ctx.file, "rule", name, out_line, out_col)
                rule.desc = item.text("desc", ctx)
                rule.priority = self.priority(item, ctx)
                rule.source = item.optional_text("source", ctx) or "syscall"
                rule.enabled = item.flag("enabled", ctx, default=True)
                rule.capture = item.flag("capture", ctx)
                rule.capture_duration = item.optional_int("capture_duration", ctx) or 0
                rule.warn_evttypes = item.flag("warn_evttypes", ctx, default=True)
                rule.skip_if_unknown_filter = item.flag("skip-if-unknown-filter", ctx)
                rule.tags = dict.fromkeys(item.tags(ctx))
                rule.exceptions = self.read_exceptions(item, ctx, append=False)
                rule.exception_named = _first_of_each_name(rule.exceptions)
                self.define_rule(rule)
        self.warn_unknown_keys(item, _RULE_KEYS, ctx)

    def priority(self, item: _Item, ctx: _Ctx) -> Priority:
        text = item.text("priority", ctx)
        parsed = Priority.parse(text)
        if parsed is None:
            line, column = item.position("priority")
            raise _ItemError(
                _YAML_VALIDATE,
                "Invalid priority",
                _Ctx(ctx.file, "rule", ctx.item_name, line, column),
            )
        return parsed

    def read_update(
        self, item: _Item, update: _Update, keys: set[str], source: str, *, append: bool
    ) -> None:
        ctx = update.ctx
        if "condition" in keys:
            update.source = source
            update.cond = item.text("condition", ctx)
        if "exceptions" in keys:
            update.exceptions = self.read_exceptions(item, ctx, append=append)
        if "output" in keys:
            update.output = item.text("output", ctx)
        if "desc" in keys:
            update.desc = item.text("desc", ctx)
        if "tags" in keys:
            update.tags = item.tags(ctx)
        if "priority" in keys:
            update.priority = self.priority(item, ctx)
        if "capture" in keys:
            update.capture = item.flag("capture", ctx)
        if "capture_duration" in keys:
            update.capture_duration = item.optional_int("capture_duration", ctx)
        if "enabled" in keys:
            update.enabled = item.flag("enabled", ctx, required=True)
        if "warn_evttypes" in keys:
            update.warn_evttypes = item.flag("warn_evttypes", ctx, required=True)
        if "skip-if-unknown-filter" in keys:
            update.skip_if_unknown_filter = item.flag("skip-if-unknown-filter", ctx, required=True)

    def read_exceptions(self, item: _Item, ctx: _Ctx, *, append: bool) -> list[_Exception]:
        value = item.data.get("exceptions")
        if value is None:
            return []
        if not isinstance(value, list):
            raise _ItemError(_YAML_VALIDATE, "Rule exceptions must be a sequence", ctx)
        out: list[_Exception] = []
        names: set[str] = set()
        for i, raw in enumerate(value):
            line, column = item.position(f"exceptions/{i}")
            ex_ctx = _Ctx(ctx.file, "exception", "", line, column)
            if not isinstance(raw, dict):
                raise _ItemError(_YAML_VALIDATE, "Rule exception must be a mapping", ex_ctx)
            sub = _Item(raw, item.doc, f"{item.pointer}/exceptions/{i}")
            name = sub.text("name", ex_ctx)
            ex_ctx = ex_ctx.named("exception", name)
            if name in names:
                self.warn(
                    "LOAD_EXCEPTION_NAME_NOT_UNIQUE",
                    f"Multiple definitions of exception '{name}' in the same rule",
                    ex_ctx,
                )
            ex = _Exception(name, ex_ctx)
            ex.fields = _entry(raw, "fields", ex_ctx, optional=append)
            ex.comps = _entry(raw, "comps", ex_ctx, optional=True)
            values = raw.get("values")
            if values is not None:
                if not isinstance(values, list):
                    raise _ItemError(
                        _YAML_VALIDATE, "Rule exception values must be a sequence", ex_ctx
                    )
                ex.values = [_entry_value(v, ex_ctx) for v in values]
            elif append:
                self.warn(
                    "LOAD_APPEND_NO_VALUES", "Overriding/appending exception with no values", ex_ctx
                )
            out.append(ex)
            names.add(name)
        return out

    def validate_exception(self, ex: _Exception, source: str | None) -> None:
        if ex.fields.is_list:
            if not ex.comps.defined:
                ex.comps = _Entry(
                    True, "", [_Entry(False, "=", defined=True) for _ in ex.fields.items], True
                )
            if len(ex.fields.items) != len(ex.comps.items):
                raise _ItemError(_VALIDATE, "Fields and comps lists must have equal length", ex.ctx)
            for comp in ex.comps.items:
                comp.item = comp.item.strip()
                if not _is_operator(comp.item):
                    raise _ItemError(
                        _VALIDATE, f"'{comp.item}' is not a supported comparison operator", ex.ctx
                    )
            if source is not None:
                for f in ex.fields.items:
                    if not _valid_field(f.item, source):
                        raise _ItemError(
                            _VALIDATE, f"'{f.item}' is not a supported filter field", ex.ctx
                        )
        else:
            if not ex.comps.defined:
                ex.comps = _Entry(False, "in", defined=True)
            if ex.comps.is_list:
                raise _ItemError(_VALIDATE, "Fields and comps must both be strings", ex.ctx)
            ex.comps.item = ex.comps.item.strip()
            if ex.comps.item not in ("in", "pmatch", "intersects") and not _is_modifier_op(
                ex.comps.item
            ):
                raise _ItemError(
                    _VALIDATE,
                    "When fields is a single value, comps must be one of (in, pmatch, "
                    "intersects) or a modifier operator (e.g. startswith oneof)",
                    ex.ctx,
                )
            if source is not None and not _valid_field(ex.fields.item, source):
                raise _ItemError(
                    _VALIDATE, f"'{ex.fields.item}' is not a supported filter field", ex.ctx
                )

    def define_rule(self, rule: _Rule) -> None:
        prev = self.rules.get(rule.name)
        if prev is not None and prev.source and rule.source and prev.source != rule.source:
            raise _ItemError(
                _VALIDATE, "Rule has been re-defined with a different source", rule.ctx
            )
        if rule.source not in SOURCES:
            rule.unknown_source = True
            self.warn("LOAD_UNKNOWN_SOURCE", f"Unknown source {rule.source}, skipping", rule.ctx)
        for ex in rule.exceptions:
            if not ex.fields.defined:
                raise _ItemError(
                    _VALIDATE,
                    "Rule exception item must have fields property with a list of fields",
                    ex.ctx,
                )
            self.validate_exception(ex, None if rule.unknown_source else rule.source)
        self.define(self.rules, rule)

    def find_prev_rule(self, update: _Update) -> _Rule | None:
        prev = self.rules.get(update.name)
        if prev is not None and prev.source and update.source and prev.source != update.source:
            raise _ItemError(
                _VALIDATE, "Rule has been re-defined with a different source", update.ctx
            )
        return prev

    def append_rule(self, update: _Update) -> None:
        prev = self.find_prev_rule(update)
        if prev is None:
            raise _ItemError(_VALIDATE, ERROR_NO_PREVIOUS_RULE_APPEND, update.ctx)
        if not update.has_any_value():
            raise _ItemError(
                _VALIDATE, "Appended rule must have exceptions or condition property", update.ctx
            )
        if update.cond:
            prev.cond_appends.append(update.cond)
        if update.output:
            prev.output_appends.append(update.output)
        if update.desc:
            prev.desc_appends.append(update.desc)
        if update.tags is not None:
            prev.tags.update(dict.fromkeys(update.tags))
        for ex in update.exceptions or ():
            existing = prev.exception_named.get(ex.name)
            if existing is None:
                if not ex.fields.defined:
                    raise _ItemError(
                        _VALIDATE,
                        "Rule exception must have fields property with a list of fields",
                        ex.ctx,
                    )
                if not ex.values:
                    raise _ItemError(
                        _VALIDATE,
                        "Rule exception must have values property with a list of values",
                        ex.ctx,
                    )
                self.validate_exception(ex, None if prev.unknown_source else prev.source)
                prev.exceptions.append(ex)
                prev.exception_named.setdefault(ex.name, ex)
            else:
                if ex.fields.defined:
                    raise _ItemError(
                        _VALIDATE,
                        "Can not append exception fields to existing exception, only values",
                        ex.ctx,
                    )
                if ex.comps.defined:
                    raise _ItemError(
                        _VALIDATE,
                        "Can not append exception comps to existing exception, only values",
                        ex.ctx,
                    )
                existing.values.extend(ex.values)
        self.next_index()

    def replace_rule(self, update: _Update) -> None:
        prev = self.find_prev_rule(update)
        if prev is None:
            raise _ItemError(_VALIDATE, ERROR_NO_PREVIOUS_RULE_REPLACE, update.ctx)
        if not update.has_any_value():
            raise _ItemError(
                _VALIDATE, "The rule must have at least one field that can be replaced", update.ctx
            )
        # a replaced condition, output or desc replaces the appends before it too
        for attr, appends in (
            ("cond", prev.cond_appends),
            ("output", prev.output_appends),
            ("desc", prev.desc_appends),
        ):
            if getattr(update, attr) is not None:
                appends.clear()
        for attr in (
            "cond",
            "output",
            "desc",
            "priority",
            "enabled",
            "warn_evttypes",
            "skip_if_unknown_filter",
            "capture",
            "capture_duration",
        ):
            value = getattr(update, attr)
            if value is not None:
                setattr(prev, attr, value)
        if update.tags is not None:
            prev.tags = dict.fromkeys(update.tags)
        if update.exceptions is not None:
            prev.exceptions = list(update.exceptions)
            prev.exception_named = _first_of_each_name(prev.exceptions)
        self.next_index()

    # -- compiling -------------------------------------------------------------------------
    def visible_to(self, macro: _Macro) -> Callable[[str], bool]:
        """Whether a macro of that name was defined before `macro` (which may refer to it)."""

        def visible(name: str) -> bool:
            other = self.macros.get(name)
            return other is not None and other.index < macro.visibility

        return visible

    def compile(self) -> Ruleset | None:
        for macro in self.macros.values():
            macro.join_appends()
        for rule in self.rules.values():
            rule.join_appends()
        lists = _ListResolver(self.compile_lists())
        used_lists: set[str] = set(self.used_lists_in_lists)
        used_macros: set[str] = set()
        macro_asts: dict[str, Expr] = {}
        for macro in self.macros.values():
            try:
                text, used = lists.resolve(macro.cond, macro.ctx)
                used_lists |= used
                macro_asts[macro.name] = self.parse(text, macro.cond, macro.ctx, macro.cond_at)
            except _ItemError as exc:
                self.error(exc.code, exc.message, exc.ctx)
        expander = _Expander(macro_asts)
        for macro in self.macros.values():
            if macro.name not in macro_asts:
                continue
            try:
                expander.expand_macro(
                    macro.name,
                    self.visible_to(macro),
                    used_macros,
                    macro.ctx,
                    self.locator(macro.ctx, macro.cond, macro.cond_at),
                )
            except _ItemError as exc:
                self.error(exc.code, exc.message, exc.ctx)
        expanded_total = 0
        rules: list[Rule] = []
        builder_by_source: dict[str, ModuleBuilder] = {}
        pending: list[tuple[_Rule, str, Expr, OutputFormat, frozenset[str] | None, str]] = []
        for n, rule in enumerate(self.rules.values()):
            if rule.unknown_source:
                continue
            try:
                condition = rule.cond
                if rule.exceptions:
                    condition = _exception_condition(condition, rule.exceptions)
                output = self.compile_rule_output(rule)
                if output is None:
                    continue
                text, used = lists.resolve(condition, rule.ctx)
                used_lists |= used
                ast = self.parse(text, condition, rule.ctx, rule.cond_at)
                locate = self.locator(rule.ctx, text, rule.cond_at)
                expanded = expander.expand(ast, used_macros, rule.ctx, locate)
                expanded_total += expanded.size
                if expanded_total > MAX_EXPANDED_TOTAL:
                    raise _ItemError(
                        _COMPILE_CONDITION,
                        f"the rules' conditions with macros expanded exceed max total size "
                        f"limit of {MAX_EXPANDED_TOTAL} nodes",
                        rule.ctx,
                    )
                ast = expanded.node
                builder = builder_by_source.setdefault(rule.source, ModuleBuilder(rule.source))
                fn_name = f"rule_{n}"
                try:
                    builder.add_function(fn_name, ast)
                except CompileError as exc:
                    ctx = self.position(rule.ctx, condition, exc.pos, rule.cond_at)
                    if exc.unknown and rule.skip_if_unknown_filter:
                        self.warn("LOAD_UNKNOWN_FILTER", exc.message, ctx)
                        continue
                    code = (
                        _VALIDATE
                        if exc.message.startswith("Undefined macro")
                        else _COMPILE_CONDITION
                    )
                    raise _ItemError(code, exc.message, ctx) from None
                evttypes = event_types(ast) if rule.source == "syscall" else None
                if rule.source == "syscall" and evttypes is None and rule.warn_evttypes:
                    self.warn(
                        "LOAD_NO_EVTTYPE",
                        "Rule matches too many evt.type values. This has a significant "
                        "performance penalty.",
                        rule.ctx,
                    )
                pending.append((rule, condition, ast, output, evttypes, fn_name))
            except _ItemError as exc:
                self.error(exc.code, exc.message, exc.ctx)
        for name, macro in self.macros.items():
            if name not in used_macros:
                self.warn(
                    "LOAD_UNUSED_MACRO", "Macro not referred to by any other rule/macro", macro.ctx
                )
        for name, lst in self.lists.items():
            if name not in used_lists:
                self.warn(
                    "LOAD_UNUSED_LIST", "List not referred to by any other rule/macro", lst.ctx
                )
        if self.failed:
            return None
        namespaces = {
            src: b.build(filename=f"<rules:{src}>") for src, b in builder_by_source.items()
        }
        for rule, condition, ast, output, evttypes, fn_name in pending:
            rules.append(
                Rule(
                    name=rule.name,
                    description=rule.desc,
                    priority=rule.priority,
                    source=rule.source,
                    tags=tuple(rule.tags),
                    condition=condition,
                    ast=ast,
                    output=output,
                    evttypes=evttypes,
                    fn=namespaces[rule.source][fn_name],
                    enabled=rule.enabled,
                    index=len(rules),
                    file=rule.ctx.file,
                    line=rule.ctx.line,
                )
            )
        return Ruleset(
            rules=tuple(rules),
            macros=tuple(self.macros),
            lists=tuple(self.lists),
            required_engine_version=self.engine_version,
            required_plugins=tuple(self.plugins),
        )

    @property
    def used_lists_in_lists(self) -> set[str]:
        return self._used_in_lists

    def compile_lists(self) -> dict[str, list[str]]:
        self._used_in_lists: set[str] = set()
        out: dict[str, list[str]] = {}
        for lst in self.lists.values():
            items: list[str] = []
            for item in lst.items:
                ref = self.lists.get(item)
                if ref is not None and ref.index < lst.visibility:
                    self._used_in_lists.add(ref.name)
                    items.extend(ref.items)
                else:
                    items.append(item)
            out[lst.name] = items
        return out

    def compile_rule_output(self, rule: _Rule) -> OutputFormat | None:
        text = rule.output
        if "%container.info" in text:
            self.warn(
                "LOAD_DEPRECATED_ITEM",
                "%container.info is deprecated and no more useful, and will be dropped by Falco "
                "1.0.0. The container plugin will automatically add required fields to the "
                "output message.",
                rule.ctx,
            )
            text = text.replace("%container.info", "")
        assert rule.output_ctx is not None
        try:
            return compile_output(text, rule.source)
        except OutputError as exc:
            if rule.skip_if_unknown_filter:
                self.warn("LOAD_UNKNOWN_FILTER", str(exc), rule.output_ctx)
                return None
            raise _ItemError(_COMPILE_OUTPUT, str(exc), rule.output_ctx) from None

    def locator(
        self, ctx: _Ctx, text: str, at: tuple[str, int, int] | None
    ) -> Callable[[Pos], _Ctx]:
        def locate(pos: Pos) -> _Ctx:
            return self.position(ctx, text, pos, at)

        return locate

    def parse(self, text: str, original: str, ctx: _Ctx, at: tuple[str, int, int] | None) -> Expr:
        try:
            return parse_condition(text)
        except ConditionSyntaxError as exc:
            where = self.position(ctx, original, exc.pos, at, parsed=text)
            raise _ItemError(_COMPILE_CONDITION, exc.message, where) from None

    def position(
        self,
        ctx: _Ctx,
        condition: str,
        pos: Pos,
        at: tuple[str, int, int] | None,
        *,
        parsed: str | None = None,
    ) -> _Ctx:
        """The file position of offset `pos` in a condition, found in the file's text."""
        out = _Ctx(ctx.file, ctx.item_type, ctx.item_name, ctx.line, ctx.column)
        if at is None:
            return out
        _, line, column = at
        out.line, out.column = line, column
        lines = self.texts.get(ctx.file)
        source = parsed if parsed is not None else condition
        if not lines:
            return out
        # Search the text at the error position (first words of it) from the value's line.
        snippet = source[pos.idx : pos.idx + 24].split("\n")[0].strip()
        head = source[: pos.idx].rstrip().split()
        before = head[-1] if head else ""
        for k in range(line - 1, min(len(lines), line - 1 + 400)):
            text = lines[k]
            start = column - 1 if k == line - 1 else 0
            if snippet:
                found = text.find(snippet, start)
                if found >= 0:
                    out.line, out.column = k + 1, found + 1
                    return out
            elif before:
                found = text.find(before, start)
                if found >= 0:
                    out.line, out.column = k + 1, found + len(before) + 1
                    return out
        return out


# -- the item reader -----------------------------------------------------------------------
class _Item:
    """Typed access to one item's keys with Falco's validation messages."""

    __slots__ = ("data", "doc", "pointer")

    def __init__(self, data: dict[str, Any], doc: YamlDocument, pointer: str) -> None:
        self.data = data
        self.doc = doc
        self.pointer = pointer

    def position(self, key: str) -> tuple[int, int]:
        return self.doc.position(f"{self.pointer}/{key}")

    def at(self, key: str) -> tuple[str, int, int]:
        line, column = self.doc.position(join_pointer(self.pointer, key))
        # positions are recorded at the key; the value follows it on the same line
        return key, line, column + len(key) + 2

    def text(self, key: str, ctx: _Ctx) -> str:
        if key not in self.data:
            raise _ItemError(_YAML_VALIDATE, f"Item has no mapping for key '{key}'", ctx)
        value = self.data[key]
        if value is None:
            raise _ItemError(_YAML_VALIDATE, f"Mapping for key '{key}' is empty", ctx)
        if isinstance(value, dict | list):
            raise _ItemError(_YAML_VALIDATE, "Value is not a scalar value", ctx)
        text = _scalar_text(value)
        if text == "":
            raise _ItemError(_YAML_VALIDATE, "Value must be non-empty", ctx)
        return text

    def optional_text(self, key: str, ctx: _Ctx, *, can_be_empty: bool = False) -> str | None:
        if key not in self.data:
            return None
        value = self.data[key]
        if value is None and can_be_empty:
            return None
        if value is None:
            raise _ItemError(_YAML_VALIDATE, f"Mapping for key '{key}' is empty", ctx)
        if isinstance(value, dict | list):
            raise _ItemError(_YAML_VALIDATE, "Value is not a scalar value", ctx)
        text = _scalar_text(value)
        if text == "" and not can_be_empty:
            raise _ItemError(_YAML_VALIDATE, "Value must be non-empty", ctx)
        return text

    def flag(self, key: str, ctx: _Ctx, *, default: bool = False, required: bool = False) -> bool:
        if key not in self.data:
            if required:
                raise _ItemError(_YAML_VALIDATE, f"Item has no mapping for key '{key}'", ctx)
            return default
        value = self.data[key]
        if value is None:
            raise _ItemError(_YAML_VALIDATE, f"Mapping for key '{key}' is empty", ctx)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise _ItemError(_YAML_VALIDATE, "Can't decode YAML scalar value", ctx)

    def optional_int(self, key: str, ctx: _Ctx) -> int | None:
        if key not in self.data:
            return None
        value = self.data[key]
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _ItemError(_YAML_VALIDATE, "Can't decode YAML scalar value", ctx)

    def sequence(self, key: str, ctx: _Ctx) -> list[str]:
        if key not in self.data:
            raise _ItemError(_YAML_VALIDATE, f"Item has no mapping for key '{key}'", ctx)
        value = self.data[key]
        if not isinstance(value, list):
            raise _ItemError(_YAML_VALIDATE, "Value is not a sequence", ctx)
        out = []
        for v in value:
            if isinstance(v, dict | list) or v is None:
                raise _ItemError(_YAML_VALIDATE, "sequence value is not scalar", ctx)
            out.append(_scalar_text(v))
        return out

    def tags(self, ctx: _Ctx) -> list[str]:
        if "tags" not in self.data:
            return []
        return sorted(set(self.sequence("tags", ctx)))


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _entry(raw: Mapping[str, Any], key: str, ctx: _Ctx, *, optional: bool) -> _Entry:
    if key not in raw:
        if optional:
            return _Entry()
        raise _ItemError(_YAML_VALIDATE, f"Item has no mapping for key '{key}'", ctx)
    return _entry_value(raw[key], ctx)


def _entry_value(value: Any, ctx: _Ctx) -> _Entry:
    if isinstance(value, list):
        return _Entry(True, "", [_entry_value(v, ctx) for v in value], True)
    if value is None or isinstance(value, dict):
        raise _ItemError(_YAML_VALIDATE, "Value must be non-empty", ctx)
    text = _scalar_text(value)
    if text == "":
        raise _ItemError(_YAML_VALIDATE, "Value must be non-empty", ctx)
    return _Entry(False, text, [], True)


_OPERATORS = frozenset(
    (
        "=",
        "==",
        "!=",
        "<=",
        ">=",
        "<",
        ">",
        "exists",
        "contains",
        "icontains",
        "bcontains",
        "glob",
        "iglob",
        "bstartswith",
        "startswith",
        "endswith",
        "in",
        "intersects",
        "pmatch",
        "regex",
    )
)
_STR_OPS = (
    "==",
    "=",
    "!=",
    "glob",
    "iglob",
    "contains",
    "icontains",
    "bcontains",
    "startswith",
    "bstartswith",
    "endswith",
    "regex",
)


def _is_modifier_op(text: str) -> bool:
    op, _, modifier = text.partition(" ")
    return op in _STR_OPS and modifier.strip() in ("oneof", "anyof", "allof")


def _is_operator(text: str) -> bool:
    return text in _OPERATORS or _is_modifier_op(text)


def _is_list_operator(text: str) -> bool:
    return text in ("in", "intersects", "pmatch") or _is_modifier_op(text)


def _valid_field(text: str, source: str) -> bool:
    name, _, rest = text.partition("[")
    arg = rest[:-1] if rest.endswith("]") else None
    try:
        resolve_field(name, arg, source)
    except UnknownFieldError:
        return False
    return True


def _quote(item: str) -> str:
    if " " in item and not item.startswith(("'", '"')):
        return f'"{item}"'
    return item


def _first_of_each_name(exceptions: Iterable[_Exception]) -> dict[str, _Exception]:
    out: dict[str, _Exception] = {}
    for ex in exceptions:
        out.setdefault(ex.name, ex)
    return out


def _exception_condition(condition: str, exceptions: Sequence[_Exception]) -> str:
    """`(<cond>) and not (...)` for each exception, built as Falco builds the text."""
    clauses = [f"({condition})"]  # joined once: adding to the text copied it per exception
    for ex in exceptions:
        if not ex.fields.is_list:
            parts = []
            for value in ex.values:
                if value.is_list:
                    raise _ItemError(
                        _VALIDATE, "Expected values array to contain a list of strings", ex.ctx
                    )
                parts.append(_quote(value.item))
            clause = f"({ex.fields.item} {ex.comps.item} ({', '.join(parts)}))" if parts else ""
        else:
            tuples = []
            for values in ex.values:
                if len(ex.fields.items) != len(values.items):
                    raise _ItemError(
                        _VALIDATE, "Fields and values lists must have equal length", ex.ctx
                    )
                checks = []
                for k, f in enumerate(ex.fields.items):
                    comp = ex.comps.items[k].item
                    value = values.items[k]
                    if value.is_list:
                        text = "(" + ", ".join(_quote(v.item) for v in value.items) + ")"
                    elif _is_list_operator(comp):
                        text = value.item if value.item.startswith("(") else f"({value.item})"
                    else:
                        text = _quote(value.item)
                    checks.append(f"{f.item} {comp} {text}")
                tuples.append("(" + " and ".join(checks) + ")")
            clause = "(" + " or ".join(tuples) + ")" if tuples else ""
        if clause:
            clauses.append(f"not {clause}")
    return " and ".join(clauses)


_BLANKS = " \t\n\r"
_DELIMS = _BLANKS + "(),="


_TOKEN = re.compile(r"[^ \t\n\r(),=]+")  # a run of characters that are not _DELIMS

# Lists substituted into one condition's text, and into all of a load's conditions: a list
# whose items name lists defined after it is substituted again, so a few lines of doubling
# lists (m9: [m8, m8], m8: [m7, m7], ..., each defined before the next) make text of 2^n
# items; the upstream syscall rulesets together reach 5,830 characters in one condition and
# 73,421 in all.
MAX_RESOLVED_CHARS = 8 * 1024 * 1024
MAX_RESOLVED_TOTAL = 32 * 1024 * 1024


class _ListResolver:
    """Substitute list names in condition text, as Falco does before parsing.

    Falco substitutes each list in definition order over the whole text, so the items put in
    for one list are searched for the lists defined after it (and only those). This does the
    same in one pass over the text: a name is a whole token (delimited by blanks, `(),=` or
    the text's ends), its items replace it (blanks around it trimmed, and for an empty list
    one adjacent comma), and the items are scanned again only for lists defined later. The
    work (characters written, plus one per substitution) is capped per condition and per load.
    """

    def __init__(self, lists: Mapping[str, list[str]]) -> None:
        self.index = {name: i for i, name in enumerate(lists)}
        self.text = {name: ", ".join(_quote(v) for v in items) for name, items in lists.items()}
        # names with a delimiter inside (Falco warns, LOAD_INVALID_LIST_NAME), by first token
        self.odd: dict[str, list[str]] = {}
        for name in lists:
            if _TOKEN.fullmatch(name) is None:
                first = _TOKEN.match(name)
                if first is not None:  # a name that starts with a delimiter is never a token
                    self.odd.setdefault(first.group(), []).append(name)
        # whether a list's items may name a list defined after it: then they are scanned
        self.rescan = {
            name: any(
                self.index.get(token, -1) > self.index[name] or token in self.odd
                for token in _TOKEN.findall(text)
            )
            for name, text in self.text.items()
        }
        self.total = 0

    def _match(self, text: str, token: re.Match[str], after: int) -> tuple[str, int] | None:
        """The list named at `token` (the earliest defined, if several), and where it ends."""
        best: tuple[str, int] | None = None
        name = token.group()
        if self.index.get(name, -1) > after:
            best = (name, token.end())
        for odd in self.odd.get(name, ()):
            end = token.start() + len(odd)
            if (
                self.index[odd] > after
                and text.startswith(odd, token.start())
                and (end == len(text) or text[end] in _DELIMS)
                and (best is None or self.index[odd] < self.index[best[0]])
            ):
                best = (odd, end)
        return best

    def resolve(self, condition: str, ctx: _Ctx) -> tuple[str, set[str]]:
        used: set[str] = set()
        out: list[str] = []
        work = 0
        # frames of text being read: (text, position, only lists defined after this index)
        stack: list[tuple[str, int, int]] = [(condition, 0, -1)]
        while stack:
            text, pos, after = stack[-1]
            found = None
            for token in _TOKEN.finditer(text, pos):
                found = self._match(text, token, after)
                if found is not None:
                    start = token.start()
                    break
            if found is None:
                if pos < len(text):
                    out.append(text[pos:])
                    work += len(text) - pos
                stack.pop()
                if stack:  # the end of a list's items
                    out.append(" ")
                continue
            name, end = found
            if start > pos:
                out.append(text[pos:start])
                work += start - pos
            _rstrip(out)
            while end < len(text) and text[end] in _BLANKS:
                end += 1
            sub = self.text[name]
            if not sub:  # an empty list takes one adjacent comma with it
                if out and out[-1].endswith(","):
                    out[-1] = out[-1][:-1]
                    if not out[-1]:
                        out.pop()
                elif end < len(text):
                    if text[end] == ",":
                        end += 1
                else:
                    _drop_next_comma(stack)
            stack[-1] = (text, end, after)
            used.add(name)
            if out:
                out.append(" ")
            work += len(sub) + 2
            if work > MAX_RESOLVED_CHARS or self.total + work > MAX_RESOLVED_TOTAL:
                limit, what = (
                    (MAX_RESOLVED_CHARS, "condition")
                    if work > MAX_RESOLVED_CHARS
                    else (MAX_RESOLVED_TOTAL, "the rules' conditions")
                )
                raise _ItemError(
                    _COMPILE_CONDITION,
                    f"{what} with lists expanded exceeds max size limit of {limit} characters",
                    ctx,
                )
            if self.rescan[name]:
                stack.append((sub, 0, self.index[name]))
            else:
                out.append(sub)
                out.append(" ")
        self.total += work
        return "".join(out), used


def _rstrip(out: list[str]) -> None:
    """Trim the blanks at the end of the text written so far."""
    while out:
        last = out[-1].rstrip(_BLANKS)
        if last:
            out[-1] = last
            return
        out.pop()


def _drop_next_comma(stack: list[tuple[str, int, int]]) -> None:
    """An empty list at the end of a list's items: the comma after those items, if any."""
    for k in range(len(stack) - 2, -1, -1):
        text, pos, after = stack[k]
        while pos < len(text) and text[pos] in _BLANKS:
            pos += 1
        if pos < len(text):
            if text[pos] == ",":
                stack[k] = (text, pos + 1, after)
            return


# Nested and/or/not (and transformers) of a condition with its macros expanded: the code a
# condition compiles to nests as deep, and Python's parser stops at 200 parentheses; a check
# itself adds up to about ten. (The stable Falco rules reach 7.)
MAX_EXPANDED_DEPTH = 150
MAX_MACRO_NESTING = 100  # macros referring to macros referring to ...
MAX_EXPANDED_NODES = 100_000  # nodes of one condition with its macros expanded
MAX_EXPANDED_TOTAL = 500_000  # the same, summed over the rules of a load (upstream: 2,375)


@dataclass(frozen=True, slots=True)
class _Expanded:
    """A condition with its macros expanded; `size` counts a shared sub-tree at each use."""

    node: Expr
    size: int
    depth: int


class _PathError(_ItemError):
    """An expansion error that depends on the path to a macro (a loop, nesting), not the
    macro itself: never remembered as that macro's result."""


class _Expander:
    """Replace macro identifiers by their expanded conditions; detect reference loops.

    Each macro is expanded once and every reference to it shares that one sub-tree, so the
    work is linear in the text. The compiler still writes out a shared sub-tree at each use,
    so `size` and `depth` count it at each use, and a condition over MAX_EXPANDED_NODES or
    nested deeper than MAX_EXPANDED_DEPTH is refused before any code is generated (doubling
    macros, `m1: (m0 or m0)`, `m2: (m1 or m1)`, ..., reach millions of nodes in a few lines;
    a deep chain would overflow Python's parser). Recursion is bounded by MAX_EXPANDED_DEPTH
    and MAX_MACRO_NESTING.

    Errors met inside a macro point at the outermost reference, in the rule or macro being
    compiled.
    """

    def __init__(self, macros: Mapping[str, Expr]) -> None:
        self.macros = macros
        # a macro's expansion, or the error (code, message) that its expansion met
        self.done: dict[str, _Expanded | tuple[str, str]] = {}
        self.active: list[str] = []

    def expand(
        self, node: Expr, used: set[str], ctx: _Ctx, locate: Callable[[Pos], _Ctx] | None
    ) -> _Expanded:
        """A rule's condition expanded; `locate` maps its positions to the file."""
        return self._limited(self._node(node, used, ctx, locate, None), ctx)

    def expand_macro(
        self,
        name: str,
        visible: Callable[[str], bool],
        used: set[str],
        ctx: _Ctx,
        locate: Callable[[Pos], _Ctx] | None,
    ) -> _Expanded:
        """Macro `name` expanded, its own references limited to the macros `visible` to it."""
        self.active.append(name)
        try:
            result = self._node(self.macros[name], used, ctx, locate, visible)
        finally:
            self.active.pop()
        self.done[name] = result
        return self._limited(result, ctx)

    @staticmethod
    def _limited(result: _Expanded, ctx: _Ctx) -> _Expanded:
        if result.size > MAX_EXPANDED_NODES:
            raise _ItemError(
                _COMPILE_CONDITION,
                f"condition with macros expanded exceeds max size limit of "
                f"{MAX_EXPANDED_NODES} nodes",
                ctx,
            )
        return result

    def _node(
        self,
        node: Expr,
        used: set[str],
        ctx: _Ctx,
        locate: Callable[[Pos], _Ctx] | None,
        visible: Callable[[str], bool] | None,
    ) -> _Expanded:
        if isinstance(node, Identifier):
            where = locate(node.pos) if locate is not None else ctx
            if visible is not None and not visible(node.name) and node.name not in self.active:
                raise _ItemError(_VALIDATE, f"Undefined macro '{node.name}' used in filter.", where)
            return self._macro(node.name, used, where)
        if isinstance(node, LogicalExpr):
            parts = [self._node(c, used, ctx, locate, visible) for c in node.children]
            expr = LogicalExpr(node.op, tuple(p.node for p in parts), node.pos)
            return _checked(expr, parts, ctx)
        if isinstance(node, NotExpr):
            part = self._node(node.child, used, ctx, locate, visible)
            return _checked(NotExpr(part.node, node.pos), [part], ctx)
        assert isinstance(node, UnaryCheck | BinaryCheck)
        right = node.right if isinstance(node, BinaryCheck) else None
        return _Expanded(node, 1, max(_operand_depth(node.left), _operand_depth(right)))

    def _macro(self, name: str, used: set[str], where: _Ctx) -> _Expanded:
        """The expansion of macro `name`, referred to at `where`."""
        if name in self.active:
            raise _PathError(_VALIDATE, f"reference loop in macro '{name}'", where)
        body = self.macros.get(name)
        if body is None:
            raise _ItemError(_VALIDATE, f"Undefined macro '{name}' used in filter.", where)
        used.add(name)
        done = self.done.get(name)
        if isinstance(done, _Expanded):
            return done
        if done is not None:
            raise _ItemError(done[0], done[1], where)
        if len(self.active) >= MAX_MACRO_NESTING:
            raise _PathError(
                _COMPILE_CONDITION,
                f"macros nest deeper than the max depth limit of {MAX_MACRO_NESTING}",
                where,
            )
        self.active.append(name)
        try:
            result = self._node(body, used, where, None, None)
        except _PathError as exc:
            raise _PathError(exc.code, exc.message, where) from None
        except _ItemError as exc:
            self.done[name] = (exc.code, exc.message)
            raise _ItemError(exc.code, exc.message, where) from None
        finally:
            self.active.pop()
        self.done[name] = result
        return result


def _operand_depth(node: Operand | None) -> int:
    """How deep transformers nest in an operand, counted as the generated code nests them
    (`_xf('tolower', (...,))` is two levels)."""
    if isinstance(node, TransformerExpr):
        return 2 + max((_operand_depth(a) for a in node.args), default=0)
    if isinstance(node, TransformerList):
        return 1 + max((_operand_depth(a) for a in node.items), default=0)
    return 0


def _checked(node: Expr, parts: Sequence[_Expanded], ctx: _Ctx) -> _Expanded:
    """An and/or/not node over expanded parts; deeper than MAX_EXPANDED_DEPTH is an error."""
    depth = 1 + max(p.depth for p in parts)
    if depth > MAX_EXPANDED_DEPTH:
        raise _ItemError(
            _COMPILE_CONDITION,
            f"condition with macros expanded exceeds max depth limit of {MAX_EXPANDED_DEPTH}",
            ctx,
        )
    # sizes past the limits only need to stay past them (and not grow to huge integers)
    size = min(1 + sum(p.size for p in parts), MAX_EXPANDED_TOTAL + 1)
    return _Expanded(node, size, depth)


def _compatible(engine: tuple[int, int, int], required: tuple[int, int, int]) -> bool:
    if engine[0] != required[0]:
        return False
    return engine >= required


def _vtext(version: tuple[int, int, int]) -> str:
    return ".".join(str(v) for v in version)


def read_rules_files(names: Iterable[str]) -> list[RulesFile]:
    """Read rules files from disk, in order; InputError names the first that cannot be read.

    A file over MAX_RULES_FILE_BYTES is refused, and never read past it (a device or a FIFO
    has no size to check first).
    """
    from skanse.files import FileTooLarge, read_capped

    files = []
    for name in names:
        try:
            files.append(RulesFile(name, read_capped(name, MAX_RULES_FILE_BYTES)))
        except FileTooLarge:
            raise InputError(f"{name}: larger than {MAX_RULES_FILE_BYTES // 2**20} MiB") from None
        except OSError as exc:
            raise InputError(f"{name}: {exc.strerror or exc}") from None
    return files


def load_rules(files: Sequence[RulesFile]) -> LoadResult:
    """Load rules files in order. The ruleset is None when any error was found."""
    loader = _Loader()
    for rules_file in files:
        loader.read_file(rules_file)
    ruleset = loader.compile()
    if loader.failed:
        ruleset = None
    return LoadResult(ruleset, tuple(loader.diagnostics), loader.counts)
