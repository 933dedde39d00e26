"""Rule outputs: `%field`, `%field[arg]`, `%transformer(field)`, `%Nfield`; `<NA>` when missing.

A format is parsed once into literal text and field tokens; each token is compiled with the
same field accessors as conditions. Field names are resolved by longest prefix, as libsinsp's
formatter does, so `%proc.name)` and `%evt.arg.flags` work. A format may not end with `%`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from skanse.rules.compiler import RUNTIME, _xf
from skanse.rules.fields import UnknownFieldError, resolve_field
from skanse.rules.parser import TRANSFORMERS

__all__ = ["OutputError", "OutputFormat", "compile_output", "render_value"]

_FIELD = re.compile(r"[a-zA-Z][a-zA-Z0-9_]*(?:\.[a-zA-Z0-9_]+)*(?:\[[^\]]*\])?")
_TRANSFORMER_NAMES = tuple(t[:-1] for t in TRANSFORMERS)


class OutputError(ValueError):
    """An output format that names an unknown field; Falco's wording."""


@dataclass(frozen=True, slots=True)
class _Token:
    key: str  # the field as written, the key in output_fields
    getter: Any  # (e, p, st) -> value
    width: int | None = None


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """A compiled output: render to text and to Falco's `output_fields`."""

    text: str
    parts: tuple[str | _Token, ...]

    def fields(self, e: Mapping[str, Any], p: Any, st: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for part in self.parts:
            if isinstance(part, _Token) and part.key not in out:
                out[part.key] = _json_value(part.getter(e, p, st))
        return out

    def render(self, e: Mapping[str, Any], p: Any, st: Any) -> str:
        return self.render_with_fields(e, p, st)[0]

    def render_with_fields(
        self, e: Mapping[str, Any], p: Any, st: Any
    ) -> tuple[str, dict[str, Any]]:
        """The text and `output_fields` of one alert, each field's value read once."""
        chunks: list[str] = []
        out: dict[str, Any] = {}
        for part in self.parts:
            if isinstance(part, str):
                chunks.append(part)
                continue
            value = part.getter(e, p, st)
            if value.__class__ is str:  # most fields: the text is the value itself
                text = value
                if part.key not in out:
                    out[part.key] = value
            else:
                text = render_value(value)
                if part.key not in out:
                    out[part.key] = _json_value(value)
            if part.width is not None:
                text = text[: part.width].ljust(part.width)
            chunks.append(text)
        return "".join(chunks), out


def render_value(value: Any) -> str:
    """How libsinsp prints a value: <NA> if missing, lists as (a,b), bools as true/false."""
    if value is None:
        return "<NA>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return "(" + ",".join(render_value(v) for v in value) + ")"
    return str(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_json_value(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


@functools.lru_cache(maxsize=4096)
def _getter(expr: str) -> Any:
    """The compiled accessor of a field expression (one per expression, however many tokens
    or rules name that field)."""
    namespace = dict(RUNTIME)
    exec(f"def get(e, p, st):\n    return {expr}\n", namespace)  # noqa: S102 - generated from registry
    return namespace["get"]


def _resolve_longest(text: str, start: int, source: str) -> tuple[str, str, int]:
    """(key, expression, length consumed) for the longest field at `start` in `text`."""
    match = _FIELD.match(text, start)
    if match is None:
        rest = text[start : start + 200].split()
        raise OutputError(f"invalid formatting token {rest[0] if rest else ''}")
    candidate = match.group(0)
    while candidate:
        name, _, rest_of = candidate.partition("[")
        arg = rest_of[:-1] if rest_of.endswith("]") else None
        if rest_of and arg is None:
            name = candidate
        try:
            acc = resolve_field(name, arg, source)
            return acc.field, acc.expr, len(candidate)
        except UnknownFieldError:
            pass
        if "[" in candidate:
            candidate = candidate[: candidate.index("[")]
            continue
        if "." not in candidate:
            break
        candidate = candidate[: candidate.rindex(".")]
    raise OutputError(f"invalid formatting token {match.group(0)}")


# `%Nfield` pads or cuts the value to N characters: a column of a terminal, not a buffer
# (%2000000000proc.name made 2 GB of every alert of its rule)
MAX_WIDTH = 1024
_WIDTH = re.compile(r"[0-9]+")


def compile_output(text: str, source: str) -> OutputFormat:
    """Parse and compile an output format, or raise OutputError.

    The format is read by position (a token's remainder is never copied out), so the work is
    linear in its length."""
    parts: list[str | _Token] = []
    i = 0
    if text.startswith("*"):  # "print even if values are missing": we always print
        i = 1
    n = len(text)
    while i < n:
        percent = text.find("%", i)
        if percent < 0:
            parts.append(text[i:])
            break
        if percent > i:
            parts.append(text[i:percent])
        i = percent + 1
        if i >= n:
            raise OutputError("invalid formatting token: output cannot end with '%'")
        width = None
        digits = _WIDTH.match(text, i)
        if digits is not None:
            i = digits.end()
            shown = digits.group(0)
            if len(shown) > 4 or int(shown) > MAX_WIDTH:
                shown = shown if len(shown) <= 12 else shown[:12] + "..."
                raise OutputError(
                    f"invalid formatting token: width {shown} is larger than {MAX_WIDTH}"
                )
            width = int(shown)
        transformer = next((t for t in _TRANSFORMER_NAMES if text.startswith(t + "(", i)), None)
        if transformer is not None:
            inner_start = i + len(transformer) + 1
            key, expr, length = _resolve_longest(text, inner_start, source)
            close = inner_start + length
            if close >= n or text[close] != ")":
                rest = text[i : i + 200].split()
                raise OutputError(f"invalid formatting token {rest[0] if rest else ''}")
            getter = _transformed(transformer, _getter(expr))
            parts.append(_Token(f"{transformer}({key})", getter, width))
            i = close + 1
            continue
        key, expr, length = _resolve_longest(text, i, source)
        parts.append(_Token(key, _getter(expr), width))
        i += length
    return OutputFormat(text, tuple(parts))


def _transformed(name: str, getter: Any) -> Any:
    def get(e: Mapping[str, Any], p: Any, st: Any) -> Any:
        return _xf(name, (getter(e, p, st),))

    return get


# Added to every runtime alert's output_fields, as Falco's append_output adds them (null when
# not known), with evt.time as Falco's JSON output has it: integer ns since the epoch.
APPENDED_FIELDS = (
    "container.id",
    "container.name",
    "container.image.repository",
    "container.image.tag",
    "container.image.digest",
    "k8s.ns.name",
    "k8s.pod.name",
)


@functools.cache
def _appended() -> OutputFormat:
    return compile_output(" ".join("%" + name for name in APPENDED_FIELDS), "syscall")


def workload_fields(e: Mapping[str, Any], p: Any, st: Any) -> dict[str, Any]:
    """`evt.time` and the APPENDED_FIELDS of an event, for an alert's output_fields."""
    fields = _appended().fields(e, p, st)
    ts = e.get("ts")
    fields["evt.time"] = ts if isinstance(ts, int) else None
    return fields
