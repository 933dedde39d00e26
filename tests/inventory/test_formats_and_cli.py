"""SBOM documents (validated against their schemas) and the `sbom` / `image` commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from skanse.inventory.catalog import catalog_image
from skanse.inventory.formats import render
from skanse.oci.image import open_image, parse_spec
from skanse.oci.writer import BuiltImage, LayerBuilder, build_image, push_image, write_layout
from tests.conftest import corpus_path


def syft_like_tiny_image() -> BuiltImage:
    """The tiny image of sbom-fixtures/tiny-image-sboms, without busybox (see SOURCES.md)."""
    fixtures = corpus_path("sbom-fixtures", "tiny-image-sboms")
    layer = LayerBuilder()
    layer.add_file(
        "/etc/os-release",
        b'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.16.2\nPRETTY_NAME="Alpine Linux v3.16"\n',
    )
    layer.add_file("/var/lib/dpkg/status", (fixtures / "input-dpkg-status").read_bytes())
    layer.add_file("/lib/apk/db/installed", (fixtures / "input-apk-installed").read_bytes())
    layer.add_file(
        "/usr/lib/python3.11/site-packages/requests-2.31.0.dist-info/METADATA",
        b"Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\nLicense: Apache 2.0\n",
    )
    layer.add_file(
        "/app/node_modules/lodash/package.json",
        b'{"name": "lodash", "version": "4.17.20", "license": "MIT"}',
    )
    return build_image([layer.build()])


@pytest.fixture
def tiny_inventory(tmp_path: Path):
    write_layout(syft_like_tiny_image(), tmp_path / "layout", tag="tiny")
    return catalog_image(open_image(parse_spec(f"oci:{tmp_path}/layout:tiny")))


@pytest.mark.corpus
def test_tiny_image_agrees_with_syft(tiny_inventory) -> None:
    syft = json.loads(
        corpus_path("sbom-fixtures", "tiny-image-sboms", "tiny.syft.json").read_text()
    )
    expected = {
        (
            a["name"],
            a["version"],
            a["type"],
            a["purl"],
            a["locations"][0]["path"],
            tuple(lic["value"] for lic in a["licenses"]),
        )
        for a in syft["artifacts"]
        if a["type"] != "binary"  # Syft's busybox binary classifier has no skanse counterpart
    }
    got = {
        (p.name, p.version, p.type, p.purl, p.locations[0].path, p.licenses)
        for p in tiny_inventory.packages
    }
    assert got == expected
    assert tiny_inventory.distro is not None
    assert (tiny_inventory.distro.id, tiny_inventory.distro.version_id) == ("alpine", "3.16.2")


@pytest.mark.corpus
def test_cyclonedx_output_validates_and_carries_every_package(tiny_inventory) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    text = render("cyclonedx-json", tiny_inventory)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    doc = json.loads(text)
    assert doc["specVersion"] == "1.6"
    libraries = [c for c in doc["components"] if c["type"] == "library"]
    assert sorted(c.get("purl", "") for c in libraries) == sorted(
        p.purl for p in tiny_inventory.packages
    )
    assert doc["metadata"]["component"]["type"] == "container"
    assert doc["metadata"]["component"]["version"] == tiny_inventory.subject.manifest_digest
    os_component = next(c for c in doc["components"] if c["type"] == "operating-system")
    assert (os_component["name"], os_component["version"]) == ("alpine", "3.16.2")
    root = doc["metadata"]["component"]["bom-ref"]
    [dependency] = [d for d in doc["dependencies"] if d["ref"] == root]
    assert len(dependency["dependsOn"]) == len(libraries) + 1


def test_cyclonedx_package_with_an_expression_beside_other_licences_validates() -> None:
    """Debian's e2fsprogs lists `GPL-2.0 or LGPL-2.1` beside plain ids: CycloneDX takes one
    expression or a list of licences, never both, so all of them become one expression."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    from skanse.inventory.model import Inventory, Package, PackageLocation, Subject

    texts = ("GPL-2.0 or LGPL-2.1", "MIT", "public-domain")
    package = Package(
        name="e2fsprogs",
        version="1.47.0-2+b2",
        type="deb",
        purl="pkg:deb/debian/e2fsprogs@1.47.0-2%2Bb2?arch=amd64",
        cataloger="dpkg-db-cataloger",
        locations=(PackageLocation("/var/lib/dpkg/status"),),
        licenses=texts,
    )
    inventory = Inventory(Subject("directory", "/rootfs", "dir"), (package,))
    text = render("cyclonedx-json", inventory)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    [component] = [c for c in json.loads(text)["components"] if c["name"] == "e2fsprogs"]
    assert component["licenses"] == [
        {"expression": "(GPL-2.0-only OR LGPL-2.1-only) AND LicenseRef-public-domain AND MIT"}
    ]


