"""ValidatingAdmissionPolicy and its binding as the API server reads them (pydantic, the edge).

admissionregistration.k8s.io/v1 (k8s.io/api admissionregistration/v1 types.go). Unknown
fields in a spec are errors, as `kubectl apply --validate=strict` makes them: a misspelt
`validationAction` must not silently bind nothing.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "API_GROUP",
    "BindingSpec",
    "LabelSelector",
    "MatchResources",
    "PolicySpec",
]

API_GROUP = "admissionregistration.k8s.io"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Requirement(_Spec):
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] = Field(default_factory=list)


class LabelSelector(_Spec):
    match_labels: dict[str, str] = Field(default_factory=dict, alias="matchLabels")
    match_expressions: list[Requirement] = Field(default_factory=list, alias="matchExpressions")


class ResourceRule(_Spec):
    api_groups: list[str] = Field(default_factory=list, alias="apiGroups")
    api_versions: list[str] = Field(default_factory=list, alias="apiVersions")
    resources: list[str] = Field(default_factory=list)
    operations: list[str] = Field(default_factory=list)
    scope: Literal["Cluster", "Namespaced", "*"] = "*"
    resource_names: list[str] = Field(default_factory=list, alias="resourceNames")


class MatchResources(_Spec):
    namespace_selector: LabelSelector | None = Field(default=None, alias="namespaceSelector")
    object_selector: LabelSelector | None = Field(default=None, alias="objectSelector")
    resource_rules: list[ResourceRule] = Field(default_factory=list, alias="resourceRules")
    exclude_resource_rules: list[ResourceRule] = Field(
        default_factory=list, alias="excludeResourceRules"
    )
    match_policy: Literal["Exact", "Equivalent"] = Field(default="Equivalent", alias="matchPolicy")


class Validation(_Spec):
    expression: str
    message: str = ""
    message_expression: str = Field(default="", alias="messageExpression")
    reason: str = ""


class Variable(_Spec):
    name: str
    expression: str


class MatchCondition(_Spec):
    name: str
    expression: str


class AuditAnnotation(_Spec):
    key: str
    value_expression: str = Field(alias="valueExpression")


class ParamKind(_Spec):
    api_version: str = Field(alias="apiVersion")
    kind: str


class PolicySpec(_Spec):
    param_kind: ParamKind | None = Field(default=None, alias="paramKind")
    match_constraints: MatchResources | None = Field(default=None, alias="matchConstraints")
    validations: list[Validation] = Field(default_factory=list)
    failure_policy: Literal["Fail", "Ignore"] = Field(default="Fail", alias="failurePolicy")
    audit_annotations: list[AuditAnnotation] = Field(default_factory=list, alias="auditAnnotations")
    match_conditions: list[MatchCondition] = Field(
        default_factory=list, alias="matchConditions", max_length=64
    )
    variables: list[Variable] = Field(default_factory=list)


class ParamRef(_Spec):
    name: str = ""
    namespace: str = ""
    selector: LabelSelector | None = None
    parameter_not_found_action: Literal["Allow", "Deny"] = Field(
        default="Deny", alias="parameterNotFoundAction"
    )


def _deny() -> list[Literal["Deny", "Warn", "Audit"]]:
    return ["Deny"]


class BindingSpec(_Spec):
    policy_name: str = Field(alias="policyName")
    param_ref: ParamRef | None = Field(default=None, alias="paramRef")
    match_resources: MatchResources | None = Field(default=None, alias="matchResources")
    validation_actions: list[Literal["Deny", "Warn", "Audit"]] = Field(
        default_factory=_deny, alias="validationActions", min_length=1
    )
