"""The results a posture report is made of: the JSON documents the layers write.

Whether a layer was run by `skanse report` itself or by another job that saved its `-f json`
output, the report reads the same document, so both paths share one reader. Each document
has a `kind` (older files without one are recognised by their shape) and a `schema_version`;
a version this skanse does not read is refused with the file and both versions named, and
one whose fields the report reads have the wrong shape (see `shapes`), hold NaN or Infinity,
or hold a string that is not text is refused with the file and the field named.

Runtime alerts are Falco-shaped JSON lines (`skanse runtime replay -f jsonl`, the sensor,
or Falco itself); they have no schema version, and a line that is not an alert is reported
with its number and skipped.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skanse.errors import ReportInputError
from skanse.report.posture.shapes import check_shape

__all__ = [
    "COMPATIBLE_VERSIONS",
    "MAX_RESULT_BYTES",
    "ResultDocument",
    "alerts_document",
    "kind_of",
    "load_result_file",
]

# kind -> schema versions this skanse reads
COMPATIBLE_VERSIONS: dict[str, frozenset[int]] = {
    "skanse.scan": frozenset({1}),
    "skanse.host-audit": frozenset({1}),
    "skanse.vuln": frozenset({1}),
    "skanse.verification": frozenset({1}),
    "skanse.netpol-list": frozenset({1}),
    "skanse.runtime-alerts": frozenset({1}),
    "skanse.posture": frozenset({1}),
}
MAX_RESULT_BYTES = 256 * 1024 * 1024
_ALERT_KEYS = frozenset({"rule", "priority", "output"})


@dataclass(frozen=True, slots=True)
class ResultDocument:
    """One layer result: its kind, where it came from (a file, or `run: ...`), its data."""

    kind: str
    origin: str
    data: Mapping[str, Any]
    problems: tuple[str, ...] = field(default=())


def kind_of(data: Mapping[str, Any]) -> str | None:
    """The document's kind; files written before `kind` existed are known by their shape."""
    kind = data.get("kind")
    if isinstance(kind, str):
        return kind
    if "connections" in data:
        return "skanse.netpol-list"
    if "matches" in data and "target" in data:
        return "skanse.vuln"
    if "findings" in data and isinstance(data.get("scan"), Mapping):
        profile = data["scan"].get("profile")
        return (
            "skanse.host-audit"
            if profile in ("generic", "k8s-node", "container-node")
            else "skanse.scan"
        )
    return None


def _check_version(kind: str, data: Mapping[str, Any], origin: str) -> None:
    version = data.get("schema_version")
    accepted = COMPATIBLE_VERSIONS.get(kind)
    if accepted is None:
        raise ReportInputError(f"{origin}: a {kind} document is not a layer result")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ReportInputError(f"{origin}: {kind} document without an integer schema_version")
    if version not in accepted:
        tool = data.get("tool") or {}
        made_by = tool.get("version") if isinstance(tool, Mapping) else None
        readable = ", ".join(str(v) for v in sorted(accepted))
        raise ReportInputError(
            f"{origin}: {kind} schema_version {version}"
            + (f" (written by skanse {made_by})" if made_by else "")
            + f" is not compatible with this skanse, which reads version {readable}; "
            "produce the result again with this skanse"
        )


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999: JSON has no infinity, and the report writes none
        raise ValueError(f"number {text} is out of range")
    return value


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _loads(text: str) -> Any:
    """JSON as the standard reads it: NaN and Infinity (which Python's reader takes) are
    refused, so that no result can carry them into the report's own JSON."""
    return json.loads(text, parse_float=_finite, parse_constant=_no_constant)


# A lone UTF-16 surrogate comes only from an escape (the bytes are decoded with
# replacement), so only a text with such an escape is searched for one.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _lone_surrogate(value: Any, path: str = "") -> str | None:
    """The JSON pointer of the first string (or key) that holds a lone surrogate."""
    stack = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return where or "/"
        elif isinstance(item, Mapping):
            for key, child in item.items():
                name = f"{where}/{str(key).replace('~', '~0').replace('/', '~1')}"
                stack.append((key, name))
                stack.append((child, name))
        elif isinstance(item, list):
            stack.extend((child, f"{where}/{i}") for i, child in enumerate(item))
    return None


