"""Evaluation, cost bounds, located errors, actions and params, on real policy files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from skanse.admission.handler import Webhook
from skanse.admission.vap import PolicyEnforcer
from skanse.errors import PolicyLoadError
from skanse.policy.cost import shape_of
from skanse.policy.engine import Attributes, evaluate
from skanse.policy.load import load_policies, roots_of
from skanse.policy.sizing import Bound, cost_of, parse
from tests.admission.conftest import answer, hardened_pod, policy, review

RULES = """\
    resourceRules:
      - apiGroups: [""]
        apiVersions: ["v1"]
        operations: ["CREATE", "UPDATE"]
        resources: ["pods", "configmaps"]
"""


def write_policy(
    tmp_path: Path, validations: str, *, extra: str = "", binding: str = "", name: str = "p"
) -> Path:
    text = f"""\
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: {name}
spec:
{extra}  matchConstraints:
{RULES}  validations:
{validations}"""
    if binding:
        text += f"""---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: {name}-binding
spec:
  policyName: {name}
{binding}"""
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def pod(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"containers": [{"name": "web", "image": "nginx"}], **spec},
    }


def test_a_compile_error_names_file_line_column_and_position_in_the_expression(
    tmp_path: Path,
) -> None:
    path = write_policy(
        tmp_path, '    - expression: "object.spec.containers.all(c, c.image.startsWith(1))"\n'
    )
    with pytest.raises(PolicyLoadError) as caught:
        load_policies([path])
    text = caught.value.diagnostics()
    assert f"{path}:13:7:" in text
    assert "spec.validations[0].expression (expression 1:49)" in text
    assert "found no matching overload for 'startsWith'" in text


def test_an_expression_whose_bound_is_over_the_limit_is_refused_at_load(tmp_path: Path) -> None:
    body = " && ".join(f"c.name != 'n{i}'" for i in range(40))
    containers = "object.spec.containers"
    expr = f"{containers}.all(a, {containers}.all(b, {containers}.all(c, {body})))"
    path = write_policy(tmp_path, f'    - expression: "{expr}"\n')
    with pytest.raises(
        PolicyLoadError, match=r"p\.yaml:13:7:.*estimated cost .* exceeds the per-expression limit"
    ):
        load_policies([path])


def test_an_expression_too_costly_for_this_input_is_stopped_with_a_located_error(
    tmp_path: Path,
) -> None:
    path = write_policy(
        tmp_path, "    - expression: \"object.data.all(k, v, v.matches('^a+$'))\"\n"
    )
    policies = load_policies([path])
    small = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "data": {"a": "aa"},
    }
    assert evaluate(policies, Attributes.for_object(small)).decisions == []
    huge = {**small, "data": {f"k{i}": "a" * 20_000 for i in range(1_000)}}
    [decision] = evaluate(policies, Attributes.for_object(huge)).decisions
    assert decision.error
    assert (
        "estimated cost" in decision.message
        and "spec.validations[0].expression" in decision.message
    )
    assert decision.where is not None and decision.where.line == 13


def test_the_runtime_stops_a_comprehension_past_its_iteration_budget(tmp_path: Path) -> None:
    path = write_policy(
        tmp_path, '    - expression: "object.data.all(a, v, object.data.all(b, w, true))"\n'
    )
    policies = load_policies([path])
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    config["data"] = {f"k{i}": "v" for i in range(200)}  # 40,000 iterations
    [decision] = evaluate(policies, Attributes.for_object(config)).decisions
    assert decision.error and "budget" in decision.message.lower()


MOUNTS_DECLARED = """\
    - expression: >-
        object.spec.containers.all(c,
          c.?volumeMounts.orValue([]).all(m, m.name in variables.names))
      message: every volumeMount names a declared volume
"""
DECLARED_NAMES = """\
  variables:
    - name: names
      expression: "object.spec.?volumes.orValue([]).map(v, v.name)"
