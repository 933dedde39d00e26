"""The policy file: defaults, modes per namespace, exemptions, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from skanse.admission.images import ImageRule, normalize_image, repository_of
from skanse.admission.policy import Mode, load_policy
from skanse.errors import PolicyError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def test_full_policy(tmp_path: Path) -> None:
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
images:
  - image: "registry.example.com/**"
    keys: [release.pub]
unmatched-images: deny
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
    assert policy.images[0].keys == ("release.pub",)


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
        ("images:\n  - image: x\n    keys: []\n", "keys"),
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


@pytest.mark.parametrize(
    ("image", "normalized"),
    [
        ("nginx", "docker.io/library/nginx"),
        ("nginx:1.27", "docker.io/library/nginx:1.27"),
        ("bitnami/redis:7", "docker.io/bitnami/redis:7"),
        ("index.docker.io/library/nginx", "docker.io/library/nginx"),
        ("localhost:5000/app:1", "localhost:5000/app:1"),
        ("ghcr.io/org/app@sha256:" + "a" * 64, "ghcr.io/org/app@sha256:" + "a" * 64),
        (
            "registry.example.com:443/a/b:2@sha256:" + "c" * 64,
            "registry.example.com:443/a/b:2@sha256:" + "c" * 64,
        ),
    ],
)
def test_image_normalisation(image: str, normalized: str) -> None:
    assert normalize_image(image) == normalized


def test_image_rule_globs() -> None:
    one_level = ImageRule("registry.example.com/*", ("k",))
    any_level = ImageRule("registry.example.com/**", ("k",))
    assert one_level.matches("registry.example.com/app:1")
    assert not one_level.matches("registry.example.com/team/app:1")
    assert any_level.matches("registry.example.com/team/app@sha256:" + "d" * 64)
    assert not any_level.matches("registry.example.com.evil.io/app")
    assert ImageRule("docker.io/library/*", ("k",)).matches("nginx:latest")
    assert repository_of("localhost:5000/app:1") == "localhost:5000/app"
