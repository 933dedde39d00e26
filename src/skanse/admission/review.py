"""AdmissionReview `admission.k8s.io/v1` on the wire: parse a request, render a response.

The contract (k8s.io/api/admission/v1 types.go): the API server POSTs an AdmissionReview
with `request`; the webhook answers HTTP 200 with an AdmissionReview of the same apiVersion
whose `response.uid` echoes `request.uid`. A body this module cannot read as such a review
raises `BadReview` (the caller answers 4xx, since there is no uid to answer); a review with a
uid whose request is malformed raises `MalformedRequest` (the caller answers a well-formed
denial).

JSON is read and written with orjson's C parser and encoder (the standard library's took a
third of a review's CPU). It is stricter than the standard library where the API server
never strays: UTF-8 only (no BOM, no UTF-16), no NaN or Infinity, no lone surrogate in a
string, nesting at most 1,024 deep. A duplicate key keeps its last value, as the API
server's own decoder (Go's encoding/json) does, so the webhook judges exactly the object the
cluster stores.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from skanse.sources.kubernetes import K8sObject

__all__ = [
    "API_VERSION",
    "BadReview",
    "MalformedRequest",
    "Request",
    "fit_annotation",
    "fit_warnings",
    "parse_review",
    "render_response",
]

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
OPERATIONS = frozenset({"CREATE", "UPDATE", "DELETE", "CONNECT"})

# What the API server does with warnings (k8s.io/apiserver warning recorder): longer ones are
# truncated, and past a total size the rest are dropped. Stay inside both.
MAX_WARNING_CHARS = 256
MAX_WARNINGS_BYTES = 4096
# Audit annotation values end up in every audit event of the request: keep each bounded.
MAX_ANNOTATION_CHARS = 4096


class BadReview(Exception):
    """The body is not an AdmissionReview v1 with a request uid: answered with HTTP 4xx."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class MalformedRequest(Exception):
    """The review has a uid but its request is malformed: answered with a denial (400)."""

    def __init__(self, uid: str, message: str) -> None:
        super().__init__(message)
        self.uid = uid
        self.message = message


@dataclass(frozen=True, slots=True)
class Request:
    """The parts of an AdmissionRequest the webhook reads."""

    uid: str
    group: str
    version: str
    kind: str
    operation: str
    namespace: str
    name: str
    sub_resource: str
    username: str
    groups: tuple[str, ...]
    object: dict[str, Any] | None
    old_object: dict[str, Any] | None
    dry_run: bool
    # K8sObjects made of `object` and `old_object` (by the id of the dict) while the request
    # is decided, so each is made and viewed once; released when the answer is made.
    made: dict[int, K8sObject] = field(default_factory=dict, compare=False, repr=False)

    @property
    def api_version(self) -> str:
        """The object's apiVersion as the request names it (`apps/v1`, `v1`)."""
        return f"{self.group}/{self.version}" if self.group else self.version


