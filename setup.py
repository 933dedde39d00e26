"""Build hooks (everything else is in pyproject.toml): the runtime sensor's kernel programs
and the admission decision's modules compiled with mypyc.

`build_py` puts the CO-RE BPF objects, skanse/runtime/bpf/*.bpf.o (the sensor, isolation),
into the build: each one `make bpf` left in src/ if there is one and it is not older than its
source, else compiled here from its .bpf.c with clang
against the build machine's BTF (bpftool writes vmlinux.h; $SKANSE_BTF names another BTF
file). CO-RE relocations make the object load on any kernel with BTF, so `pip install` of
the wheel gives a working sensor on machines without clang; only libbpf1 is needed there.

A wheel that carries the object is a platform wheel (py3-none-manylinux_2_17_<arch>): the
program is compiled for one architecture's syscall registers. Without clang, bpftool or BTF
the build goes on without the object (a pure wheel, the sensor then says it is missing)
unless SKANSE_BPF=require, which makes that an error; SKANSE_BPF=0 never builds it.

A wheel (not an editable install: there the .so files would shadow the sources being edited)
also compiles the modules in COMPILED with mypyc into C extensions: the same code, about twice
as fast (the webhook decides a review in about half the CPU). mypyc type-checks them with the
project's mypy configuration, so the build needs mypy, the runtime dependencies and a C
compiler with Python's headers: `make wheel` builds without isolation in .venv. Where mypyc
cannot be imported (an isolated `pip install .`) the wheel holds plain Python, with a warning;
SKANSE_COMPILE=require makes that an error, SKANSE_COMPILE=0 never compiles.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_py import build_py

BPF_DIR = Path("skanse", "runtime", "bpf")
# uname -m -> (clang's __TARGET_ARCH_ name, the wheel platform tag's machine)
ARCHES = {
    "x86_64": ("x86", "x86_64"),
    "aarch64": ("arm64", "aarch64"),
    "arm64": ("arm64", "aarch64"),
}


# The admission decision's hot path (parse, pod views, the Kubernetes checks, the collector,
# the answer). A compiled module runs its annotations as checks and has no docstrings: the
# checks here give their descriptions as arguments. Tests of the compiled build:
# `make test-compiled`.
COMPILED = [
    "src/skanse/model.py",
    "src/skanse/sources/kubernetes.py",
    "src/skanse/checks/kubernetes/base.py",
    "src/skanse/checks/kubernetes/pss.py",
    "src/skanse/checks/kubernetes/zerotrust.py",
    "src/skanse/checks/kubernetes/exposure.py",
    "src/skanse/scan.py",
    "src/skanse/oci/reference.py",
    "src/skanse/admission/review.py",
    "src/skanse/admission/evaluate.py",
    "src/skanse/admission/handler.py",
]


def compiled_extensions() -> list[Any]:
    """The mypyc extensions of COMPILED when this run builds a wheel, else none."""
    wanted = os.environ.get("SKANSE_COMPILE", "auto")
    building = {"bdist_wheel", "build", "build_ext"} & set(sys.argv[1:])
    if wanted == "0" or not building:
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        if wanted == "require":
            raise SystemExit("skanse: SKANSE_COMPILE=require but mypyc is not installed") from None
        print("warning: mypyc is not installed: the wheel holds plain Python", file=sys.stderr)
        return []
    return list(mypycify(COMPILED, opt_level="3"))


class BpfUnavailable(Exception):
    pass


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        raise BpfUnavailable(f"{name} is not installed (Debian: clang llvm bpftool libbpf-dev)")
    return found


def compile_bpf(sources: list[Path], out_dir: Path) -> None:
    machine = platform.machine()
    if machine not in ARCHES:
        raise BpfUnavailable(f"no BPF target for this machine ({machine})")
    btf = Path(os.environ.get("SKANSE_BTF", "/sys/kernel/btf/vmlinux"))
    if not btf.is_file():
        raise BpfUnavailable(f"{btf} is missing: there is no BTF to compile against")
    clang, bpftool, strip = _tool("clang"), _tool("bpftool"), _tool("llvm-strip")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="skanse-bpf-") as tmp:
        header = Path(tmp, "vmlinux.h")
        with header.open("wb") as sink:
            subprocess.run(
                [bpftool, "btf", "dump", "file", str(btf), "format", "c"], stdout=sink, check=True
            )
        for source in sources:
            partial = Path(tmp, source.name.removesuffix(".c") + ".o")
            subprocess.run(
                [clang, "-g", "-O2", "-Wall", "-target", "bpf",
                 # BTF's line info names the source: not the build directory's path
                 f"-fdebug-prefix-map={Path.cwd()}=.",
                 f"-D__TARGET_ARCH_{ARCHES[machine][0]}", f"-I{tmp}", "-c", str(source),
                 "-o", str(partial)],
                check=True,
            )  # fmt: skip
            subprocess.run([strip, "-g", str(partial)], check=True)
            shutil.copyfile(partial, out_dir / partial.name)


def _objects(build_lib: Path) -> list[Path]:
    return sorted((build_lib / BPF_DIR).glob("*.bpf.o"))


class BuildPyWithBpf(build_py):
    def run(self) -> None:
        # Extensions a previous build left in build/lib (a module since taken out of
        # COMPILED, or a build with SKANSE_COMPILE=0 after a compiled one) would go into the
        # wheel and be imported instead of the .py files; build_ext makes this build's again.
        if not getattr(self, "editable_mode", False):
            for stale in Path(self.build_lib).rglob("*.so"):
                stale.unlink()
        super().run()
        out_dir = Path(self.build_lib) / BPF_DIR
        wanted = os.environ.get("SKANSE_BPF", "auto")
        # an editable install runs from src/, where `make bpf` puts the objects
        if wanted == "0" or getattr(self, "editable_mode", False):
            return
        missing = []
        for source in sorted((Path("src") / BPF_DIR).glob("*.bpf.c")):
            built = out_dir / (source.name.removesuffix(".c") + ".o")
            if built.exists() and built.stat().st_mtime < source.stat().st_mtime:
                built.unlink()  # stale: it would not match the sensor's code
            if not built.exists():
                missing.append(source)
        if not missing:
            return
        try:
            compile_bpf(missing, out_dir)
        except (BpfUnavailable, subprocess.CalledProcessError) as error:
            if wanted == "require":
                raise SystemExit(f"skanse: the BPF objects cannot be built: {error}") from None
            for source in missing:  # all or none: a half-built sensor is worse than none
                (out_dir / (source.name.removesuffix(".c") + ".o")).unlink(missing_ok=True)
            for stale in _objects(Path(self.build_lib)):
                stale.unlink()
            self.warn(f"the runtime sensor's BPF objects are not built ({error}): pure wheel")


class PlatformWheelWithBpf(bdist_wheel):
    """A platform wheel when the build holds the BPF object, a pure one otherwise."""

    def run(self) -> None:
        self.run_command("build")  # once: the base class's own run_command("build") is a no-op
        build_lib = Path(self.get_finalized_command("build_py").build_lib)
        self.root_is_pure = not _objects(build_lib) and not self.distribution.has_ext_modules()
        super().run()

    def get_tag(self) -> tuple[str, str, str]:
        if self.root_is_pure:
            return "py3", "none", "any"
        if self.distribution.has_ext_modules():
            # C extensions built against this interpreter and this system's C library: its
            # own tag (cp311-cp311-linux_x86_64), not a manylinux promise nothing checked
            tag: tuple[str, str, str] = super().get_tag()
            return tag
        machine = ARCHES[platform.machine()][1]
        return "py3", "none", f"manylinux_2_17_{machine}.manylinux2014_{machine}"


setup(
    cmdclass={"build_py": BuildPyWithBpf, "bdist_wheel": PlatformWheelWithBpf},
    ext_modules=compiled_extensions(),
)
