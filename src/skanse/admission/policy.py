"""The webhook's policy file: which checks, in which mode per namespace, and who is exempt.

    # skanse-admission.yaml (skanse admission serve --policy FILE)
    profile: zero-trust              # pss-baseline | pss-restricted | zero-trust
    pss: restricted@latest           # level and policy version of the Pod Security part
    mode: enforce                    # enforce denies, warn allows with warnings,
                                     # audit allows with audit annotations
    fail-on: low                     # only findings at or above deny (the rest warn);
                                     # default: every finding denies, as `skanse scan`
    namespaces:                      # mode per namespace: exact names or globs
      legacy: warn
      "sandbox-*": audit
    exempt:                          # kube-system and the webhook's namespace always are
      namespaces: [monitoring]
      users: ["system:admin"]
      service-accounts: ["ci/deployer"]   # namespace/name
      groups: []
    enable: [SKN-K8S-099]            # opt-in checks, as in `skanse scan`
    disable: []
    image-policy: image-policy.yaml  # image signatures: skanse.signing's ImagePolicy file
                                     # (globs -> keys, thresholds, attestations, default);
                                     # a path relative to this file
    pin-digests: true                # /mutate rewrites an image whose tag a signature rule
                                     # verified to tag@digest, the digest verified (in
                                     # enforce namespaces and those mutation.modes lists)
    require-digests: true            # /validate denies such an image left as a tag: the
                                     # tag can be re-pushed after the check
    mutation:
      modes: [enforce]               # namespaces in these modes get secure defaults
      set-user: false                # also set runAsUser/runAsGroup 10001 where unset
    annotation-suppressions: none    # which checks an ignore.skanse.io/<ID> annotation
                                     # may suppress: none (the default) or a list of ids
                                     # and aliases; never every check
    exceptions:                      # owned by whoever owns this file (the ConfigMap),
      - name: legacy-db-hostpath     # never by pod authors
        reason: "the 2019 database reads the host's disk; moved by TICKET-123"
        checks: [SKN-K8S-005]        # ids or aliases; at least one
        namespaces: [legacy]         # names or globs; "*" must be said explicitly
        workloads: [StatefulSet/db, "Pod/db-*"]   # optional: Kind/name (name globs)
        expires: 2027-01-31          # required; from the day after it no longer applies

Who may create a Pod may annotate it, so annotations decide nothing unless the policy lists
the checks they may suppress. Exceptions live in the policy instead, with a reason, a
scope and an expiry, like Kyverno's PolicyException; an expired exception stops applying and
every answer it would have covered says so. `.skanse.yaml` suppressions (given with
--config) apply too, as in the CLI.
"""

from __future__ import annotations

import datetime as dt
import enum
import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from skanse.checks.kubernetes.pss_policy import PSSPolicy, parse_policy
from skanse.checks.profiles import Profile, default_pss_level
from skanse.config import read_settings_file
from skanse.errors import PolicyError, SkanseError
from skanse.model import Severity
from skanse.signing.policy import Policy as ImagePolicy
from skanse.signing.policy import load_policy as load_image_policy

__all__ = [
    "ALWAYS_EXEMPT",
    "Mode",
    "MutationSettings",
    "Policy",
    "PolicyException",
    "PolicyFile",
    "load_policy",
]

# Namespaces the webhook never checks: the control plane's, and (added at load) its own, so a
# broken policy can never lock out the components that would repair it.
ALWAYS_EXEMPT = frozenset({"kube-system"})


class Mode(enum.StrEnum):
    ENFORCE = "enforce"  # deny what fails
    WARN = "warn"  # allow, with warnings the client sees
    AUDIT = "audit"  # allow, with audit annotations in the API server's audit log


