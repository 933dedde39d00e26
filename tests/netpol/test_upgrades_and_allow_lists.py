"""Generated policies survive upgrades; allow-lists grow linearly and warn when huge;
`explain --expect`; strict CIDR files; the policyTypes lint."""

from __future__ import annotations

import ipaddress
import json
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import yaml

from skanse.errors import GraphError
from skanse.netpol.diff import diff_connections
from skanse.netpol.engine import analyse
from skanse.netpol.generate import generate, graph_from_data
from skanse.netpol.load import build_model
from skanse.netpol.rir import RirError, parse_cidr_list
from skanse.sources.manifests import ReadLimits, read_bytes
from tests.netpol.helpers import namespace, objects_from


def helm_deployment(ns: str, name: str, version: str, ports: list[int]) -> dict[str, Any]:
    """A Deployment as a Helm chart writes it: the selector holds the stable labels, the
    template adds the release's version and chart labels."""
    stable = {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": "shop"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "selector": {"matchLabels": stable},
            "template": {
                "metadata": {
                    "labels": {
                        **stable,
                        "app.kubernetes.io/version": version,
                        "helm.sh/chart": f"shop-{version}",
                    }
                },
                "spec": {
                    "containers": [
                        {
                            "name": name,
                            "image": f"{name}:{version}",
                            "ports": [{"containerPort": p} for p in ports],
                        }
                    ]
                },
            },
        },
    }


def _release(version: str) -> list[dict[str, Any]]:
    return [
        namespace("shop"),
        helm_deployment("shop", "web", version, [8080]),
        helm_deployment("shop", "api", version, [9090]),
        helm_deployment("shop", "db", version, [5432]),
    ]


def _objects(docs: list[dict[str, Any]], text: str = "") -> list[Any]:
    objects = objects_from(docs)
    if text:
        objects += read_bytes("<generated>", text.encode(), ReadLimits()).objects
    return objects


GRAPH = {
    "connections": [
        {"from": "shop/web", "to": "shop/api", "ports": [9090]},
        {"from": "shop/api", "to": "shop/db", "ports": [5432]},
        {"from": {"cidrs": ["192.0.2.0/24"]}, "to": "shop/web", "ports": [8080]},
    ]
}


def test_a_version_bump_leaves_the_generated_policies_selecting_the_same_pods() -> None:
    generated = generate(graph_from_data(GRAPH), _objects(_release("1.4.0")))
    for doc in yaml.safe_load_all(generated.text):
        selector = json.dumps(doc["spec"]["podSelector"])
        assert "version" not in selector and "helm.sh/chart" not in selector, selector
    before = build_model(_objects(_release("1.4.0"), generated.text))
    after = build_model(_objects(_release("1.5.0"), generated.text))
    changes = diff_connections(
        analyse(before).connections(),
        analyse(after).connections(),
        [w.ident for w in before.workloads],
        [w.ident for w in after.workloads],
    )
    assert changes == []
    # and the policies still do what was declared after the upgrade
    listed = {str(c) for c in analyse(after).connections()}
    assert "shop/web[Deployment] => shop/api[Deployment] : TCP 9090" in listed
    assert "shop/web[Deployment] => shop/db[Deployment] : TCP 5432" not in listed


def test_a_bare_pod_is_selected_without_its_version_label() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "probe",
            "namespace": "shop",
            "labels": {"app": "probe", "app.kubernetes.io/version": "2"},
        },
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }
    graph = {"connections": [{"from": "shop/probe", "to": "shop/web", "ports": [8080]}]}
    generated = generate(graph_from_data(graph), _objects([*_release("1"), pod]))
    selectors = [d["spec"]["podSelector"] for d in yaml.safe_load_all(generated.text)]
    assert {"matchLabels": {"app": "probe"}} in selectors


def _spaced(count: int, start: str = "11.0.0.0") -> list[str]:
    """/24 networks with a gap after each: nothing to aggregate."""
    base = int(ipaddress.IPv4Address(start))
    return [str(ipaddress.IPv4Network((base + i * 512, 24))) for i in range(count)]


def _allow_list(count: int, **options: Any) -> Any:
    graph = {
        "connections": [{"from": {"cidrs": _spaced(count)}, "to": "shop/web", "ports": [8080]}]
    }
    return generate(graph_from_data(graph), _objects(_release("1")), **options)


def _calls(count: int) -> int:
    """Python function calls made while generating (and proving) an allow-list of `count`."""
    calls = 0

    def profile(_frame: FrameType, event: str, _arg: object) -> None:
        nonlocal calls
        if event == "call":
            calls += 1

    sys.setprofile(profile)
    try:
        _allow_list(count)
    finally:
        sys.setprofile(None)
    return calls


