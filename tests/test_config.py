"""`.skanse.yaml`: discovery, validation with line numbers, and suppression matching."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest

from skanse.checks._all import REGISTRY
from skanse.config import find_config, load_config, parse_severities
from skanse.errors import ConfigError
from skanse.model import CheckID, Finding, Location, ResourceRef, Severity


def test_found_upward_but_not_beyond_the_repository_root(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    deep = repo / "deploy" / "prod"
    deep.mkdir(parents=True)
    (repo / ".git").mkdir()
    (tmp_path / ".skanse.yaml").write_text("profile: pss-baseline\n")  # outside the repo
    assert find_config(deep) is None
    (repo / ".skanse.yml").write_text("profile: zero-trust\n")
    assert find_config(deep / "app.yaml") == repo / ".skanse.yml"


def test_invalid_settings_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / ".skanse.yaml"
    path.write_text(
        "profile: zero-trust\nsuppressions:\n  - id: SKN-K8S-002\n    paths: [a]\n"
        "  - id: SKN-K8S-001\n    reason: ok\n    expire: 2027-01-01\n"
    )
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    text = raised.value.diagnostics()
    assert str(path) in text
    assert "line 3: suppressions.0.reason: Field required" in text
    assert "line 7: suppressions.1.expire: Extra inputs are not permitted" in text


def test_blank_reason_is_refused(tmp_path: Path) -> None:
    path = tmp_path / ".skanse.yaml"
    path.write_text("suppressions:\n  - {id: SKN-K8S-001, reason: '   '}\n")
    with pytest.raises(ConfigError, match="reason must say why"):
        load_config(path)


def test_hostile_config_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / ".skanse.yaml"
    path.write_text(
        "a: &a [1,1,1,1,1,1,1,1,1,1]\n"
        + "".join(
            f"{c}: &{c} [" + ",".join([f"*{p}"] * 10) + "]\n"
            for p, c in zip("abcdef", "bcdefg", strict=True)
        )
    )
    with pytest.raises(ConfigError, match="alias expansion bomb"):
        load_config(path)


def _finding(file: str, check: str = "SKN-K8S-027", name: str = "api") -> Finding:
    return Finding(
        check_id=CheckID(check),
        severity=Severity.LOW,
        title="t",
        message="m",
        location=Location(file=file, line=3),
        resource=ResourceRef("Deployment", name, "web"),
    )


def test_suppression_matches_id_alias_paths_and_resource(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".skanse.yaml").write_text(
        "suppressions:\n"
        "  - id: CKV_K8S_43\n    paths: ['legacy/**']\n"
        "    resource: {kind: Deployment, name: api}\n"
        "    reason: pinned by the pipeline\n    expires: 2027-03-31\n"
    )
    (entry,) = load_config(tmp_path / ".skanse.yaml").suppressions
    assert entry.origin.endswith(".skanse.yaml:2")
    assert entry.expires == dt.date(2027, 3, 31)
    resolve = REGISTRY.resolve
    assert entry.matches(_finding("legacy/app/deploy.yaml"), resolve)
    assert not entry.matches(_finding("current/deploy.yaml"), resolve)
    assert not entry.matches(_finding("legacy/deploy.yaml", name="other"), resolve)
    assert not entry.matches(_finding("legacy/deploy.yaml", check="SKN-K8S-026"), resolve)
    assert not entry.matches(_finding("<stdin>"), resolve)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("high", {Severity.CRITICAL, Severity.HIGH}),
        ("Medium", {Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM}),
        ("critical,LOW", {Severity.CRITICAL, Severity.LOW}),
        ("info", set(Severity)),
    ],
)
def test_severities_in_any_case(text: str, expected: set[Severity]) -> None:
    assert parse_severities(text) == expected


def test_unknown_severity_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown severity 'hgh'.*critical, high"):
        parse_severities("hgh")


def test_a_config_owned_by_another_user_is_not_trusted(cli, tmp_path: Path, monkeypatch) -> None:
    """A .skanse.yaml planted above the scanned path by another user suppressed findings."""
    if os.geteuid() != 0:
        pytest.skip("giving a file to another user needs root")
    planted = tmp_path / ".skanse.yaml"
    planted.write_text("suppressions:\n  - id: SKN-K8S-002\n    reason: planted\n")
    os.chown(planted, 65534, 65534)
    work = tmp_path / "work"
    work.mkdir()
    (work / "pod.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n"
        "  - name: a\n    image: a:1\n    securityContext: {privileged: true}\n"
    )
    monkeypatch.chdir(work)
    run = cli("scan", str(work), "-f", "json")
    findings = json.loads(run.stdout)["findings"]
    privileged = [f for f in findings if f["check_id"] == "SKN-K8S-002"]
    assert privileged and privileged[0]["suppression"] is None
    assert f"warning: {planted} is owned by another user; not used" in run.stderr
    os.chown(planted, 0, 0)
    trusted = json.loads(cli("scan", str(work), "-f", "json").stdout)["findings"]
    assert next(f for f in trusted if f["check_id"] == "SKN-K8S-002")["suppression"]


@pytest.mark.parametrize(
    ("pattern", "purl", "covered"),
    [
        # PyPI (PEP 503) and crates.io fold names as their registries do ...
        ("pkg:pypi/Foo.Bar", "pkg:pypi/foo-bar@1.0", True),
        ("pkg:pypi/foo_bar@1.0", "pkg:pypi/foo-bar@1.0", True),
        ("pkg:cargo/foo_bar", "pkg:cargo/foo-bar@1.0", True),
        ("pkg:npm/Left-Pad", "pkg:npm/left-pad@1.0", True),
        # ... where other registries hold different packages under such names
        ("pkg:npm/lodash.merge", "pkg:npm/lodash-merge@4.6.1", False),
        ("pkg:npm/lodash_merge", "pkg:npm/lodash-merge@4.6.1", False),
        ("pkg:maven/org.example/bar.baz", "pkg:maven/org.example/bar-baz@1.0", False),
        ("pkg:golang/github.com/x/y.v2", "pkg:golang/github.com/x/y-v2@v1.0.0", False),
        ("pkg:deb/debian/libfoo.1", "pkg:deb/debian/libfoo-1@1.0", False),
        ("pkg:pypi/requests@2.19.0", "pkg:pypi/requests@2.20.0", False),
    ],
)
def test_a_purl_suppression_covers_only_the_package_its_ecosystem_names(
    tmp_path: Path, pattern: str, purl: str, covered: bool
) -> None:
    config = tmp_path / ".skanse.yaml"
    config.write_text(f"suppressions:\n  - id: '*'\n    purl: '{pattern}'\n    reason: reviewed\n")
    (entry,) = load_config(config).suppressions
    finding = Finding(
        check_id=CheckID("CVE-2099-1"),
        severity=Severity.HIGH,
        title="t",
        message="m",
        location=Location(file="/evidence", line=1),
        resource=ResourceRef("package", purl),
    )
    assert entry.matches(finding, lambda i: [CheckID(i)]) is covered
