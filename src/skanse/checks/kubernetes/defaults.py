"""The values the zero-trust standard gives a workload, named once for every writer of them:
`skanse fix` (file edits), the mutating admission webhook (JSON patches) and the Dockerfile
fixes (`USER 10001:10001`). The checks in `zerotrust.py` accept any UID/GID >= 10000; this is
the one value the writers choose.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ALLOW_PRIVILEGE_ESCALATION",
    "DROP_CAPABILITIES",
    "ESCALATING_CAPABILITIES",
    "NON_ROOT_ID",
    "RUN_AS_NON_ROOT",
    "SECCOMP_PROFILE_TYPE",
    "SERVICE_ACCOUNT_MOUNT_PATH",
]

# UID and GID for workloads that do not name one (opt-in in the webhook: changing the user
# of an image can break file permissions inside it). At or above the zero-trust minimum.
NON_ROOT_ID: Final = 10001
SECCOMP_PROFILE_TYPE: Final = "RuntimeDefault"
DROP_CAPABILITIES: Final = ("ALL",)
ALLOW_PRIVILEGE_ESCALATION: Final = False
# Set only where a non-root user is known (runAsUser > 0 at pod or container level): on an
# image that runs as root, runAsNonRoot would stop the container from starting.
RUN_AS_NON_ROOT: Final = True
# Where the ServiceAccount admission plugin mounts the API token into every container.
SERVICE_ACCOUNT_MOUNT_PATH: Final = "/var/run/secrets/kubernetes.io/serviceaccount"
# allowPrivilegeEscalation: false is invalid next to these: API validation rejects the pod,
# so neither writer sets it on a container that adds one.
ESCALATING_CAPABILITIES: Final = frozenset({"SYS_ADMIN", "CAP_SYS_ADMIN"})
