"""YAML documents as plain data plus a side table of positions, parsed safely and fast.

libyaml (PyYAML's C parser) produces the event stream; a small non-recursive builder in this
module turns the events into plain Python values (dict, list, str, int, float, bool, None)
while recording, for every node, the line and column where it starts under its JSON pointer
(`/spec/containers/0/securityContext`). Checks see plain data; findings resolve their
pointer to the exact key line.

Why not `yaml.compose_all` or `yaml.safe_load`: a composed node graph shares aliased nodes, and
any walk over it (ours or a later `json.dumps`) expands an alias bomb exponentially; libyaml's
composer also recurses in C, so a deeply nested document can overflow the stack. Building from
events lets us bound depth, logical size (aliases counted at their expanded size) and reject
duplicate keys (which Kubernetes rejects, and which could hide a value from a scanner).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml
import yaml.constructor
import yaml.resolver

from skanse.errors import YamlError

__all__ = [
    "Limits",
    "ScalarTyping",
    "Span",
    "YamlDocument",
    "escape_token",
    "join_pointer",
    "load_documents",
]

try:  # libyaml is what makes this fast; the pure-Python parser is a slow but correct fallback
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml missing
    _Loader = yaml.SafeLoader

_RESOLVER = yaml.resolver.Resolver()
# First characters of YAML 1.1's implicit types (bool, int, float, null, timestamp, merge...):
# most keys and values start with another one, and skip the resolver's regular expressions.
_IMPLICIT_FIRST = frozenset(yaml.resolver.Resolver.yaml_implicit_resolvers)
_CONSTRUCTOR = yaml.constructor.SafeConstructor()

# How plain scalars are typed: as Kubernetes reads them (go-yaml v2), or as PyYAML's YAML 1.1
# (the Falco rules loader: yaml-cpp keeps a scalar as text until a field converts it, so `y`
# in a list of process names is the name "y", which go-yaml v2 would make true).
ScalarTyping = Literal["kubernetes", "yaml11"]

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_MERGE = "tag:yaml.org,2002:merge"


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds that keep hostile YAML from hanging the scanner or exhausting memory."""

    max_depth: int = 200
    # Logical nodes per document, aliases counted at their expanded size: a billion-laughs
    # document stops here instead of growing without bound in whoever walks it later.
    max_nodes: int = 2_000_000
    max_documents: int = 10_000


@dataclass(frozen=True, slots=True)
class Span:
    """The lines a scalar occupies (1-based, inclusive); used to tell comments from text."""

    start_line: int
    start_column: int
    end_line: int
    end_column: int


@dataclass(slots=True)
class YamlDocument:
    """One document of a YAML stream: its value and where every node of it starts."""

    index: int
    data: object
    start_line: int
    end_line: int
    # JSON pointer -> (line, column), both 1-based. Mapping values are placed at their key.
    positions: dict[str, tuple[int, int]] = field(default_factory=dict)

    def position(self, pointer: str) -> tuple[int, int]:
        """Line and column of `pointer`, or of its nearest ancestor that exists."""
        if not self.positions:  # JSON from the API server: no positions, nothing to walk
            return (self.start_line, 1)
        p = pointer
        while True:
            pos = self.positions.get(p)
            if pos is not None:
                return pos
            if not p:
                return (self.start_line, 1)
            p = p[: p.rfind("/")]


def escape_token(token: str | int) -> str:
    """One JSON pointer reference token (RFC 6901): `~` -> `~0`, `/` -> `~1`."""
    if isinstance(token, int):
        return str(token)
    return token.replace("~", "~0").replace("/", "~1")


def join_pointer(base: str, *tokens: str | int) -> str:
    """`base` extended by escaped tokens: join_pointer('/metadata', 'annotations', 'a/b')."""
    return base + "".join("/" + escape_token(t) for t in tokens)


def _child(base: str, key: str) -> str:
    """join_pointer for one key, on the parser's hot path (most keys need no escaping)."""
    if "~" in key or "/" in key:
        key = key.replace("~", "~0").replace("/", "~1")
    return base + "/" + key


class _Frame:
    """A mapping or sequence under construction."""

    __slots__ = ("anchor", "container", "key", "key_mark", "mark", "merges", "pointer", "size")

    def __init__(
        self,
        container: dict[str, object] | list[object],
        pointer: str,
        mark: Any,
        anchor: str | None,
    ) -> None:
        self.container = container
        self.pointer = pointer
        self.mark = mark
        self.anchor = anchor
        self.key: str | None = None  # mappings: the key waiting for its value
        self.key_mark: tuple[int, int] = (0, 0)
        self.size = 1  # logical nodes in this subtree, aliases at their expanded size
        self.merges: list[tuple[object, tuple[int, int]]] | None = None


