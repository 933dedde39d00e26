"""The sysctl check table against the host-hardening baseline it was built from.

The baseline (../shared/corpora/host-hardening/sysctl-baseline.yaml) is read here, never
copied: every row must have a check, in the same order, with the same recommended and
accepted values, except the deviations listed below with their reason.
"""

from __future__ import annotations

import re

import pytest
import yaml

from skanse.host.checks.sysctl import SYSCTL_RULES, Expect
from skanse.host.facts import HostProfile
from tests.conftest import corpus_path

pytestmark = pytest.mark.corpus

# key -> why skanse accepts something else than the baseline's `accept` column (generic)
DEVIATIONS = {
    # Ubuntu's kernels ship perf_event_paranoid=4 (a stricter distro patch level); Lynis
    # accepts 2|3|4, the baseline's accept column only 2|3.
    "kernel.perf_event_paranoid": {4},
}


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    data = yaml.safe_load(corpus_path("host-hardening", "sysctl-baseline.yaml").read_text())
    assert data["schema"] == "skanse-sysctl-baseline-v1"
    return data["rows"]


def _accepted(text: str) -> tuple[set[int] | None, int | None]:
    """The baseline's accept column: '2 (1 acceptable)', '1|2', '<=100 (...)', '0'."""
    text = str(text)
    if m := re.match(r"<=(\d+)", text):
        return None, int(m.group(1))
    values = {int(v) for v in re.findall(r"(?<![<=\d])(\d+)", text.split(" on ")[0])}
    return values, None


def test_one_check_per_baseline_row_in_order(rows: list[dict]) -> None:
    assert [r.key for r in SYSCTL_RULES] == [row["key"] for row in rows]
    assert [r.id for r in SYSCTL_RULES] == [f"SKN-HOST-{n:03d}" for n in range(1, len(rows) + 1)]


def test_recommended_values_match(rows: list[dict]) -> None:
    for rule, row in zip(SYSCTL_RULES, rows, strict=True):
        expect = rule.generic or rule.k8s
        assert expect is not None
        recommended = str(row["recommended"])
        if recommended.isdigit():
            assert expect.recommended == int(recommended), rule.key
        else:  # profile-dependent rows: "1 on k8s/container nodes"
            assert rule.k8s is not None and rule.k8s.recommended == int(recommended.split()[0])


def test_generic_accepted_values_match(rows: list[dict]) -> None:
    checked = 0
    for rule, row in zip(SYSCTL_RULES, rows, strict=True):
        note = row["container_node_note"] or ""
        if rule.generic is None:
            # only the k8s-node profile checks it: kubelet values and the bridge hook
            assert "kubelet" in row["sources"] or "k8s" in row["recommended"], rule.key
            continue
        if rule.key == "net.ipv4.ip_forward":
            # "1 (node) / 0 (plain host)": generic is the plain host
            assert rule.generic.values == {0} and rule.k8s is not None
            assert rule.k8s.values == {1}
            continue
        values, at_most = _accepted(row["accept"])
        if at_most is not None:
            assert rule.generic.at_most == at_most, rule.key
        else:
            assert values is not None
            expected = values | DEVIATIONS.get(rule.key, set())
            assert set(rule.generic.values) == expected, (rule.key, row["accept"])
        checked += 1
        # the baseline's container-node conflicts are relaxed in the k8s-node profile
        if "CONFLICT" in note and "userns" in note:
            assert rule.k8s == Expect(0, any=True)
    assert checked >= 35


def test_k8s_node_profile_accepts_what_nodes_need(rows: list[dict]) -> None:
    by_key = {r.key: r for r in SYSCTL_RULES}
    node = HostProfile.K8S_NODE
    forward = by_key["net.ipv4.ip_forward"].expect(node)
    rp_filter = by_key["net.ipv4.conf.all.rp_filter"].expect(node)
    userns = by_key["user.max_user_namespaces"].expect(node)
    assert forward is not None and forward.accepts(1) and not forward.accepts(0)
    assert rp_filter is not None and all(rp_filter.accepts(v) for v in (0, 1, 2))
    assert userns is not None and userns.accepts(63000)
    kubelet_rows = [row for row in rows if "setupKernelTunables" in row["sources"]]
    assert len(kubelet_rows) == 6
    for row in kubelet_rows:
        rule = by_key[row["key"]]
        assert rule.kubelet and rule.generic is None
        assert rule.k8s is not None and rule.k8s.values == {int(row["recommended"])}


def test_lynis_aliases_follow_the_baseline_sources(rows: list[dict]) -> None:
    for rule, row in zip(SYSCTL_RULES, rows, strict=True):
        assert rule.lynis == ("lynis" in row["sources"].lower() and "KRNL-6000" in row["sources"])


def test_absent_reasons_for_keys_the_baseline_says_may_be_compiled_out(rows: list[dict]) -> None:
    for rule, row in zip(SYSCTL_RULES, rows, strict=True):
        text = f"{row['sources']} {row['container_node_note']}"
        if "unset)" in text or "compiled out" in text or "missing key" in text:
            assert rule.absent, f"{rule.key}: the baseline says the key may be absent"
