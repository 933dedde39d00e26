"""Image policies for admission: which keys must have signed which images.

    # image-policy.yaml
    apiVersion: skanse.io/v1alpha1
    kind: ImagePolicy
    keys:                                  # name -> public key (a path relative to this file,
      ci: keys/ci.pub                      #   or {pem: "-----BEGIN PUBLIC KEY-----..."})
      release: {path: keys/release.pub}
    images:                                # the first rule whose glob matches decides
      - glob: "registry.example.com/payments/**"
        keys: [ci, release]
        threshold: 2                       # distinct keys that must each have signed
        requireReference: true             # the signature must name this repository
        attestations:
          - type: cyclonedx                # a --type name or a predicate type URI
            keys: [ci]                     # default: the rule's keys; threshold default 1
      - glob: "registry.k8s.io/**"
        allow: true                        # exempt: admitted without verification
    default: deny                          # images no glob matches: deny (default) or allow
    cache: {size: 4096, ttl: 300, negativeTtl: 10}   # seconds; optional
    registries: {perHost: 4, queueWait: 1, failures: 3, window: 30, cooldown: 30}  # optional

Globs match the normalised repository, registry included, without tag or digest
(`docker.io/library/nginx` for `nginx:1.27`): `*` is any run of characters within one path
segment, `**` any run across segments, `?` one character other than `/`.

`verify_image(ref, policy)` is what the admission webhook calls. It never raises for anything
an image, a registry or a signature can do: every failure is a denying `Decision` with the
reason. Decisions are cached by (rule, repository, digest) in the policy's bounded LRU cache:
allowed ones for `ttl` seconds, denied ones for `negativeTtl` (so a signature added a moment
later is seen soon), and "could not check" ones (registry unreachable, a signature store that
could not be read, the deadline passed) not at all. A tag is
resolved to its digest on every call (one manifest request); a digest reference needs no
network at all on a cache hit. All the registry requests of one call share one `deadline`
(seconds): a registry that answers each just inside its per-request deadline makes the image
"could not check" when it is up, instead of holding the caller for their sum.

Each registry host has a breaker (`skanse.signing.breaker`, `registries:`): at most `perHost`
verifications wait on one registry at once (and at most `perHost` more wait up to `queueWait`
seconds, or a third of the deadline, for a slot), and after `failures` verifications in a row
within `window` seconds that got no answer from it, its images are "could not check:
registry X unreachable (circuit open)" at once for `cooldown` seconds, then one probe is let
through. A digest the cache knows is decided without asking the breaker (nor the registry).
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from skanse.errors import (
    ImageReferenceError,
    KeyFileError,
    SignaturePolicyError,
    SkanseError,
    YamlError,
)
from skanse.oci.reference import Reference, parse_reference
from skanse.oci.registry import RegistryClient
from skanse.signing.attach import Limits, resolve
from skanse.signing.breaker import BreakerSettings, RegistryBreakers
from skanse.signing.keys import PublicKey, load_public_key, read_public_key
from skanse.signing.sign import predicate_type_for
from skanse.signing.verify import (
    DEADLINE,
    deadline_problem,
    verify_attestations,
    verify_signatures,
)
from skanse.sources.yamlpos import Limits as YamlLimits
from skanse.sources.yamlpos import YamlDocument, join_pointer, load_documents

__all__ = [
    "Decision",
    "DecisionCache",
    "ImageRule",
    "Policy",
    "RequiredAttestation",
    "load_policy",
    "parse_policy",
    "verify_image",
]

API_VERSION = "skanse.io/v1alpha1"
# How a reason starts when the image was not checked (SigningVerifier's could-not-check).
_COULD_NOT_CHECK = "could not check"
_MAX_POLICY_BYTES = 1024 * 1024


# --- the file format (pydantic at the edge) ---------------------------------------------


class _KeyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    path: str | None = None
    pem: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> _KeyEntry:
        if (self.path is None) == (self.pem is None):
            raise ValueError("a key has exactly one of path and pem")
        return self


class _AttestationEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    type: str
    keys: list[str] | None = None
    threshold: int = Field(default=1, ge=1)


class _RuleEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    glob: str = Field(min_length=1)
    keys: list[str] = []
    threshold: int = Field(default=1, ge=1)
    require_reference: bool = Field(default=False, alias="requireReference")
    attestations: list[_AttestationEntry] = []
    allow: bool = False

    @model_validator(mode="after")
    def _keys_or_allow(self) -> _RuleEntry:
        if self.allow and (self.keys or self.attestations):
            raise ValueError("an 'allow: true' rule verifies nothing: it takes no keys")
        if not self.allow and not self.keys:
            raise ValueError("a rule needs keys (or 'allow: true' to exempt the images)")
        if not self.allow and self.threshold > len(set(self.keys)):
            raise ValueError(
                f"threshold {self.threshold} is more than the {len(set(self.keys))} key(s) listed"
            )
        return self


class _CacheEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    size: int = Field(default=4096, ge=0, le=1_000_000)
    ttl: float = Field(default=300.0, ge=0)
    negative_ttl: float = Field(default=10.0, ge=0, alias="negativeTtl")


class _RegistriesEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    failures: int = Field(default=3, ge=1, le=1000)
    window: float = Field(default=30.0, gt=0)
    cooldown: float = Field(default=30.0, ge=0)
    per_host: int = Field(default=4, ge=1, le=10_000, alias="perHost")
    queue_wait: float = Field(default=1.0, ge=0, le=60, alias="queueWait")


class _PolicyFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    api_version: Literal["skanse.io/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["ImagePolicy"]
    keys: dict[str, str | _KeyEntry] = {}
    images: list[_RuleEntry]
    default: Literal["deny", "allow"] = "deny"
    cache: _CacheEntry = _CacheEntry()
    registries: _RegistriesEntry = _RegistriesEntry()


# --- the policy in use ------------------------------------------------------------------


def glob_pattern(glob: str) -> re.Pattern[str]:
    """`*` within a segment, `**` across segments, `?` one non-`/` character. Matching
    ignores case: references are all lower case (the host is lower-cased when parsed), so a
    glob written `LOCALHOST:5000/app` must still match, not fall through to a weaker rule."""
    parts = []
    i = 0
    while i < len(glob):
        if glob.startswith("**", i):
            parts.append(".*")
            i += 2
        elif glob[i] == "*":
            parts.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            parts.append("[^/]")
            i += 1
        else:
            parts.append(re.escape(glob[i]))
            i += 1
    return re.compile("".join(parts), re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class RequiredAttestation:
    predicate_type: str
    keys: tuple[PublicKey, ...]
    threshold: int = 1


@dataclass(frozen=True, slots=True)
class ImageRule:
    glob: str
    keys: tuple[PublicKey, ...] = ()
    threshold: int = 1
    require_reference: bool = False
    attestations: tuple[RequiredAttestation, ...] = ()
    allow: bool = False
    pattern: re.Pattern[str] = field(default=re.compile(""), repr=False)

    def matches(self, ref: Reference) -> bool:
        return self.pattern.fullmatch(ref.repository) is not None


@dataclass(frozen=True, slots=True)
class Decision:
    """Admit the image or not, and why. `digest` is what was verified (None if unresolved)."""

    allowed: bool
    reason: str
    image: str
    digest: str | None = None
    rule: str | None = None  # the glob that decided; None for the default
    verified_keys: tuple[str, ...] = ()
    cached: bool = False
    # False when the image could not be checked (the registry unreachable, too slow, or a
    # signature store unreadable): such a denial is "could not check" and not cached
    final: bool = True

    @property
    def could_not_check(self) -> bool:
        """Denied because the image could not be checked, not because it failed a check."""
        return not self.allowed and not self.final


class DecisionCache:
    """A bounded LRU of decisions with an expiry each; thread-safe."""

    def __init__(
        self,
        size: int = 4096,
        *,
        ttl: float = 300.0,
        negative_ttl: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.size = size
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.clock = clock
        self._entries: OrderedDict[tuple[str, str, str], tuple[float, Decision]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, str]) -> Decision | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expires, decision = entry
            if self.clock() >= expires:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return decision

    def put(self, key: tuple[str, str, str], decision: Decision) -> None:
        ttl = self.ttl if decision.allowed else self.negative_ttl
        if self.size == 0 or ttl <= 0:
            return
        with self._lock:
            self._entries[key] = (self.clock() + ttl, decision)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


@dataclass(frozen=True, eq=False)
class Policy:
    """Rules in order, the default, and this policy's decision cache."""

    rules: tuple[ImageRule, ...]
    default_allow: bool = False
    source: str = "<policy>"
    limits: Limits = Limits()
    cache: DecisionCache = field(default_factory=DecisionCache)
    # how much of the verifier one registry may hold (skanse.signing.breaker)
    breakers: RegistryBreakers = field(default_factory=RegistryBreakers)
    # one registry client per thread (RegistryClient is not thread-safe)
    _clients: threading.local = field(default_factory=threading.local, repr=False)

    def rule_for(self, ref: Reference) -> ImageRule | None:
        return next((rule for rule in self.rules if rule.matches(ref)), None)

    def client(self) -> RegistryClient:
        client = getattr(self._clients, "client", None)
        if client is None:
            client = RegistryClient()
            self._clients.client = client
        return client


