"""generate: round trips through the engine, refusals, and country lists from RIR files."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skanse.errors import GraphError, ProofError
from skanse.netpol.addresses import aggregate
from skanse.netpol.engine import analyse
from skanse.netpol.generate import generate, graph_from_data, parse_graph
from skanse.netpol.load import build_model
from skanse.netpol.rir import RirError, country_cidrs, parse_cidr_list, parse_delegated
from skanse.sources.manifests import ReadLimits, read_bytes
from tests.netpol.helpers import deployment, namespace, objects_from, policy

APP = [
    namespace("shop"),
    namespace("data"),
    deployment("shop", "frontend", {"app": "frontend"}, [8080]),
    deployment("shop", "backend", {"app": "backend", "tier": "api"}, [9090]),
    deployment("shop", "worker", {"app": "worker"}),
    deployment("data", "db", {"app": "db"}, [5432]),
    deployment("data", "cache", {"app": "cache"}, [6379]),
]
DNS = "TCP 53,UDP 53"


def _listed(objects: list[Any], text: str) -> set[str]:
    generated = read_bytes("<gen>", text.encode(), ReadLimits()).objects
    model = build_model([*objects, *generated])
    assert not model.problems
    return {str(c) for c in analyse(model).connections()}


GRAPHS = {
    "database only from backend": (
        [
            {"from": "shop/frontend", "to": "shop/backend", "ports": [9090]},
            {"from": "shop/backend", "to": "data/db", "ports": [5432]},
        ],
        {
            "shop/frontend[Deployment] => shop/backend[Deployment] : TCP 9090",
            "shop/backend[Deployment] => data/db[Deployment] : TCP 5432",
        },
    ),
    "ports, ranges, udp and externals": (
        [
            {"from": "shop/backend", "to": "data/cache", "ports": ["6379/TCP", "7000-7010/TCP"]},
            {"from": "shop/worker", "to": "shop/backend", "ports": ["9090", "5000/UDP"]},
            {
                "from": "shop/worker",
                "to": {"cidrs": ["198.51.100.0/25", "198.51.100.128/25"]},
                "ports": [443],
            },
            {"from": {"cidrs": ["192.0.2.0/24"]}, "to": "shop/frontend", "ports": [8080]},
        ],
        {
            "shop/backend[Deployment] => data/cache[Deployment] : TCP 6379,7000-7010",
            "shop/worker[Deployment] => shop/backend[Deployment] : TCP 9090,UDP 5000",
            "shop/worker[Deployment] => 198.51.100.0-198.51.100.255[External] : TCP 443",
            "192.0.2.0-192.0.2.255[External] => shop/frontend[Deployment] : TCP 8080",
        },
    ),
    "all ports between two workloads": (
        [{"from": "shop/frontend", "to": "shop/worker"}],
        {"shop/frontend[Deployment] => shop/worker[Deployment] : All Connections"},
    ),
}


@pytest.mark.parametrize("name", GRAPHS)
def test_generate_then_list_equals_the_declaration_plus_dns(name: str) -> None:
    connections: list[dict[str, Any]] = GRAPHS[name][0]  # type: ignore[assignment]
    declared: set[str] = GRAPHS[name][1]
    objects = objects_from(APP)
    result = generate(graph_from_data({"connections": connections}), objects)
    listed = _listed(objects, result.text)
    # kube-dns is not in these manifests: add it to see the DNS edges listed
    dns_pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "coredns",
            "namespace": "kube-system",
            "labels": {"k8s-app": "kube-dns"},
        },
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }
    with_dns = _listed(objects_from([*APP, dns_pod]), result.text)
    managed: set[str] = {
        side.split("/")[0]
        for edge in connections
        for side in (edge["from"], edge["to"])
        if isinstance(side, str)
    }
    workloads = ("shop/frontend", "shop/backend", "shop/worker", "data/db", "data/cache")
    expected = set(declared) | {
        f"{w}[Deployment] => kube-system/coredns[Pod] : {DNS}"
        for w in workloads
        if w.split("/")[0] in managed
    }

    def involves_managed(line: str) -> bool:
        src, dst = line.split(" : ")[0].split(" => ")
        return any(
            end.split("/")[0] in managed and end.endswith("]") and "[External]" not in end
            for end in (src, dst)
        )

    assert {c for c in with_dns if involves_managed(c)} == expected
    assert {c for c in listed if involves_managed(c)} == {c for c in expected if "coredns" not in c}


def test_namespaces_with_declared_workloads_get_default_deny_and_dns() -> None:
    result = generate(
        graph_from_data(
            {"connections": [{"from": "shop/backend", "to": "data/db", "ports": [5432]}]}
        ),
        objects_from(APP),
    )
    names = {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in _docs(result.text)}
    assert {
        ("shop", "default-deny"),
        ("data", "default-deny"),
        ("shop", "allow-dns"),
        ("data", "allow-dns"),
    } <= names
    db_ingress = next(d for d in _docs(result.text) if d["metadata"]["name"] == "allow-ingress-db")
    peer = db_ingress["spec"]["ingress"][0]["from"][0]
    assert peer["podSelector"] == {"matchLabels": {"app": "backend", "tier": "api"}}
    assert peer["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "shop"}}


def _docs(text: str) -> list[dict[str, Any]]:
    import yaml

    return [d for d in yaml.safe_load_all(text) if d]


def test_node_local_dns_is_allowed_when_asked() -> None:
    result = generate(
        graph_from_data(
            {"connections": [{"from": "shop/backend", "to": "data/db", "ports": [5432]}]}
        ),
        objects_from(APP),
        node_local_dns=True,
    )
    assert "169.254.20.10/32" in result.text


def test_an_existing_allow_all_policy_fails_the_proof() -> None:
    loose = policy("shop", "legacy-allow-all", {"podSelector": {}, "ingress": [{}]})
    with pytest.raises(ProofError) as err:
        generate(
            graph_from_data(
                {"connections": [{"from": "shop/frontend", "to": "shop/backend", "ports": [9090]}]}
            ),
            objects_from([*APP, loose]),
        )
    assert any("declared" in d for d in err.value.differences)


def test_workloads_that_labels_cannot_tell_apart_are_refused() -> None:
    twins = [deployment("shop", "a", {"app": "same"}), deployment("shop", "b", {"app": "same"})]
    with pytest.raises(GraphError, match="also select"):
        generate(
            graph_from_data({"connections": [{"from": "shop/a", "to": "shop/b"}]}),
            objects_from(twins),
        )


@pytest.mark.parametrize(
    ("graph", "message"),
    [
        ("connections: [{from: shop/nope, to: shop/backend}]", "no workload"),
        ("connections: [{from: shop/frontend, to: shop/backend, ports: [70000]}]", "out of range"),
        ("connections: [{from: shop/frontend, to: shop/backend, ports: [http]}]", "PORT"),
        ("connections: [{from: {cidrs: [10.0.0.0/8]}, to: {cidrs: [10.0.0.0/8]}}]", "one side"),
        ("connections: [{from: {countries: [SE]}, to: shop/backend}]", "RIR"),
        ("connections: [{from: {cidrs: [10.0.0.300/8]}, to: shop/backend}]", "does not appear"),
        ("connexions: []", "connections"),
        ("connections: [", "expected node content"),
    ],
)
def test_bad_graphs_are_clear_errors(graph: str, message: str) -> None:
    with pytest.raises(GraphError, match=message):
        generate(parse_graph(graph), objects_from(APP))


def test_cli_writes_nothing_when_the_proof_fails(cli: Any, tmp_path: Path) -> None:
    import json

    manifests = tmp_path / "app.json"
    loose = policy("shop", "legacy", {"podSelector": {}, "ingress": [{}]})
    manifests.write_text(
        "\n".join(json.dumps(d) for d in [*APP, loose]).replace("}\n{", "}\n---\n{")
    )
    graph = tmp_path / "graph.yaml"
    graph.write_text("connections: [{from: shop/frontend, to: shop/backend, ports: [9090]}]\n")
    out = tmp_path / "out.yaml"
    result = cli("netpol", "generate", str(graph), str(manifests), "-o", str(out))
    assert result.code == 2 and not out.exists()
    assert "nothing was written" in result.stderr


DELEGATED = """\
2|ripencc|1700000000|7|19830705|20250101|+0100
ripencc|*|ipv4|*|5|summary
ripencc|*|ipv6|*|3|summary
# overlapping, adjacent and not CIDR-aligned ranges
ripencc|NO|ipv4|10.0.0.0|256|20000101|allocated
ripencc|NO|ipv4|10.0.1.0|256|20000101|assigned
ripencc|NO|ipv4|10.0.2.0|512|20000101|allocated
ripencc|NO|ipv4|10.0.0.128|64|20000101|assigned
ripencc|NO|ipv4|10.1.0.0|768|20000101|allocated
ripencc|SE|ipv4|10.0.4.0|256|20000101|allocated
ripencc|NO|ipv4|10.2.0.0|256|20000101|available
ripencc|NO|ipv6|2001:db8::|33|20000101|allocated
ripencc|NO|ipv6|2001:db8:8000::|33|20000101|allocated
ripencc|NO|ipv6|2001:db9::|48|20000101|assigned
ripencc|SE|asn|3301|1|20000101|allocated
"""


def test_country_allow_list_is_the_minimal_cidr_set() -> None:
    records = parse_delegated(DELEGATED, "delegated")
    got = [str(n) for n in country_cidrs(records, ["no"])]
    # 10.0.0.0-10.0.3.255 merges into one /22; 768 addresses need a /23 and a /24;
    # the two IPv6 /33 halves are one /32; "available" is not allocated
    assert got == ["10.0.0.0/22", "10.1.0.0/23", "10.1.2.0/24", "2001:db8::/32", "2001:db9::/48"]
    assert [str(n) for n in country_cidrs(records, ["NO", "SE"])][:2] == [
        "10.0.0.0/22",
        "10.0.4.0/24",
    ]


def test_cidr_list_file_is_aggregated_and_bad_lines_name_their_line() -> None:
    text = "# peering LAN\n192.0.2.0/25\n192.0.2.128/25  # second half\n\n2001:db8::1\n"
    assert [str(n) for n in parse_cidr_list(text)] == ["192.0.2.0/24", "2001:db8::1/128"]
    with pytest.raises(RirError, match=":2:"):
        parse_cidr_list("10.0.0.0/8\nnot-a-cidr\n", "peers.txt")
    with pytest.raises(RirError, match=":1:"):
        parse_delegated("ripencc|NO|ipv4|10.0.0.x|256|20000101|allocated\n")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 255), st.integers(1, 64)), min_size=1, max_size=8))
def test_aggregation_covers_exactly_the_union_with_the_fewest_cidrs(
    ranges: list[tuple[int, int]],
) -> None:
    from skanse.netpol.addresses import IpRange

    inputs = [IpRange(4, lo, min(lo + size - 1, 319)) for lo, size in ranges]
    covered = {a for r in inputs for a in range(r.lo, r.hi + 1)}
    result = aggregate(inputs)
    got = {a for n in result for a in range(int(n.network_address), int(n.broadcast_address) + 1)}
    assert got == covered
    # minimal: a greedy split of each maximal run into aligned blocks is optimal
    runs: list[list[int]] = []
    for a in sorted(covered):
        if runs and runs[-1][1] + 1 == a:
            runs[-1][1] = a
        else:
            runs.append([a, a])
    fewest = sum(
        len(
            list(
                ipaddress.summarize_address_range(
                    ipaddress.IPv4Address(lo), ipaddress.IPv4Address(hi)
                )
            )
        )
        for lo, hi in runs
    )
    assert len(result) == fewest


def _graph_with_cidr_file(tmp_path: Path, cidr_file: str) -> tuple[Path, Path]:
    import json

    manifests = tmp_path / "app.json"
    manifests.write_text("\n---\n".join(json.dumps(d) for d in APP))
    graph = tmp_path / "graph.yaml"
    graph.write_text(
        f"connections: [{{from: {{cidr-file: '{cidr_file}'}}, to: shop/frontend, ports: [80]}}]\n"
    )
    return graph, manifests


@pytest.mark.parametrize("target", ["/etc/passwd", "../outside.txt", "link.txt"])
def test_a_cidr_file_outside_the_graphs_directory_is_refused(
    cli: Any, tmp_path: Path, target: str
) -> None:
    (tmp_path / "outside.txt").write_text("192.0.2.0/24\n")
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "link.txt").symlink_to(tmp_path / "outside.txt")
    graph, manifests = _graph_with_cidr_file(tmp_path / "g", target)
    out = tmp_path / "out.yaml"
    result = cli("netpol", "generate", str(graph), str(manifests), "-o", str(out))
    assert result.code == 2 and not out.exists()
    assert "graph file's directory" in result.stderr


def test_a_cidr_file_beside_the_graph_is_read(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "peers.txt").write_text("192.0.2.0/24\n")
    graph, manifests = _graph_with_cidr_file(tmp_path, "peers.txt")
    result = cli("netpol", "generate", str(graph), str(manifests))
    assert result.code == 0, result.stderr
    assert "192.0.2.0/24" in result.stdout


def test_a_device_or_oversized_input_file_is_refused_not_read(cli: Any, tmp_path: Path) -> None:
    graph, manifests = _graph_with_cidr_file(tmp_path, "big.txt")
    (tmp_path / "big.txt").write_text("192.0.2.0/24\n" * 100_000)  # 1.3 MB
    result = cli("netpol", "generate", str(graph), str(manifests), "--max-file-size", "1")
    assert result.code == 2 and "over the 1 MiB limit" in result.stderr
    result = cli("netpol", "generate", str(graph), str(manifests), "--rir", "/dev/zero")
    assert result.code == 2 and "not a regular file" in result.stderr
    result = cli("netpol", "generate", "/dev/zero", str(manifests))
    assert result.code == 2 and "not a regular file" in result.stderr


def test_a_bad_line_is_quoted_only_as_a_short_escaped_excerpt() -> None:
    secret = "root:$6$saltsalt$" + "h" * 80 + ":19000:0:99999:7:::\x1b[2J"
    with pytest.raises(RirError) as caught:
        parse_cidr_list(f"10.0.0.0/8\n{secret}\n", "peers.txt")
    message = str(caught.value)
    assert message.startswith("peers.txt:2:") and "root:$6$" in message
    assert "h" * 20 not in message and "\x1b" not in message
    with pytest.raises(RirError) as caught:
        parse_delegated(f"ripencc|NO|ipv4|{secret}|256|20000101|allocated\n")
    assert "h" * 20 not in str(caught.value)
