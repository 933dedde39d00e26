"""Broken, hostile and huge host trees, each audited by a real `skanse host audit` process
under hard limits (20 s, 1 GiB of address space).

Every case keeps one healthy sysctl next to the bad input: the bad part is reported per check
as "could not check" with its reason, never as a pass, and the other checks still run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests._nobody import NobodyPython
from tests.conftest import TIME_CAP, run_capped_json

from .trees import materialize

KUBELET = {"processes": {"50": ["/usr/bin/kubelet", "--config=/etc/kubelet.yaml"]}}


def host_audit(root: Path, *extra: str) -> tuple[int, dict]:
    return run_capped_json("host", "audit", "--no-config", "--root", str(root), *extra)


def _tree(tmp_path: Path, spec: dict, extra: Callable[[Path], None] | None = None) -> Path:
    base = {"files": {"/proc/sys/kernel/dmesg_restrict": "1"}}
    merged = {**spec, "files": {**base["files"], **spec.get("files", {})}}
    materialize(merged, tmp_path)
    if extra is not None:
        extra(tmp_path)
    return tmp_path


def _problems_of(doc: dict, check_prefix: str) -> list[dict]:
    return [p for p in doc["problems"] if check_prefix in p["message"]]


def _still_checked(doc: dict) -> None:
    """The healthy sysctl next to the bad input was evaluated (and passed)."""
    na = {n["check_id"] for n in doc["not_applicable"]}
    assert "SKN-HOST-002" not in na
    assert not [f for f in doc["findings"] if f["check_id"] == "SKN-HOST-002"]
    assert doc["summary"]["objects"] == 1


def _billion_laughs() -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "kind: KubeletConfiguration\n" + "\n".join(lines) + "\n"


KUBELET_CASES = {
    "not YAML": ("kind: KubeletConfiguration\nauthentication: [unclosed\n", "not valid YAML"),
    "a list, not a mapping": ("- 1\n- 2\n", "expected one KubeletConfiguration mapping"),
    "another kind": ("kind: Pod\n", "not KubeletConfiguration"),
    "wrong type": (  # only the check of that field could not check
        "kind: KubeletConfiguration\nreadOnlyPort: '0'\n",
        "the kubelet expects int",
    ),
    "wrong type of a parent": (  # before: "not set", so the secure defaults passed
        "kind: KubeletConfiguration\nauthentication: x\nauthorization: [Webhook]\n",
        "the kubelet expects a mapping",
    ),
    "duplicate keys": (
        "kind: KubeletConfiguration\nreadOnlyPort: 0\nreadOnlyPort: 10255\n",
        "duplicate",
    ),
    "alias bomb": (_billion_laughs(), "not a valid config"),
    "deep nesting": (
        "kind: KubeletConfiguration\nx: " + "[" * 5000 + "]" * 5000,
        "maximum nesting depth",
    ),
    "binary garbage": ("\x00\x01\x02\xff" * 100, "not valid YAML"),
}


@pytest.mark.parametrize("case", list(KUBELET_CASES))
def test_bad_kubelet_config_is_could_not_check_for_every_kubelet_check(
    case: str, tmp_path: Path
) -> None:
    text, reason = KUBELET_CASES[case]
    root = _tree(tmp_path, {**KUBELET, "files": {"/etc/kubelet.yaml": text}})
    code, doc = host_audit(root)
    problems = _problems_of(doc, "could not check")
    kubelet = [p for p in problems if p["file"] == "/etc/kubelet.yaml"]
    assert all(reason in p["message"] for p in kubelet), kubelet[0]
    assert all(p["kind"] == "parse" for p in kubelet)
    if case == "wrong type":
        assert [p["message"][:12] for p in kubelet] == ["SKN-HOST-053"]
        return
    if case == "wrong type of a parent":  # the checks under them, none passed
        ids = sorted({p["message"][:12] for p in kubelet})
        assert ids and all(
            f["check_id"] not in ids for f in doc["findings"] + doc.get("passed", [])
        )
        assert ids == ["SKN-HOST-050", "SKN-HOST-051", "SKN-HOST-052"]
        assert "authentication has str value 'x'" in kubelet[0]["message"]
        return
    assert len(kubelet) == 11, doc["problems"]  # every kubelet check, none passed
    assert not [f for f in doc["findings"] if f["check_id"].startswith("SKN-HOST-05")]
    _still_checked(doc)
    assert code == 1 or code == 0  # findings or not, never an error exit for bad host data


def test_huge_kubelet_config_is_refused_unread(tmp_path: Path) -> None:
    def huge(root: Path) -> None:
        with (root / "etc" / "kubelet.yaml").open("wb") as handle:
            handle.write(b"kind: KubeletConfiguration\n")
            for _ in range(5):
                handle.write(b"# " + b"x" * (1024 * 1024) + b"\n")

    root = _tree(tmp_path, {**KUBELET, "files": {"/etc/kubelet.yaml": ""}}, huge)
    _code, doc = host_audit(root)
    kubelet = [p for p in doc["problems"] if p["file"] == "/etc/kubelet.yaml"]
    assert len(kubelet) == 11 and all(p["kind"] == "too-large" for p in kubelet)
    _still_checked(doc)


def test_missing_config_named_by_the_running_kubelet(tmp_path: Path) -> None:
    root = _tree(tmp_path, KUBELET)
    _code, doc = host_audit(root)
    kubelet = [p for p in doc["problems"] if p["file"] == "/etc/kubelet.yaml"]
    assert len(kubelet) == 11 and all(p["kind"] == "missing" for p in kubelet)
    assert "does not exist" in kubelet[0]["message"]


def test_config_that_is_a_directory_or_a_fifo(tmp_path: Path) -> None:
    def special(root: Path) -> None:
        (root / "etc").mkdir(exist_ok=True)
        (root / "etc" / "kubelet.yaml").mkdir()
        (root / "etc" / "docker").mkdir()
        os.mkfifo(root / "etc" / "docker" / "daemon.json")  # must not hang the audit

    root = _tree(
        tmp_path,
        {"processes": {**KUBELET["processes"], "60": ["/usr/bin/dockerd"]}},
        special,
    )
    _code, doc = host_audit(root)
    kubelet = [p for p in doc["problems"] if p["file"] == "/etc/kubelet.yaml"]
    assert kubelet and "is a directory" in kubelet[0]["message"]
    docker = [p for p in doc["problems"] if p["file"] == "/etc/docker/daemon.json"]
    assert len(docker) == 8 and "not a regular file" in docker[0]["message"]
    _still_checked(doc)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "not valid JSON"),
        ("icc: false\n", "not valid JSON"),  # YAML is not JSON: dockerd would refuse it
        ('["a list"]', "must be a JSON object"),
        ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
    ],
)
def test_daemon_json_that_is_not_json(text: str, reason: str, tmp_path: Path) -> None:
    spec = {
        "processes": {"60": ["/usr/bin/dockerd"]},
        "files": {"/etc/docker/daemon.json": text},
    }
    _code, doc = host_audit(_tree(tmp_path, spec))
    docker = [p for p in doc["problems"] if p["file"] == "/etc/docker/daemon.json"]
    # every Docker check that reads daemon.json could not check; none passed
    assert len(docker) == 8, doc["problems"]
    assert all(reason in p["message"] for p in docker)
    assert not [f for f in doc["findings"] if f["check_id"].startswith("SKN-HOST-07")]
    _still_checked(doc)


def test_containerd_config_that_is_not_toml(tmp_path: Path) -> None:
    spec = {
        "processes": {"70": ["/usr/bin/containerd"]},
        "files": {"/etc/containerd/config.toml": "version = 2\n[plugins\n"},
    }
    _code, doc = host_audit(_tree(tmp_path, spec))
    problems = [p for p in doc["problems"] if p["file"] == "/etc/containerd/config.toml"]
    assert len(problems) == 7 and all("not valid TOML" in p["message"] for p in problems)
    _still_checked(doc)


def test_symlinks_cannot_leave_the_root(tmp_path: Path) -> None:
    """An absolute or climbing link in a mounted image resolves inside the root."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.yaml").write_text("kind: KubeletConfiguration\nreadOnlyPort: 10255\n")
    root = tmp_path / "root"
    spec = {
        **KUBELET,
        "files": {"/outside/secret.yaml": "kind: KubeletConfiguration\nreadOnlyPort: 0\n"},
        "links": {"/etc/kubelet.yaml": "../../../../../../outside/secret.yaml"},
    }
    _code, doc = host_audit(_tree(root, spec))
    # the in-root file (port 0) was read, not the one outside the root (port 10255)
    assert not [f for f in doc["findings"] if f["check_id"] == "SKN-HOST-053"]
    assert not [p for p in doc["problems"] if p["file"] == "/etc/kubelet.yaml"]


