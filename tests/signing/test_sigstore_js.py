"""An independent verifier: npm's @sigstore/verify accepts skanse's bundles, rejects tampering.

Optional: npm installs the package into a temporary directory (a few seconds); without npm,
or when the install fails, the tests skip and say why.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from skanse.signing.bundle import SIGN_PREDICATE_TYPE, build_bundle, build_statement
from tests.signing.helpers import new_key, vectors

SCRIPT = Path(__file__).with_name("sigstore_verify.cjs")
PACKAGES = ("@sigstore/verify@4", "@sigstore/bundle", "@sigstore/protobuf-specs")
DIGEST = "sha256:" + "5e" * 32


@pytest.fixture(scope="module")
def sigstore_js(tmp_path_factory: pytest.TempPathFactory) -> Path:
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        pytest.skip("npm/node are not installed: the independent @sigstore/verify check is skipped")
    prefix = tmp_path_factory.mktemp("sigstore-js")
    try:
        done = subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(prefix),
                "--no-audit",
                "--no-fund",
                "--silent",
                *PACKAGES,
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.skip("npm install @sigstore/verify took over 300 s; independent check skipped")
    if done.returncode != 0:
        pytest.skip(f"npm install {' '.join(PACKAGES)} failed: {done.stderr.strip()[-300:]}")
    return prefix / "node_modules"


def _verify(
    modules: Path, bundle: Path, key: Path, artifact: Path | None = None, root: Path | None = None
) -> str:
    node = shutil.which("node") or "node"
    args = [node, str(SCRIPT), str(bundle), str(key)] + ([str(artifact)] if artifact else [])
    env = {"NODE_PATH": str(modules)} | ({"TRUSTED_ROOT": str(root)} if root else {})
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False, env=env)
    return done.stdout.strip() or done.stderr.strip()


def test_skanse_bundles_are_accepted_and_tampering_is_not(sigstore_js: Path, tmp_path: Path):
    key = new_key()
    (tmp_path / "key.pub").write_bytes(key.public_key().pem())
    statement = build_statement(DIGEST, SIGN_PREDICATE_TYPE, {}, annotations={"ci": "42"})
    (tmp_path / "good.json").write_bytes(build_bundle(key, statement))
    assert _verify(sigstore_js, tmp_path / "good.json", tmp_path / "key.pub") == "VERIFIED"

    sbom = {"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [{"name": "musl"}]}
    attestation = build_statement(DIGEST, "https://cyclonedx.org/bom", sbom, name="host/app")
    (tmp_path / "sbom.json").write_bytes(build_bundle(key, attestation))
    assert _verify(sigstore_js, tmp_path / "sbom.json", tmp_path / "key.pub") == "VERIFIED"

    doc = json.loads((tmp_path / "good.json").read_text())
    forged = build_statement("sha256:" + "66" * 32, SIGN_PREDICATE_TYPE, {})
    doc["dsseEnvelope"]["payload"] = base64.b64encode(forged).decode()
    (tmp_path / "tampered.json").write_text(json.dumps(doc))
    verdict = _verify(sigstore_js, tmp_path / "tampered.json", tmp_path / "key.pub")
    assert verdict.startswith("SIGNATURE_ERROR"), verdict

    other = new_key()
    (tmp_path / "other.pub").write_bytes(other.public_key().pem())
    assert _verify(sigstore_js, tmp_path / "good.json", tmp_path / "other.pub") != "VERIFIED"


@pytest.mark.corpus
def test_the_oracle_agrees_on_the_vectors(sigstore_js: Path) -> None:
    # this bundle carries a Rekor entry and an RFC 3161 timestamp: the oracle checks them
    # against the case's trusted root (skanse verifies the key signature only)
    case = vectors("conformance", "managed-key-and-trusted-root")
    verdict = _verify(
        sigstore_js,
        case / "bundle.sigstore.json",
        case / "key.pub",
        vectors("conformance", "a.txt"),
        case / "trusted_root.json",
    )
    assert verdict == "VERIFIED"
    made = vectors("made-here", "v3-dsse-key-bundle.sigstore.json")
    assert _verify(sigstore_js, made, vectors("keys", "pemsigstorekey.pub")) == "VERIFIED"
