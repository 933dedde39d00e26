"""The network model of one scan, built on first use, for checks that look across objects.

`skanse scan` builds one `LazyNetwork` per run (in the cluster index); the first network
check to ask builds the model, every later check and object reuses it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar, cast

from skanse.netpol.model import NetworkModel, Policy, PolicyProblem, Workload
from skanse.sources.kubernetes import K8sObject

__all__ = ["LazyNetwork"]

T = TypeVar("T")


class LazyNetwork:
    """Objects now, the model (and indexes by object) when first asked for."""

    def __init__(self, objects: Iterable[K8sObject], default_namespace: str = "default") -> None:
        self._objects = tuple(objects)
        self._default_namespace = default_namespace
        self._model: NetworkModel | None = None
        self._workloads: dict[int, Workload] = {}
        self._policies: dict[int, Policy] = {}
        self._problems: dict[int, list[PolicyProblem]] = {}
        self._memo: dict[str, object] = {}

    @property
    def model(self) -> NetworkModel:
        if self._model is None:
            from skanse.netpol.load import build_model

            self._model = build_model(self._objects, self._default_namespace)
            for w in self._model.workloads:
                self._workloads[id(w.obj.data)] = w
            for p in self._model.policies:
                self._policies[id(p.obj.data)] = p
            for problem in self._model.problems:
                self._problems.setdefault(id(problem.obj.data), []).append(problem)
        return self._model

    def memo(self, key: str, compute: Callable[[], T]) -> T:
        """A fact about the whole model, computed once (checks ask for it per workload)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return cast(T, self._memo[key])

    def workload(self, obj: K8sObject) -> Workload | None:
        """The workload an object declares (None for a template represented by live pods)."""
        self.model  # noqa: B018 - builds the indexes
        return self._workloads.get(id(obj.data))

    def policy(self, obj: K8sObject) -> Policy | None:
        """The parsed policy of a NetworkPolicy object (None when it is invalid)."""
        self.model  # noqa: B018
        return self._policies.get(id(obj.data))

    def problems(self, obj: K8sObject) -> list[PolicyProblem]:
        self.model  # noqa: B018
        return self._problems.get(id(obj.data), [])
