"""End to end: a real image with known vulnerable packages, pushed to Debian's
docker-registry, scanned directly and through its SBOMs, in every output format."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from skanse.oci.manifest import Platform
from skanse.oci.writer import BuiltImage, LayerBuilder, build_image, push_image
from tests.conftest import SCHEMAS, corpus_path

OS_RELEASE = (
    b'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.11.6\nPRETTY_NAME="Alpine Linux v3.11"\n'
)
APK_DB = (
    b"P:musl\nV:1.1.22-r3\nA:x86_64\no:musl\nL:MIT\n\n"
    b"P:libcrypto1.1\nV:1.1.1d-r0\nA:x86_64\no:openssl\nL:OpenSSL\n\n"
    b"P:zlib\nV:1.2.11-r3\nA:x86_64\no:zlib\nL:Zlib\n\n"
)
SITE = "/usr/lib/python3.8/site-packages"


def _metadata(name: str, version: str) -> bytes:
    return f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()


def vulnerable_image() -> BuiltImage:
    base = LayerBuilder()
    base.add_file("/etc/os-release", OS_RELEASE)
    base.add_file("/lib/apk/db/installed", APK_DB)
    app = LayerBuilder()  # what `pip install requests==2.19.0 urllib3==1.24.1` leaves behind
    app.add_file(f"{SITE}/requests-2.19.0.dist-info/METADATA", _metadata("requests", "2.19.0"))
    app.add_file(f"{SITE}/urllib3-1.24.1.dist-info/METADATA", _metadata("urllib3", "1.24.1"))
    app.add_file(f"{SITE}/idna-3.7.dist-info/METADATA", _metadata("idna", "3.7"))
    return build_image([base.build(), app.build()], platform=Platform("linux", "amd64"))


@pytest.fixture(scope="module")
def corpus_db(tmp_path_factory) -> Path:
    from skanse.vuln.db import Source, build_database

    root = corpus_path("vulndb")
    dest = tmp_path_factory.mktemp("e2e-db") / "vuln.db"
    build_database(dest, [Source(root / "osv-pypi"), Source(root / "alpine-secdb")])
    return dest


def _facts(document: dict, *, layers: bool = True) -> set[tuple]:
    facts = set()
    for m in document["matches"]:
        loc = m["package"]["locations"][0]
        fact = (
            m["id"],
            m["package"]["name"],
            m["package"]["version"],
            loc["path"],
            m["fix_state"],
            m["fixed_version"],
        )
        facts.add((*fact, loc["layer_digest"]) if layers else fact)
    return facts


@pytest.mark.registry
@pytest.mark.corpus
def test_registry_image_and_its_sboms_give_the_same_vulnerabilities(
    registry, cli, corpus_db: Path, tmp_path: Path
) -> None:
    image = vulnerable_image()
    ref = registry.ref("skanse/vulnerable:v1")
    push_image(registry.client(tmp_path / "push-cache"), ref, image)
    target = str(ref)
    common = ("--db", str(corpus_db), "--no-config", "--cache-dir", str(tmp_path / "cache"))

    direct = cli("vuln", target, "-f", "json", *common)
    assert direct.code == 1, direct.stderr  # vulnerabilities fail the run by default
    document = json.loads(direct.stdout)
    by_id = {(m["id"], m["package"]["name"]): m for m in document["matches"]}
    requests = by_id[("PYSEC-2018-28", "requests")]
    assert requests["fixed_version"] == "2.20.0" and requests["fix_state"] == "fixed"
    assert "CVE-2018-18074" in requests["aliases"]
    [location] = requests["package"]["locations"]
    assert location == {
        "path": f"{SITE}/requests-2.19.0.dist-info/METADATA",
        "layer": 1,
        "layer_digest": image.layers[1].diff_id,
    }
    assert ("PYSEC-2019-133", "urllib3") in by_id  # CVE-2019-11324, fixed in 1.24.2
    openssl = by_id[("CVE-2019-1551", "libcrypto1.1")]  # through the origin, openssl
    assert openssl["matched"] == {
        "ecosystem": "alpine:3.11",
        "name": "openssl",
        "version": "1.1.1d-r0",
        "source": "alpine-secdb",
    }
    assert openssl["package"]["locations"][0]["layer"] == 0
    assert ("CVE-2019-14697", "musl") in by_id  # fixed in 1.1.23-r2
    assert not any(name == "idna" for _, name in by_id)  # 3.7 has no advisory here
    assert document["summary"]["packages"] == 6 and document["summary"]["checked"] == 6

    cdx, spdx = tmp_path / "image.cdx.json", tmp_path / "image.spdx.json"
    made = cli(
        "sbom",
        target,
        "-o",
        f"cyclonedx-json={cdx}",
        "-o",
        f"spdx-json={spdx}",
        "--cache-dir",
        str(tmp_path / "cache"),
    )
    assert made.code == 0, made.stderr
    through_cdx = cli("vuln", str(cdx), "-f", "json", *common)
    assert through_cdx.code == 1, through_cdx.stderr
    assert _facts(json.loads(through_cdx.stdout)) == _facts(document)
    # SPDX carries no layers; everything else is the same
    through_spdx = cli("vuln", f"sbom:{spdx}", "-f", "json", *common)
    assert _facts(json.loads(through_spdx.stdout), layers=False) == _facts(document, layers=False)


@pytest.mark.registry
@pytest.mark.corpus
def test_every_output_format_of_a_registry_scan(
    registry, cli, corpus_db: Path, tmp_path: Path
) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    image = vulnerable_image()
    ref = registry.ref("skanse/vulnerable:formats")
    push_image(registry.client(tmp_path / "push-cache"), ref, image)
    common = ("--db", str(corpus_db), "--no-config", "--cache-dir", str(tmp_path / "cache"))
    vex = tmp_path / "vex.json"
    vex.write_text(
        json.dumps(
            {
                "@context": "https://openvex.dev/ns/v0.2.0",
                "statements": [
                    {
                        "vulnerability": {"name": "CVE-2019-14697"},
                        "products": [{"@id": "pkg:apk/alpine/musl"}],
                        "status": "not_affected",
                        "justification": "vulnerable_code_not_present",
                    }
                ],
            }
        )
    )

    text = cli("vuln", str(ref), *common, "--vex", str(vex))
    assert text.code == 1
    assert "PYSEC-2018-28" in text.stdout and "requests" in text.stdout and "2.20.0" in text.stdout
    assert "Suppressed (1):" in text.stdout
    assert "CVE-2019-14697 musl 1.1.22-r3: not_affected: vulnerable_code_not_present" in text.stdout

    sarif = cli("vuln", str(ref), *common, "--vex", str(vex), "-f", "sarif")
    document = json.loads(sarif.stdout)
    schema_path = SCHEMAS / "sarif-schema-2.1.0.json"
    if schema_path.exists():
        jsonschema.validate(document, json.loads(schema_path.read_text()))
    results = document["runs"][0]["results"]
    [musl] = [r for r in results if r["ruleId"] == "CVE-2019-14697"]
    assert musl["suppressions"][0]["kind"] == "external"
    assert "vulnerable_code_not_present" in musl["suppressions"][0]["justification"]
    rules = {r["id"] for r in document["runs"][0]["tool"]["driver"]["rules"]}
    assert {r["ruleId"] for r in results} <= rules

    junit = cli("vuln", str(ref), *common, "-f", "junit")
    assert "[UNKNOWN]" not in junit.stdout and "PYSEC-2018-28" in junit.stdout
    assert "<failure" in junit.stdout

    bom = cli("vuln", str(ref), *common, "--vex", str(vex), "-f", "cyclonedx")
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(bom.stdout) is None
    parsed = json.loads(bom.stdout)
    vulns = {(v["id"], v["affects"][0]["ref"]) for v in parsed["vulnerabilities"]}
    refs = {c["bom-ref"]: c["name"] for c in parsed["components"]}
    assert any(i == "PYSEC-2018-28" and refs[r] == "requests" for i, r in vulns)
    [musl_vuln] = [v for v in parsed["vulnerabilities"] if v["id"] == "CVE-2019-14697"]
    assert musl_vuln["analysis"]["state"] == "not_affected"
    assert "vulnerable_code_not_present" in musl_vuln["analysis"]["detail"]
    [req] = [v for v in parsed["vulnerabilities"] if v["id"] == "PYSEC-2018-28"]
    assert req["recommendation"] == "Upgrade requests to 2.20.0 or later"

    only = cli("vuln", str(ref), *common, "--fail-on", "critical")
    assert only.code == 0  # nothing here is rated critical by this data


@pytest.mark.corpus
@pytest.mark.parametrize("kind", ["oci", "docker-archive", "dir"])
def test_layouts_archives_and_root_file_systems_agree(
    cli, corpus_db: Path, tmp_path: Path, kind
) -> None:
    from skanse.oci.writer import write_docker_archive, write_layout

    image = vulnerable_image()
    if kind == "oci":
        write_layout(image, tmp_path / "layout", tag="v1")
        target = f"oci:{tmp_path / 'layout'}:v1"
    elif kind == "docker-archive":
        write_docker_archive(image, tmp_path / "image.tar", repo_tag="skanse/vulnerable:v1")
        target = f"docker-archive:{tmp_path / 'image.tar'}"
    else:  # the same files, unpacked
        root = tmp_path / "rootfs"
        (root / "etc").mkdir(parents=True)
        (root / "etc/os-release").write_bytes(OS_RELEASE)
        (root / "lib/apk/db").mkdir(parents=True)
        (root / "lib/apk/db/installed").write_bytes(APK_DB)
        for name, version in (("requests", "2.19.0"), ("urllib3", "1.24.1"), ("idna", "3.7")):
            meta = root / SITE.lstrip("/") / f"{name}-{version}.dist-info" / "METADATA"
            meta.parent.mkdir(parents=True)
            meta.write_bytes(_metadata(name, version))
        target = f"dir:{root}"
    run = cli("vuln", target, "-f", "json", "--db", str(corpus_db), "--no-config")
    assert run.code == 1, run.stderr
    found = {(m["id"], m["package"]["name"]) for m in json.loads(run.stdout)["matches"]}
    assert {
        ("PYSEC-2018-28", "requests"),
        ("PYSEC-2019-133", "urllib3"),
        ("CVE-2019-1551", "libcrypto1.1"),
        ("CVE-2019-14697", "musl"),
    } <= found
