"""The shape of each layer result as far as the report reads it, checked when it is loaded.

A results file can come from another job, another skanse or a hand: a count that is a
string, a finding without a check id, a list where an object belongs would otherwise stop
the report deep inside with a traceback, or put text where the page expects a number. Each
document is checked against what the report uses of it (other fields are left alone, so
newer writers with more fields are still read), and the first value of the wrong shape is
named by its JSON pointer: `scan.json: /findings/3/location/line: expected an integer or
null, got a string`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from skanse.errors import ReportInputError

__all__ = ["check_shape"]


class _Wrong(Exception):
    def __init__(self, path: str, expected: str, value: object) -> None:
        super().__init__(path)
        self.path, self.expected, self.value = path, expected, value


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    return "an array"


class _Shape(Protocol):
    @property
    def name(self) -> str: ...

    def check(self, value: object, path: str) -> None: ...


@dataclass(frozen=True, slots=True)
class _Scalar:
    name: str
    types: tuple[type, ...]

    def check(self, value: object, path: str) -> None:
        # a JSON true is a Python int: a boolean is a count only where booleans are asked for
        if isinstance(value, bool) and bool not in self.types:
            raise _Wrong(path, self.name, value)
        if not isinstance(value, self.types):
            raise _Wrong(path, self.name, value)


@dataclass(frozen=True, slots=True)
class _Nullable:
    shape: _Shape

    @property
    def name(self) -> str:
        return f"{self.shape.name} or null"

    def check(self, value: object, path: str) -> None:
        if value is not None:
            try:
                self.shape.check(value, path)
            except _Wrong as wrong:
                if wrong.path != path:
                    raise
                raise _Wrong(path, self.name, value) from None


@dataclass(frozen=True, slots=True)
class _Omittable:
    """A field that may be missing, but not null (the report reads it as `.get(key, [])`)."""

    shape: _Shape

    @property
    def name(self) -> str:
        return self.shape.name

    def check(self, value: object, path: str) -> None:
        self.shape.check(value, path)


@dataclass(frozen=True, slots=True)
class _Array:
    item: _Shape
    name: str = "an array"
    length: int | None = None

    def check(self, value: object, path: str) -> None:
        if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence):
            raise _Wrong(path, self.name, value)
        if self.length is not None and len(value) != self.length:
            raise _Wrong(path, self.name, value)
        for index, item in enumerate(value):
            self.item.check(item, f"{path}/{index}")


@dataclass(frozen=True, slots=True)
class _Table:
    """An object whose keys are names and whose values share one shape."""

    value: _Shape
    name: str = "an object"

    def check(self, value: object, path: str) -> None:
        if not isinstance(value, Mapping):
            raise _Wrong(path, self.name, value)
        for key, item in value.items():
            self.value.check(item, f"{path}/{_escaped(str(key))}")


@dataclass(frozen=True, slots=True)
class _Object:
    """An object with these fields; a nullable or omittable field may also be missing."""

    fields: Mapping[str, _Shape]
    name: str = "an object"

    def check(self, value: object, path: str) -> None:
        if not isinstance(value, Mapping):
            raise _Wrong(path, self.name, value)
        for key, shape in self.fields.items():
            where = f"{path}/{_escaped(key)}"
            if key in value:
                shape.check(value[key], where)
            elif not isinstance(shape, _Nullable | _Omittable):
                raise _Wrong(where, shape.name, _MISSING)


def _escaped(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")  # RFC 6901


class _Missing:
    pass


_MISSING = _Missing()
STR = _Scalar("a string", (str,))
INT = _Scalar("an integer", (int,))
NUMBER = _Scalar("a number", (int, float))
BOOL = _Scalar("a boolean", (bool,))
ANY_SCALAR = _Scalar("a string, number or boolean", (str, int, float, bool))


def _opt(shape: _Shape) -> _Nullable:
    return _Nullable(shape)


def _list(item: _Shape) -> _Omittable:
    return _Omittable(_Array(item))


def _obj(**fields: _Shape) -> _Object:
    return _Object(fields)


TEXT = _opt(STR)
COUNT = _opt(INT)
FLAG = _opt(BOOL)
COUNTS = _opt(_Table(INT))  # severity or type -> count

_TOOL = _opt(_obj(version=TEXT))
_RESOURCE = _obj(kind=TEXT, namespace=TEXT, name=TEXT)
_SUPPRESSION = _obj(origin=TEXT, source=TEXT, reason=TEXT, expires=TEXT)
_CONTROL = _obj(framework=STR, control=STR, approximate=FLAG, note=TEXT)
_PROBLEM = _obj(file=TEXT, message=TEXT, check_id=TEXT)

_SCAN = _obj(
    tool=_TOOL,
    scan=_opt(_obj(targets=_list(STR), profile=TEXT, pss=TEXT, started=TEXT, finished=TEXT)),
    summary=_opt(_obj(objects=COUNT)),
    checks=_list(_obj(id=STR, layer=TEXT, title=TEXT, controls=_list(_CONTROL))),
    evaluations=_list(_obj(checks=_list(STR), resource=_opt(_RESOURCE))),
    findings=_list(
        _obj(
            check_id=STR,
            severity=STR,
            title=TEXT,
            message=TEXT,
            location=_opt(_obj(file=TEXT, line=COUNT, pointer=TEXT)),
            resource=_RESOURCE,
            suppressed=FLAG,
            suppression=_opt(_SUPPRESSION),
            expired_suppressions=_list(_SUPPRESSION),
            fingerprint=TEXT,
        )
    ),
    problems=_list(_PROBLEM),
    workloads=_list(
        _obj(
            resource=_obj(kind=STR, namespace=TEXT, name=STR),
            images=_list(STR),
            ports=_list(_obj(protocol=TEXT, port=_opt(ANY_SCALAR))),
            container_ids=_list(STR),
        )
    ),
    facts=_opt(_obj()),
    not_applicable=_list(_obj()),
)

_VULN = _obj(
    tool=_TOOL,
    target=STR,
    subject=_opt(_obj(manifest_digest=TEXT)),
    database=_opt(_obj(built=TEXT)),
    scan=_opt(_obj(started=TEXT, finished=TEXT)),
    summary=_opt(
        _obj(
            packages=COUNT,
            checked=COUNT,
            suppressed=COUNT,
            by_severity=COUNTS,
            packages_by_type=COUNTS,
        )
    ),
    matches=_list(
        _obj(
            id=STR,
            severity=TEXT,
            fixed_version=TEXT,
            package=_obj(name=STR, version=STR),
            suppressed=FLAG,
            suppression=_opt(_SUPPRESSION),
            aliases=_list(STR),
            related=_list(STR),
            kev=FLAG,
            epss=_opt(_obj(score=_opt(NUMBER), percentile=_opt(NUMBER))),
            cvss=_opt(_obj(score=_opt(NUMBER))),
        )
    ),
)

_VERIFICATION = _obj(
    tool=_TOOL,
    checked=TEXT,
    images=_list(
        _obj(
            image=STR,
            digest=TEXT,
            what=TEXT,
            verified=FLAG,
            reason=TEXT,
            keys=_list(STR),
            verified_keys=_list(STR),
        )
    ),
)

_PORT_RANGE = _Array(INT, name="a [low, high] pair of integers", length=2)

_NETPOL = _obj(
    tool=_TOOL,
    targets=_list(STR),
    generated=TEXT,
    connections=_list(
        _obj(
            src=STR,
            dst=STR,
            conn=TEXT,
            source=_opt(_obj(external=TEXT, workload=TEXT)),
            destination=_opt(_obj(external=TEXT, workload=TEXT)),
            ports=_opt(_Table(_Array(_PORT_RANGE))),
        )
    ),
    problems=_list(_PROBLEM),
)

_LAYER_THEN = _obj(status=TEXT, findings=COUNT, by_severity=COUNTS)
_POSTURE = _obj(generated=TEXT, layers=_opt(_Table(_opt(_LAYER_THEN))))

_SHAPES: dict[str, _Shape] = {
    "skanse.scan": _SCAN,
    "skanse.host-audit": _SCAN,
    "skanse.vuln": _VULN,
    "skanse.verification": _VERIFICATION,
    "skanse.netpol-list": _NETPOL,
    "skanse.posture": _POSTURE,
}


def check_shape(kind: str, data: object, origin: str) -> None:
    """Refuse a document of `kind` whose fields the report reads have the wrong shape
    (ReportInputError naming the file, the field and what it should be)."""
    shape = _SHAPES.get(kind)
    if shape is None:
        return
    try:
        shape.check(data, "")
    except _Wrong as wrong:
        got = "nothing" if wrong.value is _MISSING else _json_type(wrong.value)
        raise ReportInputError(
            f"{origin}: {wrong.path or '/'}: expected {wrong.expected}, got {got}"
        ) from None
