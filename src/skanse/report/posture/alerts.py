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
        # indexed so that each alert costs lookups, not a pass over every workload
        self.by_container: dict[str, str] = {}
        self.pods: dict[tuple[str, str], str] = {}  # (namespace, pod name) -> label
        self.controllers: dict[tuple[str, str], str] = {}  # (namespace, name) -> label
        self.images: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
        for w in workloads:  # images: repository -> (label, tag or digest, namespace)
            resource = w.get("resource") or {}
            label = workload_label(resource)
            namespace = str(resource.get("namespace") or "default")
            for cid in w.get("container_ids") or ():
                self.by_container[str(cid)[:12]] = label
            kind = resource.get("kind")
            if kind in _CONTROLLERS:
                named = self.pods if kind == "Pod" else self.controllers
                named.setdefault((namespace, str(resource.get("name"))), label)
            for image in w.get("images") or ():
                repository, version = image_key(str(image))
                self.images[repository].append((label, version, namespace))

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
            if (namespace, pod) in self.pods:
                return self.pods[namespace, pod], "pod name"
            # the owner is the longest `name` such that the pod is called `name-...`
            end = pod.rfind("-")
            while end > 0:
                owner = self.controllers.get((namespace, pod[:end]))
                if owner is not None:
                    return owner, "pod name"
                end = pod.rfind("-", 0, end)
        repository = _alert_field(fields, "container.image.repository")
        if repository:
            tag = _alert_field(fields, "container.image.tag")
            digest = _alert_field(fields, "container.image.digest")
            reference = repository + (f"@{digest}" if digest else f":{tag}" if tag else "")
            wanted_repository, wanted_version = image_key(reference)
            matches = {
                label
                for label, version, ns in self.images.get(wanted_repository, ())
                if (not (tag or digest) or version == wanted_version)
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
