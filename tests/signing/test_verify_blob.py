"""`skanse verify-blob`: key-based bundles (sigstore-conformance) and keyless ones.

The conformance cases pass and fail as upstream says. Keyless bundles come from a private
Sigstore made in tests/signing/_keyless_pki.py (CA, CT log, Rekor log, trusted_root.json), the
only way to have them offline; they are verified by sigstore-python behind skanse's interface,
and each way a keyless bundle can lie must end "not verified".
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from tests.signing.helpers import vectors

sigstore = pytest.importorskip("sigstore", reason="sigstore-python (the [keyless] extra)")

from tests.signing._keyless_pki import START, PrivateSigstore  # noqa: E402

CONFORMANCE = ("conformance",)


@pytest.mark.corpus
@pytest.mark.parametrize(
    ("case", "with_key", "code"),
    [
        ("managed-key-happy-path", True, 0),
        ("managed-key-and-trusted-root", True, 0),
        ("managed-key-wrong-key_fail", True, 2),  # key.pub is broken: never "verified"
        ("managed-key-no-key_fail", False, 2),  # nothing to verify against
    ],
)
def test_conformance_cases_pass_and_fail_as_upstream_says(
    cli, case: str, with_key: bool, code: int
) -> None:
    artifact = vectors(*CONFORMANCE, "a.txt")
    bundle = vectors(*CONFORMANCE, case, "bundle.sigstore.json")
    args = ["verify-blob", str(artifact), "--bundle", str(bundle)]
    if with_key:
        args += ["--key", str(vectors(*CONFORMANCE, case, "key.pub"))]
    result = cli(*args)
    assert result.code == code, result.stderr
    assert ("Verified OK" in result.stdout) is (code == 0)


@pytest.mark.corpus
def test_a_key_bundle_is_not_a_keyless_one(cli, tmp_path: Path) -> None:
    private = PrivateSigstore.create()
    root = tmp_path / "trusted_root.json"
    root.write_bytes(private.trusted_root())
    case = "managed-key-happy-path"
    result = cli(
        "verify-blob",
        str(vectors(*CONFORMANCE, "a.txt")),
        "--bundle",
        str(vectors(*CONFORMANCE, case, "bundle.sigstore.json")),
        "--certificate-identity",
        "signer@example.com",
        "--certificate-oidc-issuer",
        "https://accounts.example.com",
        "--trusted-root",
        str(root),
    )
    assert result.code == 1 and "certificate" in result.stderr


@pytest.fixture(scope="module")
def private() -> PrivateSigstore:
    return PrivateSigstore.create()


def _keyless(
    cli,
    tmp_path: Path,
    private: PrivateSigstore,
    bundle: bytes,
    artifact: bytes,
    identity: str = "signer@example.com",
    issuer: str = "https://accounts.example.com",
    root: bytes | None = None,
):
    (tmp_path / "a.txt").write_bytes(artifact)
    (tmp_path / "a.txt.sigstore.json").write_bytes(bundle)
    (tmp_path / "trusted_root.json").write_bytes(
        root if root is not None else private.trusted_root()
    )
    return cli(
        "verify-blob",
        str(tmp_path / "a.txt"),
        "--bundle",
        str(tmp_path / "a.txt.sigstore.json"),
        "--certificate-identity",
        identity,
        "--certificate-oidc-issuer",
        issuer,
        "--trusted-root",
        str(tmp_path / "trusted_root.json"),
    )


def test_keyless_bundle_verifies_offline(cli, tmp_path: Path, private: PrivateSigstore) -> None:
    result = _keyless(cli, tmp_path, private, private.sign_blob(b"artifact"), b"artifact")
    assert result.code == 0, result.stderr
    assert "signed by signer@example.com (https://accounts.example.com), Rekor log index 0" in (
        result.stdout
    )


@pytest.mark.parametrize(
    "lie",
    [
        "other-artifact",
        "other-identity",
        "other-issuer",
        "swapped-tlog-entry",  # CVE-2022-36056: the log entry is for another file
        "other-ca",
        "tampered-checkpoint",
        "tampered-set",
        "signed-after-expiry",
    ],
)
def test_every_lie_in_a_keyless_bundle_is_not_verified(
    cli, tmp_path: Path, private: PrivateSigstore, lie: str
) -> None:
    artifact, identity, issuer = b"artifact", "signer@example.com", "https://accounts.example.com"
    bundle = private.sign_blob(artifact)
    if lie == "other-artifact":
        artifact = b"artefact"
    elif lie == "other-identity":
        identity = "someone@example.com"
    elif lie == "other-issuer":
        issuer = "https://token.actions.githubusercontent.com"
    elif lie == "swapped-tlog-entry":
        bundle = private.sign_blob(artifact, log_artifact=b"something else")
    elif lie == "other-ca":
        bundle = PrivateSigstore.create().sign_blob(artifact)
    elif lie in ("tampered-checkpoint", "tampered-set"):
        doc = json.loads(bundle)
        entry = doc["verificationMaterial"]["tlogEntries"][0]
        if lie == "tampered-checkpoint":
            proof = entry["inclusionProof"]
            proof["checkpoint"]["envelope"] = proof["checkpoint"]["envelope"].replace(
                "rekor.test - 1\n1\n", "rekor.test - 1\n2\n"
            )
        else:
            entry["integratedTime"] = str(int(entry["integratedTime"]) + 1)
        bundle = json.dumps(doc).encode()
    else:  # the log recorded it (SET and all valid) after the certificate had expired
        when = START + dt.timedelta(days=30)
        bundle = private.sign_blob(artifact, when=when, logged_at=when + dt.timedelta(hours=1))
    result = _keyless(cli, tmp_path, private, bundle, artifact, identity, issuer)
    assert result.code == 1, (lie, result.stdout, result.stderr)
    assert "Not verified" in result.stderr


@pytest.mark.parametrize("retired", ["ca", "tlog", "ctlog"])
def test_a_ca_or_log_key_retired_before_the_entry_was_logged_does_not_vouch_for_it(
    cli, tmp_path: Path, private: PrivateSigstore, retired: str
) -> None:
    # signed and logged at START + 30 days (all of it valid); the trusted root ended the
    # CA's or a log key's validity before that, as it does for a retired or leaked key
    logged = START + dt.timedelta(days=30)
    bundle = private.sign_blob(b"artifact", when=logged)
    ended = private.trusted_root(**{f"{retired}_end": logged - dt.timedelta(seconds=1)})
    result = _keyless(cli, tmp_path, private, bundle, b"artifact", root=ended)
    assert result.code == 1, (retired, result.stdout, result.stderr)
    assert "Not verified" in result.stderr and "valid at 2026-01-31T00:00:00Z" in result.stderr
    # the end itself is still inside the period (validFor is closed)
    until = private.trusted_root(**{f"{retired}_end": logged})
    assert _keyless(cli, tmp_path, private, bundle, b"artifact", root=until).code == 0


def test_an_integrated_time_past_any_date_is_not_verified(
    cli, tmp_path: Path, private: PrivateSigstore
) -> None:
    doc = json.loads(private.sign_blob(b"artifact"))
    doc["verificationMaterial"]["tlogEntries"][0]["integratedTime"] = "99999999999999999"
    result = _keyless(cli, tmp_path, private, json.dumps(doc).encode(), b"artifact")
    assert result.code == 1, (result.stdout, result.stderr)
    assert "Not verified" in result.stderr and "out of range" in result.stderr


def test_keyless_that_cannot_be_checked_is_an_error(
    cli, tmp_path: Path, private: PrivateSigstore
) -> None:
    bundle = private.sign_blob(b"artifact")
    broken = _keyless(cli, tmp_path, private, bundle, b"artifact", root=b"{not json")
    assert broken.code == 2 and "trusted root" in broken.stderr
    both = cli(
        "verify-blob",
        str(tmp_path / "a.txt"),
        "--bundle",
        str(tmp_path / "a.txt.sigstore.json"),
        "--key",
        "cosign.pub",
        "--certificate-identity",
        "x",
        "--certificate-oidc-issuer",
        "y",
    )
    assert both.code == 2
