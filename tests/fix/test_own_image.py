"""skanse's own Dockerfile follows the standard it enforces (CI runs this)."""

from __future__ import annotations

import re

from skanse.scan import ScanOptions, scan
from skanse.sources.dockerfile import parse_dockerfile
from tests.conftest import ROOT

DOCKERFILE = ROOT / "Dockerfile"


def test_skanse_scan_finds_nothing_in_skanses_own_dockerfile() -> None:
    result = scan([str(DOCKERFILE)], ScanOptions())
    assert result.problems == ()
    assert result.objects_scanned == 1
    assert result.findings == ()


def test_own_image_is_pinned_non_root_and_read_only_friendly() -> None:
    df = parse_dockerfile(str(DOCKERFILE), DOCKERFILE.read_text(encoding="utf-8"))
    assert df.problems == ()
    for stage in df.stages:
        if stage.base_stage is not None:
            continue  # FROM an earlier stage: pinned where that stage starts
        assert re.search(r":[\w.-]+@sha256:[0-9a-f]{64}$", stage.base), stage.base
    final = [ins for _, ins in df.stage_instructions(df.stages[-1])]
    users = [ins.args for ins in final if ins.keyword == "USER"]
    assert users == ["10001:10001"]
    env = " ".join(ins.args for ins in final if ins.keyword == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert not [ins for ins in final if ins.keyword in ("RUN", "VOLUME")]  # nothing to write


def test_the_sensor_image_has_what_the_sensor_calls_and_runs_non_root_by_default() -> None:
    """`--target sensor`: libbpf1 loads the kernel program, nft isolates; the DaemonSet runs
    it as root explicitly (deploy/sensor), the image itself does not."""
    df = parse_dockerfile(str(DOCKERFILE), DOCKERFILE.read_text(encoding="utf-8"))
    (sensor,) = [stage for stage in df.stages if stage.name == "sensor"]
    instructions = [ins for _, ins in df.stage_instructions(sensor)]
    runs = " ".join(ins.args for ins in instructions if ins.keyword == "RUN")
    assert "libbpf1" in runs and "nftables" in runs
    assert [ins.args for ins in instructions if ins.keyword == "USER"] == ["10001:10001"]
    daemonset = (ROOT / "deploy" / "sensor" / "daemonset.yaml").read_text(encoding="utf-8")
    assert "image: ghcr.io/skanse/skanse-sensor:" in daemonset
    # the build stage installs the BPF toolchain when src/ carries no compiled kernel program,
    # and setup.py (pip install) compiles it
    (build,) = [stage for stage in df.stages if stage.name == "build"]
    build_runs = " ".join(
        ins.args for _, ins in df.stage_instructions(build) if ins.keyword == "RUN"
    )
    assert "clang" in build_runs and "bpf.c" in build_runs and "pip install" in build_runs
