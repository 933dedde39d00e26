"""`make image`: both images build from the project's Dockerfile on the local Debian base, run
as UID 10001, and rebuild to the same image id (reproducible layers and configuration)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tools.debian_base import Unavailable
from tools.images import build

from tests.e2e.conftest import PROJECT, Images, podman, podman_run

pytestmark = pytest.mark.slow


def test_cli_image_runs_as_non_root_on_a_read_only_root(images: Images) -> None:
    run = podman_run(
        "--rm", "--read-only", "--cap-drop=ALL", "--security-opt=no-new-privileges",
        images.cli.name, "--version",
    )  # fmt: skip
    assert run.stdout.strip() == "skanse 0.1.0", run.stdout
    who = podman_run("--rm", "--entrypoint", "id", images.cli.name)
    assert who.stdout.startswith("uid=10001(") and " gid=10001(" in who.stdout, who.stdout
    config = json.loads(podman("image", "inspect", images.cli.name).stdout)[0]["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["skanse"]


def test_cli_image_runs_the_compiled_admission_decision_without_the_build_tools(
    images: Images,
) -> None:
    """The webhook's image decides with the modules mypyc compiled (setup.py COMPILED), and
    neither mypy nor a C compiler came along from the build stage."""
    probe = (
        "import importlib.util as u, skanse.admission.handler as h, skanse.scan as s;"
        "print(h.__file__.endswith('.so'), s.__file__.endswith('.so'), u.find_spec('mypy'))"
    )
    run = podman_run("--rm", "--entrypoint", "/opt/skanse/bin/python", images.cli.name, "-c", probe)
    assert run.stdout.split() == ["True", "True", "None"], run.stdout
    gcc = podman_run(
        "--rm", "--entrypoint", "sh", images.cli.name, "-c", "command -v gcc", check=False
    )
    assert gcc.returncode != 0


def test_sensor_image_carries_the_bpf_object_and_libbpf(images: Images) -> None:
    probe = (
        "import ctypes.util, importlib.resources as r;"
        "p = r.files('skanse.runtime').joinpath('bpf/sensor.bpf.o');"
        "print(p.is_file(), p.read_bytes()[:4] == b'\\x7fELF', ctypes.util.find_library('bpf'))"
    )
    run = podman_run(
        "--rm", "--entrypoint", "/opt/skanse/bin/python", images.sensor.name, "-c", probe
    )
    assert run.stdout.split()[:2] == ["True", "True"], run.stdout
    assert run.stdout.split()[2].startswith("libbpf.so"), run.stdout
    nft = podman_run("--rm", "--entrypoint", "nft", images.sensor.name, "--version")
    assert nft.stdout.startswith("nftables"), nft.stdout
    # the CLI image goes without them
    bare = podman_run(
        "--rm", "--entrypoint", "sh", images.cli.name, "-c", "command -v nft", check=False
    )
    assert bare.returncode != 0


def test_rebuild_without_cache_gives_the_same_image_id(images: Images) -> None:
    """Every layer built again (pip install from PyPI, byte code, COPY) and the configuration:
    the same sources, base and packages give the same id, i.e. the same config and layers."""
    again = build("cli", tag="localhost/skanse-rebuild:check", no_cache=True)
    try:
        assert again.image_id == images.cli.image_id
    finally:
        podman("rmi", "localhost/skanse-rebuild:check", check=False)


def test_sensor_image_without_the_bpf_objects_fails_its_build(
    images: Images, tmp_path: Path
) -> None:
    """A build that compiles no kernel program (as on a machine without BTF) still gives the
    CLI image, which needs none, but no sensor image: one would start and only then find the
    sensor missing."""
    context = tmp_path / "context"
    context.mkdir()
    for name in ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md", "MANIFEST.in",
                 "setup.py"):  # fmt: skip
        shutil.copy2(PROJECT / name, context / name)
    shutil.copytree(
        PROJECT / "src", context / "src", ignore=shutil.ignore_patterns("*.bpf.o", "__pycache__")
    )
    assert not list(context.glob("src/**/*.bpf.o"))
    assert list(context.glob("src/skanse/runtime/bpf/*.bpf.c"))
    without = {"SKANSE_BPF": "0"}
    try:
        with pytest.raises(Unavailable, match=r"no \w+\.bpf\.o: the sensor image needs BTF"):
            build("sensor", tag="localhost/skanse-nobpf:sensor", context=context,
                  build_args=without)  # fmt: skip
        assert podman("image", "exists", "localhost/skanse-nobpf:sensor", check=False).returncode
        cli = build("cli", tag="localhost/skanse-nobpf:cli", context=context, build_args=without)
        version = podman_run("--rm", cli.name, "--version")
        assert version.stdout.strip() == "skanse 0.1.0", version.stdout
    finally:
        for tag in ("cli", "sensor"):  # the sensor's only if it was wrongly built
            podman("rmi", f"localhost/skanse-nobpf:{tag}", check=False)
