"""`skanse fix` on the command line: modes, exit codes, and files it must not touch."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from skanse.fix import plan_fixes, write_fixes
from tests.conftest import ROOT

POD = (
    "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: shop\nspec:\n"
    "  containers:\n  - name: app\n    image: app:1\n"
)


@pytest.fixture
def insecure(tmp_path: Path) -> Path:
    target = tmp_path / "insecure"
    shutil.copytree(ROOT / "examples" / "insecure", target)
    return target


def _tree(path: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }


def test_diff_prints_a_unified_diff_and_writes_nothing(cli, insecure: Path) -> None:
    before = _tree(insecure)
    run = cli("fix", str(insecure), "--unsafe-fixes", "--diff", "--no-config")
    assert run.code == 0
    assert _tree(insecure) == before
    name = str(insecure).lstrip("/")
    assert f"--- a/{name}/legacy-app.yaml\n+++ b/{name}/legacy-app.yaml\n" in run.stdout
    assert "\n-            runAsUser: 0\n" in run.stdout
    assert "\n+            runAsUser: 10001\n" in run.stdout
    assert "+USER node\n" in run.stdout
    assert "would change 2 file(s)" in run.stderr


def test_check_exits_1_when_something_would_change_and_0_once_fixed(cli, insecure: Path) -> None:
    before = _tree(insecure)
    check = cli("fix", str(insecure), "--unsafe-fixes", "--check", "--no-config")
    assert check.code == 1
    assert _tree(insecure) == before
    assert f"would fix {insecure}/Dockerfile\n" in check.stdout
    fixed = cli("fix", str(insecure), "--unsafe-fixes", "--no-config")
    assert fixed.code == 0
    assert f"fixed {insecure}/legacy-app.yaml\n" in fixed.stdout
    assert "  SKN-DF-001  Dockerfile/" in fixed.stdout
    again = cli("fix", str(insecure), "--unsafe-fixes", "--check", "--no-config")
    assert again.code == 0
    assert again.stdout == ""


def test_network_policies_go_to_a_new_file_and_never_overwrite(cli, insecure: Path) -> None:
    run = cli("fix", str(insecure), "--unsafe-fixes", "--network-policies", "--no-config")
    assert run.code == 0
    policy = insecure / "default-deny-networkpolicies.yaml"
    text = policy.read_text()
    assert "kind: NetworkPolicy\n" in text and "  namespace: billing\n" in text
    assert "  policyTypes:\n  - Ingress\n  - Egress\n" in text
    assert (
        cli(
            "fix", str(insecure), "--unsafe-fixes", "--network-policies", "--check", "--no-config"
        ).code
        == 0
    )
    other = insecure.parent / "elsewhere.yaml"
    other.write_text("# mine\n")
    policy.unlink()
    clash = cli(
        "fix", str(insecure), "--unsafe-fixes", "--network-policies", str(other), "--no-config"
    )
    assert clash.code == 2
    assert "already exists" in clash.stderr
    assert other.read_text() == "# mine\n"


def test_a_symlink_out_of_the_tree_is_refused(cli, tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text(POD)
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "pod.yaml").symlink_to(outside)
    run = cli("fix", str(tree), "--unsafe-fixes", "--no-config")
    assert run.code == 2
    assert "outside the scanned tree" in run.stderr
    assert outside.read_text() == POD


def test_a_symlink_inside_the_tree_is_fixed_through_its_target(cli, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "real").mkdir(parents=True)
    (tree / "real" / "pod.yaml").write_text(POD)
    (tree / "link.yaml").symlink_to(tree / "real" / "pod.yaml")
    run = cli("fix", str(tree), "--unsafe-fixes", "--no-config")
    assert run.code == 0, run.stderr
    assert (tree / "link.yaml").is_symlink()
    assert "runAsNonRoot: true" in (tree / "real" / "pod.yaml").read_text()


def test_a_fifo_is_reported_and_nothing_blocks(cli, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.yaml")
    (tmp_path / "pod.yaml").write_text(POD)
    run = cli("fix", str(tmp_path), "--unsafe-fixes", "--no-config")
    assert run.code == 2
    assert "not a regular file" in run.stderr
    assert "runAsNonRoot" in (tmp_path / "pod.yaml").read_text()


def test_unparseable_yaml_is_untouched_and_reported(cli, tmp_path: Path) -> None:
    broken = POD + "  volumes: [\n"
    (tmp_path / "broken.yaml").write_text(broken)
    run = cli("fix", str(tmp_path), "--unsafe-fixes", "--no-config")
    assert run.code == 2
    assert "broken.yaml" in run.stderr
    assert (tmp_path / "broken.yaml").read_text() == broken


def test_a_file_changed_after_planning_is_not_written(tmp_path: Path) -> None:
    path = tmp_path / "pod.yaml"
    path.write_text(POD)
    report = plan_fixes([str(path)])
    path.write_text(POD + "# edited meanwhile\n")
    outcome = write_fixes(report)
    assert outcome.written == ()
    (failed,) = outcome.failed
    assert failed.problem == "changed while skanse fix ran; not written"
    assert path.read_text() == POD + "# edited meanwhile\n"


def test_config_suppressions_are_honoured(cli, tmp_path: Path) -> None:
    (tmp_path / "pod.yaml").write_text(POD)
    (tmp_path / ".skanse.yaml").write_text(
        "suppressions:\n  - id: SKN-K8S-025\n    reason: the operator calls the API\n"
    )
    run = cli("fix", str(tmp_path), "--unsafe-fixes")
    assert run.code == 0
    text = (tmp_path / "pod.yaml").read_text()
    assert "automountServiceAccountToken" not in text
    assert "runAsNonRoot: true" in text
    assert "1 suppressed finding(s) left alone" in run.stderr


def test_standard_input_is_a_usage_error(cli) -> None:
    run = cli("fix", "-", "--no-config", stdin=POD.encode())
    assert run.code == 2
    assert "cannot read standard input" in run.stderr


def test_diff_with_check_shows_the_diff_and_exits_1(cli, insecure: Path) -> None:
    before = _tree(insecure)
    run = cli("fix", str(insecure), "--unsafe-fixes", "--diff", "--check", "--no-config")
    assert run.code == 1
    assert "+USER node\n" in run.stdout
    assert _tree(insecure) == before


def test_fix_is_a_listed_command(capsys: pytest.CaptureFixture[str]) -> None:
    from skanse._cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["fix", "--help"])
    assert exit_info.value.code == 0
    assert "--network-policies [FILE]" in capsys.readouterr().out


def _built_from_the_parent(tmp_path: Path) -> Path:
    """`docker build -f sub/Dockerfile .`: ADD's `bundle` is the tar in the parent, while
    sub/ holds a plain file of the same name."""
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo("bin/app")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"#!"))
    (tmp_path / "bundle").write_bytes(archive.getvalue())
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "bundle").write_text("a plain file\n")
    (sub / "Dockerfile").write_text("FROM alpine:3.20\nADD bundle /opt/\nUSER 10001\n")
    return sub / "Dockerfile"


def test_build_context_keeps_add_of_an_archive_that_lives_there(cli, tmp_path: Path) -> None:
    """The safe ADD -> COPY fix looked only in the Dockerfile's directory: for a Dockerfile
    built with another context, a plain file of the same name there made it rewrite the ADD
    of an archive, which then copied the tar instead of extracting it."""
    dockerfile = _built_from_the_parent(tmp_path)
    before = dockerfile.read_text()
    told = cli("fix", str(dockerfile), "--build-context", str(tmp_path), "--no-config")
    assert told.code == 0
    assert dockerfile.read_text() == before
    told_scan = cli("scan", str(dockerfile), "--build-context", str(tmp_path), "--no-config")
    assert "SKN-DF-005" not in told_scan.stdout
    # without it the Dockerfile's own directory is the context, as documented
    assert "SKN-DF-005" in cli("scan", str(dockerfile), "--no-config").stdout


def test_build_context_must_be_a_directory(cli, tmp_path: Path) -> None:
    dockerfile = _built_from_the_parent(tmp_path)
    run = cli("fix", str(dockerfile), "--build-context", str(tmp_path / "bundle"), "--no-config")
    assert run.code == 2
    assert "--build-context:" in run.stderr and "is not a directory" in run.stderr
