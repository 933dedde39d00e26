"""`skanse host audit` on the container engines installed here: Debian's podman
(containers-common) and containerd packages, with their shipped configuration, and a hardened
variant of those same files (copied into a root of their own, then changed as an operator
would)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

INSTALLED = {
    "containers.conf": Path("/usr/share/containers/containers.conf"),
    "registries.conf": Path("/etc/containers/registries.conf"),
    "seccomp.json": Path("/usr/share/containers/seccomp.json"),
    "config.toml": Path("/etc/containerd/config.toml"),
}
ENGINE_CHECKS = {"SKN-HOST-080", "SKN-HOST-087", "SKN-HOST-088", "SKN-HOST-089"}


def _installed() -> None:
    for name, path in INSTALLED.items():
        if not path.is_file():
            pytest.skip(f"{path} is missing: podman and containerd are not installed ({name})")


def _findings(cli, root: str) -> dict[str, list[dict[str, Any]]]:
    run = cli("host", "audit", "--no-config", "--root", root, "-f", "json", "--exit-zero")
    assert run.code == 0, run.stderr
    found: dict[str, list[dict[str, Any]]] = {}
    for finding in json.loads(run.stdout)["findings"]:
        if finding["check_id"] in ENGINE_CHECKS:
            found.setdefault(finding["check_id"], []).append(finding)
    return found


def _copy_installed(root: Path) -> None:
    for path in INSTALLED.values():
        target = root / path.relative_to("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    for binary in ("/usr/bin/podman", "/usr/bin/containerd"):
        (root / binary.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (root / binary.lstrip("/")).write_text("")


def test_installed_defaults(cli) -> None:
    """Debian's defaults: containers share the host's user namespace (podman) and pods
    without a profile run unconfined (containerd); capabilities, seccomp and registries
    are fine."""
    _installed()
    found = _findings(cli, "/")
    assert set(found) == {"SKN-HOST-080", "SKN-HOST-088"}, found
    assert found["SKN-HOST-088"][0]["location"]["file"] == str(INSTALLED["containers.conf"])
    assert found["SKN-HOST-080"][0]["location"]["file"] == str(INSTALLED["config.toml"])


def test_hardened_variant_of_the_installed_files(cli, tmp_path: Path) -> None:
    _installed()
    _copy_installed(tmp_path)
    dropins = tmp_path / "etc/containers/containers.conf.d"
    dropins.mkdir(parents=True)
    (dropins / "50-zero-trust.conf").write_text('[containers]\nuserns = "auto"\n')
    config = tmp_path / "etc/containerd/config.toml"
    text = config.read_text()
    section = '[plugins."io.containerd.grpc.v1.cri"]\n'
    assert section in text
    config.write_text(
        text.replace(section, section + '    unset_seccomp_profile = "runtime/default"\n', 1)
    )
    assert _findings(cli, str(tmp_path)) == {}


def test_weakened_variant_is_caught_in_the_file_that_weakens_it(cli, tmp_path: Path) -> None:
    _installed()
    _copy_installed(tmp_path)
    dropins = tmp_path / "etc/containers/containers.conf.d"
    dropins.mkdir(parents=True)
    (dropins / "90-debug.conf").write_text(
        '[containers]\ndefault_capabilities = ["CHOWN", "NET_RAW", "SYS_ADMIN"]\n'
        'seccomp_profile = "unconfined"\n'
    )
    registries = tmp_path / "etc/containers/registries.conf.d"
    registries.mkdir(parents=True)
    (registries / "50-lab.conf").write_text(
        '[[registry]]\nlocation = "registry.lab:5000"\ninsecure = true\n'
    )
    found = _findings(cli, str(tmp_path))
    messages = [f["message"] for f in found["SKN-HOST-087"]]
    assert any("NET_RAW, SYS_ADMIN" in m for m in messages), messages
    assert any("unconfined" in m for m in messages), messages
    assert {f["location"]["file"] for f in found["SKN-HOST-087"]} == {
        "/etc/containers/containers.conf.d/90-debug.conf"
    }
    [insecure] = found["SKN-HOST-089"]
    assert "registry.lab:5000" in insecure["message"]
    assert insecure["location"]["file"] == "/etc/containers/registries.conf.d/50-lab.conf"
