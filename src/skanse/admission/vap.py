"""ValidatingAdmissionPolicies in the webhook, with their bindings' actions.

For clusters older than 1.30, or for namespaces a team wants skanse to govern, the webhook
evaluates the same policies `skanse scan --policy` reads (`skanse.policy`), before its own
checks, on every kind and operation the policies match:

* Deny: the request is denied, in the API server's words
  (`ValidatingAdmissionPolicy 'p' with binding 'b' denied request: <message>`), with the
  validation's reason as the status reason and its HTTP code.
* Warn: a warning (`Validation failed for ValidatingAdmissionPolicy 'p' with binding 'b':
  <message>`) on whatever the rest of the webhook answers.
* Audit: the audit annotation `validation_failure`, a JSON list as the API server writes it.

An expression that fails under failurePolicy Fail is a failure like any other, so enforce is
never weaker than the API server's. Exempt namespaces and users (the admission policy file)
are not governed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from skanse.admission.review import API_VERSION, KIND, Request, fit_annotation, fit_warnings
from skanse.policy.checks import check_id
from skanse.policy.engine import Attributes, Decision, PolicyResult, evaluate, resource_of
from skanse.policy.load import PolicySet

__all__ = ["PolicyEnforcer", "attributes"]

# The status code of each reason (metav1.StatusReason), as the API server answers it.
_CODES = {
    "Unauthorized": 401,
    "Forbidden": 403,
    "Invalid": 422,
    "RequestEntityTooLarge": 413,
}


def attributes(request: Request) -> Attributes:
    return Attributes(
        object=request.object,
        old_object=request.old_object,
        operation=request.operation,
        group=request.group,
        version=request.version,
        kind=request.kind,
        resource=resource_of(request.kind),
        sub_resource=request.sub_resource,
        name=request.name,
        namespace=request.namespace,
        username=request.username,
        groups=request.groups,
        dry_run=request.dry_run,
    )


def _denied(d: Decision) -> str:
    who = f"ValidatingAdmissionPolicy '{d.policy}' with binding '{d.binding}'"
    return f"{who} denied request: {d.message}"


def _warned(d: Decision) -> str:
    who = f"ValidatingAdmissionPolicy '{d.policy}' with binding '{d.binding}'"
    return f"Validation failed for {who}: {d.message}"


def _ids(decisions: list[Decision]) -> tuple[str, ...]:
    return tuple(
        dict.fromkeys(
            check_id(d.policy, d.index) if d.index is not None else f"VAP:{d.policy}"
            for d in decisions
        )
    )


def _audit(result: PolicyResult) -> dict[str, str]:
    audit = dict(result.audit_annotations)
    failures = [
        {
            "message": d.message,
            "policy": d.policy,
            "binding": d.binding,
            "expressionIndex": d.index if d.index is not None else -1,
            "validationActions": list(d.actions),
        }
        for d in result.audits()
    ]
    if failures:
        audit["validation_failure"] = json.dumps(failures, separators=(",", ":"))
    return audit


class PolicyEnforcer:
    """Runs the policies on a request and folds their verdict into the webhook's answer."""

    def __init__(self, policies: PolicySet) -> None:
        self.policies = policies

    def review(self, request: Request, size: int | None = None) -> PolicyResult:
        """`size`: the request body's length, an upper bound on its lists and strings."""
        return evaluate(self.policies, attributes(request), size_hint=size)

    def decide(
        self,
        request: Request,
        rest: Callable[[Request], Any],
        exempt: str | None,
        size: int | None = None,
    ) -> Any:
        """The policies' denial, or `rest(request)`'s answer with their warnings and audit
        annotations added. `Any` is the webhook's Outcome (imported there, not here)."""
        if exempt is not None:
            return rest(request)
        result = self.review(request, size)
        denials = result.denials()
        warnings = [_warned(d) for d in result.warnings()]
        audit = _audit(result)
        if denials:
            return self._deny(request, denials, warnings, audit)
        outcome = rest(request)
        if not warnings and not audit:
            return outcome
        return _with_additions(outcome, warnings, audit, _ids(result.warnings() + result.audits()))

    @staticmethod
    def _deny(
        request: Request, denials: list[Decision], warnings: list[str], audit: dict[str, str]
    ) -> Any:
        from skanse.admission.handler import Decision as Verdict
        from skanse.admission.handler import Outcome

        first = denials[0]
        code = _CODES.get(first.reason, 403)
        message = "; ".join(dict.fromkeys(_denied(d) for d in denials))
        status = {
            "code": code,
            "message": message[:8192],
            "status": "Failure",
            "reason": first.reason if first.reason in _CODES else "Forbidden",
        }
        response: dict[str, Any] = {"uid": request.uid, "allowed": False, "status": status}
        if warnings:
            response["warnings"] = fit_warnings(warnings)
        audit = {"decision": Verdict.DENY, **audit}
        response["auditAnnotations"] = {k: fit_annotation(v) for k, v in audit.items()}
        body = json.dumps(
            {"apiVersion": API_VERSION, "kind": KIND, "response": response},
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode("utf-8")
        ids = _ids(denials)
        return Outcome(
            200,
            body,
            "application/json",
            Verdict.DENY,
            operation=request.operation,
            kind=request.kind,
            uid=request.uid,
            namespace=request.namespace,
            name=request.name,
            mode="enforce",
            dry_run=request.dry_run,
            reason=message[:512],
            failed=ids,
            results=tuple((i, "fail") for i in ids),
        )


def _with_additions(
    outcome: Any, warnings: list[str], audit: dict[str, str], ids: tuple[str, ...]
) -> Any:
    """The webhook's answer with the policies' warnings and audit annotations added."""
    import dataclasses

    try:
        review = json.loads(outcome.body)
        response = review["response"]
    except (ValueError, KeyError, TypeError):
        return outcome  # not a review (a 400 answer): nothing to add to
    response["warnings"] = fit_warnings([*warnings, *response.get("warnings", [])])
    annotations = response.get("auditAnnotations") or {}
    annotations.update({k: fit_annotation(v) for k, v in audit.items()})
    response["auditAnnotations"] = annotations
    body = json.dumps(review, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return dataclasses.replace(
        outcome,
        body=body,
        failed=tuple(dict.fromkeys([*outcome.failed, *ids])),
        results=(*outcome.results, *((i, "fail") for i in ids)),
    )