def load_result_file(path: Path) -> ResultDocument:
    """A saved layer result: a JSON document, or Falco JSON alert lines."""
    from skanse.files import FileTooLarge, read_capped

    origin = str(path)
    try:
        raw = read_capped(path, MAX_RESULT_BYTES)
    except FileTooLarge as exc:
        size = f"{exc.size:,} bytes is" if exc.size is not None else "the file is"
        raise ReportInputError(
            f"{origin}: {size} more than a results file may be ({MAX_RESULT_BYTES:,} bytes)"
        ) from None
    except OSError as exc:
        raise ReportInputError(f"{origin}: {exc.strerror or exc}") from None
    text = raw.decode("utf-8", errors="replace")
    stripped = text.lstrip()
    if not stripped:
        raise ReportInputError(f"{origin}: the file is empty")
    try:
        data = _loads(text)
    except RecursionError:
        raise ReportInputError(f"{origin}: JSON nested too deeply") from None
    except ValueError as exc:
        first = stripped.splitlines()[0]
        if first.startswith("{") and _looks_like_alert(first):
            return alerts_document(text.splitlines(), origin)
        raise ReportInputError(f"{origin}: not JSON: {str(exc).splitlines()[0]}") from None
    if isinstance(data, Mapping) and _ALERT_KEYS <= data.keys() and "schema_version" not in data:
        return alerts_document(text.splitlines(), origin)  # a log of one alert
    if not isinstance(data, Mapping):
        raise ReportInputError(f"{origin}: expected a JSON object, got {type(data).__name__}")
    kind = kind_of(data)
    if kind is None:
        raise ReportInputError(
            f"{origin}: not a skanse result (no kind; expected the -f json output of "
            "scan, host audit, vuln, verify or netpol list, or runtime alert lines)"
        )
    _check_version(kind, data, origin)
    if _SURROGATE_ESCAPE.search(text):
        where = _lone_surrogate(data)
        if where is not None:
            raise ReportInputError(
                f"{origin}: {where}: a string with a lone UTF-16 surrogate, which is not text"
            )
    check_shape(kind, data, origin)
    return ResultDocument(kind, origin, data)


def _looks_like_alert(line: str) -> bool:
    try:
        value = _loads(line)
    except (ValueError, RecursionError):
        return False
    return isinstance(value, dict) and _ALERT_KEYS <= value.keys()


def _alerts(lines: list[str]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        try:
            value = _loads(text)
        except (ValueError, RecursionError) as exc:
            yield number, f"line {number}: invalid JSON: {str(exc).splitlines()[0][:120]}"
            continue
        if not isinstance(value, dict) or not _ALERT_KEYS <= value.keys():
            yield number, f"line {number}: not a Falco alert (needs rule, priority and output)"
            continue
        wrong = _alert_shape(value)
        if wrong:
            yield number, f"line {number}: not a Falco alert ({wrong})"
            continue
        yield number, value


def _alert_shape(alert: Mapping[str, Any]) -> str | None:
    """What is wrong with the fields of an alert the report reads, if anything."""
    for key in ("rule", "priority", "output"):
        if not isinstance(alert[key], str):
            return f"{key} must be a string"
    if alert.get("time") is not None and not isinstance(alert["time"], str):
        return "time must be a string (ISO 8601)"
    if alert.get("output_fields") is not None and not isinstance(alert["output_fields"], dict):
        return "output_fields must be an object"
    if _lone_surrogate(alert) is not None:
        return "a string with a lone UTF-16 surrogate"
    return None


def alerts_document(lines: list[str], origin: str) -> ResultDocument:
    """Falco JSON alert lines as a runtime result; bad lines are problems, not failures."""
    alerts: list[dict[str, Any]] = []
    problems: list[str] = []
    for _, item in _alerts(lines):
        if isinstance(item, str):
            problems.append(f"{origin}: {item}")
        else:
            alerts.append(item)
    if not alerts and problems:
        raise ReportInputError(f"{origin}: no runtime alert could be read ({problems[0]})")
    data = {"schema_version": 1, "kind": "skanse.runtime-alerts", "alerts": alerts}
    return ResultDocument("skanse.runtime-alerts", origin, data, tuple(problems))
