"""What a literal secret looks like, shared by the Dockerfile and Kubernetes checks.

A value is judged by its name and its format together: a known token format (AWS, GitHub,
GitLab, Slack, Stripe, Google, npm, PyPI, private keys, credentials in URLs) is a secret
whatever it is called; a secret-like name (PASSWORD, TOKEN, API_KEY...) with a literal value
is one; a GPG key fingerprint is public (official images set GPG_KEY to one).
"""

from __future__ import annotations

import re

__all__ = ["GPG_FINGERPRINT", "SECRET_NAME", "TOKEN_FORMATS"]

SECRET_NAME = re.compile(
    r"(PASS(WORD|WD)?|SECRET|TOKEN|(API|ACCESS|PRIVATE|SECRET|AUTH|CLIENT)_?KEY|CREDENTIALS?|"
    r"AUTH)$|^(AWS_SECRET|GITHUB_TOKEN|NPM_TOKEN|PYPI_TOKEN)",
    re.IGNORECASE,
)
TOKEN_FORMATS = re.compile(
    r"AKIA[0-9A-Z]{16}|ASIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,}|"
    r"glpat-[A-Za-z0-9_\-]{20,}|xox[abposr]-[A-Za-z0-9-]{10,}|sk_live_[A-Za-z0-9]{20,}|"
    r"AIza[0-9A-Za-z\-_]{35}|-----BEGIN [A-Z ]*PRIVATE KEY-----|npm_[A-Za-z0-9]{36}|"
    r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{50,}|://[^/\s:@]+:[^/\s@]+@"
)
# One or more fingerprints: a 40- or 16-digit head, then groups of 16 or more hex digits and
# spaces, each after a space or a comma. Written so that no character can be taken by two
# quantifiers: `([ ,][0-9A-Fa-f ]{16,})*` let a run of spaces be split between separators
# and groups in exponentially many ways, and a secret-named env value of "<16 hex digits>"
# and a few hundred spaces then froze the webhook. A space-led group swallows every later
# space, so at most one comes before the first comma; each comma starts the next group.
# Possessive quantifiers keep a failed match from retrying shorter groups.
GPG_FINGERPRINT = re.compile(
    r"^(0x)?([0-9A-Fa-f]{40}|[0-9A-Fa-f]{16})( [0-9A-Fa-f ]{16,}+)?(,[0-9A-Fa-f ]{16,}+)*+$"
)