def test_symlink_loop_is_could_not_check(tmp_path: Path) -> None:
    spec = {
        **KUBELET,
        "links": {"/etc/kubelet.yaml": "/etc/loop", "/etc/loop": "/etc/kubelet.yaml"},
    }
    _code, doc = host_audit(_tree(tmp_path, spec))
    kubelet = [p for p in doc["problems"] if p["file"] == "/etc/kubelet.yaml"]
    assert len(kubelet) == 11 and "symbolic links" in kubelet[0]["message"]


def test_garbage_in_proc(tmp_path: Path) -> None:
    """Unparseable sysctl values, a huge command line and odd namespace links."""

    def huge_cmdline(root: Path) -> None:
        (root / "proc" / "77").mkdir(parents=True)
        (root / "proc" / "77" / "cmdline").write_bytes(b"kubelet\0" + b"A" * (2 * 1024 * 1024))

    spec = {
        "files": {"/proc/sys/kernel/kptr_restrict": "two\n", "/proc/cpuinfo": "\x00\xff"},
        "links": {"/proc/1/ns/pid": "garbage"},
    }
    _code, doc = host_audit(_tree(tmp_path, spec, huge_cmdline))
    [kptr] = [p for p in doc["problems"] if p["file"] == "/proc/sys/kernel/kptr_restrict"]
    assert kptr["kind"] == "parse" and "expected an integer" in kptr["message"]
    # the oversized command line is skipped, not a kubelet
    assert "no kubelet runs here" in doc["facts"]["kubelet"]
    _still_checked(doc)


