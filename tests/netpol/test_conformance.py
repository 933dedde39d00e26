"""Conformance with other people's truth: Kubernetes e2e cases, np-guard and cyclonus.

The expected results are read from ../shared/corpora/netpol (see its SOURCES.md); nothing
here is produced by skanse itself.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from skanse.netpol.addresses import merge_segments, parse_range
from skanse.netpol.engine import analyse
from skanse.netpol.load import load_model
from skanse.netpol.model import NetworkModel
from skanse.netpol.ports import ALL, ConnSet, Protocol, parse_conn
from tests.conftest import CORPORA, corpus_path
from tests.netpol.helpers import model_from, namespace, pod

pytestmark = pytest.mark.corpus

E2E = CORPORA / "netpol" / "k8s-e2e" / "e2e-netpol-cases.yaml"
NPGUARD = CORPORA / "netpol" / "np-guard-netpol-analyzer"


def _e2e_cases() -> list[dict[str, Any]]:
    if not E2E.exists():
        return []
    return list(yaml.safe_load(E2E.read_text())["cases"])


def _run_e2e_case(case: dict[str, Any]) -> list[str]:
    """Apply the steps in order; return every probe whose verdict differs from upstream."""
    ns_labels = {n: {"ns": n, "kubernetes.io/metadata.name": n} for n in ("x", "y", "z")}
    pod_labels = {p: {"pod": p.split("/")[1]} for p in case["pods"]}
    ports = [
        (f"serve-{port}-{proto.lower()}", port, proto)
        for port in case["ports"]
        for proto in case["protocols"]
    ]
    policies: dict[tuple[str, str], dict[str, Any]] = {}
    mismatches: list[str] = []
    for number, step in enumerate(case["steps"]):
        for action in step["actions"]:
            ((kind, value),) = action.items()
            if kind in ("create_policy", "update_policy"):
                meta = value["metadata"]
                policies[(meta["namespace"], meta["name"])] = value
            elif kind == "delete_all_policies":
                policies.clear()
            elif kind == "add_namespace_labels":
                ns_labels[value["namespace"]].update(value["labels"])
            elif kind == "add_pod_labels":
                pod_labels[value["pod"]].update(value["labels"])
            else:  # pragma: no cover - a new action in the corpus must be implemented
                raise AssertionError(f"unknown action {kind}")
        documents = [namespace(n, labels) for n, labels in ns_labels.items()]
        for name in case["pods"]:
            ns, short = name.split("/")
            documents.append(pod(ns, short, pod_labels[name], ports, case["pod_ips"][name]))
        documents.extend(policies.values())
        model = model_from(documents)
        assert not model.problems, model.problems
        analysis = analyse(model)
        index = {f"{w.namespace}/{w.name}": i for i, w in enumerate(model.workloads)}
        for probe in step["probes"]:
            denied = set(probe["denied"])
            protocol = Protocol(probe["protocol"])
            for src in case["pods"]:
                for dst in case["pods"]:
                    if src == dst:
                        continue  # upstream ignores loopback
                    conns = analysis.workload_pair(index[src], index[dst])
                    allowed = conns.contains(protocol, probe["port"])
                    expected = f"{src}->{dst}" not in denied
                    if allowed != expected:
                        mismatches.append(
                            f"step {number} {protocol} {probe['port']} {src}->{dst}: "
                            f"expected {'allowed' if expected else 'denied'}, got {conns}"
                        )
    return mismatches


@pytest.mark.parametrize("case", _e2e_cases(), ids=lambda c: c["id"])
def test_kubernetes_e2e_case(case: dict[str, Any]) -> None:
    assert _run_e2e_case(case) == []


def test_all_48_e2e_cases_are_present() -> None:
    corpus_path("netpol", "k8s-e2e", "e2e-netpol-cases.yaml")
    assert len(_e2e_cases()) == 48


def _normalise(lines: list[str]) -> tuple[dict[Any, ConnSet], dict[Any, list[Any]]]:
    """Connection lines as comparable data: workload pairs, and per workload and direction
    the external IPv4 space as merged ranges (the two tools cut the space differently, and
    netpol-analyzer leaves IPv6 out)."""
    pairs: dict[Any, ConnSet] = {}
    external: dict[Any, list[Any]] = {}
    for line in lines:
        if " => " not in line:
            continue
        left, conn = line.rsplit(" : ", 1)
        src, dst = left.split(" => ")
        conns = parse_conn(conn)
        if src.endswith("[External]"):
            addresses, key = parse_range(src[: -len("[External]")]), ("in", dst)
        elif dst.endswith("[External]"):
            addresses, key = parse_range(dst[: -len("[External]")]), ("out", src)
        else:
            pairs[(src, dst)] = conns
            continue
        if addresses.version == 4:
            external.setdefault(key, []).append((addresses, conns))
    return pairs, {k: merge_segments(v) for k, v in external.items()}


def _npguard_connlist_cases() -> list[str]:
    index = NPGUARD / "INDEX.tsv"
    if not index.exists():
        return []
    rows = [line.split("\t") for line in index.read_text().splitlines()[1:]]
    return [r[0] for r in rows if r[1] == "1" and r[3] == "1"]


def without_host_network(lines: list[str], host: set[str]) -> list[str]:
    """The lines of a connection list or diff that name no workload in `host`.

    netpol-analyzer analyses hostNetwork pods like any other; skanse does not, since no CNI
    can be relied on to police them (docs/netpol.md): their pairs are compared apart."""
    if not host:
        return lines
    named = re.compile("(?:^| )(?:" + "|".join(map(re.escape, host)) + ")(?=[ ,]|$)")
    return [line for line in lines if not named.search(line)]


def host_network_workloads(model: NetworkModel) -> set[str]:
    return {w.ident for w in model.workloads if any(p.host_network for p in w.pods)}


def as_npguard_sees_it(model: NetworkModel) -> NetworkModel:
    """The model with every pod off the host network, as netpol-analyzer analyses them: the
    policy semantics of the whole case are still compared with its output."""
    workloads = tuple(
        dataclasses.replace(
            w, pods=tuple(dataclasses.replace(p, host_network=False) for p in w.pods)
        )
        for w in model.workloads
    )
    return dataclasses.replace(model, workloads=workloads, _by_namespace={}, _indexes={})


@pytest.mark.parametrize("case", _npguard_connlist_cases())
def test_npguard_connlist(case: str) -> None:
    expected = (NPGUARD / "test_outputs" / "connlist" / f"{case}_connlist_output.txt").read_text()
    model = load_model([str(NPGUARD / "tests" / case)])
    seen = [str(c) for c in analyse(as_npguard_sees_it(model)).connections()]
    assert _normalise(seen) == _normalise(expected.splitlines())
    connections = analyse(model).connections()
    got = [str(c) for c in connections]
    host = host_network_workloads(model)
    assert _normalise(without_host_network(got, host)) == _normalise(
        without_host_network(expected.splitlines(), host)
    )
    # Every pair with a hostNetwork workload, external ranges included, is open both ways.
    pairs = {(c.src.label, c.dst.label): c.conns for c in connections}
    for w in host:
        for other in model.workloads:
            if other.ident != w:
                assert pairs[(w, other.ident)] == ALL and pairs[(other.ident, w)] == ALL
        assert [str(c.conns) for c in connections if w in (c.src.label, c.dst.label)].count(
            "All Connections"
        ) == 2 * (len(model.workloads) - 1) + 4  # and to and from all IPv4 and IPv6 space


def test_npguard_has_the_43_networkpolicy_only_connlist_cases() -> None:
    corpus_path("netpol", "np-guard-netpol-analyzer", "INDEX.tsv")
    assert len(_npguard_connlist_cases()) == 43


def _cyclonus_tables(text: str) -> list[dict[tuple[str, str], bool]]:
    """The 'Combined' truth tables of analyze-probe.txt, in probe order."""
    tables = []
    for block in re.findall(r"Combined:\n(.*?)\n\n", text, flags=re.S):
        rows = [r for r in block.splitlines() if r.startswith("|")]
        header = [c.strip().lower() for c in rows[0].strip("|").split("|")][1:]
        table = {}
        for row in rows[1:]:
            cells = [c.strip() for c in row.strip("|").split("|")]
            for dst, cell in zip(header, cells[1:], strict=True):
                if cell in (".", "X"):
                    table[(cells[0], dst)] = cell == "."
        if table:
            tables.append(table)
    return tables


def test_cyclonus_probe_truth_table() -> None:
    root = corpus_path("netpol", "mattfenwick-cyclonus")
    probe = yaml.safe_load((root / "examples" / "probe.json").read_text())
    resources = probe["Resources"]
    documents = [
        namespace(n, {**labels, "kubernetes.io/metadata.name": n})
        for n, labels in resources["Namespaces"].items()
    ]
    for p in resources["Pods"]:
        ports = [(c["PortName"], c["Port"], c["Protocol"].upper()) for c in p["Containers"]]
        documents.append(pod(p["Namespace"], p["Name"], p["Labels"], ports, p["IP"]))
    policy_dir = root / "networkpolicies" / "simple-example"
    for path in sorted(Path(policy_dir).glob("*.yaml")):
        documents.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    model = model_from(documents)
    assert not model.problems
    analysis = analyse(model)
    index = {f"{w.namespace}/{w.name}": i for i, w in enumerate(model.workloads)}
    tables = _cyclonus_tables(
        (root / "examples" / "cyclonus-output" / "analyze-probe.txt").read_text()
    )
    probes = [(Protocol(p["Protocol"]), p["Port"]) for p in probe["Probes"]]
    checked = 0
    # The third probe (port 82) has no server in the model: cyclonus prints N, not a verdict.
    for (protocol, port), table in zip(probes, tables, strict=False):
        for (src, dst), allowed in table.items():
            if src == dst:
                continue  # cyclonus probes loopback too; Kubernetes never blocks it
            conns = analysis.workload_pair(index[src], index[dst])
            assert conns.contains(protocol, port) == allowed, (src, dst, port, str(conns))
            checked += 1
    assert checked == 2 * 72