"""


def mounts_pod(declared: int, mounted: int) -> dict[str, Any]:
    volumes = [{"name": f"v{i:05d}", "emptyDir": {}} for i in range(declared)]
    mounts = [{"name": f"v{i:05d}", "mountPath": f"/m{i}"} for i in range(mounted)]
    return pod(volumes=volumes, containers=[{"name": "app", "image": "a", "volumeMounts": mounts}])


def test_a_membership_test_in_nested_comprehensions_is_charged_by_the_list_it_walks(
    tmp_path: Path,
) -> None:
    # `m.name in variables.names` walks a list for every mount: quadratic in the volumes
    # (5 s at 8,000 when each test was charged one unit). Charged by the list's length,
    # it is cancelled before it runs; the variable's map (the runtime copies its result on
    # every iteration) too.
    path = write_policy(tmp_path, MOUNTS_DECLARED, extra=DECLARED_NAMES)
    policies = load_policies([path])
    [decision] = evaluate(policies, Attributes.for_object(mounts_pod(1_000, 1_000))).decisions
    assert decision.error
    assert "estimated cost" in decision.message and "per-expression limit" in decision.message
    assert decision.where is not None and decision.where.line == 16
    # On small pods the policy runs and judges as the API server would.
    assert evaluate(policies, Attributes.for_object(mounts_pod(5, 5))).decisions == []
    [denied] = evaluate(policies, Attributes.for_object(mounts_pod(4, 5))).decisions
    assert not denied.error and denied.message == "every volumeMount names a declared volume"


def test_the_quadratic_membership_test_is_cancelled_from_1_000_volumes_and_mounts(
    tmp_path: Path,
) -> None:
    # The reviewer's case, through the webhook: 1,000 mounts each looked up in 1,000 names
    # is priced by those two lists (the container's mounts and the variable built from the
    # volumes), past the per-expression limit; 300 of each run and are judged.
    path = write_policy(tmp_path, MOUNTS_DECLARED, extra=DECLARED_NAMES)
    policies = load_policies([path])
    [cancelled] = evaluate(policies, Attributes.for_object(mounts_pod(1_000, 1_000))).decisions
    assert cancelled.error and "operation cancelled: estimated cost" in cancelled.message
    assert "spec.validations[0].expression exceeds the per-expression limit" in cancelled.message
    assert cancelled.where is not None and (cancelled.where.file, cancelled.where.line) == (
        str(path),
        16,
    )
    assert evaluate(policies, Attributes.for_object(mounts_pod(300, 300))).decisions == []


SHIPPED = Path(__file__).resolve().parents[2] / "policies"


def busy_pod(image: str, **extra: Any) -> dict[str, Any]:
    """A large but ordinary pod: 300 env vars, 100 volumes and mounts, 100 ports."""
    env = [{"name": f"VAR_{i}", "value": f"value-{i}"} for i in range(300)]
    ports = [{"containerPort": 8000 + i, "name": f"p{i}"} for i in range(100)]
    mounts = [{"name": f"v{i}", "mountPath": f"/data/{i}"} for i in range(100)]
    subject = pod(
        containers=[
            {"name": "app", "image": image, "env": env, "ports": ports, "volumeMounts": mounts}
        ],
        volumes=[{"name": f"v{i}", "emptyDir": {}} for i in range(100)],
        **extra,
    )
    subject["metadata"]["labels"] = {"data-classification": "personal"}
    return subject


def test_the_shipped_policies_judge_a_large_ordinary_pod_instead_of_cancelling() -> None:
    # Priced at the longest list anywhere, v in variables.regions three comprehensions deep
    # counted 300^3 walks of a 300-item list: every pod with 100 env vars was cancelled, so
    # denied. Each operand is priced by its own size: the regions (4), the affinity terms.
    policies = load_policies([SHIPPED])
    region = {"topology.kubernetes.io/region": "eu-north-1"}
    allowed = busy_pod("registry.example.com/app:1", nodeSelector=region)
    assert evaluate(policies, Attributes.for_object(allowed)).decisions == []
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {
                                "key": "topology.kubernetes.io/region",
                                "operator": "In",
                                "values": ["eu-north-1", "eu-central-1"],
                            }
                        ]
                    }
                ]
            }
        }
    }
    pinned = busy_pod("ghcr.io/example-org/app:1", affinity=affinity)
    assert evaluate(policies, Attributes.for_object(pinned)).decisions == []
    denied = busy_pod("docker.io/library/nginx")
    decisions = evaluate(policies, Attributes.for_object(denied)).decisions
    assert sorted(d.policy for d in decisions) == ["data-residency", "registry-allow-list"]
    assert not any(d.error for d in decisions)
    assert all(d.message.startswith(("workloads with personal", "images must")) for d in decisions)
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": "shop",
            "labels": {"owner": "team", "data-classification": "internal"}
            | {f"example.com/l{i}": f"v{i}" for i in range(300)},
            "annotations": {f"example.com/a{i}": "x" * 100 for i in range(300)},
        },
    }
    assert evaluate(policies, Attributes.for_object(namespace)).decisions == []
    namespace["metadata"]["labels"]["data-classification"] = "secret"  # type: ignore[index]
    [wrong] = evaluate(policies, Attributes.for_object(namespace)).decisions
    assert not wrong.error and "data-classification" in wrong.message


@pytest.mark.parametrize(
    "expression",
    [
        "object.spec.containers.all(c, c.name in ['app', 'sidecar'])",
        "'app' in object.metadata.labels && object.metadata.labels.app == 'web'",
        "object.spec.containers.all(c, c.image + ':' == 'a:' && c.name != object.kind)",
        "object.spec.containers.map(c, c.name).join(',') == 'app'",
    ],
)
def test_cheap_expressions_with_linear_operations_load_and_run(
    tmp_path: Path, expression: str
) -> None:
    path = write_policy(tmp_path, f'    - expression: "{expression}"\n')
    subject = pod(containers=[{"name": "app", "image": "a"}])
    subject["metadata"]["labels"] = {"app": "web"}
    assert evaluate(load_policies([path]), Attributes.for_object(subject)).decisions == []


def test_the_bound_of_linear_operations_grows_with_their_operands() -> None:
    member = shape_of("object.metadata.name in params.names")
    assert member.bound(10_000, 10) - member.bound(10, 10) >= 10_000 - 10
    # Inside a comprehension, once per iteration.
    nested = shape_of("object.spec.volumes.all(v, v.name in params.names)")
    assert nested.bound(1_000, 10) >= 1_000 * 1_000
    # Against a literal list, only the literal's elements.
    assert shape_of("object.metadata.name in ['a', 'b']").bound(10_000, 10) < 100
    # join reads every string of the list, not only the longest.
    assert shape_of("params.names.join(',')").bound(1_000, 1_000) >= 1_000 * 100
    compared = shape_of("object.spec.volumes == oldObject.spec.volumes")
    assert compared.bound(100_000, 10) >= 100_000 // 10
    joined = shape_of("object.metadata.name + oldObject.metadata.name")
    assert joined.bound(0, 100_000) >= 2 * 100_000 // 10
    # The runtime copies a map's result on every iteration.
    assert shape_of("object.spec.volumes.map(v, v)").bound(1_000, 10) >= 1_000 * 1_000


def test_each_operation_is_priced_by_the_size_of_the_operands_it_touches() -> None:
    def cost(source: str, volumes: int, names: int, env: int = 0) -> int:
        subject = pod(volumes=[{"name": f"v{i}"} for i in range(volumes)])
        subject["spec"]["containers"][0]["env"] = [{"name": "E"}] * env
        roots = roots_of({"object": subject, "params": {"names": ["v"] * names}})
        tree = parse(source)
        assert tree is not None
        found = cost_of(tree, roots, Bound(max(volumes, names, env), 10))
        assert found is not None
        return found

    member = "object.spec.volumes.all(v, v.name in params.names)"
    # Each of the 10 volumes walks the 1,000 names; an unrelated list changes nothing.
    assert 10 * 1_000 <= cost(member, 10, 1_000) < 11 * 1_000
    assert cost(member, 10, 1_000, env=50_000) == cost(member, 10, 1_000)
    assert cost(member, 20, 1_000) >= 2 * cost(member, 10, 1_000) - 100
    # A computed list is bounded from its inputs: a concatenation by both operands...
    assert cost("'x' in object.spec.volumes + object.spec.volumes", 500, 0) >= 1_000
    # ...a map by the list it ranges over, which it also copies on every iteration.
    mapped = "object.spec.volumes.map(v, v.name, v.name in params.names)"
    assert cost(mapped, 100, 100) >= 100 * 100 + 100 * 100
    # Nested comprehensions: the inner range's real length, for each outer element.
    nested = "object.spec.volumes.all(a, params.names.all(b, a.name != b))"
    assert cost(nested, 30, 40) >= 30 * 40
    # sortBy copies its result on every iteration too (measured quadratic); flatten writes
    # every element of the inner lists.
    assert cost("object.spec.volumes.sortBy(v, v.name).size() > 0", 1_000, 0) >= 1_000**2
    flat = "object.spec.volumes.all(v, [object.spec.volumes].flatten().size() > 0)"
    assert cost(flat, 100, 0) >= 100 * 100
    # Past the runtime's 10,000 iterations nothing more runs.
    assert cost(nested, 1_000, 1_000) < 10_000 * 10
    # Text beyond the parser (message construction) has no tree: the coarse bound applies.
    assert parse("google.protobuf.Value{string_value: 'a'} == object.spec") is None


def test_a_call_that_builds_a_huge_string_is_charged_for_writing_it(tmp_path: Path) -> None:
    # 70,000 characters, each replaced by the whole string: 4.9 billion characters to write
    # (the scan of the inputs alone is 14,000 units; the runtime ran out of memory).
    path = write_policy(
        tmp_path, "    - expression: \"object.data.a.replace('a', object.data.a).size() > 0\"\n"
    )
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    config["data"] = {"a": "a" * 70_000}
    [decision] = evaluate(load_policies([path]), Attributes.for_object(config)).decisions
    assert decision.error and "estimated cost" in decision.message
    config["data"] = {"a": "a" * 200}
    assert evaluate(load_policies([path]), Attributes.for_object(config)).decisions == []


def test_a_message_expression_longer_than_5_kib_falls_back_to_the_message(tmp_path: Path) -> None:
    long_text = "x" * (5 * 1024 + 1)
    path = write_policy(
        tmp_path,
        '    - expression: "false"\n      message: short\n'
        f"      messageExpression: \"'{long_text}'\"\n",
    )
    [decision] = evaluate(load_policies([path]), Attributes.for_object(pod())).decisions
    assert decision.message == "short"


def test_params_not_found_deny_the_request(tmp_path: Path) -> None:
    path = write_policy(
        tmp_path,
        '    - expression: "object.metadata.name != params.data.forbidden"\n',
        extra="  paramKind: {apiVersion: v1, kind: ConfigMap}\n",
        binding="  validationActions: [Deny]\n"
        "  paramRef: {name: missing, parameterNotFoundAction: Deny}\n",
    )
    [decision] = evaluate(load_policies([path]), Attributes.for_object(pod())).decisions
    assert (
        "no params found for policy binding with `Deny` parameterNotFoundAction" in decision.message
    )


def test_params_selected_by_label_each_judge_the_object(tmp_path: Path) -> None:
    write_policy(
        tmp_path,
        '    - expression: "object.metadata.name != params.data.forbidden"\n'
        "      messageExpression: \"'name ' + params.data.forbidden + ' is taken'\"\n",
        extra="  paramKind: {apiVersion: v1, kind: ConfigMap}\n",
        binding="  validationActions: [Deny]\n"
        "  paramRef: {selector: {matchLabels: {kind: names}}, namespace: cfg}\n",
    )
    params = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": n, "namespace": "cfg", "labels": {"kind": "names"}},
            "data": {"forbidden": v},
        }
        for n, v in (("a", "web"), ("b", "api"))
    ]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump_all(params), encoding="utf-8")
    result = evaluate(load_policies([tmp_path]), Attributes.for_object(pod()))
    assert [d.message for d in result.decisions] == ["name web is taken"]


def test_the_webhook_warns_and_audits_as_the_binding_says(tmp_path: Path) -> None:
    path = write_policy(
        tmp_path,
        "    - expression: \"object.metadata.?labels[?'team'].hasValue()\"\n"
        "      message: pods must name their team\n",
        binding="  validationActions: [Warn, Audit]\n",
    )
    webhook = Webhook(policy(), policies=PolicyEnforcer(load_policies([path])))
    request = {
        "uid": "u-2",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": "shop",
        "operation": "CREATE",
        "userInfo": {"username": "alice"},
        "object": hardened_pod(),
    }
    response = answer(webhook.validate(review(request)).body)
    assert response["allowed"] is True
    assert (
        "Validation failed for ValidatingAdmissionPolicy 'p' with binding 'p-binding': "
        "pods must name their team"
    ) in response["warnings"]
    [failure] = json.loads(response["auditAnnotations"]["validation_failure"])
    assert failure == {
        "message": "pods must name their team",
        "policy": "p",
        "binding": "p-binding",
        "expressionIndex": 0,
        "validationActions": ["Warn", "Audit"],
    }


def test_the_webhook_denies_with_the_validation_reason_and_its_code(tmp_path: Path) -> None:
    path = write_policy(
        tmp_path,
        "    - expression: \"object.metadata.name != 'forbidden'\"\n      reason: Forbidden\n",
        binding="  validationActions: [Deny]\n",
    )
    webhook = Webhook(policy(), policies=PolicyEnforcer(load_policies([path])))
    request = {
        "uid": "u-3",
        "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
        "resource": {"group": "", "version": "v1", "resource": "configmaps"},
        "namespace": "shop",
        "operation": "CREATE",
        "userInfo": {"username": "alice"},
        "object": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "forbidden"}},
    }
    status = answer(webhook.validate(review(request)).body)["status"]
    assert status["code"] == 403 and status["reason"] == "Forbidden"
    assert status["message"] == (
        "ValidatingAdmissionPolicy 'p' with binding 'p-binding' denied request: "
        "failed expression: object.metadata.name != 'forbidden'"
    )


def test_scan_honours_an_annotation_suppression_naming_the_policy(cli: Any, tmp_path: Path) -> None:
    path = write_policy(tmp_path, "    - expression: \"object.metadata.name != 'web'\"\n")
    suppressed = pod()
    suppressed["metadata"]["annotations"] = {"ignore.skanse.io/p": "the web pod predates the rule"}
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "pods.yaml").write_text(yaml.safe_dump_all([suppressed]), encoding="utf-8")
    result = cli("scan", "--no-config", "--policy", str(path), "-f", "json", str(manifests))
    [finding] = [f for f in json.loads(result.stdout)["findings"] if f["check_id"] == "VAP:p/0"]
    assert finding["suppression"]["reason"] == "the web pod predates the rule"
    assert finding["location"]["file"].endswith("pods.yaml") and finding["location"]["line"] == 1


@pytest.mark.parametrize(
    ("expression", "refusal"),
    [
        ("(" * 2000 + "true" + ")" * 2000, "recursion limit"),
        ("'" + "a" * 120_000 + "' != ''", "codepoint limit"),
    ],
    ids=["deep nesting", "huge expression"],
)
def test_hostile_expressions_are_refused_at_load_with_their_place(
    tmp_path: Path, expression: str, refusal: str
) -> None:
    path = write_policy(tmp_path, f'    - expression: "{expression}"\n')
    with pytest.raises(PolicyLoadError) as caught:
        load_policies([path])
    assert f"{path}:13:7" in caught.value.diagnostics()
    assert refusal in caught.value.diagnostics()


def test_a_deeply_nested_object_is_measured_without_recursion(tmp_path: Path) -> None:
    path = write_policy(tmp_path, '    - expression: "has(object.data)"\n')
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(50_000):
        node["n"] = {}
        node = node["n"]
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": deep}
    [decision] = evaluate(load_policies([path]), Attributes.for_object(config)).decisions
    assert decision.error and "nests 50,002 levels deep" in decision.message


def test_scan_reads_namespace_labels_from_the_scanned_namespaces(cli: Any, tmp_path: Path) -> None:
    path = write_policy(
        tmp_path,
        "    - expression: \"object.metadata.name != 'web'\"\n",
        binding="  validationActions: [Deny]\n"
        "  matchResources:\n    namespaceSelector: {matchLabels: {tier: strict}}\n",
    )
    namespaces = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n, "labels": labels}}
        for n, labels in (("shop", {"tier": "strict"}), ("lab", {}))
    ]
    pods = [pod(), {**pod(), "metadata": {"name": "web", "namespace": "lab"}}]
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "all.yaml").write_text(yaml.safe_dump_all(namespaces + pods), encoding="utf-8")
    result = cli("scan", "--no-config", "--policy", str(path), "-f", "json", str(manifests))
    found = [f for f in json.loads(result.stdout)["findings"] if f["check_id"] == "VAP:p/0"]
    assert [f["resource"]["namespace"] for f in found] == ["shop"]


def test_a_configmap_volume_is_read_once(tmp_path: Path) -> None:
    """The layout the kubelet gives a mounted ConfigMap: visible symlinks into ..data."""
    volume = tmp_path / "vap"
    stamped = volume / "..2026_12_07_06_00_00.000000001"
    stamped.mkdir(parents=True)
    write_policy(stamped, '    - expression: "true"\n')
    (volume / "..data").symlink_to(stamped.name)
    (volume / "p.yaml").symlink_to("..data/p.yaml")
    assert [p.name for p in load_policies([volume]).policies] == ["p"]
