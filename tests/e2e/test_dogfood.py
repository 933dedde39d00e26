"""skanse on skanse: its own images pushed to Debian's docker-registry, described by its own
SBOMs (validated), matched against a fixture database, signed and attested with its own
commands; `verify` and `verify-attestation` accept them and refuse a tampered copy. Its own
Dockerfile and deployment manifests scan clean."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests._registry import LocalRegistry
from tests.conftest import corpus_path
from tests.e2e.conftest import PROJECT, Images, Pushed, podman, push, skanse

pytestmark = [pytest.mark.slow, pytest.mark.registry]

PASSWORD = {"SKANSE_PASSWORD": "dogfood pass", "COSIGN_PASSWORD": ""}


@dataclass(frozen=True)
class Signed:
    cli: Pushed
    sensor: Pushed
    work: Path
    public_key: Path
    sboms: dict[str, tuple[Path, Path]]  # image -> (CycloneDX, SPDX)


def _ok(run: subprocess.CompletedProcess[str], what: str) -> None:
    assert run.returncode == 0, f"{what}: exit {run.returncode}\n{run.stdout}\n{run.stderr}"


@pytest.fixture(scope="module")
def signed(
    images: Images, registry: LocalRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Signed]:
    """Both images pushed, each SBOM'd, signed and attested, as the README's release steps."""
    work = tmp_path_factory.mktemp("dogfood")
    cli = push(images.cli.name, registry, "skanse/skanse", "0.1.0", work)
    sensor = push(images.sensor.name, registry, "skanse/skanse-sensor", "0.1.0", work)
    prefix = str(work / "release")
    _ok(
        skanse("sign", "generate-key-pair", "--output-key-prefix", prefix, env=PASSWORD),
        "generate-key-pair",
    )
    cache = ("--cache-dir", str(work / "blobs"))
    sboms = {}
    for pushed in (cli, sensor):
        name = pushed.tag.rsplit("/", 1)[1].split(":")[0]
        cdx, spdx = work / f"{name}.cdx.json", work / f"{name}.spdx.json"
        _ok(
            skanse("sbom", pushed.digest, "-o", f"cyclonedx-json={cdx}", "-o", f"spdx-json={spdx}",
                   *cache),
            f"sbom {pushed.digest}",
        )  # fmt: skip
        sboms[name] = (cdx, spdx)
        _ok(skanse("sign", "--key", f"{prefix}.key", pushed.digest, env=PASSWORD), "sign")
        _ok(
            skanse("attest", "--key", f"{prefix}.key", "--predicate", str(cdx),
                   "--type", "cyclonedx", pushed.digest, env=PASSWORD),
            "attest",
        )  # fmt: skip
    yield Signed(cli, sensor, work, Path(f"{prefix}.pub"), sboms)


def test_sboms_validate_and_list_skanse_and_debian_python(signed: Signed) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    for cdx, spdx in signed.sboms.values():
        text = cdx.read_text()
        assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
        purls = {c.get("purl", "") for c in json.loads(text)["components"]}
        assert "pkg:pypi/skanse@0.1.0" in purls
        assert any(p.startswith("pkg:deb/debian/python3.11@") for p in purls), sorted(purls)[:20]
        assert any(p.startswith("pkg:pypi/cryptography@") for p in purls)
        document = parse_file(str(spdx))
        assert validate_full_spdx_document(document) == []
        spdx_purls = {
            ref.locator
            for package in document.packages
            for ref in package.external_references
            if ref.reference_type == "purl"
        }
        assert "pkg:pypi/skanse@0.1.0" in spdx_purls
    sensor_cdx = json.loads(signed.sboms["skanse-sensor"][0].read_text())
    assert any(
        c.get("purl", "").startswith("pkg:deb/debian/libbpf1@") for c in sensor_cdx["components"]
    )


def test_vulnerability_report_against_a_fixture_database(signed: Signed, tmp_path: Path) -> None:
    """A Debian tracker fixture naming bookworm's python3.11 source package as open, and the
    OSV PyPI corpus: the report finds the Debian package through its source package in the
    real image, and the JSON carries the contract's fields."""
    from skanse.vuln.db import Source, build_database

    installed = _deb_version(signed.sboms["skanse"][0], "python3.11")
    tracker = tmp_path / "debian" / "tracker.json"
    tracker.parent.mkdir()
    tracker.write_text(
        json.dumps(
            {
                "python3.11": {
                    "CVE-2099-0001": {
                        "description": "fixture: an open issue in bookworm's python3.11",
                        "releases": {
                            "bookworm": {
                                "status": "open",
                                "urgency": "high",
                                "repositories": {"bookworm": installed},
                            }
                        },
                    }
                }
            }
        )
    )
    db = tmp_path / "vuln.db"
    build_database(db, [Source(tracker.parent), Source(corpus_path("vulndb", "osv-pypi"))])
    report = tmp_path / "vuln.json"
    run = skanse(
        "vuln", signed.cli.digest, "--db", str(db), "--no-config", "-f", "json", "-o", str(report),
        "--cache-dir", str(signed.work / "blobs"),
    )  # fmt: skip
    assert run.returncode == 1, run.stderr  # findings fail the run by default
    matches = json.loads(report.read_text())["matches"]
    ours = [m for m in matches if m["id"] == "CVE-2099-0001"]
    assert ours, [m["id"] for m in matches]
    assert {m["package"]["name"] for m in ours} >= {"python3.11", "libpython3.11-stdlib"}
    for match in matches:
        assert {"severity", "cvss"} <= match.keys()


