"""Kustomize directories: which files are overlays' raw material rather than objects.

A directory with a `kustomization.yaml` is not a set of manifests to apply as they are: the
kustomization itself is build configuration, and its patches (strategic-merge or JSON 6902)
are fragments of objects that only mean something once merged. Scanning them as objects
gives findings on a "second Deployment" that never exists; they are skipped with the reason,
and `kustomize build` (or `kubectl kustomize`, `skanse scan --render`) gives the real objects.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import yaml

__all__ = [
    "KUSTOMIZATION_NAMES",
    "RenderPlan",
    "kustomization_in",
    "kustomize_roles",
    "plan_render",
    "render",
]

KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_MAX_BYTES = 1 << 20  # a kustomization larger than this is not read for its patch list
_RENDER_HINT = "scan the rendered objects: kubectl kustomize DIR | skanse scan -, or --render"


def kustomization_in(directory: str) -> str | None:
    """The kustomization file of `directory`, if it has one."""
    for name in KUSTOMIZATION_NAMES:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    return None


def _patch_paths(data: object) -> Iterable[str]:
    if not isinstance(data, dict):
        return
    for entry in data.get("patchesStrategicMerge") or ():
        if isinstance(entry, str) and "\n" not in entry:  # an inline patch is a YAML string
            yield entry
    for key in ("patches", "patchesJson6902", "replacements"):
        for entry in data.get(key) or ():
            if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                yield entry["path"]


def _roles_of(kustomization: str) -> tuple[tuple[str, str], ...]:
    directory = os.path.dirname(kustomization)
    itself = f"a kustomization (build configuration, not an object); {_RENDER_HINT}"
    roles = [(os.path.realpath(kustomization), itself)]
    data = _load(kustomization)
    patch = (
        f"a kustomize patch listed in {kustomization} (a fragment merged into another "
        f"object); {_RENDER_HINT}"
    )
    roles += [(os.path.realpath(os.path.join(directory, p)), patch) for p in _patch_paths(data)]
    return tuple(roles)


def kustomize_roles(inputs: Iterable[str]) -> Mapping[str, str]:
    """For files among `inputs` that are kustomizations or their patches: why they are not
    scanned as objects. Kustomizations are looked for next to each file and among them."""
    paths = list(inputs)
    kustomizations = {p for p in paths if os.path.basename(p) in KUSTOMIZATION_NAMES}
    for directory in {os.path.dirname(os.path.abspath(p)) for p in paths}:
        found = kustomization_in(directory)
        if found is not None:
            kustomizations.add(found)
    roles: dict[str, str] = {}
    for kustomization in sorted(kustomizations):
        roles.update(_roles_of(os.path.abspath(kustomization)))
    if not roles:  # no kustomize tree: spare a realpath per input (1,460 on a large tree)
        return {}
    return {p: roles[real] for p in paths if (real := os.path.realpath(p)) in roles}


def _load(kustomization: str) -> object:
    try:
        with open(kustomization, "rb") as handle:
            return yaml.safe_load(handle.read(_MAX_BYTES))
    except (OSError, yaml.YAMLError, RecursionError):
        return None


@dataclass(frozen=True, slots=True)
class RenderPlan:
    """What --render does: the kustomizations to build (those no other one includes) and,
    for every file of a kustomize tree, the kustomization whose build covers it."""

    roots: tuple[str, ...]
    covered: Mapping[str, str]  # file -> root directory that renders it


def _includes(directory: str) -> list[str]:
    data = _load(kustomization_in(directory) or "")
    if not isinstance(data, dict):
        return []
    return [
        os.path.realpath(os.path.join(directory, entry))
        for key in ("resources", "bases", "components")
        for entry in data.get(key) or ()
        if isinstance(entry, str)
    ]


def plan_render(inputs: Iterable[str]) -> RenderPlan:
    """Kustomize directories among discovered manifest files, for `kubectl kustomize`."""
    paths = list(inputs)
    directories = sorted(
        {d for p in paths if kustomization_in(d := os.path.dirname(os.path.realpath(p)))}
    )
    edges = {d: [i for i in _includes(d) if os.path.isdir(i)] for d in directories}
    included = {i for targets in edges.values() for i in targets}
    roots = tuple(d for d in directories if d not in included)
    owner: dict[str, str] = {}
    for root in roots:
        stack = [root]
        while stack:  # every directory a root's build reaches (each visited once)
            here = stack.pop()
            if here in owner:
                continue
            owner[here] = root
            stack.extend(edges.get(here, ()))
    covered = {p: owner[d] for p in paths if (d := os.path.dirname(os.path.realpath(p))) in owner}
    return RenderPlan(roots, covered)


def render(directory: str, *, timeout: float = 120.0) -> bytes | str:
    """The objects `kubectl kustomize DIRECTORY` builds, or why they could not be had."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return "kubectl is not on PATH"
    try:
        done = subprocess.run(  # noqa: S603 - a fixed program and a path argument, no shell
            [kubectl, "kustomize", directory],
            capture_output=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"kubectl kustomize failed: {exc}"
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", errors="replace").strip().splitlines()
        return f"kubectl kustomize failed: {message[-1] if message else done.returncode}"
    return done.stdout
