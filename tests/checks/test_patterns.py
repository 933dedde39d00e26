"""The checks' patterns: what they recognise, and that hostile text is judged at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from skanse.checks.secrets import GPG_FINGERPRINT
from skanse.scan import scan


@pytest.mark.parametrize(
    "value",
    [
        "A035C8C19219BA821ECEA86B64E628F8D684696D",  # python's GPG_KEY
        "0xA035C8C19219BA821ECEA86B64E628F8D684696D",
        "64E628F8D684696D",
        "A035C8C19219BA821ECEA86B64E628F8D684696D 7169605F62C751356D054A26A821E680E5FA6305",
        "A035C8C19219BA821ECEA86B64E628F8D684696D,7169605F62C751356D054A26A821E680E5FA6305",
        "64E628F8D684696D 0123456789ABCDEF,FEDCBA9876543210, 0123456789ABCDE",
    ],
)
def test_gpg_fingerprints_are_recognised(value: str) -> None:
    assert GPG_FINGERPRINT.match(value)


@pytest.mark.parametrize(
    "value",
    [
        "hunter2-Xy7q",
        "64E628F8D684696",  # 15 digits
        "64E628F8D684696D x",
        "64E628F8D684696D 0123",  # a group shorter than 16
        "64E628F8D684696D,,0123456789ABCDEF",
        # Reported: exponential backtracking over the spaces (150 took seconds); these would
        # never finish with `([ ,][0-9A-Fa-f ]{16,})*$`.
        "0123456789ABCDEF" + " " * 5_000 + "!",
        "0123456789ABCDEF" + " ," * 3_000 + "!",
        "0123456789ABCDEF" + ", " * 3_000 + "!",
    ],
)
def test_other_values_are_not_fingerprints(value: str) -> None:
    assert GPG_FINGERPRINT.match(value) is None


def test_a_hostile_chmod_mode_is_judged_at_once(tmp_path: Path) -> None:
    """`[ugoa]*[ao][ugoa]*` tried every split of a long mode word: 200,000 letters took
    minutes; a mode with an a or o and +w is still world-writable, one without is not."""
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        "FROM debian:12\n"
        f"RUN chmod {'a' * 200_000}+x /srv\n"
        f"RUN chmod {'u' * 100_000}+w /srv\n"
        "RUN chmod ugo+rwx /srv\n"
        "USER 1000\n"
    )
    result = scan([str(dockerfile)])
    flagged = [f.message for f in result.findings if f.check_id == "SKN-DF-011"]
    assert flagged == ["chmod ugo+rwx makes files world-writable"]


def test_a_run_repeating_gpg_is_judged_at_once(tmp_path: Path) -> None:
    """`gpg2?[^|;&]*--verify` restarted its scan at every "gpg" of a command: 100,000 of them
    took minutes. A verification in the same command still counts, one after a | does not."""
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        "FROM debian:12\n"
        f"RUN curl -o /a https://example.com/a && {'gpg ' * 100_000}\n"
        "RUN curl -o /b https://example.com/b && gpg --batch --verify /b.asc /b\n"
        "RUN curl -o /c https://example.com/c && gpg --batch /c.asc | grep --verify\n"
        "USER 1000\n"
    )
    result = scan([str(dockerfile)])
    flagged = [f.message for f in result.findings if f.check_id == "SKN-DF-008"]
    assert flagged == [
        "downloads https://example.com/a without verifying a checksum or signature",
        "downloads https://example.com/c without verifying a checksum or signature",
    ]


_POD = """\
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: ns}
spec:
  shareProcessNamespace: %s
  securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
  containers:
    - name: c
      image: registry.example/app:1
      securityContext:
        runAsUser: %s
        allowPrivilegeEscalation: false
        capabilities: {drop: [ALL]}
"""


@pytest.mark.parametrize(
    ("share", "uid", "check_id"),
    [("y", "10001", "SKN-K8S-031"), ("false", "0o0", "SKN-K8S-016"),
     ("false", "0e0", "SKN-K8S-016")],
)  # fmt: skip
def test_scalars_the_cluster_reads_as_true_or_root_are_flagged(
    tmp_path: Path, share: str, uid: str, check_id: str
) -> None:
    """Kubernetes reads `y` as true and `0o0` and `0e0` as 0 (go-yaml v2); PyYAML's typing
    kept them as text, which passed the checks for shareProcessNamespace and runAsUser=0."""
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(_POD % (share, uid))
    result = scan([str(manifest)])
    assert not result.problems
    assert check_id in {f.check_id for f in result.findings}


@pytest.mark.parametrize(
    ("user", "flagged"),
    [
        ("00", True),  # runc and containerd take a UID through strconv.Atoi: sign, zeros
        ("+0", True),
        ("-0", True),
        ("0000:10001", True),
        ("ro${EMPTY}ot", True),  # BuildKit expands the variable: `root`
        ("0${EMPTY}", True),
        ("root", True),
        ("10001", False),
        ("0x0", False),  # not a number to Atoi: a user name looked up in /etc/passwd
        ("app:0", False),
    ],
)
def test_a_user_the_runtime_reads_as_root_is_flagged(
    tmp_path: Path, user: str, flagged: bool
) -> None:
    """`USER 00` and `USER ro${EMPTY}ot` run as root; only "0" and a leading "$" were."""
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(f"FROM debian:12\nARG EMPTY=\nUSER {user}\n")
    result = scan([str(dockerfile)])
    assert ("SKN-DF-001" in {f.check_id for f in result.findings}) is flagged