def verify_image(
    ref: str | Reference,
    policy: Policy,
    *,
    client: RegistryClient | None = None,
    deadline: float = DEADLINE,
) -> Decision:
    """Decide whether `ref` may run under `policy`. Never raises for bad input or registries.

    `client` defaults to one per thread owned by the policy (anonymous or docker-config
    credentials, no blob cache: signature payloads are small and read into memory).
    `deadline` is the seconds all the registry requests of this call may take together;
    past it the image is "could not check" (denied, not cached).
    """
    text = str(ref)
    try:
        parsed = parse_reference(ref) if isinstance(ref, str) else ref
    except ImageReferenceError as exc:
        return Decision(False, f"invalid image reference: {exc.message}", text)
    rule = policy.rule_for(parsed)
    if rule is None:
        verdict = "allowed" if policy.default_allow else "denied"
        return Decision(
            policy.default_allow, f"no rule of {policy.source} matches; {verdict} by default", text
        )
    if rule.allow:
        return Decision(True, f"exempt by rule {rule.glob!r} (not verified)", text, rule=rule.glob)
    registry = client or policy.client()
    if parsed.digest is not None:
        # a digest the cache knows needs no registry: decided before its breaker is asked
        hit = policy.cache.get((rule.glob, parsed.repository, parsed.digest))
        if hit is not None:
            return replace(hit, image=text, cached=True)
    host = parsed.api_host
    queued = time.monotonic()
    refused = policy.breakers.enter(host, wait=deadline / 3)
    if refused is not None:
        return Decision(
            False, f"{_COULD_NOT_CHECK}: {refused}", text, parsed.digest, rule.glob, final=False
        )
    left = deadline - (time.monotonic() - queued)  # a wait for a slot counts against it
    heard = registry.answers()
    try:
        return _verify(registry, parsed, text, rule, policy, left)
    finally:
        policy.breakers.leave(host, answered=registry.answers() > heard)


