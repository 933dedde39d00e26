"""Kills the kernel program makes by itself, before the offending syscall returns.

For a rule marked for kill whose condition has one of two simple shapes, the decision is
made in the kernel and the process gets SIGKILL through bpf_send_signal at the syscall's
exit, so it never runs another instruction (the read that would follow an open of
/etc/shadow never happens):

    a sensitive path opened   evt.type in (open, openat, openat2, creat) and fd.name = P
                              (or fd.name in (P, ...)), optionally with evt.is_open_read,
                              evt.is_open_write, fd.typechar = f, fd.num >= 0,
                              evt.rawres >= 0, container.id != host
    an exec of a file not     evt.type in (execve, execveat) and proc.is_exe_upper_layer =
    in the image              true, optionally with container.id != host

Anything else in the condition (an `and not proc.name in (...)` exception, a glob, an
`or`) makes the rule's kill a userspace one (a pidfd, after checking the start time),
since the kernel could then kill a process the rule would not match. The kernel acts only
in containers' cgroups (as userspace found them), and on host processes only when host
kills are allowed and no kernel-killed rule asks for a container. A rule whose paths do
not fit in the kernel's table (KILL_PATHS in all) is killed from userspace, whole.

The opened file is matched by its path as the kernel resolved it, hashed component by
component (`path_hash`, the same fold as sensor.bpf.c's hash_step): `//etc/shadow`,
`/tmp/../etc/shadow` and a symbolic link to /etc/shadow are all /etc/shadow there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from skanse.rules.loader import Rule
from skanse.rules.parser import BinaryCheck, Expr, FieldExpr, ListExpr, LogicalExpr, ValueExpr
from skanse.rules.paths import normalize_path
from skanse.runtime._fnv import FNV_OFFSET, FNV_PRIME, MASK64, fnv1a64

__all__ = ["KernelKillPlan", "path_hash", "plan_kernel_kills"]

HASH_NAME = 64  # sensor.bpf.c: the longest component a kill path may have is 63 bytes
KILL_PATHS = 4096  # sensor.bpf.c: skn_kill_paths' max_entries
FMODE_READ = 1
FMODE_WRITE = 2
_OPEN_TYPES = frozenset({"open", "openat", "openat2", "creat"})
_EXEC_TYPES = frozenset({"execve", "execveat"})


def path_hash(path: str) -> int:
    """The kernel program's hash of an absolute path: components folded leaf first."""
    value = FNV_OFFSET
    for component in reversed([c for c in normalize_path(path).split("/") if c]):
        value = ((value ^ fnv1a64(component.encode())) * FNV_PRIME) & MASK64
    return value


@dataclass(frozen=True, slots=True)
class KernelKillPlan:
    """What the kernel kills: path -> (file modes required, rule number), upper-layer
    execs (rule number), and the rules by number (for the journal)."""

    paths: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    upper_exec_rule: int | None = None
    rules: tuple[str, ...] = ()
    allow_host: bool = False

    def rule(self, number: int) -> str | None:
        return self.rules[number] if 0 <= number < len(self.rules) else None

    def describe(self) -> dict[str, object]:
        return {
            "paths": sorted(self.paths),
            "upper_layer_exec": self.upper_exec_rule is not None,
            "rules": list(self.rules),
            "host_processes": self.allow_host,
        }


@dataclass(slots=True)
class _Shape:
    types: frozenset[str] | None = None
    paths: frozenset[str] | None = None
    fmode: int = 0
    upper: bool = False
    container: bool = False


def _conjuncts(expr: Expr) -> Iterable[Expr]:
    if isinstance(expr, LogicalExpr) and expr.op == "and":
        for child in expr.children:
            yield from _conjuncts(child)
    else:
        yield expr