def test_allow_list_work_grows_linearly_with_its_size() -> None:
    # Work counted in function calls, not seconds: four times the CIDRs must cost about four
    # times the calls. Comparing every block with every address range (the old cost) made
    # it sixteen.
    small, large = _calls(150), _calls(600)
    assert large / small < 6, (small, large)


def test_an_allow_list_is_aggregated_and_every_block_is_written() -> None:
    # filling the first two gaps merges the first two networks into one /22
    cidrs = [*_spaced(300), "11.0.1.0/24", "11.0.3.0/24"]
    graph = {"connections": [{"from": {"cidrs": cidrs}, "to": "shop/web", "ports": [8080]}]}
    generated = generate(graph_from_data(graph), _objects(_release("1")))
    docs = list(yaml.safe_load_all(generated.text))
    ingress = next(d for d in docs if d["metadata"]["name"] == "allow-ingress-web")
    blocks = [p["ipBlock"]["cidr"] for p in ingress["spec"]["ingress"][0]["from"]]
    assert blocks[0] == "11.0.0.0/22" and len(blocks) == 299
    assert blocks[-1] == _spaced(300)[-1]


def test_a_policy_with_more_ip_blocks_than_allowed_warns_and_names_alternatives() -> None:
    quiet = _allow_list(40, max_ip_blocks=40)
    assert quiet.warnings == ()
    loud = _allow_list(41, max_ip_blocks=40)
    assert len(loud.warnings) == 1
    warning = loud.warnings[0]
    assert "shop/allow-ingress-web has 41 ipBlocks" in warning
    for alternative in ("aggregate", "CiliumCIDRGroup", "GlobalNetworkSet"):
        assert alternative in warning


def test_a_cidr_file_line_with_host_bits_is_refused_with_its_line() -> None:
    with pytest.raises(RirError) as caught:
        parse_cidr_list("# peers\n192.0.2.0/24\n10.20.30.40/24\n", "peers.txt")
    assert caught.value.line == 3
    assert "peers.txt:3:" in str(caught.value) and "10.20.30.0/24" in str(caught.value)
    assert [str(n) for n in parse_cidr_list("10.20.30.40\n10.20.30.0/24\n")] == ["10.20.30.0/24"]


def test_a_graph_cidr_with_host_bits_is_refused() -> None:
    graph = {"connections": [{"from": {"cidrs": ["10.20.30.40/24"]}, "to": "shop/web"}]}
    with pytest.raises(GraphError, match=r"connections\[0\].*host bits set"):
        generate(graph_from_data(graph), _objects(_release("1")))


def test_generate_cli_prints_the_ip_block_warning(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text(
        "\n---\n".join(json.dumps(d) for d in _release("1")), encoding="utf-8"
    )
    (tmp_path / "peers.txt").write_text("\n".join(_spaced(30)) + "\n", encoding="utf-8")
    (tmp_path / "graph.yaml").write_text(
        "connections:\n  - {from: {cidr-file: peers.txt}, to: shop/web, ports: [8080]}\n",
        encoding="utf-8",
    )
    args = ["netpol", "generate", str(tmp_path / "graph.yaml"), str(tmp_path / "app.yaml")]
    result = cli(*args, "--max-ip-blocks", "20")
    assert result.code == 0
    assert "30 ipBlocks" in result.stderr and "GlobalNetworkSet" in result.stderr
    assert "ipBlocks" not in cli(*args).stderr


def _explain_fixture(tmp_path: Path) -> str:
    docs = [
        *_release("1"),
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "db", "namespace": "shop"},
            "spec": {
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "db"}},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [
                            {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "api"}}}
                        ],
                        "ports": [{"port": 5432}],
                    }
                ],
            },
        },
    ]
    path = tmp_path / "app.yaml"
    path.write_text("\n---\n".join(json.dumps(d) for d in docs), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    ("src", "dst", "expect", "code"),
    [
        ("shop/api", "shop/db:5432", "allow", 0),
        ("shop/api", "shop/db:5432", "deny", 1),
        ("shop/web", "shop/db:5432", "deny", 0),
        ("shop/web", "shop/db:5432", "allow", 1),
        ("shop/web", "shop/db", "deny", 0),  # no port: denied means nothing at all is allowed
        ("shop/api", "shop/db", "allow", 0),
    ],
)
def test_explain_expect_sets_the_exit_code(
    cli: Any, tmp_path: Path, src: str, dst: str, expect: str, code: int
) -> None:
    path = _explain_fixture(tmp_path)
    result = cli("netpol", "explain", path, src, dst, "--expect", expect)
    assert result.code == code, result.stdout + result.stderr
    if code:
        assert "expected" in result.stderr


def test_explain_without_expect_still_exits_0_on_a_denied_connection(
    cli: Any, tmp_path: Path
) -> None:
    path = _explain_fixture(tmp_path)
    assert cli("netpol", "explain", path, "shop/web", "shop/db:5432").code == 0
