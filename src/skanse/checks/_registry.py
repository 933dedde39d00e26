"""Checks as data plus a small pure function, and the registry that holds them.

A check never touches files, the network or the clock: it receives an already-parsed object
and a context, and yields `Violation`s (a message and a JSON pointer relative to the object).
Its metadata (`skanse.model.CheckMeta`) drives SARIF rules, docs and `skanse checks`; its good
and bad examples live next to it in `examples/<ID>.yaml` and are run by one test.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import yaml

from skanse.errors import RegistryError
from skanse.model import CheckID, CheckMeta, Severity

__all__ = ["Check", "CheckSet", "Examples", "Registry", "Violation"]

Obj = TypeVar("Obj")  # the object a check looks at
C = TypeVar("C")  # the context it is given


@dataclass(frozen=True, slots=True)
class Violation:
    """One thing wrong: a message and where (JSON pointer relative to the checked object)."""

    message: str
    pointer: str = ""
    # When one violation is worse than the check's usual severity (a hostPath volume among
    # restricted volume types): it overrides the check's severity for this finding only.
    severity: Severity | None = None


@dataclass(frozen=True, slots=True)
class Check(Generic[Obj, C]):
    """A check's metadata and function; `kinds` limits the object kinds it is given."""

    meta: CheckMeta
    run: Callable[[Obj, C], Iterable[Violation]]
    kinds: frozenset[str] | None
    package: str  # where examples/<ID>.yaml lives

    @property
    def id(self) -> CheckID:
        return self.meta.id


@dataclass(frozen=True, slots=True)
class Examples:
    """Good examples pass the check, bad ones fail it; each is a complete input text."""

    good: tuple[str, ...]
    bad: tuple[str, ...]


class CheckSet:
    """The checks of one module, collected in the order they are defined."""

    def __init__(self, module: str) -> None:
        self.package = module.rpartition(".")[0]
        self._checks: list[Check[Any, Any]] = []

    def add(self, check: Check[Any, Any]) -> None:
        self._checks.append(check)

    def __iter__(self) -> Iterator[Check[Any, Any]]:
        return iter(self._checks)

    def __len__(self) -> int:
        return len(self._checks)


class Registry:
    """All checks by id; a duplicate id or alias is a RegistryError at import time."""

    def __init__(self, *sets: Iterable[Check[Any, Any]]) -> None:
        self._by_id: dict[str, Check[Any, Any]] = {}
        self._aliases: dict[str, list[str]] = {}
        for group in sets:
            for check in group:
                key = check.id.upper()  # ids are looked up in any case
                if key in self._by_id:
                    raise RegistryError(f"check id {check.id} is registered twice")
                self._by_id[key] = check
        for check in self._by_id.values():
            for alias in check.meta.aliases:
                if alias.upper() in self._by_id:
                    raise RegistryError(f"alias {alias} of {check.id} is also a check id")
                self._aliases.setdefault(alias.upper(), []).append(check.id)

    def all(self) -> tuple[Check[Any, Any], ...]:
        return tuple(self._by_id.values())

    def get(self, check_id: str) -> Check[Any, Any]:
        try:
            return self._by_id[check_id.upper()]
        except KeyError:
            raise KeyError(f"no check with id {check_id!r}") from None

    def resolve(self, name: str) -> list[CheckID]:
        """Check ids for an id or a peer's alias (`KSV-0017` -> SKN-K8S-002), any case."""
        key = name.strip().upper()
        if key in self._by_id:
            return [self._by_id[key].id]
        return [CheckID(i) for i in self._aliases.get(key, [])]

    def __contains__(self, check_id: object) -> bool:
        return isinstance(check_id, str) and check_id.upper() in self._by_id

    def __len__(self) -> int:
        return len(self._by_id)

    @staticmethod
    def examples(check: Check[Any, Any]) -> Examples:
        """The check's examples file; a missing or malformed one is a RegistryError."""
        resource = importlib.resources.files(check.package) / "examples" / f"{check.id}.yaml"
        try:
            text = resource.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise RegistryError(
                f"{check.id} has no examples file examples/{check.id}.yaml"
            ) from None
        data = yaml.safe_load(text)
        if not isinstance(data, dict):
            raise RegistryError(f"examples for {check.id} must be a mapping with good and bad")
        good, bad = data.get("good"), data.get("bad")
        if not (isinstance(good, list) and isinstance(bad, list) and good and bad):
            raise RegistryError(f"{check.id} needs at least one good and one bad example")
        if not all(isinstance(x, str) for x in (*good, *bad)):
            raise RegistryError(f"examples for {check.id} must be strings (manifest texts)")
        return Examples(good=tuple(good), bad=tuple(bad))
