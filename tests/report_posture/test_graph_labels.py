"""The network graph's node labels: readable in the box, whole in the tooltip."""

from __future__ import annotations

from skanse.netpol.addresses import graph_label
from skanse.report.posture.html import _graph


def test_an_external_peer_shows_its_first_range_as_cidrs_and_how_many_more() -> None:
    # what netpol's outputs name an external peer: inclusive ranges, comma-separated
    label = "0.0.0.0-9.255.255.255,11.0.0.0-255.255.255.255[External]"
    # 0.0.0.0-9.255.255.255 is 0.0.0.0/5 and 8.0.0.0/7; 11.0.0.0-255.255.255.255 is 11/8,
    # 12/6, 16/4, 32/3, 64/2 and 128/1: eight CIDRs in all
    assert graph_label(label, "") == "0.0.0.0/5 +7 more"
    assert graph_label("198.51.100.0-198.51.100.255[External]", "") == "198.51.100.0/24"
    assert graph_label("2001:db8::/32[External]", "") == "2001:db8::/32"


def test_a_long_name_ends_in_an_ellipsis_within_the_limit() -> None:
    label = "payments/a-very-long-deployment-name-indeed[Deployment]"
    text = graph_label(label, " (database)", limit=30)
    assert len(text) == 30 and text.endswith("\u2026")
    assert text.startswith("a-very-long-deployment-name")
    assert graph_label("shop/db[StatefulSet]", " (database)") == "db[StatefulSet] (database)"


def test_the_graph_keeps_the_full_label_in_the_tooltip() -> None:
    external = "0.0.0.0-9.255.255.255,11.0.0.0-255.255.255.255[External]"
    doc = {
        "network": {
            "status": "assessed",
            "connections": [
                {"src": external, "dst": "shop/frontend[Deployment]", "conn": "TCP 8080"}
            ],
            "worst": {},
            "findings": {},
            "databases": [],
        }
    }
    svg = _graph(doc)
    assert f"<title>{external}: 0 finding(s)</title>" in svg
    assert ">0.0.0.0/5 +7 more</text>" in svg