def test_spdx_licence_text_the_expression_parser_chokes_on_is_read() -> None:
    """Debian's ncurses lists `MIT/X11`, on which license_expression's validate() raised
    AttributeError: the SBOM failed as an internal error. It reads as MIT, and the comment
    quotes what was declared."""
    from skanse.inventory.formats.spdx import _license

    refs: dict[str, str] = {}
    declared, comment = _license(("BSD-3-clause", "MIT/X11", "X11"), refs)
    assert str(declared) == "BSD-3-Clause AND MIT AND X11"
    assert comment == "declared: BSD-3-clause; MIT/X11; X11"
    assert refs == {}


@pytest.mark.corpus
def test_spdx_output_validates(tiny_inventory, tmp_path: Path) -> None:
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    path = tmp_path / "tiny.spdx.json"
    path.write_text(render("spdx-json", tiny_inventory))
    document = parse_file(str(path))
    assert validate_full_spdx_document(document) == []
    assert document.creation_info.spdx_version == "SPDX-2.3"
    purls = sorted(
        ref.locator
        for p in document.packages
        for ref in p.external_references
        if ref.reference_type == "purl"
    )
    assert purls == sorted(p.purl for p in tiny_inventory.packages if p.purl)
    lodash = next(p for p in document.packages if p.name == "lodash")
    assert str(lodash.license_declared) == "MIT"
    requests = next(p for p in document.packages if p.name == "requests")
    assert "Apache 2.0" in (requests.license_comment or "")  # not an SPDX id: kept as text