def test_root_that_is_not_a_linux_file_system(tmp_path: Path) -> None:
    (tmp_path / "README.txt").write_text("just some directory\n")
    code, doc = host_audit(tmp_path)
    sysctl = [p for p in doc["problems"] if p["file"].startswith("/proc/sys/")]
    assert len(sysctl) >= 30
    assert all("not a running Linux system" in p["message"] for p in sysctl)
    assert doc["findings"] == []
    assert code == 2  # nothing at all could be checked: an error, not a clean pass


def test_root_that_does_not_exist_is_a_usage_error(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "skanse", "host", "audit", "--root", str(tmp_path / "nope")],
        capture_output=True,
        timeout=TIME_CAP,
        check=False,
    )
    assert run.returncode == 2
    assert b"no such directory" in run.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to an unprivileged user")
def test_unreadable_files_for_an_unprivileged_user(tmp_path: Path, nobody: NobodyPython) -> None:
    """Files only root may read: each check that needs one could not check, and says why."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed")
    base = Path(tempfile.mkdtemp(prefix="skanse-host-"))  # pytest's tmp_path is root-only
    try:
        os.chmod(base, 0o755)  # noqa: S103 - nobody must traverse the tree
        spec = {
            "processes": {**KUBELET["processes"], "60": ["/usr/bin/dockerd"]},
            "files": {
                "/etc/kubelet.yaml": "kind: KubeletConfiguration\n",
                "/etc/docker/daemon.json": "{}\n",
                "/proc/sys/kernel/kptr_restrict": "2",
            },
            "modes": {"/etc/kubelet.yaml": "0600", "/etc/docker/daemon.json": "0600"},
        }
        root = _tree(base / "root", spec)
        for directory in [root, *[p for p in root.rglob("*") if p.is_dir()]]:
            os.chmod(directory, 0o755)  # noqa: S103 - as above
        command = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
        command += [*nobody.argv, "-m", "skanse", "host", "audit", "--no-config", "-f", "json"]
        run = subprocess.run(
            [*command, "--root", str(root)],
            capture_output=True,
            timeout=TIME_CAP,
            check=False,
            cwd="/",
            env=nobody.env,
        )
        assert run.stdout, run.stderr.decode()
        doc = json.loads(run.stdout)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    kubelet = [p for p in doc["problems"] if p["file"] == "/etc/kubelet.yaml"]
    docker = [p for p in doc["problems"] if p["file"] == "/etc/docker/daemon.json"]
    assert len(kubelet) == 11 and len(docker) == 8
    assert all("permission denied (run as root" in p["message"] for p in kubelet + docker)
    assert not [f for f in doc["findings"] if f["check_id"][:11] in ("SKN-HOST-05", "SKN-HOST-07")]
    assert "SKN-HOST-001" not in {n["check_id"] for n in doc["not_applicable"]}
    _still_checked(doc)
