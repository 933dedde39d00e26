"""What the CLI writes to standard error quotes inputs (member names, paths, a registry's
answer) with their control characters escaped: nothing repaints the terminal, rings it, or
writes a line that looks like one of skanse's own."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from skanse._cli import shown

_HOSTILE = "\x1b[31mevil\x07\r\nskanse: all clear\u202e"


def test_shown_escapes_controls_and_keeps_only_continuation_line_breaks() -> None:
    assert shown(f"layer {_HOSTILE} is missing") == (
        "layer \\x1b[31mevil\\x07\\r\\nskanse: all clear\\u202e is missing"
    )
    assert shown("not valid:\n  field x\tbad") == "not valid:\n  field x\\tbad"


def test_an_archive_naming_a_hostile_layer_gets_a_one_line_error(cli, tmp_path: Path) -> None:
    path = tmp_path / "hostile.tar"
    manifest = [{"Config": "c.json", "Layers": [_HOSTILE]}]
    config = {"rootfs": {"diff_ids": ["sha256:" + "0" * 64]}}
    with tarfile.open(path, "w") as tar:
        for name, data in (("manifest.json", manifest), ("c.json", config)):
            encoded = json.dumps(data).encode()
            info = tarfile.TarInfo(name)
            info.size = len(encoded)
            tar.addfile(info, io.BytesIO(encoded))
    run = cli("sbom", f"docker-archive:{path}")
    assert run.code == 2
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("skanse: error: ")
    assert "\x1b" not in run.stderr and "\r" not in run.stderr and "\x07" not in run.stderr
    assert "\\x1b[31mevil" in run.stderr


_HOSTILE_NAME = "app\u009b2J\u202eevil\u007f"  # CSI (C1), a bidi override, DEL


@pytest.mark.parametrize("fmt", ["json", "sarif", "policyreport"])
def test_json_reports_write_no_terminal_control_raw(cli, tmp_path: Path, fmt: str) -> None:
    """The JSON encoders escape C0 only: a container name (the manifest author's) holding
    U+009B, one character that a terminal reads as an escape sequence, went to a terminal
    showing `skanse scan -f json` raw. Each is a JSON escape now; the text reads back."""
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n"
        '  - name: "app\\x9b2J\\u202eevil\\x7f"\n    image: app:1\n',  # YAML escapes
        encoding="utf-8",
    )
    run = cli("scan", str(manifest), "--no-config", "-f", fmt)
    assert run.code == 1
    for raw in ("\u009b", "\u202e", "\u007f"):
        assert raw not in run.stdout
    assert "\\u009b" in run.stdout
    assert _HOSTILE_NAME in json.dumps(json.loads(run.stdout), ensure_ascii=False)