def _event_types(expr: Expr) -> frozenset[str] | None:
    if isinstance(expr, LogicalExpr) and expr.op == "or":
        found: set[str] = set()
        for child in expr.children:
            types = _event_types(child)
            if types is None:
                return None
            found |= types
        return frozenset(found)
    if (
        isinstance(expr, BinaryCheck)
        and isinstance(expr.left, FieldExpr)
        and expr.left.name == "evt.type"
        and expr.left.arg is None
    ):
        if expr.op in ("=", "==") and isinstance(expr.right, ValueExpr):
            return frozenset({expr.right.value})
        if expr.op == "in" and isinstance(expr.right, ListExpr):
            return frozenset(expr.right.values)
    return None


_HARMLESS = {  # conjuncts the kernel's own test already implies (a successful open)
    ("fd.typechar", "=", "f"),
    ("fd.num", ">=", "0"),
    ("evt.rawres", ">=", "0"),
    ("evt.res", "=", "SUCCESS"),
}


def _shape(rule: Rule) -> _Shape | None:
    shape = _Shape()
    for part in _conjuncts(rule.ast):
        types = _event_types(part)
        if types is not None:
            shape.types = types if shape.types is None else shape.types & types
            continue
        if not (isinstance(part, BinaryCheck) and isinstance(part.left, FieldExpr)):
            return None
        if part.left.arg is not None:
            return None
        name, op, right = part.left.name, "=" if part.op == "==" else part.op, part.right
        value = right.value if isinstance(right, ValueExpr) else None
        if name == "fd.name" and op == "=" and value is not None:
            paths: frozenset[str] = frozenset({value})
        elif name == "fd.name" and op == "in" and isinstance(right, ListExpr):
            paths = frozenset(right.values)
        elif (name, op, value) == ("evt.is_open_read", "=", "true"):
            shape.fmode |= FMODE_READ
            continue
        elif (name, op, value) == ("evt.is_open_write", "=", "true"):
            shape.fmode |= FMODE_WRITE
            continue
        elif (name, op, value) == ("container.id", "!=", "host"):
            shape.container = True
            continue
        elif (name, op, value) == ("proc.is_exe_upper_layer", "=", "true"):
            shape.upper = True
            continue
        elif (name, op, value) in _HARMLESS:
            continue
        else:
            return None
        shape.paths = paths if shape.paths is None else shape.paths & paths
    return shape


def _kernel_path(path: str) -> bool:
    return (
        path.startswith("/")
        and normalize_path(path) == path
        and path != "/"
        and all(0 < len(c.encode()) < HASH_NAME for c in path.split("/")[1:])
    )


def plan_kernel_kills(
    rules: Iterable[Rule], kill_rules: Iterable[str], *, allow_host: bool
) -> tuple[KernelKillPlan, list[str]]:
    """The kernel's share of the kill-marked rules, and the kill rules left to userspace."""
    wanted = set(kill_rules)
    names: list[str] = []
    paths: dict[str, tuple[int, int]] = {}
    upper: int | None = None
    container_only = False
    userspace: list[str] = []
    for rule in rules:
        if rule.name not in wanted:
            continue
        shape = _shape(rule)
        kind = None
        if shape is not None and shape.types:
            if shape.types <= _OPEN_TYPES and shape.paths and not shape.upper:
                room = len(shape.paths - paths.keys()) <= KILL_PATHS - len(paths)
                if room and all(_kernel_path(p) for p in shape.paths):
                    kind = "open"
            elif shape.types <= _EXEC_TYPES and shape.upper and shape.paths is None:
                if not shape.fmode:
                    kind = "exec"
        if kind is None or shape is None:
            userspace.append(rule.name)
            continue
        number = len(names)
        names.append(rule.name)
        container_only = container_only or shape.container or kind == "exec"
        if kind == "open":
            for path in sorted(shape.paths or ()):
                if path not in paths:
                    paths[path] = (shape.fmode, number)
        elif upper is None:
            upper = number
    plan = KernelKillPlan(paths, upper, tuple(names), allow_host and not container_only)
    return plan, userspace
