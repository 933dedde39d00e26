"""A named port in a policy stands for every container port of that name and protocol on the
destination pod. The API server refuses a name twice in one container, not in two: an app
and its sidecar may both expose "metrics", and a policy allowing "metrics" opens both (as
Calico resolves it). Taking the first port read let `explain --expect deny` pass for the
other one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from skanse.netpol.engine import analyse
from skanse.netpol.explain import explain, parse_target
from tests.netpol.helpers import model_from, pod, policy, write_manifests

# Two containers, each with a port named "metrics"; the app's "dns" is UDP, the sidecar's TCP.
API = pod(
    "shop",
    "api",
    {"app": "api"},
    [("metrics", 9090, "TCP"), ("metrics", 15090, "TCP"), ("dns", 53, "UDP"), ("dns", 5353, "TCP")],
)
SCRAPER = pod("mon", "scraper", {"app": "scraper"})


def _allowing(*ports: dict[str, Any]) -> dict[str, Any]:
    spec = {"podSelector": {"matchLabels": {"app": "api"}}, "ingress": [{"ports": list(ports)}]}
    return policy("shop", "allow", spec)


def _listed(docs: list[dict[str, Any]]) -> str:
    (found,) = [
        str(c.conns)
        for c in analyse(model_from(docs)).connections()
        if (c.src.label, c.dst.label) == ("mon/scraper[Pod]", "shop/api[Pod]")
    ]
    return found


def test_a_named_port_opens_every_container_port_of_that_name() -> None:
    assert _listed([API, SCRAPER, _allowing({"port": "metrics"})]) == "TCP 9090,15090"


def test_a_named_port_matches_the_port_of_its_protocol_whichever_container_comes_first() -> None:
    # the first "dns" read is UDP; the rule asks for TCP, which the sidecar's "dns" is
    assert _listed([API, SCRAPER, _allowing({"port": "dns", "protocol": "TCP"})]) == "TCP 5353"


def test_explain_resolves_a_queried_name_to_each_of_its_ports() -> None:
    model = model_from([API, SCRAPER, _allowing({"port": 15090})])
    src, _ = parse_target(model, "mon/scraper")
    dst, query = parse_target(model, "shop/api:metrics", allow_port=True)
    (found,) = explain(model, src, dst, query)
    assert found.ports == (9090, 15090)
    assert found.may_allow and not found.allows  # open on 15090, closed on 9090


def test_expect_deny_fails_for_the_second_port_of_a_name(cli: Any, tmp_path: Path) -> None:
    path = write_manifests(tmp_path, [API, SCRAPER, _allowing({"port": "metrics"})])
    for target in ("shop/api:15090", "shop/api:metrics"):
        result = cli("netpol", "explain", path, "mon/scraper", target, "--expect", "deny")
        assert result.code == 1, (target, result.stdout)
        assert "to be denied; it is allowed" in result.stderr


def test_expect_deny_and_allow_both_fail_when_a_name_is_open_on_some_of_its_ports(
    cli: Any, tmp_path: Path
) -> None:
    path = write_manifests(tmp_path, [API, SCRAPER, _allowing({"port": 15090})])
    for expect in ("deny", "allow"):
        result = cli(
            "netpol", "explain", path, "mon/scraper", "shop/api:metrics", "--expect", expect
        )
        assert result.code == 1, (expect, result.stdout)
        assert "allowed for some of the pods, addresses or ports only" in result.stderr
    shown = cli("netpol", "explain", path, "mon/scraper", "shop/api:metrics").stdout
    assert "TCP metrics (9090, 15090): ALLOWED on 15090 only; DENIED by ingress" in shown