def _loads(body: bytes) -> Any:
    try:
        # (A pairs hook to refuse duplicate keys cost 30% of the server's CPU per review, and
        # the API server re-encodes objects before it sends them, so it never sends any.)
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        reason = str(exc)
        if reason.startswith("depth limit exceeded"):
            raise BadReview("the JSON is nested too deeply") from None
        if "UTF-8" in reason:
            raise BadReview(f"the body is not UTF-8 JSON: {reason}") from None
        raise BadReview(f"the body is not valid JSON: {reason}") from None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def parse_review(body: bytes) -> Request:
    """The request of an AdmissionReview v1 body; BadReview or MalformedRequest if not."""
    if not body:
        raise BadReview("empty body; expected an AdmissionReview")
    review = _loads(body)
    if not isinstance(review, dict):
        raise BadReview("the body is not a JSON object; expected an AdmissionReview")
    api_version, kind = review.get("apiVersion"), review.get("kind")
    if kind != KIND:
        raise BadReview(f"kind is {kind!r}; expected {KIND!r}")
    if api_version != API_VERSION:
        raise BadReview(
            f"apiVersion is {api_version!r}; this webhook speaks {API_VERSION} "
            "(set admissionReviewVersions: [v1] in the webhook configuration)"
        )
    request = review.get("request")
    if not isinstance(request, dict):
        raise BadReview("the review has no request object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid.strip():
        raise BadReview("request.uid is missing; there is nothing to answer to")
    if len(uid) > 256:
        raise BadReview("request.uid is longer than 256 characters")
    gvk = request.get("kind")
    if not isinstance(gvk, dict) or not isinstance(gvk.get("kind"), str) or not gvk["kind"]:
        raise MalformedRequest(uid, "request.kind must be an object with a kind")
    operation = request.get("operation")
    if operation not in OPERATIONS:
        raise MalformedRequest(
            uid, f"request.operation is {operation!r}; expected one of {sorted(OPERATIONS)}"
        )
    obj, old = request.get("object"), request.get("oldObject")
    if obj is not None and not isinstance(obj, dict):
        raise MalformedRequest(uid, "request.object is not a JSON object")
    if old is not None and not isinstance(old, dict):
        raise MalformedRequest(uid, "request.oldObject is not a JSON object")
    if operation in ("CREATE", "UPDATE") and obj is None:
        raise MalformedRequest(uid, f"request.object is missing on {operation}")
    user = request.get("userInfo")
    user = user if isinstance(user, dict) else {}
    groups = user.get("groups")
    dry_run = request.get("dryRun")
    if dry_run is not None and not isinstance(dry_run, bool):
        raise MalformedRequest(uid, "request.dryRun is not a boolean")
    return Request(
        uid=uid,
        group=_text(gvk.get("group")),
        version=_text(gvk.get("version")),
        kind=gvk["kind"],
        operation=operation,
        namespace=_text(request.get("namespace")),
        name=_text(request.get("name")),
        sub_resource=_text(request.get("subResource")),
        username=_text(user.get("username")),
        groups=tuple(g for g in groups if isinstance(g, str)) if isinstance(groups, list) else (),
        object=obj,
        old_object=old,
        dry_run=dry_run is True,
    )


def _clean(text: str) -> str:
    """Warnings travel as HTTP headers: no control characters."""
    return "".join(ch if ch.isprintable() else " " for ch in text)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def fit_warnings(warnings: Sequence[str]) -> list[str]:
    """Warnings the API server passes on unchanged: each at most 256 characters, all of them
    at most 4096 bytes; what does not fit is counted in a last warning."""
    fitted: list[str] = []
    total = 0
    for index, warning in enumerate(warnings):
        text = _truncate(_clean(warning), MAX_WARNING_CHARS)
        size = len(text.encode("utf-8"))
        rest = len(warnings) - index
        # keep room for the "N more" note unless this is the last warning
        reserve = 0 if rest == 1 else 64
        if total + size + reserve > MAX_WARNINGS_BYTES:
            fitted.append(
                f"... and {rest} more (see the audit annotations or skanse admission audit)"
            )
            break
        fitted.append(text)
        total += size
    return fitted


def fit_annotation(value: str) -> str:
    return _truncate(value, MAX_ANNOTATION_CHARS)


def render_response(
    uid: str,
    allowed: bool,
    *,
    code: int | None = None,
    message: str | None = None,
    warnings: Sequence[str] = (),
    audit: Mapping[str, str] | None = None,
    patch: Sequence[Mapping[str, Any]] | None = None,
) -> bytes:
    """The AdmissionReview answer, as bytes ready for a 200 response."""
    response: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if message is not None or code is not None:
        status: dict[str, Any] = {"code": code or (200 if allowed else 403)}
        if message is not None:
            status["message"] = message
        if not allowed:
            status["status"] = "Failure"
            status["reason"] = "BadRequest" if code == 400 else "Forbidden"
        response["status"] = status
    if warnings:
        response["warnings"] = fit_warnings(warnings)
    if audit:
        response["auditAnnotations"] = {k: fit_annotation(v) for k, v in audit.items()}
    if patch:
        encoded = orjson.dumps(list(patch))
        response["patch"] = base64.b64encode(encoded).decode("ascii")
        response["patchType"] = "JSONPatch"
    review = {"apiVersion": API_VERSION, "kind": KIND, "response": response}
    return orjson.dumps(review)
