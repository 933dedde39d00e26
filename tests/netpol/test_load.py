"""Bad input: invalid policies are findings with file and line, never a crash; hostile and
huge input stays bounded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from skanse.netpol.engine import analyse
from skanse.netpol.load import build_model, load_model
from skanse.sources.manifests import ReadLimits, read_bytes
from tests.netpol.helpers import deployment, model_from, namespace, policy

BAD_POLICIES: list[tuple[dict[str, Any], str, str]] = [
    (
        {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.300/8"}}]}]},
        "invalid CIDR",
        "/spec/ingress/0/from/0/ipBlock/cidr",
    ),
    (
        {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0"}}]}]},
        "invalid CIDR",
        "/spec/ingress/0/from/0/ipBlock/cidr",
    ),
    (
        {
            "podSelector": {},
            "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/8"]}}]}],
        },
        "strict subset",
        "/spec/egress/0/to/0/ipBlock/except/0",
    ),
    (
        {"podSelector": {}, "ingress": [{"ports": [{"port": 70000}]}]},
        "out of range",
        "/spec/ingress/0/ports/0/port",
    ),
    (
        {"podSelector": {}, "ingress": [{"ports": [{"port": 0}]}]},
        "out of range",
        "/spec/ingress/0/ports/0/port",
    ),
    (
        {"podSelector": {}, "ingress": [{"ports": [{"port": 80, "endPort": 79}]}]},
        "endPort",
        "/spec/ingress/0/ports/0/endPort",
    ),
    (
        {"podSelector": {}, "ingress": [{"ports": [{"port": "http", "endPort": 90}]}]},
        "numeric port",
        "/spec/ingress/0/ports/0/endPort",
    ),
    (
        {"podSelector": {}, "ingress": [{"ports": [{"protocol": "ICMP"}]}]},
        "unknown protocol",
        "/spec/ingress/0/ports/0/protocol",
    ),
    (
        {"podSelector": {}, "ingress": [{"ports": [{"protocol": "tcp"}]}]},
        "unknown protocol",
        "/spec/ingress/0/ports/0/protocol",
    ),
    (
        {"podSelector": {}, "ingress": [{"ports": [{"port": "Not_A_Name"}]}]},
        "port name",
        "/spec/ingress/0/ports/0/port",
    ),
    (
        {
            "podSelector": {
                "matchExpressions": [{"key": "app", "operator": "Equals", "values": ["a"]}]
            }
        },
        "invalid operator",
        "/spec/podSelector/matchExpressions/0/operator",
    ),
    (
        {"podSelector": {"matchExpressions": [{"key": "app", "operator": "In"}]}},
        "at least one value",
        "/spec/podSelector/matchExpressions/0/values",
    ),
    (
        {
            "podSelector": {
                "matchExpressions": [{"key": "app", "operator": "Exists", "values": ["a"]}]
            }
        },
        "takes no values",
        "/spec/podSelector/matchExpressions/0/values",
    ),
    (
        {"podSelector": {"matchLabels": {"app": 5}}},
        "must be a string",
        "/spec/podSelector/matchLabels/app",
    ),
    (
        {"podSelector": {}, "ingress": [{"from": [{}]}]},
        "must specify a peer",
        "/spec/ingress/0/from/0",
    ),
    (
        {
            "podSelector": {},
            "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}],
        },
        "may not be combined",
        "/spec/ingress/0/from/0",
    ),
    ({"podSelector": {}, "policyTypes": ["Ingres"]}, "invalid policyType", "/spec/policyTypes/0"),
    ({"podSelector": {}, "ingress": "everything"}, "must be a list", "/spec/ingress"),
    # Go's `$` never matches before a final newline: the API server refuses these names
    (
        {
            "podSelector": {
                "matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["x\n"]}]
            }
        },
        "label value",
        "/spec/podSelector/matchExpressions/0/values/0",
    ),
    (
        {"podSelector": {"matchLabels": {"app\n": "x"}}},
        "label key",
        "/spec/podSelector/matchLabels/app\n",
    ),
    (
        {"podSelector": {"matchLabels": {"example.com\n/app": "x"}}},
        "invalid prefix",
        "/spec/podSelector/matchLabels/example.com\n~1app",
    ),
    (
        {"podSelector": {}, "ingress": [{"ports": [{"port": "http\n"}]}]},
        "port name",
        "/spec/ingress/0/ports/0/port",
    ),
]


@pytest.mark.parametrize(
    ("spec", "message", "pointer"),
    BAD_POLICIES,
    ids=[b[1] + str(i) for i, b in enumerate(BAD_POLICIES)],
)
def test_invalid_policy_is_a_problem_with_its_line_and_is_left_out(
    spec: dict[str, Any], message: str, pointer: str
) -> None:
    web = deployment("shop", "web", {"app": "web"})
    model = model_from([web, policy("shop", "bad", spec)], name="bad.yaml")
    assert model.policies == ()  # the API server would refuse it: it is not in force
    assert len(model.problems) >= 1
    problem = model.problems[0]
    assert message in problem.message
    assert problem.location.pointer == pointer
    assert problem.location.file == "bad.yaml"
    # the JSON text puts every key on its own line; the reported line holds that key
    text_line = model_from([web, policy("shop", "bad", spec)]).problems[0].location.line
    assert text_line > 1
    analyse(model).connections()  # analysis still runs on what is valid


def test_problem_lines_point_at_the_offending_key(tmp_path: Path) -> None:
    text = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: db
  namespace: shop
spec:
  podSelector: {}
  ingress:
  - from:
    - ipBlock:
        cidr: 300.1.2.0/24
    ports:
    - port: 99999
"""
    path = tmp_path / "np.yaml"
    path.write_text(text)
    model = load_model([str(path)])
    lines = sorted((p.location.line, p.message.split(" ")[0]) for p in model.problems)
    assert [line for line, _ in lines] == [11, 13]
    assert all(p.location.file == str(path) for p in model.problems)


