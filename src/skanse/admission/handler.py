"""The webhook's decisions: request bytes in, response bytes out, no I/O but the verifier's.

`Webhook.validate` and `Webhook.mutate` never raise: every body gets an answer.

* Not an AdmissionReview v1 with a uid: HTTP 400 (there is no uid to answer to).
* A malformed request with a uid: a denial with code 400 naming what is wrong.
* What the webhook does not check (other kinds, DELETE and CONNECT, subresources such as
  status, exec or log): an explicit allow whose reason is in the audit annotations.
* Exempt namespaces (kube-system, its own, configured) and users: allow, annotated.
* Otherwise the policy's checks run. `enforce` denies unsuppressed findings (at or above
  `fail-on`) with code 403 and a message naming the checks; `warn` allows with warnings;
  `audit` allows with audit annotations. An UPDATE that adds no finding the old object did
  not have is allowed with warnings even in enforce mode, so existing workloads can still
  be scaled and relabelled while they are brought into line.
* A check that could not run, or an internal error, denies in enforce mode (the reason says
  so) and warns otherwise: never a silent pass.
* Cost is linear in the object and bounded: an object with more containers than
  `ReviewLimits.containers`, or more findings than `ReviewLimits.findings`, is not listed
  finding by finding but answered at once as "could not check" (a denial in enforce mode);
  the denial message and every annotation have a byte cap. Dry-run, warn and audit requests
  take the same path, so none of them can cost more than an enforce request.

There are no side effects (nothing is written anywhere), so a dryRun request is answered
exactly like the real one.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from skanse.admission.evaluate import (
    Evaluator,
    ObjectVerdict,
    ReviewLimits,
    admission_object,
    new_findings,
)
from skanse.admission.images import DEADLINE as IMAGE_DEADLINE
from skanse.admission.images import ImageVerdict, ImageVerifier, SigningVerifier, verify_images
from skanse.admission.mutate import defaults_patch
from skanse.admission.policy import Mode, Policy
from skanse.admission.review import (
    BadReview,
    MalformedRequest,
    Request,
    parse_review,
    render_response,
)
from skanse.admission.vap import PolicyEnforcer
from skanse.checks.kubernetes.pss import Denial, control_result, controls_for
from skanse.model import Finding
from skanse.sources.kubernetes import (
    POD_TEMPLATE_PATHS,
    K8sObject,
    as_dict,
    forget_derived,
    pod_spec,
)

__all__ = [
    "IGNORED_SUBRESOURCES",
    "IMAGE_SIGNATURE",
    "Decision",
    "Outcome",
    "ReviewLimits",
    "Webhook",
]

# Pod subresources whose requests change nothing the checks look at (Pod Security Admission
# ignores the same ones); `ephemeralcontainers` adds containers and is checked.
IGNORED_SUBRESOURCES = frozenset(
    {"attach", "binding", "eviction", "exec", "log", "portforward", "proxy", "status"}
)
# The rule name image-signature results carry in messages, annotations and metrics.
IMAGE_SIGNATURE = "image-signature"
# Bounds on the denial message (kubectl prints all of it).
_MAX_MESSAGE_CHARS = 8192


class Decision:
    """Values of the `decision` label and the `decision` audit annotation."""

    ALLOW: Final = "allow"  # checked, nothing fails (validate) / no defaults to add (mutate)
    DENY: Final = "deny"
    WARN: Final = "warn"  # allowed with warnings (warn mode, or an UPDATE that is no worse)
    AUDIT: Final = "audit"  # allowed with audit annotations (audit mode)
    PATCH: Final = "patch"  # mutate: defaults added
    EXEMPT: Final = "exempt"
    SKIP: Final = "skip"  # not something the webhook checks
    ERROR: Final = "error"  # could not check: denied in enforce mode, allowed otherwise
    INVALID: Final = "invalid"  # a malformed request or a body that is not a review


@dataclass(frozen=True, slots=True)
class Outcome:
    """The answer and what metrics and logs need to know about it."""

    status: int  # HTTP status
    body: bytes
    content_type: str
    decision: str
    operation: str = ""
    kind: str = ""
    uid: str = ""
    namespace: str = ""
    name: str = ""
    mode: str = ""
    dry_run: bool = False
    reason: str = ""
    failed: tuple[str, ...] = ()  # check ids (and image-signature) that deny or warn
    # (check id, result) per check that ran: pass, fail, suppressed, error
    results: tuple[tuple[str, str], ...] = field(default=(), repr=False)


def _bad_review(exc: BadReview) -> Outcome:
    body = json.dumps({"error": exc.message}).encode("utf-8")
    return Outcome(exc.status, body, "application/json", Decision.INVALID, reason=exc.message)


@dataclass(slots=True)
class _Findings:
    """What denies or warns about one object: findings, images, and what could not run."""

    failing: list[Finding]
    below: list[Finding]  # unsuppressed findings under fail-on: warnings only
    verdict: ObjectVerdict
    images: list[ImageVerdict]
    image_failures: list[str]
    problems: list[str]

    @property
    def denies(self) -> bool:
        return bool(self.failing or self.image_failures or self.problems)


class Webhook:
    """The validating and mutating decisions for one policy."""

    def __init__(
        self,
        policy: Policy,
        evaluator: Evaluator | None = None,
        verifier: ImageVerifier | None = None,
        limits: ReviewLimits | None = None,
        policies: PolicyEnforcer | None = None,
        image_deadline: float = IMAGE_DEADLINE,
    ) -> None:
        self.policy = policy
        self.limits = limits or ReviewLimits()
        # seconds the image verification of one review may take (skanse.admission.images)
        self.image_deadline = image_deadline
        # ValidatingAdmissionPolicies (skanse.admission.vap), evaluated before the checks.
        self.policies = policies
        self.evaluator = evaluator or Evaluator(policy)
        # An explicit verifier (tests, special registries) wins; otherwise the policy's image
        # policy, if it has one, through the signing layer.
        if verifier is None and policy.image_policy is not None:
            verifier = SigningVerifier(policy.image_policy)
        self.verifier: ImageVerifier | None = verifier

    # -- validate --------------------------------------------------------------------------

    def validate(self, body: bytes) -> Outcome:
        policies = self.policies
        if policies is None:
            return self._review(body, self._validate)

        def with_policies(request: Request) -> Outcome:
            exempt = self.policy.exemption(
                self._namespace(request), request.username, request.groups
            )
            # the body's length bounds every list and string of the objects it carries
            outcome: Outcome = policies.decide(request, self._validate, exempt, len(body))
            return outcome

        return self._review(body, with_policies)

    def _review(self, body: bytes, decide: Callable[[Request], Outcome]) -> Outcome:
        """Parse the AdmissionReview and `decide` on its request, failing closed on a bug."""
        try:
            request = parse_review(body)
        # one name per exception type: mypyc gives a name one type per function, and an
        # `exc` bound as BadReview first refused the RuntimeError of a crashing check
        except BadReview as bad:
            return _bad_review(bad)
        except MalformedRequest as malformed:
            return self._malformed(malformed)
        try:
            return decide(request)
        except Exception as crash:  # a bug must never admit what enforce mode would deny
            return self._internal_error(request, crash)
        finally:
            # reference counting frees the parsed objects now, not a collector pass later
            for obj in request.made.values():
                forget_derived(obj)
            request.made.clear()

    def _validate(self, request: Request) -> Outcome:
        skip = self._not_checked(request)
        if skip is not None:
            return self._allow(request, Decision.SKIP, skip)
        namespace = self._namespace(request)
        exempt = self.policy.exemption(namespace, request.username, request.groups)
        if exempt is not None:
            return self._allow(request, Decision.EXEMPT, exempt)
        mode = self.policy.mode_for(namespace)
        obj = self._object(request, request.object)
        if pod_spec(obj) is None:
            reason = f"{request.kind} has no pod spec where one is expected: could not check it"
            return self._could_not_check(request, mode, reason)
        too_big = self._over_limits(request, obj)
        if too_big is not None:
            return self._could_not_check(request, mode, too_big)
        found = self._findings(obj, namespace, request)
        too_many = self.limits.too_many_findings(found.verdict)
        if too_many is not None:
            return self._could_not_check(request, mode, too_many)
        results = self._results(found)
        if not found.denies:
            return self._checked_ok(request, mode, found, results)
        if mode is Mode.ENFORCE and request.operation == "UPDATE" and not found.problems:
            if self._no_worse(request, namespace, obj, found):
                return self._allowed_with_findings(
                    request,
                    mode,
                    found,
                    results,
                    Decision.WARN,
                    "the update adds no finding the object did not already have",
                )
        if mode is Mode.ENFORCE:
            return self._deny(request, mode, obj, found, results)
        decision = Decision.WARN if mode is Mode.WARN else Decision.AUDIT
        return self._allowed_with_findings(request, mode, found, results, decision, "")

    def _over_limits(self, request: Request, obj: K8sObject) -> str | None:
        """Why the object (or the old one of an UPDATE) is too big to check, or None."""
        objects = [obj]
        if request.old_object is not None:
            objects.append(self._object(request, request.old_object))
        for item in objects:
            which = "the old object" if item is not obj else "the pod spec"
            too_many = self.limits.too_many_containers(item, which)
            if too_many is not None:
                return too_many
        return None

    def _not_checked(self, request: Request) -> str | None:
        if request.operation not in ("CREATE", "UPDATE"):
            return f"operation {request.operation} is not checked"
        if request.sub_resource in IGNORED_SUBRESOURCES:
            return f"subresource {request.sub_resource} is not checked"
        if request.kind not in POD_TEMPLATE_PATHS:
            return f"kind {request.kind} has no pod template: not checked"
        if request.sub_resource and request.sub_resource != "ephemeralcontainers":
            return f"subresource {request.sub_resource} is not checked"
        return None

    @staticmethod
    def _namespace(request: Request) -> str:
        if request.namespace:
            return request.namespace
        meta = as_dict((request.object or {}).get("metadata"))
        value = meta.get("namespace")
        return value if isinstance(value, str) else ""

    @staticmethod
    def _object(request: Request, data: dict[str, Any] | None) -> K8sObject:
        assert data is not None
        made = request.made.get(id(data))
        if made is not None:
            return made
        stated = data.get("kind")
        if stated is not None and stated != request.kind:
            raise MalformedRequest(
                request.uid, f"request.kind is {request.kind} but the object is a {stated}"
            )
        obj = admission_object(
            data, f"<admission {request.uid}>", request.api_version, request.kind
        )
        request.made[id(data)] = obj
        return obj

    def _findings(self, obj: K8sObject, namespace: str, request: Request) -> _Findings:
        verdict = self.evaluator.evaluate(obj, namespace)
        fail_on = self.policy.fail_on
        # one pass: membership tests against a list made this quadratic in the findings
        failing: list[Finding] = []
        below: list[Finding] = []
        for f in verdict.unsuppressed:
            (failing if fail_on is None or f.severity >= fail_on else below).append(f)
        images = self._images(obj, request)
        image_failures = [
            f"{IMAGE_SIGNATURE}: image {v.image} ({v.outcome}): {v.reason}"
            for v in images
            if not v.passed
        ]
        if self.policy.require_digests:
            image_failures += [
                f"{IMAGE_SIGNATURE}: image {v.image} is signed but not pinned: the policy "
                f"requires a digest, since the tag can be re-pushed; use {v.pinned_image} "
                "(the mutating webhook pins it)"
                for v in images
                if v.pinned_image is not None
            ]
        problems = [f"could not check: {p}" for p in verdict.problems]
        return _Findings(failing, below, verdict, images, image_failures, problems)

    def _images(self, obj: K8sObject, request: Request) -> list[ImageVerdict]:
        pod = pod_spec(obj)
        if pod is None or self.verifier is None:
            return []
        images = [c.data.get("image") for c in pod.containers()]
        wanted = [i for i in images if isinstance(i, str) and i.strip()]
        if request.operation == "UPDATE" and request.old_object is not None:
            # images the object already ran were admitted before; verify what is new
            old_pod = pod_spec(self._object(request, request.old_object))
            old = {c.data.get("image") for c in old_pod.containers()} if old_pod else set()
            wanted = [i for i in wanted if i not in old]
        return list(verify_images(wanted, self.verifier, deadline=self.image_deadline))

    def _no_worse(self, request: Request, namespace: str, obj: K8sObject, found: _Findings) -> bool:
        if request.old_object is None or found.image_failures:
            return False
        old = self._object(request, request.old_object)
        if pod_spec(old) is None:
            return False
        before = self.evaluator.evaluate(old, namespace)
        added = new_findings(
            found.failing,
            before.failing(self.policy.fail_on),
            now_in=obj.data,
            before_in=old.data,
        )
        return not any(added)

    @staticmethod
    def _results(found: _Findings) -> tuple[tuple[str, str], ...]:
        failed = {f.check_id for f in found.verdict.unsuppressed}
        suppressed = {f.check_id for f in found.verdict.suppressed} - failed
        results: list[tuple[str, str]] = [
            (c, "fail" if c in failed else "suppressed" if c in suppressed else "pass")
            for c in found.verdict.ran
        ]
        results.extend((IMAGE_SIGNATURE, "pass" if v.passed else "fail") for v in found.images)
        if found.problems:
            results.append(("internal", "error"))
        return tuple(results)

    # -- answers ---------------------------------------------------------------------------

    def _base(self, request: Request, decision: str, mode: str, reason: str) -> dict[str, Any]:
        return {
            "operation": request.operation,
            "kind": request.kind,
            "uid": request.uid,
            "namespace": self._namespace(request),
            "name": self._name(request),
            "mode": mode,
            "dry_run": request.dry_run,
            "decision": decision,
            "reason": reason,
        }

    @staticmethod
    def _name(request: Request) -> str:
        if request.name:
            return request.name
        meta = as_dict((request.object or {}).get("metadata"))
        for key in ("name", "generateName"):
            value = meta.get(key)
            if isinstance(value, str) and value:
                return value
        return ""

    def _allow(self, request: Request, decision: str, reason: str, **extra: Any) -> Outcome:
        audit = {"decision": decision, "reason": reason}
        body = render_response(request.uid, True, audit=audit)
        return Outcome(
            200, body, "application/json", **self._base(request, decision, "", reason), **extra
        )

    def _checked_ok(
        self, request: Request, mode: Mode, found: _Findings, results: tuple[tuple[str, str], ...]
    ) -> Outcome:
        warnings = [_finding_line(f) for f in found.below]
        warnings += list(found.verdict.warnings)
        audit = {"decision": Decision.ALLOW, "mode": mode.value}
        if found.verdict.suppressed:
            audit["suppressed"] = _suppressed_annotation(found.verdict.suppressed)
        if found.below:
            audit["findings"] = _findings_annotation(found.below)
        body = render_response(request.uid, True, warnings=warnings, audit=audit)
        return Outcome(
            200,
            body,
            "application/json",
            **self._base(request, Decision.ALLOW, mode.value, ""),
            results=results,
        )

    def _allowed_with_findings(
        self,
        request: Request,
        mode: Mode,
        found: _Findings,
        results: tuple[tuple[str, str], ...],
        decision: str,
        reason: str,
    ) -> Outcome:
        lines = [*found.problems, *found.image_failures]
        lines += [_finding_line(f) for f in (*found.failing, *found.below)]
        audit = {"decision": decision, "mode": mode.value}
        if reason:
            audit["reason"] = reason
        audit["failed"] = ",".join(_failed_ids(found))
        audit["findings"] = _findings_annotation(found.failing + found.below, found)
        if found.verdict.suppressed:
            audit["suppressed"] = _suppressed_annotation(found.verdict.suppressed)
        # audit mode says nothing to the client; warn mode (and a no-worse update) tells it
        warnings = [] if decision == Decision.AUDIT else [*lines, *found.verdict.warnings]
        if reason and warnings:
            warnings.insert(0, f"skanse: allowed because {reason}")
        body = render_response(request.uid, True, warnings=warnings, audit=audit)
        return Outcome(
            200,
            body,
            "application/json",
            **self._base(request, decision, mode.value, reason),
            failed=_failed_ids(found),
            results=results,
        )

    def _deny(
        self,
        request: Request,
        mode: Mode,
        obj: K8sObject,
        found: _Findings,
        results: tuple[tuple[str, str], ...],
    ) -> Outcome:
        failed = _failed_ids(found)
        message = self._denial_message(request, obj, found, failed)
        audit = {
            "decision": Decision.DENY,
            "mode": mode.value,
            "failed": ",".join(failed),
            "findings": _findings_annotation(found.failing, found),
        }
        if found.verdict.suppressed:
            audit["suppressed"] = _suppressed_annotation(found.verdict.suppressed)
        warnings = [_finding_line(f) for f in found.below] + list(found.verdict.warnings)
        body = render_response(
            request.uid, False, code=403, message=message, warnings=warnings, audit=audit
        )
        return Outcome(
            200,
            body,
            "application/json",
            **self._base(request, Decision.DENY, mode.value, ""),
            failed=failed,
            results=results,
        )

    def _denial_message(
        self, request: Request, obj: K8sObject, found: _Findings, failed: tuple[str, ...]
    ) -> str:
        namespace = self._namespace(request)
        where = f' in namespace "{namespace}"' if namespace else ""
        count = len(failed)
        head = (
            f'skanse denied {request.kind} "{self._name(request)}"{where}: '
            f"{count} {'check fails' if count == 1 else 'checks fail'} "
            f"(profile {self.policy.profile.value}, mode enforce): {', '.join(failed)}"
        )
        parts: list[str] = [*found.problems, *found.image_failures]
        pss = self._pss_message(obj, found.failing)
        if pss:
            parts.append(pss)
        by_check: dict[str, list[str]] = {}
        sizes: dict[str, int] = {}
        for f in found.failing:
            meta = self.evaluator.registry.get(f.check_id).meta
            if pss and meta.pss_control is not None:
                continue  # said in Pod Security Admission's own words above
            # a check's text past the message cap would be cut anyway: stop collecting it
            if sizes.get(f.check_id, 0) > _MAX_MESSAGE_CHARS:
                continue
            by_check.setdefault(f.check_id, []).append(f.message)
            sizes[f.check_id] = sizes.get(f.check_id, 0) + len(f.message) + 2
        for check_id, messages in by_check.items():
            parts.append(f"{check_id}: {'; '.join(messages)}")
        message = f"{head}. " + ". ".join(parts)
        if len(message) > _MAX_MESSAGE_CHARS:
            message = message[: _MAX_MESSAGE_CHARS - 40] + " ... (see the audit annotations)"
        return message

    def _pss_message(self, obj: K8sObject, failing: Sequence[Finding]) -> str:
        """PSA's exact denial for the PSS controls that fail unsuppressed (diffable against
        `kubectl --dry-run=server` in a PSA-enforced namespace)."""
        registry = self.evaluator.registry
        controls = {
            control
            for check_id in {f.check_id for f in failing}  # thousands of findings, few ids
            if (control := registry.get(check_id).meta.pss_control) is not None
        }
        pod = pod_spec(obj)
        if not controls or pod is None:
            return ""
        # PSA's aggregate wording needs the failing controls' results, which their checks
        # have just computed
        kept = tuple(
            (control.id, result)
            for control, impl in controls_for(self.policy.pss)
            if control.id in controls and (result := control_result(pod, control, impl)) is not None
        )
        return Denial(self.policy.pss, kept).message if kept else ""

    def _could_not_check(self, request: Request, mode: Mode, reason: str) -> Outcome:
        if mode is Mode.ENFORCE:
            message = f"skanse denied {request.kind}: {reason}; denied because mode is enforce"
            audit = {"decision": Decision.ERROR, "mode": mode.value, "reason": reason}
            body = render_response(request.uid, False, code=403, message=message, audit=audit)
        else:
            audit = {"decision": Decision.ERROR, "mode": mode.value, "reason": reason}
            warnings = [] if mode is Mode.AUDIT else [f"skanse: {reason}"]
            body = render_response(request.uid, True, warnings=warnings, audit=audit)
        return Outcome(
            200,
            body,
            "application/json",
            **self._base(request, Decision.ERROR, mode.value, reason),
            results=(("internal", "error"),),
        )

    def _internal_error(self, request: Request, exc: Exception) -> Outcome:
        if isinstance(exc, MalformedRequest):
            return self._malformed(exc)
        reason = f"internal error: {type(exc).__name__}: {exc}"
        try:
            mode = self.policy.mode_for(self._namespace(request))
        except Exception:
            mode = Mode.ENFORCE
        return self._could_not_check(request, mode, reason)

    @staticmethod
    def _malformed(exc: MalformedRequest) -> Outcome:
        message = f"skanse cannot read this admission request: {exc.message}"
        body = render_response(exc.uid, False, code=400, message=message)
        return Outcome(
            200, body, "application/json", Decision.INVALID, uid=exc.uid, reason=exc.message
        )

    # -- mutate ----------------------------------------------------------------------------

    def mutate(self, body: bytes) -> Outcome:
        return self._review(body, self._mutate)

    def _mutate(self, request: Request) -> Outcome:
        skip = self._not_checked(request)
        if skip is None and request.sub_resource:
            skip = f"subresource {request.sub_resource} is not mutated"
        if skip is None and request.operation == "UPDATE":
            skip = self._update_not_mutated(request)
        if skip is not None:
            return self._allow(request, Decision.SKIP, skip)
        namespace = self._namespace(request)
        exempt = self.policy.exemption(namespace, request.username, request.groups)
        if exempt is not None:
            return self._allow(request, Decision.EXEMPT, exempt)
        mode = self.policy.mode_for(namespace)
        defaults = mode in self.policy.mutation.modes
        # `mutation.modes` says where defaults are added, not where signed tags are pinned:
        # in enforce mode /validate denies a signed tag left unpinned, so the pin it asks for
        # is made there whether or not defaults are wanted
        pins_wanted = self.policy.pin_digests and self.verifier is not None
        if not defaults and not (pins_wanted and mode is Mode.ENFORCE):
            return self._allow(request, Decision.SKIP, f"namespace mode {mode} is not mutated")
        obj = self._object(request, request.object)
        too_big = self._over_limits(request, obj)
        if too_big is not None:
            return self._could_not_check(request, mode, too_big)
        patch = defaults_patch(obj, self.policy.mutation) if defaults else []
        pins = self._digest_pins(obj)
        if not patch and not pins:
            return self._allow(request, Decision.ALLOW, "no defaults to add")
        fields = sorted({op["path"].rsplit("/", 1)[-1] for op in patch} - {"-"})
        audit = {"decision": Decision.PATCH, "added": ",".join(fields)}
        if pins:
            audit["pinned"] = ",".join(dict.fromkeys(op["value"] for op in pins))
            patch = [*patch, *pins]
        body = render_response(request.uid, True, audit=audit, patch=patch)
        return Outcome(
            200, body, "application/json", **self._base(request, Decision.PATCH, mode.value, "")
        )

    def _digest_pins(self, obj: K8sObject) -> list[dict[str, Any]]:
        """Replace ops that pin each image whose tag a signature rule verified to the digest
        verified. An image that fails verification is left alone: /validate denies it."""
        pod = pod_spec(obj)
        if self.verifier is None or not self.policy.pin_digests or pod is None:
            return []
        tagged = [
            (c, image)
            for c in pod.containers()
            if isinstance(image := c.data.get("image"), str) and image.strip() and "@" not in image
        ]
        if not tagged:
            return []
        verdicts = {
            v.image: v
            for v in verify_images(
                (i for _, i in tagged), self.verifier, deadline=self.image_deadline
            )
        }
        pins: list[dict[str, Any]] = []
        for c, image in tagged:
            pinned = verdicts[image].pinned_image
            if pinned is not None:
                pins.append({"op": "replace", "path": f"{c.pointer}/image", "value": pinned})
        return pins

    def _update_not_mutated(self, request: Request) -> str | None:
        """Pods cannot change their security context after creation, and a workload gets
        defaults only when its pod template changes (a rollout happens anyway then)."""
        if request.kind == "Pod":
            return "a Pod's security context cannot change after creation"
        if request.old_object is None:
            return "UPDATE without oldObject"
        new = pod_spec(self._object(request, request.object))
        old = pod_spec(self._object(request, request.old_object))
        if (
            new is not None
            and old is not None
            and new.spec == old.spec
            and (new.metadata == old.metadata)
        ):
            return "the pod template did not change"
        return None


def _failed_ids(found: _Findings) -> tuple[str, ...]:
    ids: dict[str, None] = dict.fromkeys(f.check_id for f in found.failing)
    if found.image_failures:
        ids[IMAGE_SIGNATURE] = None
    return tuple(ids)


def _finding_line(f: Finding) -> str:
    return f"{f.check_id} {f.title}: {f.message}"


def _findings_annotation(findings: Sequence[Finding], found: _Findings | None = None) -> str:
    """The findings as a bounded JSON list; items past the limit are counted, not built."""
    images = found.image_failures if found is not None else []
    problems = found.problems if found is not None else []
    items: Iterator[dict[str, str]] = itertools.chain(
        (
            {
                "check": f.check_id,
                "severity": f.severity.value,
                "message": f.message,
                "pointer": f.location.pointer,
            }
            for f in findings
        ),
        ({"check": IMAGE_SIGNATURE, "message": m} for m in images),
        ({"check": "internal", "message": m} for m in problems),
    )
    return _bounded_json(items, len(findings) + len(images) + len(problems))


def _suppressed_annotation(findings: Sequence[Finding]) -> str:
    items = [
        {
            "check": f.check_id,
            "reason": f.suppression.reason,
            "origin": f.suppression.origin,
            **({"expires": f.suppression.expires.isoformat()} if f.suppression.expires else {}),
        }
        for f in findings
        if f.suppression is not None
    ]
    return _bounded_json(iter(items), len(items))


def _bounded_json(items: Iterator[dict[str, str]], count: int, limit: int = 4000) -> str:
    """A JSON list of the `count` items that fits an annotation value: items that do not fit
    are counted.

    Each item is made and encoded once, and the list is cut where the running size passes the
    limit (less room for the `{"more": "N"}` marker), so the cost is linear in what is kept:
    the items past the cut are never made.
    """
    reserve = len('{"more":""}') + len(str(count)) + 1
    parts: list[str] = []
    size = 2  # the brackets
    for index, item in enumerate(items):
        encoded = json.dumps(item, separators=(",", ":"), ensure_ascii=False)
        room = limit - reserve if index + 1 < count else limit
        if size + len(encoded) + (1 if parts else 0) > room:
            parts.append(json.dumps({"more": str(count - index)}, separators=(",", ":")))
            break
        parts.append(encoded)
        size += len(encoded) + (1 if len(parts) > 1 else 0)
    return "[" + ",".join(parts) + "]"
