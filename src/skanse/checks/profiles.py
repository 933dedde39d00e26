"""Profiles: which checks a scan runs.

`pss-baseline` and `pss-restricted` are the Pod Security Standards at a policy version;
`zero-trust` (the default) is restricted plus skanse's own standard. `--pss LEVEL@VERSION`
picks the level and version of the PSS part of any profile.
"""

from __future__ import annotations

import enum
from typing import Any, assert_never

from skanse.checks._registry import Check, Registry
from skanse.checks.kubernetes.base import PROFILE_PSS_BASELINE, PROFILE_PSS_RESTRICTED, ZERO_TRUST
from skanse.checks.kubernetes.pss import controls_for
from skanse.checks.kubernetes.pss_policy import BASELINE, RESTRICTED, PSSPolicy
from skanse.model import CheckMeta

__all__ = ["Profile", "default_pss_level", "profiles_of", "select_checks"]


class Profile(enum.StrEnum):
    PSS_BASELINE = PROFILE_PSS_BASELINE
    PSS_RESTRICTED = PROFILE_PSS_RESTRICTED
    ZERO_TRUST = ZERO_TRUST


def default_pss_level(profile: Profile) -> str:
    """The PSS level a profile implies when --pss does not say."""
    match profile:
        case Profile.PSS_BASELINE:
            return BASELINE
        case Profile.PSS_RESTRICTED | Profile.ZERO_TRUST:
            return RESTRICTED
        case _:
            assert_never(profile)


def select_checks(registry: Registry, profile: Profile, pss: PSSPolicy) -> list[Check[Any, Any]]:
    """The checks of `profile`, with the PSS controls PSA runs at `pss` (level and version)."""
    active_controls = {control.id for control, _ in controls_for(pss)}
    selected = []
    for check in registry.all():
        meta = check.meta
        if meta.pss_control is not None:
            if meta.pss_control in active_controls:
                selected.append(check)
        elif profile.value in meta.profiles:
            selected.append(check)
    return selected


def profiles_of(meta: CheckMeta) -> set[str]:
    """The profiles that run a check (PSS controls: every profile at or above their level)."""
    if meta.pss_level == BASELINE:
        return {p.value for p in Profile}
    if meta.pss_level == RESTRICTED:
        return {Profile.PSS_RESTRICTED.value, Profile.ZERO_TRUST.value}
    return set(meta.profiles)
