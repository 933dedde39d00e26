"""Archives written by a real `podman save`, in both of its tar formats, read as podman
stores the image: the same layers (diff_ids) and the same files.

podman writes a docker archive with a `<id>/layer.tar` symlink to each layer's tar, and an
OCI archive that has no manifest.json; the image here repeats a layer (two `RUN true`), as
many real images do.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from tools.debian_base import PODMAN_RUN_OPTIONS

from skanse.oci.image import open_image, parse_spec, read_view
from tests.runtime.containers_real import tiny_image

IMAGE = "localhost/skanse-archive-test:1"


def _podman(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *argv], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    base = tiny_image()  # skips, saying why, where podman cannot run
    context = tmp_path_factory.mktemp("context")
    (context / "Containerfile").write_text(
        f"FROM {base}\nRUN echo archived > /etc/motd\nRUN true\nRUN true\n"
    )
    built = _podman("build", *PODMAN_RUN_OPTIONS, "--network", "host", "-t", IMAGE, str(context))
    if built.returncode != 0:
        pytest.skip(f"podman cannot build here: {built.stderr.strip()[-300:]}")
    inspected = _podman("image", "inspect", IMAGE)
    diff_ids = json.loads(inspected.stdout)[0]["RootFS"]["Layers"]
    out = tmp_path_factory.mktemp("saved")
    for form in ("docker-archive", "oci-archive"):
        done = _podman("save", "--format", form, "-o", str(out / f"{form}.tar"), IMAGE)
        assert done.returncode == 0, done.stderr
    return out, diff_ids


@pytest.mark.parametrize(
    "target",
    [
        "docker-archive:{out}/docker-archive.tar",
        "oci-archive:{out}/oci-archive.tar",
        "{out}/oci-archive.tar",
        # podman names the image in the archive `localhost/...:1`: chosen by that name
        "oci-archive:{out}/oci-archive.tar:" + IMAGE,
    ],
)
def test_podman_save_archives_read_as_podman_stores_the_image(
    saved: tuple[Path, list[str]], target: str
) -> None:
    out, diff_ids = saved
    assert len(diff_ids) == 4 and diff_ids[2] == diff_ids[3]  # the repeated layer
    image = open_image(parse_spec(target.format(out=out)))
    try:
        assert list(image.config.diff_ids) == diff_ids
        view = read_view(
            image, lambda info: (lambda data: data) if info.path == "/etc/motd" else None
        )
    finally:
        image.close()
    assert [layer.diff_id for layer in view.layers] == diff_ids
    assert view.captured["/etc/motd"].value == b"archived\n"