def _deb_version(cdx: Path, source: str) -> str:
    for component in json.loads(cdx.read_text())["components"]:
        if component.get("purl", "").startswith(f"pkg:deb/debian/{source}@"):
            return str(component["version"])
    raise AssertionError(f"{source} is not in {cdx}")


def test_signatures_and_attestations_verify(signed: Signed) -> None:
    key = ("--key", str(signed.public_key))
    for pushed in (signed.cli, signed.sensor):
        for ref in (pushed.tag, pushed.digest):
            _ok(skanse("verify", *key, "--require-reference", ref), f"verify {ref}")
            _ok(
                skanse("verify-attestation", *key, "--type", "cyclonedx", ref),
                f"verify-attestation {ref}",
            )
    # an attestation of another type is not one of these
    other = skanse("verify-attestation", *key, "--type", "spdxjson", signed.cli.tag)
    assert other.returncode == 1, other.stdout + other.stderr


def test_a_tampered_copy_fails_verification(
    signed: Signed, registry: LocalRegistry, tmp_path: Path
) -> None:
    """The signed image changed (one label added) and pushed over the signed tag, and the
    signed image under another key: both refused."""
    containerfile = tmp_path / "Containerfile"
    containerfile.write_text(f"FROM {signed.cli.digest}\nLABEL tampered=yes\n")
    podman(
        "build", "--tls-verify=false", "--runtime", "runc", "-t", "localhost/skanse-tampered:x",
        "-f", str(containerfile), str(tmp_path),
    )  # fmt: skip
    try:
        tampered = push(
            "localhost/skanse-tampered:x", registry, "skanse/skanse", "tampered", tmp_path
        )
    finally:
        podman("rmi", "localhost/skanse-tampered:x", check=False)
    assert tampered.digest != signed.cli.digest
    key = ("--key", str(signed.public_key))
    run = skanse("verify", *key, tampered.tag)
    assert run.returncode == 1, run.stdout + run.stderr
    run = skanse("verify-attestation", *key, "--type", "cyclonedx", tampered.tag)
    assert run.returncode == 1, run.stdout + run.stderr
    stranger = tmp_path / "stranger"
    _ok(
        skanse("sign", "generate-key-pair", "--output-key-prefix", str(stranger), env=PASSWORD),
        "generate-key-pair",
    )
    run = skanse("verify", "--key", f"{stranger}.pub", signed.cli.digest)
    assert run.returncode == 1, run.stdout + run.stderr


def test_own_dockerfile_and_deployment_manifests_scan_clean() -> None:
    run = skanse("scan", str(PROJECT / "Dockerfile"), str(PROJECT / "deploy"), "--no-config")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 findings" in run.stdout, run.stdout
