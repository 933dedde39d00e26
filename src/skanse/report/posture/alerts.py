"""Runtime alerts joined to the workloads they came from (see `AlertJoin`)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from skanse.report.posture.names import image_key, workload_label

__all__ = ["AlertJoin", "alert_time"]

# How a pod is named after its controller: Deployment `name-<hash>-<5>`, StatefulSet
# `name-<ordinal>`, DaemonSet and Job `name-<5>`, CronJob `name-<minute>-<5>`.
_CONTROLLERS = frozenset(
    {"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"}
)


def _alert_field(fields: Mapping[str, Any], name: str) -> str | None:
    """A field of an alert's output_fields; None when absent, null or Falco's `<NA>`."""
    value = fields.get(name)
    if value is None or value == "<NA>" or value == "":
        return None
    return str(value)


class AlertJoin:
    """Which workload an alert came from, in order of certainty:

    1. `container.id` (Falco's 12-hex short id) among the container ids of scanned live Pods;
    2. `k8s.ns.name` and `k8s.pod.name` (appended to every alert): the pod itself when it was
       scanned, else the workload of that namespace whose name the pod's name continues
       (the longest such name, so `api-gateway-...` is not taken for `api`);
    3. the image (`container.image.repository` with its tag or digest): the one workload
       that runs it, in the alert's namespace when that is known.

    An alert that none of these settles (a host process, an image several workloads run)
    is attached to nothing and counted as such: a guess would put its score on the wrong
    workload.
    """

    def __init__(self, workloads: Iterable[Mapping[str, Any]]) -> None:
        self.by_container: dict[str, str] = {}
        self.by_namespace: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
        self.images: list[tuple[str, tuple[str, str], str | None]] = []  # (label, key, ns)
        for w in workloads:
            resource = w.get("resource") or {}
            label = workload_label(resource)
            namespace = str(resource.get("namespace") or "default")
            for cid in w.get("container_ids") or ():
                self.by_container[str(cid)[:12]] = label
            if resource.get("kind") in _CONTROLLERS:
                self.by_namespace[namespace].append(
                    (str(resource.get("name")), str(resource.get("kind")), label)
                )
            for image in w.get("images") or ():
                self.images.append((label, image_key(str(image)), namespace))

    def __call__(self, alert: Mapping[str, Any]) -> tuple[str | None, str]:
        fields = alert.get("output_fields")
        fields = fields if isinstance(fields, Mapping) else {}
        container = _alert_field(fields, "container.id")
        if container == "host":
            return None, "host"
        if container and container[:12] in self.by_container:
            return self.by_container[container[:12]], "container id"
        namespace = _alert_field(fields, "k8s.ns.name")
        pod = _alert_field(fields, "k8s.pod.name")
        if namespace and pod:
            candidates = self.by_namespace.get(namespace, [])
            exact = [label for name, kind, label in candidates if kind == "Pod" and name == pod]
            if exact:
                return exact[0], "pod name"
            owners = [
                (name, label)
                for name, kind, label in candidates
                if kind != "Pod" and pod.startswith(f"{name}-")
            ]
            if owners:
                return max(owners, key=lambda o: len(o[0]))[1], "pod name"
        repository = _alert_field(fields, "container.image.repository")
        if repository:
            tag = _alert_field(fields, "container.image.tag")
            digest = _alert_field(fields, "container.image.digest")
            reference = repository + (f"@{digest}" if digest else f":{tag}" if tag else "")
            wanted = image_key(reference)
            matches = {
                label
                for label, key, ns in self.images
                if key[0] == wanted[0]
                and (not (tag or digest) or key[1] == wanted[1])
                and (namespace is None or ns == namespace)
            }
            if len(matches) == 1:
                return matches.pop(), "image"
            if matches:
                return None, "image run by several workloads"
        return None, "no workload"


def alert_time(alert: Mapping[str, Any]) -> str | None:
    """`evt.time` (integer nanoseconds, as Falco's JSON output) as an ISO 8601 time."""
    fields = alert.get("output_fields")
    value = fields.get("evt.time") if isinstance(fields, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    try:
        when = dt.datetime.fromtimestamp(value / 1e9, dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return when.isoformat().replace("+00:00", "Z")
