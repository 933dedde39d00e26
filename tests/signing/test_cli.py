"""The signing commands end to end: exit codes, outputs, passwords, against the registry."""

from __future__ import annotations

import json
import os
import stat
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from skanse.signing.keys import read_private_key
from tests.conftest import SCHEMAS
from tests.signing.helpers import push_test_image


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("COSIGN_PASSWORD", raising=False)
    monkeypatch.setenv("SKANSE_PASSWORD", "correct horse")
    return tmp_path


def test_generate_key_pair_writes_cosign_files(cli, workdir: Path) -> None:
    run = cli("sign", "generate-key-pair")
    assert run.code == 0, run.stderr
    assert "Private key written to cosign.key" in run.stderr
    assert stat.S_IMODE(os.stat(workdir / "cosign.key").st_mode) == 0o600
    key = read_private_key(workdir / "cosign.key", b"correct horse")
    assert (workdir / "cosign.pub").read_bytes() == key.public_key().pem()
    again = cli("sign", "generate-key-pair")
    assert again.code == 2 and "cosign.key exists" in again.stderr
    assert cli("sign", "generate-key-pair", "--force", "--output-key-prefix", "ci").code == 0
    assert (workdir / "ci.key").exists() and (workdir / "ci.pub").exists()


def test_without_a_password_and_a_terminal_the_error_says_what_to_set(
    cli, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SKANSE_PASSWORD")
    run = cli("sign", "generate-key-pair", stdin=b"")
    assert run.code == 2
    assert "set SKANSE_PASSWORD or COSIGN_PASSWORD" in run.stderr


@pytest.mark.registry
def test_sign_and_verify_on_the_command_line(cli, workdir: Path, registry) -> None:
    client = registry.client(workdir / "cache")
    ref = registry.ref("cli/app:1.0")
    digest = push_test_image(client, ref, b"cli")
    client.close()
    assert cli("sign", "generate-key-pair").code == 0
    assert cli("sign", "generate-key-pair", "--output-key-prefix", "other").code == 0

    signed = cli("sign", "--key", "cosign.key", "-a", "ci=42", str(ref))
    assert signed.code == 0, signed.stderr
    assert f"Signed {ref}@{digest}" in signed.stdout
    assert "(1 signature(s))" in signed.stdout

    ok = cli("verify", "--key", "cosign.pub", str(ref))
    assert ok.code == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith(f"VERIFIED  {registry.host}/cli/app:1.0@{digest}")
    assert "[ok  ] simple-signing" in ok.stdout

    wrong = cli("verify", "--key", "other.pub", str(ref))
    assert wrong.code == 1
    assert wrong.stdout.startswith("NOT VERIFIED")
    assert "does not verify with the key other.pub" in wrong.stdout

    # two keys, one signature each, threshold 2; with JSON saying which key verified which
    assert cli("sign", "--key", "other.key", "--bundle", str(ref)).code == 0
    both = cli(
        "verify",
        "--key",
        "cosign.pub",
        "--key",
        "other.pub",
        "--threshold",
        "2",
        "-f",
        "json",
        str(ref),
    )
    assert both.code == 0, both.stdout
    doc = json.loads(both.stdout)
    assert doc["schema_version"] == 1 and doc["verified"]
    (image,) = doc["images"]
    assert image["digest"] == digest and image["verified_keys"] == ["cosign.pub", "other.pub"]
    assert {(s["format"], s["key"]) for s in image["signatures"]} == {
        ("bundle", "other.pub"),
        ("simple-signing", "cosign.pub"),
    }

    annotated = cli("verify", "--key", "cosign.pub", "-a", "ci=43", str(ref))
    assert annotated.code == 1 and "annotation ci=43" in annotated.stdout

    too_many = cli("verify", "--key", "cosign.pub", "--threshold", "2", str(ref))
    assert too_many.code == 2 and "more than the 1 key(s)" in too_many.stderr


@pytest.mark.registry
def test_verify_reports_in_sarif_and_junit(cli, workdir: Path, registry) -> None:
    client = registry.client(workdir / "cache")
    signed, unsigned = registry.ref("cli/signed:1"), registry.ref("cli/unsigned:1")
    push_test_image(client, signed, b"s")
    push_test_image(client, unsigned, b"u")
    client.close()
    assert cli("sign", "generate-key-pair").code == 0
    assert cli("sign", "--key", "cosign.key", str(signed)).code == 0

    sarif = cli("verify", "--key", "cosign.pub", "-f", "sarif", str(signed), str(unsigned))
    assert sarif.code == 1
    document = json.loads(sarif.stdout)
    schema = SCHEMAS / "sarif-schema-2.1.0.json"
    if schema.exists():  # ../shared/schemas is there in CI; the rest holds without it
        jsonschema.validate(document, json.loads(schema.read_text()))
    (result,) = document["runs"][0]["results"]
    assert result["ruleId"] == "SKN-SIG-001"
    assert "no signature found" in result["message"]["text"]
    assert "cli/unsigned" in result["message"]["text"]

    junit = cli(
        "verify", "--key", "cosign.pub", "-f", "junit", "-o", "out.xml", str(signed), str(unsigned)
    )
    assert junit.code == 1 and junit.stdout == ""
    suite = ET.parse(workdir / "out.xml").getroot()  # noqa: S314 - our own output
    cases = suite.findall(".//testcase")
    assert len(cases) == 2
    assert sum(1 for c in cases if c.find("failure") is not None) == 1


@pytest.mark.registry
def test_wrong_password_is_a_clear_error_without_traceback(
    cli, workdir: Path, registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = registry.client(workdir / "cache")
    ref = registry.ref("cli/pw:1")
    push_test_image(client, ref)
    client.close()
    assert cli("sign", "generate-key-pair").code == 0
    monkeypatch.setenv("SKANSE_PASSWORD", "wrong")
    run = cli("sign", "--key", "cosign.key", str(ref))
    assert run.code == 2
    assert "cosign.key: wrong password" in run.stderr
    assert "Traceback" not in run.stderr + run.stdout
    # COSIGN_PASSWORD is read when SKANSE_PASSWORD is not set
    monkeypatch.delenv("SKANSE_PASSWORD")
    monkeypatch.setenv("COSIGN_PASSWORD", "correct horse")
    assert cli("sign", "--key", "cosign.key", str(ref)).code == 0


@pytest.mark.registry
def test_attest_an_sbom_from_the_image_and_verify_it(cli, workdir: Path, registry) -> None:
    from skanse.oci.writer import LayerBuilder, build_image, push_image

    client = registry.client(workdir / "cache")
    ref = registry.ref("cli/sbom:1")
    layer = (
        LayerBuilder()
        .add_file("/etc/os-release", b"ID=alpine\nVERSION_ID=3.19.1\n")
        .add_file("/lib/apk/db/installed", b"P:musl\nV:1.2.4-r2\nA:x86_64\no:musl\n\n")
        .build()
    )
    push_image(client, ref, build_image([layer]))
    client.close()
    assert cli("sign", "generate-key-pair").code == 0
    sbom = cli("sbom", str(ref), "-o", "cyclonedx-json=sbom.cdx.json", "--no-cache")
    assert sbom.code == 0, sbom.stderr
    attested = cli(
        "attest",
        "--key",
        "cosign.key",
        "--predicate",
        "sbom.cdx.json",
        "--type",
        "cyclonedx",
        str(ref),
    )
    assert attested.code == 0, attested.stderr
    assert "https://cyclonedx.org/bom" in attested.stdout
    ok = cli("verify-attestation", "--key", "cosign.pub", "--type", "cyclonedx", str(ref))
    assert ok.code == 0, ok.stdout
    other = cli("verify-attestation", "--key", "cosign.pub", "--type", "spdxjson", str(ref))
    assert other.code == 1 and "https://spdx.dev/Document" in other.stdout
    bad_type = cli("verify-attestation", "--key", "cosign.pub", "--type", "nope", str(ref))
    assert bad_type.code == 2 and "unknown attestation type" in bad_type.stderr
    (workdir / "bad.json").write_text("{not json")
    bad = cli("attest", "--key", "cosign.key", "--predicate", "bad.json", str(ref))
    assert bad.code == 2 and "bad.json is not valid JSON" in bad.stderr


@pytest.mark.parametrize(
    ("predicate", "message"),
    [
        (b'{"x": NaN}', "NaN is not JSON"),
        (b'{"x": 1, "x": 2}', "duplicate key 'x'"),
        (b'{"x": "\\ud800"}', "lone surrogate"),
        (b"[1, 2]", "not a JSON object"),
    ],
)
def test_attest_refuses_a_predicate_its_verifier_would_refuse(
    cli, workdir: Path, predicate: bytes, message: str
) -> None:
    # each was signed and pushed (or an internal error), and verify-attestation then
    # refused the statement or read another value than the one meant
    (workdir / "p.json").write_bytes(predicate)
    result = cli("attest", "--key", "cosign.key", "--predicate", "p.json", "reg.example/a:1")
    assert result.code == 2, result.stderr
    assert message in result.stderr and "internal error" not in result.stderr


def test_attest_refuses_a_bundle_over_the_cap_verifiers_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from skanse.errors import SigningError
    from skanse.oci.reference import parse_reference
    from skanse.signing import sign
    from tests.signing.helpers import new_key

    pushed: list[bytes] = []
    monkeypatch.setattr(sign, "resolve", lambda client, ref: _Subject("sha256:" + "a" * 64))

    def write_referrer(*args: object) -> tuple[str, int]:
        pushed.append(args[3])  # type: ignore[arg-type]
        return "sha256:" + "b" * 64, 1

    monkeypatch.setattr(sign, "write_referrer", write_referrer)
    monkeypatch.setattr(sign, "MAX_BUNDLE_BYTES", 4096)
    key = new_key()
    ref = parse_reference("reg.example/a:1")
    sign.attest_image(None, ref, key, "https://example.com/p", {"x": "y" * 100})  # type: ignore[arg-type]
    assert len(pushed) == 1
    with pytest.raises(SigningError, match="over the 4096-byte cap"):
        sign.attest_image(None, ref, key, "https://example.com/p", {"x": "y" * 4000})  # type: ignore[arg-type]
    assert len(pushed) == 1  # nothing pushed that no verifier would read


class _Subject:
    def __init__(self, digest: str) -> None:
        self.digest = digest


def test_verify_text_escapes_what_the_registry_wrote(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from skanse._cli._signing import render_verifications
    from skanse.signing.verify import SignatureCheck, Verification

    forged = "\nVERIFIED  registry.example/app@sha256:0"
    result = Verification(
        image="registry.example/app:1",
        digest="sha256:" + "a" * 64,
        what="signature",
        keys=("ci",),
        threshold=1,
        checks=(
            SignatureCheck(
                where="sha256-x.sig\x1b[2J layer 0",
                format="bundle",
                verified=False,
                reason="bad payload\x1b]0;title\x07" + forged,
            ),
        ),
        problems=("registry said: 500 (storage down" + forged + ")",),
    )
    code = render_verifications([result], argparse.Namespace(format="text", output=None))
    out = capsys.readouterr().out
    assert code == 1
    assert "\x1b" not in out and "\x07" not in out
    lines = out.splitlines()
    assert [line for line in lines if line.startswith("VERIFIED")] == []
    assert len(lines) == 4 and "\\x1b[2J" in lines[2] and "\\nVERIFIED" in lines[3]


@pytest.mark.parametrize("command", ["verify", "verify-attestation"])
def test_the_verification_deadline_option(
    command: str, cli, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse
    import importlib

    from skanse.signing.verify import DEADLINE

    module = importlib.import_module(f"skanse._cli.{command.replace('-', '_')}")
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    extra = ["--type", "cyclonedx"] if command == "verify-attestation" else []
    assert parser.parse_args(["--key", "k.pub", *extra, "ref"]).deadline == DEADLINE
    for value in ("0", "-1", "nan", "inf"):
        with pytest.raises(SystemExit) as usage:
            cli(command, "--key", "k.pub", *extra, "--deadline", value, "ref")
        assert usage.value.code == 2
        assert f"argument --deadline: {value!r} is not a number of seconds" in (
            capsys.readouterr().err
        )