class _Exempt(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    namespaces: list[str] = Field(default_factory=list)
    users: list[str] = Field(default_factory=list)
    service_accounts: list[str] = Field(default_factory=list, alias="service-accounts")
    groups: list[str] = Field(default_factory=list)

    @field_validator("service_accounts")
    @classmethod
    def _namespace_slash_name(cls, value: list[str]) -> list[str]:
        return _pairs(value, "namespace/name")


def _pairs(value: list[str], form: str) -> list[str]:
    """`value` if every item is two non-empty parts around one slash; else a ValueError."""
    for item in value:
        first, slash, second = item.partition("/")
        if not (slash and first and second) or "/" in second:
            raise ValueError(f"{item!r} is not {form}")
    return value


class _Mutation(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    modes: list[Mode] = Field(default_factory=lambda: [Mode.ENFORCE])
    set_user: bool = Field(default=False, alias="set-user")


class _Exception(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    name: str = Field(min_length=1, max_length=253)
    reason: str = Field(min_length=1)
    checks: list[str] = Field(min_length=1)
    namespaces: list[str] = Field(min_length=1)
    workloads: list[str] = Field(default_factory=list)
    expires: dt.date

    @field_validator("reason")
    @classmethod
    def _says_something(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("an exception needs a reason")
        return value.strip()

    @field_validator("checks")
    @classmethod
    def _no_wildcard(cls, value: list[str]) -> list[str]:
        if any(v.strip() in ("*", "all") for v in value):
            raise ValueError("name the checks an exception covers; a wildcard is not accepted")
        return [v.strip() for v in value]

    @field_validator("workloads")
    @classmethod
    def _kind_slash_name(cls, value: list[str]) -> list[str]:
        return _pairs(value, "Kind/name (a name glob is allowed)")


class PolicyFile(BaseModel):
    """The schema of the admission policy file."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    profile: Profile = Profile.ZERO_TRUST
    pss: str | None = None
    mode: Mode = Mode.ENFORCE
    fail_on: str | None = Field(default=None, alias="fail-on")
    namespaces: dict[str, Mode] = Field(default_factory=dict)
    exempt: _Exempt = Field(default_factory=_Exempt)
    enable: list[str] = Field(default_factory=list)
    disable: list[str] = Field(default_factory=list)
    image_policy: str | None = Field(default=None, alias="image-policy")
    pin_digests: bool = Field(default=True, alias="pin-digests")
    require_digests: bool = Field(default=True, alias="require-digests")
    mutation: _Mutation = Field(default_factory=_Mutation)
    annotation_suppressions: Literal["none"] | list[str] = Field(
        default="none", alias="annotation-suppressions"
    )
    exceptions: list[_Exception] = Field(default_factory=list)

    @field_validator("annotation_suppressions", mode="before")
    @classmethod
    def _not_all(cls, value: object) -> object:
        if value == "all":
            raise ValueError(
                "'all' would let every pod author exempt their pod from every check with an "
                "annotation; list the check ids annotations may suppress, or use exceptions"
            )
        return value


@dataclass(frozen=True, slots=True)
class PolicyException:
    """Findings of `checks` on matching objects are accepted, for `reason`, until `expires`."""

    name: str
    reason: str
    checks: frozenset[str]  # ids and aliases as written; resolved by the evaluator
    namespaces: tuple[str, ...]
    workloads: tuple[tuple[str, str], ...] = ()  # (kind, name glob); empty: every object
    expires: dt.date | None = None

    def covers(self, namespace: str, kind: str, name: str) -> bool:
        """Whether the exception's scope holds the object `kind/name` in `namespace`."""
        if not any(_matches(p, namespace) for p in self.namespaces):
            return False
        if not self.workloads:
            return True
        return any(k == kind and _matches(n, name) for k, n in self.workloads)


@dataclass(frozen=True, slots=True)
class MutationSettings:
    modes: frozenset[Mode] = frozenset({Mode.ENFORCE})
    set_user: bool = False


@dataclass(frozen=True, slots=True)
class Policy:
    """A validated policy, ready for the webhook (the defaults are a sane zero-trust setup)."""

    profile: Profile = Profile.ZERO_TRUST
    pss: PSSPolicy = field(default_factory=lambda: parse_policy("restricted"))
    default_mode: Mode = Mode.ENFORCE
    # (pattern, mode) in file order; exact names are looked up before globs
    namespace_modes: tuple[tuple[str, Mode], ...] = ()
    fail_on: Severity | None = None
    enable: frozenset[str] = frozenset()
    disable: frozenset[str] = frozenset()
    exempt_namespaces: frozenset[str] = ALWAYS_EXEMPT
    exempt_users: frozenset[str] = frozenset()
    exempt_groups: frozenset[str] = frozenset()
    # image signature rules (None: images are not verified)
    image_policy: ImagePolicy | None = None
    # Kyverno's mutateDigest and verifyDigest: a signature verified for a tag holds for the
    # digest the tag named then, not for what is pushed to it later
    pin_digests: bool = True
    require_digests: bool = True
    mutation: MutationSettings = MutationSettings()
    own_namespace: str | None = None
    # Check ids an `ignore.skanse.io/<ID>` annotation may suppress (None: every check, as the
    # CLI; only for programmatic use). Whoever may create a Pod may annotate it, so by default
    # none: a cluster keeps the annotation for low-stakes checks at most, and puts the rest
    # in `exceptions`, which only the policy's owner can write.
    annotation_suppressions: frozenset[str] | None = frozenset()
    exceptions: tuple[PolicyException, ...] = ()
    source: str = "built-in defaults"

    def mode_for(self, namespace: str) -> Mode:
        """The mode of `namespace`: its exact entry, else the first glob that matches."""
        for pattern, mode in self.namespace_modes:
            if pattern == namespace:
                return mode
        for pattern, mode in self.namespace_modes:
            if _is_glob(pattern) and fnmatch.fnmatchcase(namespace, pattern):
                return mode
        return self.default_mode

    def exemption(self, namespace: str, username: str, groups: tuple[str, ...]) -> str | None:
        """Why a request is exempt from checks, or None when it is not."""
        for pattern in self.exempt_namespaces:
            if pattern == namespace or (
                _is_glob(pattern) and fnmatch.fnmatchcase(namespace, pattern)
            ):
                return f"namespace {namespace} is exempt"
        if username and username in self.exempt_users:
            return f"user {username} is exempt"
        for group in groups:
            if group in self.exempt_groups:
                return f"group {group} is exempt"
        return None

    def with_own_namespace(self, namespace: str | None) -> Policy:
        """This policy with the webhook's own namespace exempt (it must be able to restart)."""
        if not namespace:
            return self
        import dataclasses

        return dataclasses.replace(
            self,
            own_namespace=namespace,
            exempt_namespaces=self.exempt_namespaces | {namespace},
        )


def _is_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def _matches(pattern: str, value: str) -> bool:
    return pattern == value or (_is_glob(pattern) and fnmatch.fnmatchcase(value, pattern))


def policy_from_file(parsed: PolicyFile, source: str, base_dir: Path | None = None) -> Policy:
    """Turn the validated file into a Policy; raises ValueError naming the bad setting."""
    pss_text = parsed.pss or default_pss_level(parsed.profile)
    try:
        pss = parse_policy(pss_text)
    except ValueError as exc:
        raise ValueError(f"pss: {exc}") from None
    try:
        fail_on = Severity.parse(parsed.fail_on) if parsed.fail_on else None
    except ValueError as exc:
        raise ValueError(f"fail-on: {exc}") from None
    allowed = parsed.annotation_suppressions
    annotation_ids = frozenset() if allowed == "none" else frozenset(allowed)
    from skanse.checks._all import REGISTRY

    for entry in parsed.exceptions:
        unknown = [c for c in entry.checks if not REGISTRY.resolve(c)]
        if unknown:
            raise ValueError(f"exception {entry.name!r}: unknown check {', '.join(unknown)}")
    exceptions = tuple(
        PolicyException(
            name=e.name,
            reason=e.reason,
            checks=frozenset(e.checks),
            namespaces=tuple(e.namespaces),
            workloads=tuple(
                (kind, name) for kind, _, name in (w.partition("/") for w in e.workloads)
            ),
            expires=e.expires,
        )
        for e in parsed.exceptions
    )
    users = set(parsed.exempt.users)
    for account in parsed.exempt.service_accounts:
        namespace, _, name = account.partition("/")
        users.add(f"system:serviceaccount:{namespace}:{name}")
    return Policy(
        profile=parsed.profile,
        pss=pss,
        default_mode=parsed.mode,
        namespace_modes=tuple(parsed.namespaces.items()),
        fail_on=fail_on,
        enable=frozenset(i.strip() for i in parsed.enable),
        disable=frozenset(i.strip() for i in parsed.disable),
        exempt_namespaces=ALWAYS_EXEMPT | frozenset(parsed.exempt.namespaces),
        exempt_users=frozenset(users),
        exempt_groups=frozenset(parsed.exempt.groups),
        image_policy=_image_policy(parsed.image_policy, base_dir or Path.cwd()),
        pin_digests=parsed.pin_digests,
        require_digests=parsed.require_digests,
        mutation=MutationSettings(frozenset(parsed.mutation.modes), parsed.mutation.set_user),
        annotation_suppressions=annotation_ids,
        exceptions=exceptions,
        source=source,
    )


def _image_policy(name: str | None, base_dir: Path) -> ImagePolicy | None:
    if name is None:
        return None
    try:
        return load_image_policy(base_dir / name)
    except SkanseError as exc:
        raise ValueError(f"image-policy: {exc.diagnostics()}") from None


def load_policy(path: Path) -> Policy:
    """Read and validate a policy file; any problem is a PolicyError naming file and line."""
    parsed, _ = read_settings_file(path, PolicyFile, what="policy file", error=PolicyError)
    try:
        return policy_from_file(parsed, str(path), path.parent)
    except ValueError as exc:
        raise PolicyError(str(exc), path=str(path)) from None
