"""Edits to a JSON-like tree, addressed by JSON pointers relative to one object.

A fix is planned as a list of these operations on the plain data the scan read, and the
same list is then replayed on ruamel.yaml's round-trip tree (or on a JSON document). The
plain replay is the expected result that the written file is verified against.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from skanse.errors import EditConflict

__all__ = [
    "AppendValue",
    "Containers",
    "EditConflict",
    "Op",
    "RemoveKey",
    "RemoveValues",
    "SetValue",
    "apply_op",
    "get_pointer",
    "split_pointer",
]


@dataclass(frozen=True, slots=True)
class SetValue:
    """Set the value at `pointer`; missing or null parents become mappings."""

    pointer: str
    value: object


@dataclass(frozen=True, slots=True)
class AppendValue:
    """Append `value` to the list at `pointer`, creating the list when it is missing or null."""

    pointer: str
    value: object


@dataclass(frozen=True, slots=True)
class RemoveValues:
    """Remove the items equal to one of `values` from the list at `pointer`; a list left
    empty is removed with its key."""

    pointer: str
    values: tuple[object, ...]


@dataclass(frozen=True, slots=True)
class RemoveKey:
    """Remove the key at `pointer` (nothing happens when it is absent)."""

    pointer: str


Op = SetValue | AppendValue | RemoveValues | RemoveKey


@dataclass(frozen=True, slots=True)
class Containers:
    """How new mappings and lists are made: dict and list, or ruamel's commented types."""

    mapping: Callable[[], Any] = dict
    sequence: Callable[[], Any] = list
    # called on an existing empty collection before something is added to it (ruamel turns
    # an empty flow `{}` into a block so the new keys read naturally)
    unflow: Callable[[Any], None] | None = None

    def grow(self, node: object) -> None:
        if self.unflow is not None and isinstance(node, dict | list) and not node:
            self.unflow(node)

    def build(self, value: object) -> object:
        """A deep copy of plain `value` made of this tree's container types."""
        if isinstance(value, dict):
            out = self.mapping()
            for key, item in value.items():
                out[key] = self.build(item)
            return out
        if isinstance(value, list | tuple):
            seq = self.sequence()
            for item in value:
                seq.append(self.build(item))
            return seq
        return value


PLAIN = Containers()


def split_pointer(pointer: str) -> list[str]:
    """The unescaped tokens of a JSON pointer ("" is the root)."""
    if not pointer:
        return []
    if not pointer.startswith("/"):
        raise ValueError(f"not a JSON pointer: {pointer!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def _step(node: object, token: str) -> object:
    if isinstance(node, dict):
        return node.get(token)
    if isinstance(node, list) and token.isdigit() and int(token) < len(node):
        return node[int(token)]
    return None


def get_pointer(root: object, pointer: str) -> object:
    """The value at `pointer`, or None when any part of the path is missing."""
    node = root
    for token in split_pointer(pointer):
        node = _step(node, token)
        if node is None:
            return None
    return node


def _parent(root: object, tokens: Sequence[str], make: Containers, create: bool) -> object:
    """The container holding the last token, created (as mappings) along the way."""
    node = root
    for token in tokens[:-1]:
        if isinstance(node, list):
            if not token.isdigit() or int(token) >= len(node):
                raise EditConflict(f"list index {token} does not exist")
            child = node[int(token)]
            if child is None:
                if not create:
                    return None
                child = node[int(token)] = make.mapping()
        elif isinstance(node, dict):
            child = node.get(token)
            if child is None:
                if not create:
                    return None
                make.grow(node)
                child = make.mapping()
                node[token] = child
        else:
            raise EditConflict(f"cannot descend into a {type(node).__name__} at {token!r}")
        node = child
    if not isinstance(node, dict | list):
        raise EditConflict(f"{tokens[-2] if len(tokens) > 1 else 'the root'} is not a mapping")
    return node


def apply_op(root: object, op: Op, make: Containers = PLAIN) -> None:
    """Apply one operation to `root` (mutated in place); EditConflict if the shape is wrong."""
    tokens = split_pointer(op.pointer)
    if not tokens:
        raise EditConflict("an operation needs a key")
    last = tokens[-1]
    create = not isinstance(op, RemoveKey | RemoveValues)
    parent = _parent(root, tokens, make, create)
    if parent is None:
        return
    if isinstance(parent, list):
        if not last.isdigit() or int(last) >= len(parent):
            raise EditConflict(f"list index {last} does not exist")
        index: int | str = int(last)
        current = parent[int(last)]
    else:
        assert isinstance(parent, dict)
        index = last
        current = parent.get(last)
    match op:
        case SetValue(value=value):
            if current is None:
                make.grow(parent)
            parent[index] = make.build(value)  # type: ignore[index]
        case AppendValue(value=value):
            if current is None:
                current = make.sequence()
                parent[index] = current  # type: ignore[index]
            if not isinstance(current, list):
                raise EditConflict(f"{last} is not a list")
            make.grow(current)
            current.append(make.build(value))
        case RemoveValues(values=values):
            if not isinstance(current, list):
                return
            for position in range(len(current) - 1, -1, -1):
                if current[position] in values:
                    del current[position]
            if not current and isinstance(parent, dict):
                del parent[last]
        case RemoveKey():
            if isinstance(parent, dict) and last in parent:
                del parent[last]