# Kubernetes reads YAML with sigs.k8s.io/yaml, that is go-yaml v2, whose implicit typing is
# not PyYAML's: `y`, `Y`, `n` and `N` are booleans, `0o17` and `1e3` are numbers, `1:30` (a
# base-60 integer to PyYAML) is text. A scanner that types a scalar otherwise than the cluster
# reads another object: `shareProcessNamespace: y` or `runAsUser: 0o0` passed the checks that
# look for true and 0. So plain scalars are typed here as go-yaml v2's resolve() does.
_GO_WORDS: dict[str, object] = {
    **dict.fromkeys(("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE"), True),
    **dict.fromkeys(("on", "On", "ON"), True),
    **dict.fromkeys(("n", "N", "no", "No", "NO", "false", "False", "FALSE"), False),
    **dict.fromkeys(("off", "Off", "OFF"), False),
    **dict.fromkeys(("", "~", "null", "Null", "NULL"), None),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), float("nan")),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), float("inf")),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), float("-inf")),
}
# go-yaml's resolveTable: the first characters that may start anything but a string
_GO_HINTED = frozenset("+-0123456789yYnNtTfFoO~.")
# strconv.ParseInt(s, 0, 64) after go-yaml drops every "_": a sign, then a base prefix
_GO_INT = re.compile(
    r"([-+]?)(?:0[bB]([01]+)|0[oO]([0-7]+)|0[xX]([0-9a-fA-F]+)|(0[0-7]*)|([1-9][0-9]*))\Z"
)
_GO_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?\Z")
_GO_DOT_FLOAT = re.compile(r"\.[0-9]+(?:[eE][-+]?[0-9]+)?\Z")  # ParseFloat of what starts "."
# go-yaml's second reading of 0b: strconv.ParseInt(rest, 2, 64), which takes a sign itself
_GO_BIN_SIGNED = re.compile(r"0b([-+]?[01]+)\Z")
_INT64 = (-(2**63), 2**63 - 1)
_UINT64_MAX = 2**64 - 1


def _error_at(mark: Any, message: str) -> YamlError:
    """A YamlError at a parser mark (0-based line and column)."""
    return YamlError(message, line=mark.line + 1, column=mark.column + 1)


def _go_int(value: str) -> int | None:
    """ParseInt(value, 0, 64), then ParseUint: the integer, or None (not one, or out of range)."""
    m = _GO_INT.match(value)
    if m is None:
        return None
    sign, binary, octal, hexa, leading_zero, decimal = m.groups()
    if decimal is not None:
        if len(decimal) > 20:  # past uint64 for sure; and int() of many digits is quadratic
            return None
        number = int(decimal)
    elif leading_zero is not None:
        number = int(leading_zero, 8)  # "0" and C-style octal "0755"
    else:
        number = int(binary or octal or hexa, 2 if binary else 8 if octal else 16)
    if sign == "-":
        number = -number
    if _INT64[0] <= number <= _INT64[1] or (not sign and 0 <= number <= _UINT64_MAX):
        return number
    return None


def _go_float(value: str, pattern: re.Pattern[str]) -> float | None:
    """ParseFloat of a decimal that `pattern` admits; None past float64 (Go's ErrRange)."""
    if pattern.match(value) is None:
        return None
    number = float(value)
    return None if number in (float("inf"), float("-inf")) else number


def _go_resolve(value: str) -> object:
    """The value go-yaml v2 gives a plain scalar (timestamps, which it makes times and JSON
    makes strings again, stay text)."""
    if not value:
        return None
    first = value[0]
    if first not in _GO_HINTED:
        return value
    if value in _GO_WORDS:
        return _GO_WORDS[value]
    if first == ".":
        number = _go_float(value, _GO_DOT_FLOAT)
        return value if number is None else number
    if not ("0" <= first <= "9" or first in "+-"):
        return value
    plain = value.replace("_", "")
    integer = _go_int(plain)
    if integer is not None:
        return integer
    number = _go_float(plain, _GO_FLOAT)
    if number is not None:
        return number
    signed = _GO_BIN_SIGNED.match(plain)
    if signed is not None:
        integer = int(signed.group(1), 2)
        if _INT64[0] <= integer <= _UINT64_MAX:
            return integer
    if _GO_INT.match(plain) is not None:
        # an integer past 64 bits and float64 both: go-yaml makes a big.Int, which no field of
        # a Kubernetes object takes; say so rather than build it (int() of millions of digits
        # is quadratic, and str() refuses past 4,300)
        raise _OutOfRange(value)
    return value


