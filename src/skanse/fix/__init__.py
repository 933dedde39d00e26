"""`skanse fix`: rewrite manifests and Dockerfiles into the zero-trust standard.

Fixes are driven by findings: the scan runs with the same settings and suppressions as
`skanse scan`, and every unsuppressed finding of a check that has a fix is fixed in the file
it was found in. Each edit is attached to the check it resolves; `CheckMeta.fixable` says
whether a check's fix resolves all of its findings. One module per input kind:
`kubernetes` + `manifests` (ruamel.yaml round-trip edits), `dockerfile` (line edits),
`netpol` (new default-deny NetworkPolicies); `engine` ties them to the scan and writes.
"""

from skanse.fix.engine import FixOptions, has_fix, is_complete, plan_fixes, write_fixes
from skanse.fix.model import Change, Declined, FileFix, FixReport

__all__ = [
    "Change",
    "Declined",
    "FileFix",
    "FixOptions",
    "FixReport",
    "has_fix",
    "is_complete",
    "plan_fixes",
    "write_fixes",
]