def _verify(
    registry: RegistryClient,
    parsed: Reference,
    text: str,
    rule: ImageRule,
    policy: Policy,
    deadline: float,
) -> Decision:
    with registry.deadline(deadline) as bound:
        try:
            digest = parsed.digest or resolve(registry, parsed).digest
        except SkanseError as exc:
            return Decision(
                False, f"{_COULD_NOT_CHECK}: {exc.diagnostics()}", text, rule=rule.glob, final=False
            )
        key = (rule.glob, parsed.repository, digest)
        hit = policy.cache.get(key)
        if hit is not None:
            return replace(hit, image=text, cached=True)
        try:
            decision = _decide(registry, parsed, digest, rule, policy.limits)
        except SkanseError as exc:
            return Decision(
                False,
                f"{_COULD_NOT_CHECK}: {exc.diagnostics()}",
                text,
                digest,
                rule.glob,
                final=False,
            )
        except Exception as exc:  # a bug must deny, not admit; the reason names it
            return Decision(
                False,
                f"{_COULD_NOT_CHECK}: internal error {type(exc).__name__}: {exc}",
                text,
                digest,
                final=False,
            )
    if not decision.allowed and bound.passed():
        # requests the deadline cut short read as failures (a missing signature, an unread
        # place): the denial is the deadline's, not the registry's final word
        return replace(
            decision,
            reason=f"{_COULD_NOT_CHECK}: {deadline_problem(bound)} ({decision.reason})",
            image=text,
            final=False,
        )
    if not decision.allowed and not decision.final:
        # a signature place or payload could not be read (the registry unreachable, an
        # error status): the image may be signed, so this is not a rejection
        return replace(decision, reason=_unchecked(decision.reason), image=text)
    if decision.final:
        policy.cache.put(key, decision)
    return replace(decision, image=text)


def _unchecked(reason: str) -> str:
    """A denial that is not final, said as "could not check" first."""
    rest = reason.removeprefix("not verified: ")
    if rest.startswith(_COULD_NOT_CHECK):
        return rest
    return f"{_COULD_NOT_CHECK}: not everything could be read ({reason})"


def _decide(
    client: RegistryClient, ref: Reference, digest: str, rule: ImageRule, limits: Limits
) -> Decision:
    signatures = verify_signatures(
        client,
        ref,
        rule.keys,
        threshold=rule.threshold,
        require_reference=rule.require_reference,
        limits=limits,
        digest=digest,
        deadline=None,  # verify_image bounds the whole
    )
    if not signatures.verified:
        return Decision(
            False, signatures.reason, str(ref), digest, rule.glob, final=signatures.complete
        )
    for required in rule.attestations:
        attested = verify_attestations(
            client,
            ref,
            required.keys,
            required.predicate_type,
            threshold=required.threshold,
            limits=limits,
            digest=digest,
            deadline=None,
        )
        if not attested.verified:
            return Decision(
                False,
                attested.reason,
                str(ref),
                digest,
                rule.glob,
                signatures.verified_keys,
                final=attested.complete,
            )
    reason = signatures.reason
    if rule.attestations:
        reason += "; attestations verified: " + ", ".join(
            a.predicate_type for a in rule.attestations
        )
    return Decision(True, reason, str(ref), digest, rule.glob, signatures.verified_keys)