def _go_value(value: str) -> object:
    """_go_resolve, except that an integer past 64 bits that is no float64 either stays the
    string it is, as go-yaml v2's resolve() leaves it: a string field takes it, any other
    refuses it."""
    try:
        return _go_resolve(value)
    except _OutOfRange:
        return value


class _OutOfRange(Exception):
    def __init__(self, value: str) -> None:
        shown = value if len(value) <= 40 else f"{value[:20]}...{value[-10:]}"
        super().__init__(f"integer {shown} ({len(value):,} characters) is out of range")


_TAGGED_KINDS: dict[str, tuple[type, ...]] = {
    _INT: (int,),
    _FLOAT: (float, int),
    _BOOL: (bool,),
    _NULL: (type(None),),
}


def _scalar_value(event: Any) -> object:
    """The plain value of a scalar typed as Kubernetes' decoder (go-yaml v2) types it."""
    tag = event.tag
    value: str = event.value
    mark = event.start_mark
    if tag is None or tag == "!":
        if not event.implicit[0]:
            return value  # quoted, or the non-specific tag: a string
        if value == "<<":
            return _MERGE_KEY
        return _go_value(value)
    if tag == _MERGE:
        return _MERGE_KEY
    kinds = _TAGGED_KINDS.get(tag)
    if kinds is None:
        # !!str, timestamps, binary and application tags stay text: Kubernetes sees
        # JSON strings
        return value
    resolved = _go_value(value)
    # an explicit tag must agree with what the text is, as go-yaml requires (`!!int abc`
    # is an error there, and int() raised here)
    if isinstance(resolved, bool) and bool not in kinds:
        resolved = value
    if not isinstance(resolved, kinds):
        short = "!!" + tag.rsplit(":", 1)[-1]
        raise _error_at(mark, f"cannot decode {value[:40]!r} as a {short}")
    if tag == _FLOAT and not isinstance(resolved, bool):
        return float(resolved)  # type: ignore[arg-type]
    return resolved


