"""SBOMs as input (Syft's and skanse's; invalid ones), and the `vuln` / `db` commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from skanse.errors import SbomError
from skanse.inventory.model import Inventory
from skanse.vuln.sbom import read_sbom
from tests.conftest import corpus_path
from tests.vuln.helpers import osv, write_json


@pytest.mark.corpus
def test_syft_cyclonedx_spdx_and_json_give_the_same_packages() -> None:
    fixtures = corpus_path("sbom-fixtures", "tiny-image-sboms")
    cdx = read_sbom(fixtures / "tiny.cdx.json")
    spdx = read_sbom(fixtures / "tiny.spdx.json")
    syft = read_sbom(fixtures / "tiny.syft.json")

    def facts(inv: Inventory) -> set[tuple[str, str, str, str]]:
        return {
            (p.name, p.version, p.purl, p.locations[0].path if p.locations else "")
            for p in inv.packages
        }

    assert facts(cdx) == facts(spdx) == facts(syft)
    names = {p.name for p in cdx.packages}
    assert {"musl", "zlib", "requests", "lodash", "busybox-static"} <= names
    assert cdx.distro is not None and (cdx.distro.id, cdx.distro.version_id) == ("alpine", "3.16.2")
    assert syft.distro is not None and syft.distro.version_id == "3.16.2"
    assert cdx.subject.manifest_digest and cdx.subject.manifest_digest.startswith("sha256:")
    musl = next(p for p in cdx.packages if p.name == "musl")
    assert musl.locations[0].layer_digest and musl.locations[0].layer_digest.startswith("sha256:")


def test_a_library_an_spdx_document_describes_is_a_package(tmp_path: Path) -> None:
    # an SBOM of one application DESCRIBES that application: it is checked, not dropped as
    # if it were the image; a described package without a purl is still the subject
    def spdx_package(ident: str, name: str, version: str, purl: str | None) -> dict:
        refs = [
            {
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": purl,
            }
        ]
        return {
            "SPDXID": ident,
            "name": name,
            "versionInfo": version,
            "downloadLocation": "NOASSERTION",
            "externalRefs": refs if purl else [],
        }

    document = {
        "spdxVersion": "SPDX-2.3",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": "requests-sbom",
        "dataLicense": "CC0-1.0",
        "documentNamespace": "https://example.com/spdx/1",
        "packages": [
            spdx_package("SPDXRef-app", "requests", "2.19.0", "pkg:pypi/requests@2.19.0"),
            spdx_package("SPDXRef-dir", "/srv/app", "", None),
        ],
        "relationships": [
            {
                "spdxElementId": "SPDXRef-DOCUMENT",
                "relationshipType": "DESCRIBES",
                "relatedSpdxElement": ident,
            }
            for ident in ("SPDXRef-app", "SPDXRef-dir")
        ],
    }
    inventory = read_sbom(write_json(tmp_path / "app.spdx.json", document))
    assert [(p.name, p.version) for p in inventory.packages] == [("requests", "2.19.0")]
    assert inventory.subject.name == "/srv/app"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"<?xml version='1.0'?><bom xmlns='http://cyclonedx.org/schema/bom/1.6'/>", "not JSON"),
        (b"[1, 2, 3]", "is a JSON object"),
        (b'{"hello": "world"}', "not an SBOM"),
        (b'{"bomFormat": "SomethingElse", "specVersion": "1.6"}', "bomFormat"),
        (
            b'{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [{"name": 1}]}',
            r"not a valid CycloneDX SBOM:\n  components\[0\]\.type: Field required",
        ),
        (b'{"spdxVersion": "SPDX-2.3", "packages": [{"name": "x"}]}', "not a valid SPDX SBOM"),
        (b'{"spdxVersion": "SPDX-3.0", "packages": []}', "not SPDX 2.x"),
        (b'{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [{"ty', "not JSON"),
    ],
)
def test_invalid_sboms_are_clear_errors(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(SbomError, match=message) as caught:
        read_sbom(path)
    assert str(path) in caught.value.diagnostics()


def test_deeply_nested_cyclonedx_components_are_bounded(tmp_path: Path) -> None:
    component: dict = {"type": "library", "name": "leaf", "version": "1"}
    for i in range(40):
        component = {"type": "library", "name": f"n{i}", "version": "1", "components": [component]}
    path = write_json(
        tmp_path / "deep.json",
        {"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [component]},
    )
    with pytest.raises(SbomError, match="nested deeper"):
        read_sbom(path)


@pytest.fixture
def demo_db(tmp_path: Path, cli) -> Path:
    record = osv(
        "PYSEC-DEMO-1",
        "PyPI",
        "demo",
        [{"introduced": "0"}, {"fixed": "2.0"}],
        aliases=["CVE-2099-42"],
        severity="CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
    )
    source = write_json(tmp_path / "advisories" / "PYSEC-DEMO-1.json", record)
    (tmp_path / "advisories" / "broken.json").write_text('{"id": "PYSEC-X", "modified": ')
    db = tmp_path / "db" / "vuln.db"
    run = cli("db", "build", f"osv:{source.parent}", "--db", str(db))
    assert run.code == 0, run.stderr
    assert "1 advisories (1 osv)" in run.stdout and "1 rejected" in run.stdout
    assert "broken.json: not valid JSON" in run.stderr
    return db


def _rootfs(tmp_path: Path, version: str) -> Path:
    root = tmp_path / f"rootfs-{version}"
    meta = root / "usr/lib/python3.12/site-packages" / f"demo-{version}.dist-info" / "METADATA"
    meta.parent.mkdir(parents=True)
    meta.write_text(f"Metadata-Version: 2.1\nName: demo\nVersion: {version}\n")
    return root


def test_cli_vuln_exit_codes_and_fail_on(cli, demo_db: Path, tmp_path: Path) -> None:
    vulnerable, fixed = _rootfs(tmp_path, "1.5"), _rootfs(tmp_path, "2.0")
    run = cli("vuln", f"dir:{vulnerable}", "--db", str(demo_db), "--no-config")
    assert run.code == 1
    assert "PYSEC-DEMO-1" in run.stdout and "CRITICAL" in run.stdout and "CVE-2099-42" in run.stdout
    assert cli("vuln", f"dir:{fixed}", "--db", str(demo_db), "--no-config").code == 0
    exit_zero = cli("vuln", f"dir:{vulnerable}", "--db", str(demo_db), "--no-config", "--exit-zero")
    assert exit_zero.code == 0
    below = cli(
        "vuln",
        str(vulnerable),
        "--db",
        str(demo_db),
        "--no-config",
        "--severity",
        "low",
        "--fail-on",
        "critical",
    )
    assert below.code == 1


def test_cli_config_suppression_needs_a_reason(cli, demo_db: Path, tmp_path: Path) -> None:
    root = _rootfs(tmp_path, "1.5")
    config = tmp_path / "skanse.yaml"
    config.write_text("suppressions:\n  - id: CVE-2099-42\n    purl: pkg:pypi/demo\n")
    run = cli("vuln", str(root), "--db", str(demo_db), "--config", str(config))
    assert run.code == 2 and "reason" in run.stderr
    config.write_text(
        "suppressions:\n  - id: CVE-2099-42\n    purl: pkg:pypi/demo\n    reason: sandboxed\n"
    )
    run = cli("vuln", str(root), "--db", str(demo_db), "--config", str(config), "-f", "json")
    assert run.code == 0
    [match] = json.loads(run.stdout)["matches"]
    assert match["suppressed"] and match["suppression"]["reason"] == "sandboxed"


def test_cli_vuln_takes_no_settings_from_the_scanned_target(
    cli, demo_db: Path, tmp_path: Path, monkeypatch
) -> None:
    # a root file system (or an SBOM beside it) carrying a .skanse.yaml that turns the gate
    # off and suppresses everything: the thing scanned never configures its own scan
    root = _rootfs(tmp_path, "1.5")
    planted = (
        "exit-zero: true\nseverity: critical\nsuppressions:\n"
        "  - id: CVE-2099-42\n    reason: planted\n"
    )
    (root / ".skanse.yaml").write_text(planted)
    sbom = root / "sbom.cdx.json"
    write_json(
        sbom,
        {
            "bomFormat": "CycloneDX",
            "specVersion": "1.5",
            "components": [
                {"type": "library", "name": "demo", "version": "1.5", "purl": "pkg:pypi/demo@1.5"}
            ],
        },
    )
    work = tmp_path / "work"
    (work / ".git").mkdir(parents=True)  # discovery stops here
    monkeypatch.chdir(work)
    for target in (str(root), f"dir:{root}", str(sbom), f"sbom:{sbom}"):
        run = cli("vuln", target, "--db", str(demo_db), "-f", "json")
        assert run.code == 1, (target, run.stderr)
        [match] = json.loads(run.stdout)["matches"]
        assert not match["suppressed"], target
    # the working directory's own file is the one used, and --config still works
    (work / ".skanse.yaml").write_text(planted)
    assert cli("vuln", str(root), "--db", str(demo_db)).code == 0
    monkeypatch.chdir(tmp_path)
    explicit = cli("vuln", str(sbom), "--db", str(demo_db), "--config", str(root / ".skanse.yaml"))
    assert explicit.code == 0


def test_cli_missing_database_and_bad_inputs_exit_2(cli, tmp_path: Path, demo_db: Path) -> None:
    root = _rootfs(tmp_path, "1.5")
    missing = cli("vuln", str(root), "--db", str(tmp_path / "none.db"), "--no-config")
    assert missing.code == 2 and "skanse db build" in missing.stderr
    bad = tmp_path / "bad.cdx.json"
    bad.write_text('{"bomFormat": "CycloneDX"}')
    run = cli("vuln", str(bad), "--db", str(demo_db), "--no-config")
    assert run.code == 2 and "not a valid CycloneDX SBOM" in run.stderr
    vex = tmp_path / "vex.json"
    statement = {"vulnerability": "CVE-1", "products": ["pkg:pypi/demo"], "status": "not_affected"}
    document = {"@context": "https://openvex.dev/ns/v0.2.0", "statements": [statement]}
    vex.write_text(json.dumps(document))
    run = cli("vuln", str(root), "--db", str(demo_db), "--no-config", "--vex", str(vex))
    assert run.code == 2 and "needs a justification" in run.stderr


def test_cli_output_path_mistakes_are_input_errors(cli, demo_db: Path, tmp_path: Path) -> None:
    # a directory named as the file, or a file in a directory that does not exist: said
    # plainly with exit 2 (they had been "internal error: FileNotFoundError ...")
    root = _rootfs(tmp_path, "1.5")
    folder = tmp_path / "reports"
    folder.mkdir()
    missing = tmp_path / "nodir" / "x"
    runs = {
        "vuln -o dir": cli(
            "vuln", str(root), "--db", str(demo_db), "--no-config", "-o", str(folder)
        ),
        "vuln -o missing": cli(
            "vuln", str(root), "--db", str(demo_db), "--no-config", "-o", f"{missing}.json"
        ),
        "export dir": cli("db", "export", str(folder), "--db", str(demo_db)),
        "export missing": cli("db", "export", f"{missing}.tar.zst", "--db", str(demo_db)),
        "build --db dir": cli("db", "build", f"osv:{tmp_path / 'advisories'}", "--db", str(folder)),
        "import --db dir": cli(
            "db",
            "import",
            str(tmp_path / "none.tar.zst"),
            "--db",
            str(folder),
            "--insecure-unsigned",
        ),
    }
    for name, run in runs.items():
        assert run.code == 2, name
        assert "internal error" not in run.stderr, (name, run.stderr)
        assert "is a directory" in run.stderr or "does not exist" in run.stderr, name
    assert sorted(p.name for p in folder.iterdir()) == []


def test_cli_db_info_export_import(cli, demo_db: Path, tmp_path: Path) -> None:
    info = cli("db", "info", "--db", str(demo_db))
    assert info.code == 0
    assert "1 advisories (0 withdrawn)" in info.stdout and "pypi" in info.stdout
    as_json = json.loads(cli("db", "info", "--db", str(demo_db), "--json").stdout)
    assert as_json["schema_version"] == 2 and as_json["ecosystems"] == {"pypi": 1}
    archive = tmp_path / "vuln-db.tar.zst"
    exported = cli("db", "export", str(archive), "--db", str(demo_db))
    assert exported.code == 0 and "sha256" in exported.stdout
    target = tmp_path / "elsewhere" / "vuln.db"
    refused = cli("db", "import", str(archive), "--db", str(target))
    assert refused.code == 2 and "--insecure-unsigned" in refused.stderr
    assert not target.exists()
    imported = cli("db", "import", str(archive), "--db", str(target), "--insecure-unsigned")
    assert imported.code == 0 and "UNSIGNED" in imported.stdout
    assert target.read_bytes() == demo_db.read_bytes()
    (tmp_path / "junk.tar.zst").write_bytes(b"junk")
    junk = cli(
        "db", "import", str(tmp_path / "junk.tar.zst"), "--db", str(target), "--insecure-unsigned"
    )
    assert junk.code == 2
    assert target.read_bytes() == demo_db.read_bytes()


def test_cli_signed_export_and_import(cli, demo_db: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SKANSE_PASSWORD", "pw")
    assert (
        cli("sign", "generate-key-pair", "--output-key-prefix", str(tmp_path / "cosign")).code == 0
    )
    archive = tmp_path / "vuln-db.tar.zst"
    exported = cli(
        "db", "export", str(archive), "--db", str(demo_db), "--key", str(tmp_path / "cosign.key")
    )
    assert exported.code == 0, exported.stderr
    assert (tmp_path / "vuln-db.tar.zst.sigstore.json").is_file()
    target = tmp_path / "elsewhere" / "vuln.db"
    pub = str(tmp_path / "cosign.pub")
    imported = cli("db", "import", str(archive), "--db", str(target), "--key", pub)
    assert imported.code == 0 and "signature verified" in imported.stdout, imported.stderr
    assert target.read_bytes() == demo_db.read_bytes()


def test_cli_strict_fails_when_os_packages_cannot_be_checked(cli, demo_db: Path, tmp_path) -> None:
    root = tmp_path / "no-os-release"
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(
        "Package: bash\nStatus: install ok installed\nVersion: 5.2.15-2+b2\nArchitecture: amd64\n"
    )
    relaxed = cli("vuln", f"dir:{root}", "--db", str(demo_db), "--no-config", "-f", "json")
    assert relaxed.code == 0
    [problem] = json.loads(relaxed.stdout)["problems"]
    assert "bash" in problem["message"] and "release is unknown" in problem["message"]
    strict = cli("vuln", f"dir:{root}", "--db", str(demo_db), "--no-config", "--strict")
    assert strict.code == 2 and "could not be checked" in strict.stderr
    assert "Could not check (1)" in strict.stdout


def test_cli_strict_fails_when_a_purl_cannot_be_read(cli, demo_db: Path, tmp_path) -> None:
    # a purl that does not parse names no known ecosystem: the package was not checked,
    # which is not the same as "no advisories" (it had passed --strict with 0 findings)
    for purl in ("pkg:pypi/demo@1.5?a", "PKG:pypi/demo@1.5"):
        sbom = write_json(
            tmp_path / "bad-purl.cdx.json",
            {
                "bomFormat": "CycloneDX",
                "specVersion": "1.5",
                "components": [{"type": "library", "name": "demo", "version": "1.5", "purl": purl}],
            },
        )
        strict = cli("vuln", str(sbom), "--db", str(demo_db), "--no-config", "--strict")
        assert strict.code == 2, purl
        assert "not a valid package URL" in strict.stdout


@pytest.mark.parametrize("age", ["1e400d", "infd", "nanh", "99999999999d", "-3d"])
def test_cli_max_db_age_out_of_range_is_a_usage_error(
    cli, demo_db: Path, tmp_path: Path, age: str
) -> None:
    # a traceback (overflow) or, for a negative age, a check silently turned off
    root = _rootfs(tmp_path, "2.0")
    with pytest.raises(SystemExit) as exited:
        cli("vuln", str(root), "--db", str(demo_db), "--no-config", f"--max-db-age={age}")
    assert exited.value.code == 2


def test_cli_summary_does_not_count_uncovered_packages_as_checked(
    cli, demo_db: Path, tmp_path: Path
) -> None:
    # the database has no npm data: the package was not checked, and the hint names the
    # flag vuln has (--strict), not scan's --allow-unchecked
    sbom = write_json(
        tmp_path / "npm.cdx.json",
        {
            "bomFormat": "CycloneDX",
            "specVersion": "1.5",
            "components": [
                {
                    "type": "library",
                    "name": "lodash",
                    "version": "4.17.20",
                    "purl": "pkg:npm/lodash@4.17.20",
                }
            ],
        },
    )
    run = cli("vuln", str(sbom), "--db", str(demo_db), "--no-config")
    assert run.code == 0
    assert "0 of 1 packages checked" in run.stdout
    assert "--allow-unchecked" not in run.stderr and "--strict" in run.stderr


def test_cli_vuln_text_shows_hostile_paths_as_text(cli, demo_db: Path, tmp_path: Path) -> None:
    # a package found under a path holding Rich markup and an escape sequence: the table
    # shows both as text (Rich had raised "closing tag '[/x]' ... doesn't match")
    root = tmp_path / "rootfs"
    meta = root / "opt/[/x]\x1b[2J/lib/python3.12/site-packages/demo-1.5.dist-info/METADATA"
    meta.parent.mkdir(parents=True)
    meta.write_text("Metadata-Version: 2.1\nName: demo\nVersion: 1.5\n")
    run = cli("vuln", f"dir:{root}", "--db", str(demo_db), "--no-config")
    assert run.code == 1, run.stderr
    assert "PYSEC-DEMO-1" in run.stdout
    assert "\x1b" not in run.stdout and "[/x]\\x1b[2J" in run.stdout


PEER_SBOMS = Path(__file__).parent / "data" / "peer-sboms"


@pytest.mark.parametrize("name", ["trivy-0.76-debian12.cdx.json", "trivy-0.76-debian12.spdx.json"])
def test_trivy_sboms_are_looked_up_by_debian_source_package_and_epoch(name: str) -> None:
    # Trivy names the source in its own properties (CycloneDX) or sourceInfo (SPDX) and the
    # epoch in a purl qualifier; looked up by binary name and without the epoch, libc6 and
    # zlib1g found none of glibc's and zlib's advisories (see data/peer-sboms/SOURCES.md)
    from skanse.vuln.matcher import LookupKey, lookup_keys

    inventory = read_sbom(PEER_SBOMS / name)
    assert inventory.distro is not None
    assert (inventory.distro.id, inventory.distro.version_id) == ("debian", "12.15")
    keys = {p.name: lookup_keys(p, inventory.distro) for p in inventory.packages}
    assert keys == {
        "libc6": [LookupKey("debian:12", "glibc", "2.36-9+deb12u14")],
        "zlib1g": [LookupKey("debian:12", "zlib", "1:1.2.13.dfsg-1")],
        "libsystemd0": [LookupKey("debian:12", "systemd", "252.39-1~deb12u2")],
        "base-files": [LookupKey("debian:12", "base-files", "12.4+deb12u15")],
    }


@pytest.mark.corpus
def test_syft_cyclonedx_is_looked_up_as_syft_json_is() -> None:
    # Syft makes no purl for a deb in an Alpine image and names its source only in the
    # property syft:metadata:source; busybox-static was looked up under its own name
    from skanse.vuln.matcher import lookup_keys

    fixtures = corpus_path("sbom-fixtures", "tiny-image-sboms")
    cdx, syft = read_sbom(fixtures / "tiny.cdx.json"), read_sbom(fixtures / "tiny.syft.json")
    keys = {p.name: lookup_keys(p, cdx.distro) for p in cdx.packages}
    assert keys == {p.name: lookup_keys(p, syft.distro) for p in syft.packages}
    assert keys["busybox-static"][0].name == "busybox"  # type: ignore[union-attr]


def test_cli_vuln_text_escapes_package_types_an_sbom_gives(
    cli, demo_db: Path, tmp_path: Path
) -> None:
    # the "No advisory data" block names each package type without advisories; a Syft JSON
    # artifact's `type` is the SBOM's own text and had reached the terminal raw
    sbom = write_json(
        tmp_path / "syft.json",
        {
            "schema": {"version": "16.0.0"},
            "artifacts": [{"name": "x", "version": "1", "type": "\x1b[2J\x1b]0;owned\u202e"}],
        },
    )
    run = cli("vuln", str(sbom), "--db", str(demo_db), "--no-config")
    assert run.code == 0, run.stderr
    assert "No advisory data (1 packages)" in run.stdout
    assert "\x1b" not in run.stdout and "\u202e" not in run.stdout
    assert "\\x1b[2J\\x1b]0;owned\\u202e" in run.stdout
