"""Label selectors (metav1.LabelSelector): parsing with the API server's validation, and
matching.

`matchLabels` and `matchExpressions` are ANDed; an empty selector matches everything. In
needs the key with one of the values; NotIn matches when the key is absent too; Exists and
DoesNotExist look at the key only. A selector the API server would reject is reported and
not used.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from skanse.sources.kubernetes import as_dict, as_list
from skanse.sources.yamlpos import join_pointer

__all__ = [
    "EVERYTHING",
    "LabelSelector",
    "Operator",
    "Report",
    "Requirement",
    "parse_selector",
    "valid_label_key",
    "valid_label_value",
]

# (message, JSON pointer relative to the object)
Report = Callable[[str, str], None]

_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]\Z")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z"
)
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?\Z")


def valid_label_key(key: str) -> str | None:
    """Why `key` is not a valid label key (`prefix/name`), or None."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix)):
        return f"label key {key!r} has an invalid prefix (a DNS subdomain is expected)"
    if not name or len(name) > 63 or not _NAME.match(name):
        return (
            f"label key {key!r} is invalid (63 characters at most: letters, digits, '-', "
            "'_' and '.', starting and ending with a letter or digit)"
        )
    return None


def valid_label_value(value: str) -> str | None:
    """Why `value` is not a valid label value, or None."""
    if len(value) > 63 or not _VALUE.match(value):
        return (
            f"label value {value!r} is invalid (63 characters at most: letters, digits, '-', "
            "'_' and '.', starting and ending with a letter or digit)"
        )
    return None


class Operator(enum.StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


@dataclass(frozen=True, slots=True, order=True)
class Requirement:
    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        match self.operator:
            case Operator.IN:
                return labels.get(self.key) in self.values
            case Operator.NOT_IN:
                return labels.get(self.key) not in self.values
            case Operator.EXISTS:
                return self.key in labels
            case Operator.DOES_NOT_EXIST:
                return self.key not in labels

    def __str__(self) -> str:
        match self.operator:
            case Operator.IN if len(self.values) == 1:
                return f"{self.key}={self.values[0]}"
            case Operator.IN:
                return f"{self.key} in ({','.join(self.values)})"
            case Operator.NOT_IN:
                return f"{self.key} notin ({','.join(self.values)})"
            case Operator.EXISTS:
                return self.key
            case Operator.DOES_NOT_EXIST:
                return f"!{self.key}"


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A canonical selector: requirements sorted, matchLabels turned into `In` with one value.

    Equal selectors compare and hash equal however they were written, so results can be
    cached per selector.
    """

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    @property
    def is_everything(self) -> bool:
        return not self.requirements

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(r.key for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements) if self.requirements else "{}"


EVERYTHING = LabelSelector()


def parse_selector(data: object, pointer: str, report: Report) -> LabelSelector | None:
    """A selector from its API form; None (after reporting why) if the API would reject it."""
    if data is None:
        return EVERYTHING
    if not isinstance(data, dict):
        report("a label selector must be a mapping", pointer)
        return None
    ok = True
    requirements: list[Requirement] = []
    unknown = set(data) - {"matchLabels", "matchExpressions"}
    for key in sorted(unknown):
        report(f"unknown field {key!r} in a label selector", join_pointer(pointer, key))
        ok = False
    labels = data.get("matchLabels")
    if labels is not None and not isinstance(labels, dict):
        report("matchLabels must be a mapping of label keys to values", pointer + "/matchLabels")
        ok = False
    for key, value in as_dict(labels).items():
        where = join_pointer(pointer, "matchLabels", key)
        problem = valid_label_key(key)
        if problem is None and not isinstance(value, str):
            problem = (
                f'the value of {key!r} must be a string (quote it: {key}: "{value}"); '
                "the API server rejects other types"
            )
        if problem is None and isinstance(value, str):
            problem = valid_label_value(value)
        if problem is not None:
            report(problem, where)
            ok = False
            continue
        requirements.append(Requirement(key, Operator.IN, (str(value),)))
    expressions = data.get("matchExpressions")
    if expressions is not None and not isinstance(expressions, list):
        report("matchExpressions must be a list", pointer + "/matchExpressions")
        ok = False
    for i, item in enumerate(as_list(expressions)):
        where = join_pointer(pointer, "matchExpressions", i)
        requirement = _parse_expression(item, where, report)
        if requirement is None:
            ok = False
        else:
            requirements.append(requirement)
    if not ok:
        return None
    return LabelSelector(tuple(sorted(set(requirements))))


def _parse_expression(item: object, where: str, report: Report) -> Requirement | None:
    if not isinstance(item, dict):
        report("a match expression must be a mapping with key, operator and values", where)
        return None
    key, operator, values = item.get("key"), item.get("operator"), item.get("values")
    if not isinstance(key, str) or not key:
        report("a match expression needs a key", where)
        return None
    problem = valid_label_key(key)
    if problem is not None:
        report(problem, where + "/key")
        return None
    try:
        op = Operator(str(operator))
    except ValueError:
        report(
            f"invalid operator {operator!r} (expected In, NotIn, Exists or DoesNotExist)",
            where + "/operator",
        )
        return None
    if values is not None and not isinstance(values, list):
        report("values must be a list", where + "/values")
        return None
    texts: list[str] = []
    for j, value in enumerate(as_list(values)):
        if not isinstance(value, str):
            report(f"value {value!r} must be a string", join_pointer(where, "values", j))
            return None
        problem = valid_label_value(value)
        if problem is not None:
            report(problem, join_pointer(where, "values", j))
            return None
        texts.append(value)
    if op in (Operator.IN, Operator.NOT_IN) and not texts:
        report(f"operator {op.value} needs at least one value", where + "/values")
        return None
    if op in (Operator.EXISTS, Operator.DOES_NOT_EXIST) and texts:
        report(f"operator {op.value} takes no values", where + "/values")
        return None
    return Requirement(key, op, tuple(sorted(set(texts))))