def test_spdx_licenses_of_many_packages_do_not_rebuild_the_license_index(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # reading the SPDX license list costs about 16 ms; read once per package, an SBOM of 500
    # licensed packages took 14 s. Rendering must reuse the index built once.
    import license_expression

    import skanse.inventory.formats.spdx  # noqa: F401 - builds spdx-tools' index, once
    from skanse.inventory.model import Inventory, Package, Subject

    reads: list[object] = []
    real = license_expression.get_license_index

    def counted(*args: object, **kwargs: object) -> object:
        reads.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(license_expression, "get_license_index", counted)
    packages = tuple(
        Package(
            f"p{i}",
            "1.0",
            "deb",
            f"pkg:deb/debian/p{i}@1.0",
            "dpkg-db-cataloger",
            (),
            licenses=("GPL-2.0-or-later", "MIT"),
        )
        for i in range(500)
    )
    inventory = Inventory(Subject(kind="image", name="many", source="registry"), packages)
    document = json.loads(render("spdx-json", inventory))
    assert reads == []
    declared = {p["name"]: p.get("licenseDeclared") for p in document["packages"]}
    assert declared["p499"] == "GPL-2.0-or-later AND MIT"


def test_cli_sbom_writes_both_documents_atomically(cli, tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text("ID=alpine\nVERSION_ID=3.20.0\n")
    (root / "lib/apk/db").mkdir(parents=True)
    (root / "lib/apk/db/installed").write_text("P:musl\nV:1.2.5-r0\nA:x86_64\no:musl\nL:MIT\n")
    cdx, spdx = tmp_path / "out.json", tmp_path / "out.spdx.json"
    result = cli(
        "sbom",
        f"dir:{root}",
        "-o",
        f"cyclonedx-json={cdx}",
        "-o",
        f"spdx-json={spdx}",
        "-o",
        "table",
    )
    assert result.code == 0, result.stderr
    assert "musl" in result.stdout and "1.2.5-r0" in result.stdout
    purls = [c.get("purl") for c in json.loads(cdx.read_text())["components"]]
    assert "pkg:apk/alpine/musl@1.2.5-r0?arch=x86_64&distro=alpine-3.20.0" in purls
    assert json.loads(spdx.read_text())["spdxVersion"] == "SPDX-2.3"
    assert not list(tmp_path.glob(".*.tmp"))


def test_cli_sbom_usage_errors(cli, tmp_path: Path) -> None:
    result = cli("sbom", f"dir:{tmp_path}", "-o", "xml")
    assert result.code == 2 and "unknown SBOM format 'xml'" in result.stderr
    result = cli("sbom", f"dir:{tmp_path}", "-o", "json", "-o", "table")
    assert result.code == 2 and "only one -o format can go to standard output" in result.stderr
    result = cli("sbom", "Not/A/Valid:Ref:x")
    assert result.code == 2 and "Not/A/Valid:Ref:x" in result.stderr


@pytest.mark.parametrize("target", ["", " ", "oci:", "dir:", "docker-archive:", "registry:"])
def test_cli_sbom_refuses_an_empty_target_instead_of_reading_the_working_directory(
    cli, target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`skanse sbom "$IMAGE"` with IMAGE unset read the working directory and exited 0."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "var/lib/dpkg").mkdir(parents=True)
    (tmp_path / "var/lib/dpkg/status").write_text("Package: bash\nStatus: install ok installed\n")
    result = cli("sbom", target, "-o", "json")
    assert result.code == 2
    assert "names nothing" in result.stderr or "empty target" in result.stderr
    assert result.stdout == ""


def test_cli_strict_fails_on_neutralised_entries(cli, tmp_path: Path) -> None:
    import tarfile

    layer = LayerBuilder()
    evil = tarfile.TarInfo("../../escape")
    evil.size = 1
    layer.add_raw(evil, b"x")
    write_layout(build_image([layer.build()]), tmp_path / "layout")
    relaxed = cli("sbom", str(tmp_path / "layout"))
    assert relaxed.code == 0 and "climbs out of the image" in relaxed.stderr
    strict = cli("sbom", str(tmp_path / "layout"), "--strict")
    assert strict.code == 2


@pytest.mark.registry
def test_cli_image_inspect_reports_the_registry_digest(cli, registry, tmp_path: Path) -> None:
    image = build_image(
        [LayerBuilder().add_file("/etc/os-release", b"ID=alpine\n").build()],
        cmd=["/bin/sh"],
        history=["ADD rootfs /"],
    )
    ref = registry.ref("cli/inspect:v1")
    push_image(registry.client(tmp_path / "cache"), ref, image)
    result = cli(
        "image", "inspect", str(ref), "--format", "json", "--cache-dir", str(tmp_path / "cli-cache")
    )
    assert result.code == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["manifest_digest"] == image.digest
    assert info["config_digest"] == image.config_digest
    assert info["cmd"] == ["/bin/sh"]
    assert [h["created_by"] for h in info["history"]] == ["ADD rootfs /"]
    text = cli("image", "inspect", str(ref), "--cache-dir", str(tmp_path / "cli-cache"))
    assert f"Digest:    {image.digest}" in text.stdout
    missing = cli("image", "inspect", f"{registry.host}/cli/none:v1", "--no-cache")
    assert (
        missing.code == 2
        and "not found (404)" in missing.stderr
        and "cli/none:v1" in missing.stderr
    )


def test_sbom_of_its_own_keeps_every_output_and_its_exit_code(tmp_path: Path) -> None:
    # an sbom process ends with os._exit once its documents are out (scan's fast exit):
    # a document written to a file and one piped on standard output arrive whole, and a
    # --strict failure still exits 2
    import subprocess
    import sys

    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text("ID=alpine\nVERSION_ID=3.20.0\n")
    (root / "lib/apk/db").mkdir(parents=True)
    (root / "lib/apk/db/installed").write_text("P:musl\nV:1.2.5-r0\nA:x86_64\no:musl\nL:MIT\n")
    spdx = tmp_path / "out.spdx.json"

    def own(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "skanse", "sbom", str(root), *args],
            capture_output=True,
            text=True,
            check=False,
        )

    done = own("-o", "cyclonedx-json", "-o", f"spdx-json={spdx}")
    assert done.returncode == 0, done.stderr
    assert "musl" in [c["name"] for c in json.loads(done.stdout)["components"]]
    assert "musl" in [p["name"] for p in json.loads(spdx.read_text())["packages"]]
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text("blabla\n\n")  # a problem: not a pass
    refused = own("--strict")
    assert refused.returncode == 2, refused.stderr
    assert "could not be read" in refused.stderr


def _hostile_text_image(tmp_path: Path) -> Path:
    """Names and contents that are not UTF-8, control bytes and Rich markup, all in places an
    image author chooses: a directory name, package metadata and a licence."""
    layer = LayerBuilder()
    layer.add_file("/etc/os-release", b"ID=alpine\nVERSION_ID=3.20.0\n")
    layer.add_file("/lib/apk/db/installed", b"P:mu\xffsl\nV:1.2.5-r0\nA:x86_64\nL:MIT\xfe\n\n")
    site = "/usr/lib/python3.11/site-packages"
    layer.add_file(  # a directory name with the byte 0xff, read as a lone surrogate
        f"{site}/x\udcffy/foo-1.0.dist-info/METADATA",
        b"Metadata-Version: 2.1\nName: fo\xffo\nVersion: 1.0\nLicense: MIT\n",
    )
    layer.add_file(
        f"{site}/[/x]/bar-2.0.dist-info/METADATA",
        b"Metadata-Version: 2.1\nName: [bold]bar\nVersion: 2.0\x1b[31m\n",
    )
    root = tmp_path / "layout"
    write_layout(build_image([layer.build()]), root, tag="t")
    return root


@pytest.mark.parametrize("fmt", ["table", "json", "cyclonedx-json", "spdx-json"])
def test_every_format_is_written_for_an_image_of_hostile_text(
    cli, tmp_path: Path, fmt: str
) -> None:
    # a lone surrogate made every format fail ("surrogates not allowed", an internal error),
    # and the table wrote ESC sequences and parsed Rich markup found in the image
    root = _hostile_text_image(tmp_path)
    out = tmp_path / f"out.{fmt}"
    run = cli("sbom", f"oci:{root}:t", "-o", f"{fmt}={out}")
    assert run.code == 0, run.stderr
    text = out.read_text(encoding="utf-8")  # valid UTF-8 throughout
    assert "\udcff" not in text
    assert "fo\ufffdo" in text or "fo\\ufffdo" in text
    if fmt == "table":
        assert "\x1b" not in text
        assert "[bold]bar" in text and "[/x]" in text and "2.0\\x1b[31m" in text
    else:
        json.loads(text)


def test_hostile_text_documents_still_validate(tmp_path: Path) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    root = _hostile_text_image(tmp_path)
    inventory = catalog_image(open_image(parse_spec(f"oci:{root}:t")))
    cdx = render("cyclonedx-json", inventory)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(cdx) is None
    path = tmp_path / "out.spdx.json"
    path.write_text(render("spdx-json", inventory), encoding="utf-8")
    assert validate_full_spdx_document(parse_file(str(path))) == []


def test_image_inspect_shows_the_authors_text_without_obeying_it(cli, tmp_path: Path) -> None:
    image = build_image(
        [LayerBuilder().add_file("/etc/motd", b"hi").build()],
        user="app\x1b]0;owned\x07",
        history=["RUN true\nskanse: image verified \x1b[2J"],
    )
    write_layout(image, tmp_path / "layout", tag="t")
    run = cli("image", "inspect", f"oci:{tmp_path / 'layout'}:t")
    assert run.code == 0, run.stderr
    assert "\x1b" not in run.stdout and "\x07" not in run.stdout
    assert "User:      app\\x1b]0;owned\\x07" in run.stdout
    assert "RUN true\\nskanse: image verified \\x1b[2J" in run.stdout
    assert not any(line.startswith("skanse:") for line in run.stdout.splitlines())


def test_spdx_names_the_distribution_as_an_operating_system_package(tiny_inventory) -> None:
    # Trivy looks for the distribution there; without it `trivy sbom` took the OS for "none"
    # and matched no distribution advisory (Syft's SPDX has the same gap)

    doc = json.loads(render("spdx-json", tiny_inventory))
    [os_package] = [
        p for p in doc["packages"] if p.get("primaryPackagePurpose") == "OPERATING-SYSTEM"
    ]
    assert (os_package["name"], os_package["versionInfo"]) == ("alpine", "3.16.2")
    root = next(p for p in doc["packages"] if p.get("primaryPackagePurpose") == "CONTAINER")
    assert {
        "spdxElementId": root["SPDXID"],
        "relationshipType": "CONTAINS",
        "relatedSpdxElement": os_package["SPDXID"],
    } in doc["relationships"]
    assert "OPERATING_SYSTEM" not in json.dumps(doc)  # the schema's spelling only


def test_skanse_spdx_read_back_has_its_distribution_and_no_extra_package(
    tiny_inventory, tmp_path: Path
) -> None:
    from skanse.vuln.sbom import read_sbom

    path = tmp_path / "tiny.spdx.json"
    path.write_text(render("spdx-json", tiny_inventory))
    read = read_sbom(path)
    assert read.distro is not None and (read.distro.id, read.distro.version_id) == (
        "alpine",
        "3.16.2",
    )
    assert len(read.packages) == len(tiny_inventory.packages)