def test_duplicate_policy_names_are_reported_and_the_last_one_is_analysed() -> None:
    first = policy("shop", "same", {"podSelector": {}, "policyTypes": ["Ingress"]})
    second = policy("shop", "same", {"podSelector": {}, "ingress": [{}]})
    model = model_from([first, second])
    assert len(model.policies) == 1 and model.policies[0].ingress[0].peers is None
    assert [p.message.split(" ")[0] for p in model.problems] == ["duplicate"]


def test_invalid_duplicate_keeps_the_valid_first_one() -> None:
    first = policy("shop", "same", {"podSelector": {}, "policyTypes": ["Ingress"]})
    second = policy("shop", "same", {"podSelector": {}, "ingress": [{"ports": [{"port": -1}]}]})
    model = model_from([first, second])
    assert len(model.policies) == 1 and model.policies[0].ingress == ()


def test_policy_defaults() -> None:
    model = model_from(
        [
            policy("x", "a", {"podSelector": {}}),
            policy("x", "b", {"podSelector": {}, "egress": [{}]}),
            policy("x", "c", {"podSelector": {}, "policyTypes": ["Egress"]}),
            policy("x", "d", {"podSelector": {}, "policyTypes": []}),
        ]
    )
    types = {p.name: sorted(t.value for t in p.types) for p in model.policies}
    assert types == {
        "a": ["Ingress"],
        "b": ["Egress", "Ingress"],
        "c": ["Egress"],
        "d": ["Ingress"],
    }


def test_invalid_name_is_reported_but_the_rules_still_count() -> None:
    model = model_from([policy("x", "Bad_Name", {"podSelector": {}})])
    assert len(model.policies) == 1
    assert "DNS subdomain" in model.problems[0].message


def test_name_or_namespace_with_a_final_newline_is_reported() -> None:
    model = model_from([policy("shop\n", "db\n", {"podSelector": {}})])
    messages = sorted(p.message.split(" ")[0] for p in model.problems)
    assert messages == ["name", "namespace"]


def test_a_namespace_cannot_claim_another_namespaces_metadata_name_label() -> None:
    # The API server sets kubernetes.io/metadata.name to the namespace's own name, whatever
    # the manifest says, so `evil` is not selected by a selector for `kube-system`.
    model = model_from([namespace("evil", {"kubernetes.io/metadata.name": "kube-system"})])
    assert model.namespaces["evil"].labels["kubernetes.io/metadata.name"] == "evil"


def test_wrong_api_version_is_reported() -> None:
    doc = policy("x", "old", {"podSelector": {}})
    doc["apiVersion"] = "extensions/v1beta1"
    model = model_from([doc])
    assert model.policies == () and "not served" in model.problems[0].message


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x01binary",
        b"a: [unclosed",
        b"a: &a [*a, *a]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n"
        + b"c: ["
        + b"*b, " * 1000
        + b"*b]\n",
        b"[" * 5000 + b"]" * 5000,
        b"kind: NetworkPolicy\napiVersion: networking.k8s.io/v1\nmetadata: 5\nspec: [1, 2]\n",
        b"kind: NetworkPolicy\napiVersion: networking.k8s.io/v1\nspec:\n  podSelector: 7\n"
        b"  ingress: [5, null, {from: 3, ports: {a: b}}]\n",
        b"kind: Pod\napiVersion: v1\nmetadata: {name: p, labels: [1]}\nspec: {containers: 5}\n",
        b"kind: PodList\napiVersion: v1\nitems: [3, {metadata: {name: q}, spec: {}}]\n",
    ],
)
def test_malformed_and_hostile_input_never_crashes(data: bytes) -> None:
    mf = read_bytes("x.yaml", data, ReadLimits())
    model = build_model(mf.objects)
    analyse(model).connections()


def test_large_input_is_bounded() -> None:
    # 600 workloads with distinct labels: every one is its own class
    docs: list[dict[str, Any]] = []
    for i in range(600):
        docs.append(deployment("big", f"w{i}", {"app": f"w{i}"}))
    for i in range(0, 600, 10):
        docs.append(
            policy(
                "big",
                f"p{i}",
                {
                    "podSelector": {"matchLabels": {"app": f"w{i}"}},
                    "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": f"w{i + 1}"}}}]}],
                },
            )
        )
    model = model_from(docs)
    connections = analyse(model).connections()
    # 60 isolated workloads accept 1 source each; 540 accept all 599 others
    pairs = [c for c in connections if c.src.workload and c.dst.workload]
    assert len(pairs) == 60 + 540 * 599
