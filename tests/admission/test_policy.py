"""The policy file: defaults, modes per namespace, exemptions, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from skanse.admission.policy import Mode, load_policy
from skanse.errors import PolicyError
from tests.signing.helpers import new_key


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def test_full_policy(tmp_path: Path) -> None:
    key = new_key()
    (tmp_path / "release.pub").write_bytes(key.public_key().pem())
    (tmp_path / "images.yaml").write_text(
        "apiVersion: skanse.io/v1alpha1\nkind: ImagePolicy\nkeys: {release: release.pub}\n"
        'images:\n  - glob: "registry.example.com/**"\n    keys: [release]\n'
    )
    policy = load_policy(
        write(
            tmp_path,
            """
profile: pss-baseline
mode: warn
fail-on: high
namespaces:
  prod: enforce
  "sandbox-*": audit
exempt:
  namespaces: [monitoring]
  users: [system:admin]
  groups: [break-glass]
image-policy: images.yaml
mutation:
  modes: [enforce, warn]
  set-user: true
""",
        )
    )
    assert policy.profile.value == "pss-baseline" and str(policy.pss) == "baseline@latest"
    assert policy.mode_for("prod") is Mode.ENFORCE
    assert policy.mode_for("sandbox-3") is Mode.AUDIT
    assert policy.mode_for("other") is Mode.WARN
    assert policy.fail_on is not None and policy.fail_on.value == "HIGH"
    assert policy.exemption("monitoring", "x", ()) == "namespace monitoring is exempt"
    assert policy.exemption("prod", "system:admin", ()) == "user system:admin is exempt"
    assert policy.exemption("prod", "bob", ("break-glass",)) == "group break-glass is exempt"
    assert policy.exemption("prod", "bob", ()) is None
    assert policy.mutation.set_user and Mode.WARN in policy.mutation.modes
    assert policy.image_policy is not None
    assert [rule.glob for rule in policy.image_policy.rules] == ["registry.example.com/**"]


def test_exact_namespace_wins_over_glob(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, 'namespaces:\n  "team-*": audit\n  team-a: enforce\n'))
    assert policy.mode_for("team-a") is Mode.ENFORCE and policy.mode_for("team-b") is Mode.AUDIT


def test_empty_file_is_the_defaults(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, "# nothing\n"))
    assert policy.profile.value == "zero-trust" and policy.default_mode is Mode.ENFORCE


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("mode: block\n", "line 1: mode"),
        ("profile: strict\n", "profile"),
        ("pss: restricted@v2.0\n", "pss:"),
        ("fail-on: severe\n", "fail-on"),
        ("surprise: 1\n", "surprise"),
        ("exempt:\n  service-accounts: [deployer]\n", "namespace/name"),
        ("image-policy: missing.yaml\n", "image-policy:"),
        ("- a\n- b\n", "mapping"),
        ("a: [\n", "invalid YAML"),
        ("a: 1\n---\nb: 2\n", "one YAML document"),
    ],
)
def test_bad_policy_files_name_the_problem(tmp_path: Path, text: str, phrase: str) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy(write(tmp_path, text))
    assert phrase in caught.value.diagnostics()
    assert str(tmp_path / "policy.yaml") in caught.value.diagnostics()


def test_missing_and_huge_policy_files(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "absent.yaml")
    big = write(tmp_path, "a: " + "x" * (1024 * 1024 + 1) + "\n")
    with pytest.raises(PolicyError, match="limit is 1 MiB"):
        load_policy(big)