# --- loading ----------------------------------------------------------------------------


def _explain(exc: ValidationError, doc: YamlDocument) -> str:
    lines = []
    for error in exc.errors():
        loc = [p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        pointer = join_pointer("", *[p if isinstance(p, int) else str(p) for p in loc])
        where = ".".join(str(p) for p in loc) or "(top level)"
        lines.append(f"line {doc.position(pointer)[0]}: {where}: {error['msg']}")
    return "invalid image policy\n  " + "\n  ".join(lines)


def parse_policy(data: bytes, *, base_dir: Path, name: str = "<policy>") -> Policy:
    """A policy from YAML (or JSON) text; key paths are relative to `base_dir`."""
    if len(data) > _MAX_POLICY_BYTES:
        raise SignaturePolicyError("policy is over 1 MiB", path=name)
    try:
        items = list(load_documents(data, limits=YamlLimits(max_depth=20, max_nodes=100_000)))
    except YamlError as exc:
        raise SignaturePolicyError(f"invalid YAML: {exc.diagnostics()}", path=name) from None
    docs = []
    for item in items:
        if isinstance(item, YamlError):
            raise SignaturePolicyError(f"invalid YAML: {item.diagnostics()}", path=name)
        docs.append(item)
    if len(docs) != 1 or not isinstance(docs[0].data, dict):
        raise SignaturePolicyError("expected one YAML document, a mapping", path=name)
    try:
        parsed = _PolicyFile.model_validate(docs[0].data)
    except ValidationError as exc:
        raise SignaturePolicyError(_explain(exc, docs[0]), path=name) from None
    keys: dict[str, PublicKey] = {}
    for key_name, entry in parsed.keys.items():
        spec = _KeyEntry(path=entry) if isinstance(entry, str) else entry
        try:
            if spec.pem is not None:
                keys[key_name] = load_public_key(spec.pem.encode(), name=key_name)
            else:
                assert spec.path is not None
                keys[key_name] = replace(read_public_key(base_dir / spec.path), name=key_name)
        except KeyFileError as exc:
            raise SignaturePolicyError(
                f"key {key_name!r}: {exc.diagnostics()}", path=name
            ) from None

    def resolve_keys(names: list[str], where: str) -> tuple[PublicKey, ...]:
        unknown = [n for n in names if n not in keys]
        if unknown:
            raise SignaturePolicyError(
                f"{where} names undefined key(s) {', '.join(unknown)} "
                f"(defined: {', '.join(keys) or 'none'})",
                path=name,
            )
        return tuple(keys[n] for n in dict.fromkeys(names))

    rules = []
    for i, rule in enumerate(parsed.images):
        where = f"images[{i}] ({rule.glob})"
        rule_keys = resolve_keys(rule.keys, where)
        attestations = []
        for required in rule.attestations:
            try:
                predicate_type = predicate_type_for(required.type)
            except ValueError as exc:
                raise SignaturePolicyError(f"{where}: {exc}", path=name) from None
            attest_keys = (
                resolve_keys(required.keys, where) if required.keys is not None else rule_keys
            )
            if required.threshold > len(attest_keys):
                raise SignaturePolicyError(
                    f"{where}: attestation threshold {required.threshold} is more than its "
                    f"{len(attest_keys)} key(s)",
                    path=name,
                )
            attestations.append(
                RequiredAttestation(predicate_type, attest_keys, required.threshold)
            )
        rules.append(
            ImageRule(
                rule.glob,
                rule_keys,
                rule.threshold,
                rule.require_reference,
                tuple(attestations),
                rule.allow,
                glob_pattern(rule.glob),
            )
        )
    cache = DecisionCache(
        parsed.cache.size, ttl=parsed.cache.ttl, negative_ttl=parsed.cache.negative_ttl
    )
    registries = parsed.registries
    breakers = RegistryBreakers(
        BreakerSettings(
            registries.failures,
            registries.window,
            registries.cooldown,
            registries.per_host,
            queue_wait=registries.queue_wait,
        )
    )
    return Policy(tuple(rules), parsed.default == "allow", name, cache=cache, breakers=breakers)


def load_policy(path: str | Path) -> Policy:
    """Read an image policy file; `SignaturePolicyError` names the file and line."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_POLICY_BYTES + 1)
    except OSError as exc:
        raise SignaturePolicyError(f"cannot read: {exc.strerror or exc}", path=str(path)) from None
    return parse_policy(data, base_dir=path.parent, name=str(path))
