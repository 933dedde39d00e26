"""`skanse netpol` end to end: formats, focus, explain, diff exit codes, errors."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CORPORA

BOUTIQUE = CORPORA / "netpol" / "np-guard-netpol-analyzer" / "tests" / "onlineboutique_workloads"
pytestmark = pytest.mark.corpus


@pytest.fixture
def boutique() -> str:
    if not BOUTIQUE.exists():
        pytest.skip("corpus absent")
    return str(BOUTIQUE)


def test_list_formats_agree(cli: Any, boutique: str) -> None:
    txt = cli("netpol", "list", boutique, "-f", "txt")
    assert txt.code == 0
    lines = txt.stdout.splitlines()
    assert "default/frontend[Deployment] => default/cartservice[Deployment] : TCP 7070" in lines
    doc = json.loads(cli("netpol", "list", boutique, "-f", "json").stdout)
    assert doc["schema_version"] == 1
    assert [f"{c['src']} => {c['dst']} : {c['conn']}" for c in doc["connections"]] == lines
    rows = list(csv.reader(io.StringIO(cli("netpol", "list", boutique, "-f", "csv").stdout)))
    assert rows[0] == ["src", "dst", "conn"] and len(rows) == len(lines) + 1
    dot = cli("netpol", "list", boutique, "-f", "dot").stdout
    assert dot.startswith("digraph {") and dot.count(" -> ") == len(lines)
    svg = ET.fromstring(cli("netpol", "list", boutique, "-f", "svg").stdout)  # noqa: S314 - our own output
    edges = [g for g in svg.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "edge"]
    assert len(edges) == len(lines)
    table = cli("netpol", "list", boutique).stdout.splitlines()
    assert (
        table[0].split() == ["SOURCE", "DESTINATION", "CONNECTIONS"]
        and len(table) == len(lines) + 1
    )


def test_focus_limits_to_one_workload(cli: Any, boutique: str) -> None:
    out = cli("netpol", "list", boutique, "-f", "txt", "--focus", "default/emailservice").stdout
    lines = out.splitlines()
    assert lines and all("default/emailservice[Deployment]" in line for line in lines)
    assert cli("netpol", "list", boutique, "--focus", "nope").code == 2


def test_explain_names_the_rules_with_file_and_line(cli: Any, boutique: str) -> None:
    result = cli(
        "netpol", "explain", boutique, "default/checkoutservice", "default/paymentservice:50051/TCP"
    )
    assert result.code == 0
    assert "TCP 50051: ALLOWED" in result.stdout
    assert "netpols.yaml:" in result.stdout
    denied = cli("netpol", "explain", boutique, "default/frontend", "default/paymentservice:50051")
    assert "DENIED by egress and ingress" in denied.stdout
    data = json.loads(
        cli(
            "netpol", "explain", boutique, "--json", "default/frontend", "default/adservice:9555"
        ).stdout
    )
    assert data["explanations"][0]["verdict"] is True
    assert data["explanations"][0]["ingress"]["rules"][0]["line"] > 1


def test_explain_external_and_node(cli: Any, boutique: str) -> None:
    out = cli("netpol", "explain", boutique, "203.0.113.9", "default/redis-cart:6379").stdout
    assert "ALLOWED" in out and "outside the cluster" in out
    node = cli("netpol", "explain", boutique, "node", "default/adservice:9555").stdout
    assert "always allowed" in node
    assert cli("netpol", "explain", boutique, "nobody", "default/adservice").code == 2


def test_diff_exit_codes(cli: Any, boutique: str, tmp_path: Path) -> None:
    assert cli("netpol", "diff", boutique, boutique).code == 0
    changed = BOUTIQUE.parent / "onlineboutique_workloads_changed_netpols"
    result = cli("netpol", "diff", boutique, str(changed))
    assert result.code == 1 and result.stdout.startswith("Connectivity diff:")


def test_invalid_policies_are_reported_on_stderr_and_strict_fails(cli: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x, namespace: a}\n"
        "spec:\n  podSelector: {}\n  ingress:\n  - ports: [{port: 0}]\n"
    )
    result = cli("netpol", "list", str(bad))
    assert result.code == 0 and f"{bad}:7:" in result.stderr and "out of range" in result.stderr
    assert cli("netpol", "list", str(bad), "--strict").code == 2
    assert cli("netpol", "list", str(tmp_path / "missing")).code == 2


def test_output_file_is_written(cli: Any, boutique: str, tmp_path: Path) -> None:
    out = tmp_path / "graph.svg"
    assert cli("netpol", "list", boutique, "-f", "svg", "-o", str(out)).code == 0
    assert ET.parse(out).getroot().tag.endswith("svg")  # noqa: S314


EGRESS_EXCEPT_PRIVATE = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: app, namespace: shop}
spec:
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec: {containers: [{name: app, image: app:1}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress, namespace: shop}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
  egress:
    - to: [{ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8]}}]
"""


def test_svg_nodes_name_external_ranges_by_cidr_and_keep_the_range_in_the_tooltip(
    cli: Any, tmp_path: Path
) -> None:
    (tmp_path / "shop.yaml").write_text(EGRESS_EXCEPT_PRIVATE)
    svg = ET.fromstring(cli("netpol", "list", str(tmp_path), "-f", "svg").stdout)  # noqa: S314
    ns = "{http://www.w3.org/2000/svg}"
    nodes = {
        g.findtext(f"{ns}title"): g.findtext(f"{ns}text")
        for g in svg.iter(f"{ns}g")
        if g.get("class") == "node"
    }
    # 0.0.0.0-9.255.255.255 is 0.0.0.0/5 and 8.0.0.0/7; 11.0.0.0-255.255.255.255 is six CIDRs
    assert nodes["0.0.0.0-9.255.255.255[External]"] == "0.0.0.0/5 +1 more"
    assert nodes["11.0.0.0-255.255.255.255[External]"] == "11.0.0.0/8 +5 more"
    assert nodes["shop/app[Deployment]"] == "app[Deployment]"


@pytest.mark.parametrize("fmt", ["table", "txt", "md", "csv", "dot", "svg"])
def test_names_from_manifests_are_shown_not_obeyed(cli, tmp_path: Path, fmt: str) -> None:
    # a manifest in a repository can name a pod anything; the API server would refuse the
    # name, but `netpol list` reads files, and its text went to the terminal raw
    manifest = tmp_path / "hostile.yaml"
    manifest.write_text(
        'apiVersion: v1\nkind: Pod\nmetadata:\n  name: "web\\e[2J\\e]0;owned\\a"\n'
        "  namespace: shop\nspec:\n  containers: [{name: c, image: nginx}]\n"
    )
    run = cli("netpol", "list", str(manifest), "-f", fmt)
    assert run.code == 0, run.stderr
    assert "\x1b" not in run.stdout and "\x07" not in run.stdout
    assert "web\\x1b[2J" in run.stdout