def _yaml11_value(event: Any) -> object:
    """The plain value of a scalar with PyYAML's YAML 1.1 implicit typing (see ScalarTyping),
    except that what go-yaml v2 cannot read either is text or an error here too: a base-60
    `1:30` is text, an integer past 64 bits and float64 is out of range (int() of millions of
    digits is quadratic)."""
    tag = event.tag
    value: str = event.value
    if tag is None or tag == "!":
        if not event.implicit[0]:
            return value
        if value == "<<":
            return _MERGE_KEY
        if value and value[0] not in _IMPLICIT_FIRST:
            return value  # no implicit type starts with this character: a string
        tag = _RESOLVER.resolve(yaml.ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
        if tag in (_INT, _FLOAT) and ":" in value:
            return value
    if tag == _STR:
        return value
    if tag == _NULL:
        return None
    if tag == _BOOL:
        return value.lower() in ("yes", "true", "on", "y")
    if tag == _MERGE:
        return _MERGE_KEY
    if tag in (_INT, _FLOAT):
        mark = event.start_mark
        try:
            resolved = _go_resolve(value)
        except _OutOfRange as exc:
            raise _error_at(mark, str(exc)) from None
        if isinstance(resolved, int | float) and not isinstance(resolved, bool):
            return float(resolved) if tag == _FLOAT else resolved
        node = yaml.ScalarNode(tag, value)
        try:
            if tag == _INT:
                return _CONSTRUCTOR.construct_yaml_int(node)
            return _CONSTRUCTOR.construct_yaml_float(node)
        except ValueError:
            raise _error_at(
                mark, f"cannot decode {value[:40]!r} as a !!{tag.rsplit(':', 1)[-1]}"
            ) from None
    # Timestamps, binary and application tags stay text, as JSON would have them.
    return value


# Sentinels for the YAML merge key `<<`: one as the scalar value, one as the pending key.
_MERGE_KEY = object()
_MERGE_TOKEN = "\x00<<merge>>"  # noqa: S105 - a sentinel, not a secret


def _key_text(value: object, mark: Any) -> str:
    """Mapping keys become strings the way YAML-to-JSON conversion in Kubernetes
    (sigs.k8s.io/yaml) does: an int in decimal, a float as Go's FormatFloat(f, 'g', -1, 32)
    (`1e3` is the key "1000", `1e6` "1e+06"), a bool as true or false. A null key and an
    integer past int64 are errors there, as here: Kubernetes refuses such a manifest."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise _error_at(mark, f"mapping key {value} is past int64: Kubernetes refuses it")
        return str(value)
    if isinstance(value, float):
        return _go_float32_text(value)
    if value is None:
        raise _error_at(mark, "mapping key is null: Kubernetes refuses it")
    raise _error_at(mark, "mapping key must be a scalar")


def _go_float32_text(value: float) -> str:
    """strconv.FormatFloat(value, 'g', -1, 32) with go-yaml's names for the infinities and
    NaN: the shortest decimal that reads back as the same float32, in %e form when its
    exponent is below -4 or at least 6 (Go's rule for the shortest 'g')."""
    import numpy  # only for a float key, which real manifests do not have

    if value != value:
        return ".nan"
    with numpy.errstate(over="ignore", under="ignore"):
        single = numpy.float32(value)
    if numpy.isinf(single):
        return ".inf" if single > 0 else "-.inf"
    mantissa, exponent_text = numpy.format_float_scientific(single, unique=True, trim="-").split(
        "e"
    )
    sign = "-" if mantissa.startswith("-") else ""
    digits = mantissa.lstrip("-").replace(".", "")
    if digits == "0":
        return sign + "0"
    exponent = int(exponent_text)
    if exponent < -4 or exponent >= 6:
        head = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{head}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    point = exponent + 1  # digits before the decimal point
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def load_documents(
    text: str | bytes,
    *,
    limits: Limits | None = None,
    scalar_spans: list[Span] | None = None,
    typing: ScalarTyping = "kubernetes",
) -> Iterator[YamlDocument | YamlError]:
    """Yield the documents of a YAML stream (JSON is YAML) with positions.

    A document with a semantic problem (duplicate key, too deep, alias bomb) is yielded as a
    `YamlError` carrying its `document` index, and the next documents are still read; a
    syntax error raises `YamlError` and ends the stream. Empty documents are skipped. If
    `scalar_spans` is given, the span of every scalar is appended to it (to tell a comment
    from text that looks like one). `typing` says how plain scalars are typed (ScalarTyping).
    """
    lim = limits or Limits()
    parser = _Loader(text)
    try:
        scalar = _scalar_value if typing == "kubernetes" else _yaml11_value
        yield from _build(parser, lim, scalar_spans, scalar)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if mark is None:
            raise YamlError(problem) from None
        raise _error_at(mark, problem) from None
    except yaml.YAMLError as exc:  # reader errors (bad encoding, control characters)
        raise YamlError(str(exc).splitlines()[0] if str(exc) else "invalid YAML") from None
    finally:
        parser.dispose()


class _Builder:
    """Turns the event stream into documents; one instance per stream."""

    def __init__(
        self, lim: Limits, spans: list[Span] | None, scalar: Callable[[Any], object]
    ) -> None:
        self.lim = lim
        self.spans = spans
        self.scalar = scalar
        self.stack: list[_Frame] = []
        self.anchors: dict[str, tuple[object, int]] = {}
        self.positions: dict[str, tuple[int, int]] = {}
        self.doc: YamlDocument | None = None
        self.count = 0
        self.n_docs = 0

    def attach(self, value: object, new_nodes: int, subtree: int, mark: Any) -> None:
        """Put a finished value into its parent (or make it the document root)."""
        self.count += new_nodes
        if self.count > self.lim.max_nodes:
            raise _error_at(
                mark,
                f"document expands to more than {self.lim.max_nodes:,} nodes "
                "(alias expansion bomb or oversized document)",
            )
        here = (mark.line + 1, mark.column + 1)
        stack = self.stack
        if value is _MERGE_KEY and not (
            stack and isinstance(stack[-1].container, dict) and stack[-1].key is None
        ):
            value = "<<"  # a merge tag anywhere but in key position is just text
        if not stack:
            assert self.doc is not None
            self.doc.data = value
            self.positions[""] = here
            return
        top = stack[-1]
        top.size += subtree
        container = top.container
        if isinstance(container, list):
            self.positions[f"{top.pointer}/{len(container)}"] = here
            container.append(value)
            return
        if top.key is None:
            if value is _MERGE_KEY:
                top.key = _MERGE_TOKEN
                top.key_mark = here
                if top.merges is None:
                    top.merges = []
                return
            top.key = _key_text(value, mark)
            top.key_mark = here
            return
        key = top.key
        top.key = None
        if key is _MERGE_TOKEN:
            assert top.merges is not None
            top.merges.append((value, top.key_mark))
            return
        if key in container:
            first = self.positions.get(_child(top.pointer, key), top.key_mark)[0]
            raise YamlError(
                f"duplicate key {key!r} (first defined on line {first})",
                line=top.key_mark[0],
                column=top.key_mark[1],
            )
        container[key] = value
        self.positions[_child(top.pointer, key)] = top.key_mark

    def open_collection(self, event: Any) -> None:
        mark = event.start_mark
        if len(self.stack) >= self.lim.max_depth:
            raise _error_at(mark, f"nesting deeper than {self.lim.max_depth} levels")
        pointer = ""
        if self.stack:
            top = self.stack[-1]
            if isinstance(top.container, list):
                pointer = f"{top.pointer}/{len(top.container)}"
            elif top.key is None:
                raise _error_at(mark, "mapping key must be a scalar")
            elif top.key is not _MERGE_TOKEN:
                pointer = _child(top.pointer, top.key)
            else:  # a merge source: its own positions must not shadow the target's keys
                pointer = top.pointer + "/\x00merge"
        container: dict[str, object] | list[object] = (
            {} if isinstance(event, yaml.MappingStartEvent) else []
        )
        self.stack.append(_Frame(container, pointer, mark, event.anchor))

    def close_collection(self) -> None:
        frame = self.stack.pop()
        if frame.merges:
            assert isinstance(frame.container, dict)
            _apply_merges(frame.container, frame, self.positions)
        if frame.anchor is not None:
            self.anchors[frame.anchor] = (frame.container, frame.size)
        # children were counted as they were attached; the container itself is one node
        self.attach(frame.container, 1, frame.size, frame.mark)

    def handle(self, event: Any) -> YamlDocument | None:  # libyaml events (stubs: all optional)
        """Consume one event; returns a document when one is complete."""
        etype = type(event)
        if etype is yaml.ScalarEvent:
            if self.spans is not None:
                self.spans.append(
                    Span(
                        event.start_mark.line + 1,
                        event.start_mark.column + 1,
                        event.end_mark.line + 1,
                        event.end_mark.column + 1,
                    )
                )
            value = self.scalar(event)
            if event.anchor is not None:
                self.anchors[event.anchor] = (value, 1)
            self.attach(value, 1, 1, event.start_mark)
        elif etype is yaml.MappingStartEvent or etype is yaml.SequenceStartEvent:
            self.open_collection(event)
        elif etype is yaml.MappingEndEvent or etype is yaml.SequenceEndEvent:
            self.close_collection()
        elif etype is yaml.AliasEvent:
            mark = event.start_mark
            try:
                value, size = self.anchors[event.anchor]
            except KeyError:
                raise _error_at(mark, f"found undefined alias {event.anchor!r}") from None
            self.attach(value, size, size, mark)
        elif etype is yaml.DocumentStartEvent:
            self.n_docs += 1
            if self.n_docs > self.lim.max_documents:
                raise YamlError(f"more than {self.lim.max_documents:,} documents in one stream")
            self.positions = {}
            self.anchors = {}
            self.count = 0
            self.doc = YamlDocument(
                index=self.n_docs - 1,
                data=None,
                start_line=event.start_mark.line + 1,
                end_line=event.start_mark.line + 1,
                positions=self.positions,
            )
        elif etype is yaml.DocumentEndEvent:
            doc, self.doc = self.doc, None
            assert doc is not None
            end = event.end_mark
            doc.end_line = max(doc.start_line, end.line + (1 if end.column else 0))
            if doc.data is not None:
                return doc
        return None


def _build(
    parser: Any, lim: Limits, spans: list[Span] | None, scalar: Callable[[Any], object]
) -> Iterator[YamlDocument | YamlError]:
    builder = _Builder(lim, spans, scalar)
    while (event := parser.get_event()) is not None:
        try:
            finished = builder.handle(event)
        except YamlError as error:
            if builder.n_docs > lim.max_documents:
                raise
            # A semantic problem (duplicate key, too deep, alias bomb) spoils one document,
            # not the stream: report it and go on with the next document.
            error.document = builder.n_docs - 1
            builder.stack.clear()
            builder.doc = None
            while (skipped := parser.get_event()) is not None:
                if type(skipped) is yaml.DocumentEndEvent:
                    break
            yield error
            continue
        if finished is not None:
            yield finished


def _apply_merges(
    target: dict[str, object], frame: _Frame, positions: dict[str, tuple[int, int]]
) -> None:
    """YAML merge keys: explicit keys win, then earlier merged mappings over later ones."""
    assert frame.merges is not None
    for value, mark in frame.merges:
        sources = value if isinstance(value, list) else [value]
        for source in sources:
            if not isinstance(source, dict):
                raise YamlError(
                    "a merge key (<<) needs a mapping or a list of mappings",
                    line=mark[0],
                    column=mark[1],
                )
            for key, item in source.items():
                if key not in target:
                    target[key] = item
                    positions[_child(frame.pointer, key)] = mark
