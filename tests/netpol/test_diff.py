"""`diff` against np-guard netpol-analyzer's diff outputs for NetworkPolicy-only cases."""

from __future__ import annotations

from typing import Any

import pytest

from skanse.netpol.addresses import merge_segments, parse_range
from skanse.netpol.diff import ChangeKind, diff_connections
from skanse.netpol.engine import analyse
from skanse.netpol.load import load_model
from skanse.netpol.ports import parse_conn
from tests.conftest import CORPORA
from tests.netpol.helpers import deployment, model_from, policy
from tests.netpol.test_conformance import (
    as_npguard_sees_it,
    host_network_workloads,
    without_host_network,
)

NPGUARD = CORPORA / "netpol" / "np-guard-netpol-analyzer"


def _np_only_dirs() -> set[str]:
    index = NPGUARD / "INDEX.tsv"
    if not index.exists():
        return set()
    rows = [line.split("\t") for line in index.read_text().splitlines()[1:]]
    return {r[0] for r in rows if r[1] == "1"}


def _cases() -> list[tuple[str, str, str]]:
    """(file, old dir, new dir) for diff outputs between two NetworkPolicy-only dirs."""
    dirs = _np_only_dirs()
    out = []
    folder = NPGUARD / "test_outputs" / "diff"
    for path in sorted(folder.glob("diff_between_*.txt")) if folder.exists() else []:
        body = path.stem.removeprefix("diff_between_")
        for i in range(len(body)):
            if body.startswith("_and_", i) and body[:i] in dirs and body[i + 5 :] in dirs:
                out.append((path.name, body[i + 5 :], body[:i]))
    return out


def _normalise(lines: list[str]) -> tuple[dict[Any, Any], dict[Any, Any]]:
    pairs: dict[Any, Any] = {}
    external: dict[Any, list[Any]] = {}
    for line in lines:
        if not line.startswith("diff-type:"):
            continue
        fields = dict(part.split(": ", 1) for part in line.split(", ") if ": " in part)
        # conns contain ", " only between protocols, never: they use "," alone
        src, dst = fields["source"], fields["destination"]
        value = (fields["diff-type"], parse_conn(fields["ref1"]), parse_conn(fields["ref2"]))
        if src.endswith("[External]") or dst.endswith("[External]"):
            ext, key = (src, ("in", dst)) if src.endswith("[External]") else (dst, ("out", src))
            r = parse_range(ext.removesuffix("[External]"))
            if r.version == 4:
                external.setdefault(key, []).append((r, value))
        else:
            pairs[(src, dst)] = value
    return pairs, {k: merge_segments(v) for k, v in external.items()}


@pytest.mark.corpus
@pytest.mark.parametrize(("name", "old", "new"), _cases(), ids=lambda v: str(v)[:60])
def test_npguard_diff(name: str, old: str, new: str) -> None:
    expected = (NPGUARD / "test_outputs" / "diff" / name).read_text().splitlines()
    before = load_model([str(NPGUARD / "tests" / old)])
    after = load_model([str(NPGUARD / "tests" / new)])
    changes = diff_connections(
        analyse(before).connections(),
        analyse(after).connections(),
        [w.ident for w in before.workloads],
        [w.ident for w in after.workloads],
    )
    # hostNetwork pods are open to everything in skanse, not in netpol-analyzer (see
    # test_conformance.without_host_network): the whole diff is compared on the models as
    # netpol-analyzer sees them, and skanse's own without those pods' changes
    seen = diff_connections(
        analyse(as_npguard_sees_it(before)).connections(),
        analyse(as_npguard_sees_it(after)).connections(),
        [w.ident for w in before.workloads],
        [w.ident for w in after.workloads],
    )
    assert _normalise([str(c) for c in seen]) == _normalise(expected)
    host = host_network_workloads(before) | host_network_workloads(after)
    got = without_host_network([str(c) for c in changes], host)
    assert _normalise(got) == _normalise(without_host_network(expected, host))


@pytest.mark.corpus
def test_there_are_npguard_diff_cases() -> None:
    if not NPGUARD.exists():
        pytest.skip("corpus absent")
    assert len(_cases()) >= 15


def test_diff_reports_added_removed_and_changed() -> None:
    web = deployment("shop", "web", {"app": "web"})
    db = deployment("shop", "db", {"app": "db"})
    deny = policy("shop", "deny", {"podSelector": {}, "policyTypes": ["Ingress"]})
    allow = policy(
        "shop",
        "db",
        {
            "podSelector": {"matchLabels": {"app": "db"}},
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                    "ports": [{"port": 5432}],
                }
            ],
        },
    )
    old = analyse(model_from([web, db, deny])).connections()
    new = analyse(model_from([web, db, deny, allow])).connections()
    changes = diff_connections(old, new)
    assert [(c.kind, c.src.label, c.dst.label, str(c.new)) for c in changes] == [
        (ChangeKind.ADDED, "shop/web[Deployment]", "shop/db[Deployment]", "TCP 5432")
    ]
    assert diff_connections(new, new) == []
    back = diff_connections(new, old)
    assert [c.kind for c in back] == [ChangeKind.REMOVED]


def _block_connections(n: int, port: int) -> list[Any]:
    """One workload reached from n separate /32s (every other address), on `port`."""
    peers = [{"ipBlock": {"cidr": f"10.0.{(2 * i) >> 8}.{(2 * i) & 255}/32"}} for i in range(n)]
    model = model_from(
        [
            deployment("a", "web", {"app": "web"}),
            policy(
                "a",
                "p",
                {"podSelector": {}, "ingress": [{"from": peers, "ports": [{"port": port}]}]},
            ),
        ]
    )
    return analyse(model).connections()


def test_diff_of_many_external_ranges_grows_linearly(monkeypatch: pytest.MonkeyPatch) -> None:
    from skanse.netpol.addresses import IpRange
    from tests._counting import count_reads

    sizes = {}
    for n in (1000, 4000):
        old, new = _block_connections(n, 80), _block_connections(n, 81)
        reads = count_reads(monkeypatch, IpRange, "lo")
        changes = diff_connections(old, new)
        sizes[n] = reads.count
        monkeypatch.undo()
        assert len(changes) == n and all(c.kind is ChangeKind.CHANGED for c in changes)
        assert str(changes[0].old) == "TCP 80" and str(changes[0].new) == "TCP 81"
    # four times the ranges: about four times the work (every cut scanned for every range,
    # the old cost, made it sixteen)
    assert sizes[4000] / sizes[1000] < 6, sizes
