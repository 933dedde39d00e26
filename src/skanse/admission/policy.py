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
    mutation:
      modes: [enforce]               # namespaces in these modes get secure defaults
      set-user: false                # also set runAsUser/runAsGroup 10001 where unset
    annotation-suppressions: all     # which checks ignore.skanse.io/<ID> may suppress:
                                     # all (as the CLI), none, or a list of ids and aliases

Suppressions (`ignore.skanse.io/<ID>` annotations and `.skanse.yaml` entries with expiry)
are honoured exactly as the CLI honours them; the `.skanse.yaml` is given with --config.
"""

from __future__ import annotations

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
        for item in value:
            namespace, slash, name = item.partition("/")
            if not (slash and namespace and name) or "/" in name:
                raise ValueError(f"{item!r} is not namespace/name")
        return value


class _Mutation(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    modes: list[Mode] = Field(default_factory=lambda: [Mode.ENFORCE])
    set_user: bool = Field(default=False, alias="set-user")


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
    mutation: _Mutation = Field(default_factory=_Mutation)
    annotation_suppressions: Literal["all", "none"] | list[str] = Field(
        default="all", alias="annotation-suppressions"
    )


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
    mutation: MutationSettings = MutationSettings()
    own_namespace: str | None = None
    # Check ids an `ignore.skanse.io/<ID>` annotation may suppress (None: every check). Whoever
    # may create a Pod may annotate it, so a cluster can keep the annotation for low-stakes
    # checks and require `.skanse.yaml` entries (owned by the platform team) for the rest.
    annotation_suppressions: frozenset[str] | None = None
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
    annotation_ids: frozenset[str] | None = (
        None if allowed == "all" else frozenset() if allowed == "none" else frozenset(allowed)
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
        mutation=MutationSettings(frozenset(parsed.mutation.modes), parsed.mutation.set_user),
        annotation_suppressions=annotation_ids,
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
