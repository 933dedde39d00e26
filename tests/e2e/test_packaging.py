"""The wheel carries the sensor: `pip wheel` gives a manylinux platform wheel holding the CO-RE
BPF object, the sdist carries only its source and a wheel built from it compiles the object,
and that wheel installed where there is no clang runs `skanse runtime run`."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.e2e.conftest import PROJECT, Images, podman_run

pytestmark = pytest.mark.slow

EM_BPF = 247  # ELF e_machine of eBPF objects


def _pip_wheel(source: Path | str, out: Path, **env: str) -> Path:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, **env},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [wheel] = out.glob("skanse-*.whl")
    return wheel


def _bpf_object(wheel: Path, path: str) -> bytes:
    with zipfile.ZipFile(wheel) as archive:
        [name] = [n for n in archive.namelist() if n.endswith(path)]
        return archive.read(name)


def _needs_toolchain() -> None:
    for tool in ("clang", "llvm-strip"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (make test installs it: BPF_PACKAGES)")
    if shutil.which("bpftool") is None and not Path("/usr/sbin/bpftool").exists():
        pytest.skip("bpftool is not installed (make test installs it: BPF_PACKAGES)")
    if not Path("/sys/kernel/btf/vmlinux").exists():
        pytest.skip("this kernel has no BTF (/sys/kernel/btf/vmlinux)")


@pytest.fixture(scope="module")
def sdist_wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The sdist, and the wheel pip builds from it (compiling the BPF object)."""
    _needs_toolchain()
    out = tmp_path_factory.mktemp("sdist")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--outdir", str(out), str(PROJECT)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [sdist] = out.glob("skanse-*.tar.gz")
    wheel = _pip_wheel(sdist, out / "wheel", SKANSE_BPF="require")
    return sdist, wheel


def test_sdist_carries_the_bpf_source_and_no_object(sdist_wheel: tuple[Path, Path]) -> None:
    sdist, _ = sdist_wheel
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
    assert any(n.endswith("skanse/runtime/bpf/sensor.bpf.c") for n in names)
    assert not [n for n in names if n.endswith(".o")]
    assert any(n.endswith("/setup.py") for n in names)


def test_wheel_from_the_sdist_is_a_manylinux_wheel_with_the_compiled_object(
    sdist_wheel: tuple[Path, Path],
) -> None:
    _, wheel = sdist_wheel
    machine = {"x86_64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}[platform.machine()]
    assert wheel.name == (
        f"skanse-0.1.0-py3-none-manylinux_2_17_{machine}.manylinux2014_{machine}.whl"
    )
    for name in ("sensor", "isolate"):
        obj = _bpf_object(wheel, f"skanse/runtime/bpf/{name}.bpf.o")
        assert obj[:4] == b"\x7fELF"
        assert int.from_bytes(obj[18:20], "little") == EM_BPF
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read("skanse-0.1.0.dist-info/WHEEL").decode()
    assert "Root-Is-Purelib: false" in metadata


def test_without_the_toolchain_the_wheel_is_pure_and_says_so(tmp_path: Path) -> None:
    """SKANSE_BPF=0 (as a machine without clang) and no compiling: no object, no extension,
    and then no platform tag, even where an earlier compiled build left its extensions."""
    source = tmp_path / "src"
    shutil.copytree(
        PROJECT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", "*.o", "__pycache__", ".*_cache", "tests", "bench"
        ),
    )
    # what a compiled build leaves in build/lib: packaged, it would shadow the .py file
    stale = source / "build" / "lib" / "skanse" / "scan.cpython-311-x86_64-linux-gnu.so"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"\x7fELF stale")
    wheel = _pip_wheel(source, tmp_path / "out", SKANSE_BPF="0", SKANSE_COMPILE="0")
    assert wheel.name == "skanse-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        assert not [n for n in archive.namelist() if n.endswith((".o", ".so"))]


def test_installed_wheel_runs_the_sensor_where_there_is_no_clang(
    sdist_wheel: tuple[Path, Path], images: Images
) -> None:
    """In a container of the sensor image (libbpf1, no clang): skanse replaced by the wheel,
    `skanse runtime run` loads the kernel program and reports a shell the container starts."""
    _, wheel = sdist_wheel
    rules = wheel.parent / "rules.yaml"
    rules.write_text(
        "- rule: Shell spawned\n"
        "  desc: a shell starts\n"
        "  condition: evt.type in (execve, execveat) and evt.dir=< and proc.name = sh\n"
        '  output: "shell started (cmdline=%proc.cmdline)"\n'
        "  priority: WARNING\n"
    )
    script = (
        "set -e; ! command -v clang; "
        "/opt/skanse/bin/pip uninstall -q -y skanse; "
        f"/opt/skanse/bin/pip install -q --no-deps --no-index /w/{wheel.name}; "
        "(sleep 3; sh -c 'echo wheel-probe-7f3a' >/dev/null) & "
        "skanse runtime run --rules /w/rules.yaml --duration 6"
    )
    run = podman_run(
        "--rm", "--privileged", "--pid", "host", "--user", "0:0", "--network", "none",
        "-v", "/sys/kernel/btf:/sys/kernel/btf:ro", "-v", f"{wheel.parent}:/w:ro",
        "--entrypoint", "sh", images.sensor.name, "-c", script,
        timeout=180,
    )  # fmt: skip
    assert "wheel-probe-7f3a" in run.stdout, run.stdout[-2000:] + run.stderr[-3000:]
    assert '"msg": "sensor started", "sensor": "ebpf"' in run.stderr
