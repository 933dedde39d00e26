"""The registry client against a real registry: push, pull, auth, tags, platforms, cache."""

from __future__ import annotations

import hashlib
import json
import urllib.request
from pathlib import Path

import pytest

from skanse.errors import AuthError, NotFoundError
from skanse.oci.cache import BlobCache
from skanse.oci.image import open_registry_image, read_view
from skanse.oci.manifest import Platform, parse_manifest
from skanse.oci.registry import RegistryClient, RegistryOptions
from skanse.oci.writer import LayerBuilder, build_image, push_image
from tests._registry import LocalRegistry

pytestmark = pytest.mark.registry


def small_image(text: bytes = b"hello", platform: Platform | None = None):
    platform = platform or Platform("linux", "amd64")
    layer = (
        LayerBuilder()
        .add_file("/etc/motd", text)
        .add_file("/etc/os-release", b"ID=alpine\nVERSION_ID=3.19.1\n")
    )
    return build_image([layer.build()], platform=platform)


def test_push_then_pull_gives_the_registrys_digest(registry: LocalRegistry, tmp_path: Path) -> None:
    client = registry.client(tmp_path / "cache")
    image = small_image(b"roundtrip")
    ref = registry.ref("skanse/roundtrip:v1")
    pushed = push_image(client, ref, image)
    assert pushed == image.digest
    # what the registry itself says, read without skanse's client
    request = urllib.request.Request(
        f"http://{registry.host}/v2/skanse/roundtrip/manifests/v1",
        headers={"Accept": image.manifest_media_type},
    )
    with urllib.request.urlopen(request) as response:  # noqa: S310 - loopback
        registry_digest = response.headers["Docker-Content-Digest"]
        assert hashlib.sha256(response.read()).hexdigest() == registry_digest.split(":")[1]
    opened = open_registry_image(client, ref)
    assert opened.manifest_digest == registry_digest == image.digest
    view = read_view(opened, lambda info: (lambda data: data) if info.path == "/etc/motd" else None)
    assert view.captured["/etc/motd"].value == b"roundtrip"
    # the layer is now in the cache under its digest, and only there after verification
    layer_digest = opened.layers[0].digest
    cached = BlobCache(tmp_path / "cache").get(layer_digest)
    assert cached is not None
    assert "sha256:" + hashlib.sha256(cached.read_bytes()).hexdigest() == layer_digest
    assert not any((tmp_path / "cache" / "partial").iterdir())


def test_push_skips_blobs_the_registry_has(registry: LocalRegistry, tmp_path: Path) -> None:
    client = registry.client(tmp_path / "cache")
    image = small_image(b"twice")
    ref = registry.ref("skanse/twice:a")
    push_image(client, ref, image)
    for digest in image.blobs():
        assert client.blob_exists(ref, digest)
    assert push_image(client, ref.with_tag("b"), image) == image.digest
    assert set(client.list_tags(ref)) == {"a", "b"}


def test_multi_arch_index_selects_the_platform(registry: LocalRegistry, tmp_path: Path) -> None:
    client = registry.client(tmp_path / "cache")
    amd = small_image(b"amd64", Platform("linux", "amd64"))
    arm = small_image(b"arm64", Platform("linux", "arm64", "v8"))
    ref = registry.ref("skanse/multi:1")
    index_digest = push_image(client, ref, [amd, arm])
    chosen = open_registry_image(client, ref, platform=Platform("linux", "arm64"))
    assert chosen.index_digest == index_digest
    assert chosen.manifest_digest == arm.digest
    assert str(chosen.config.platform) == "linux/arm64/v8"
    default = open_registry_image(client, ref)
    assert default.manifest_digest == amd.digest
    from skanse.errors import ManifestError

    with pytest.raises(ManifestError, match=r"no image for platform linux/s390x .*linux/amd64"):
        open_registry_image(client, ref, platform=Platform("linux", "s390x"))


def test_missing_tag_and_repository_name_the_reference(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    client = registry.client(tmp_path / "cache")
    with pytest.raises(NotFoundError) as caught:
        client.get_manifest(registry.ref("skanse/does-not-exist:nope"))
    assert "skanse/does-not-exist:nope" in caught.value.diagnostics()
    assert "404" in caught.value.diagnostics()


def test_referrers_api_absent_is_none_and_subject_manifests_are_accepted(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    # distribution 2.8 has no referrers API; the signing layer falls back to the tag scheme
    client = registry.client(tmp_path / "cache")
    image = small_image(b"subject")
    ref = registry.ref("skanse/referred:v1")
    push_image(client, ref, image)
    assert client.get_referrers(ref, image.digest) is None
    empty = b"{}"
    client.push_blob(ref, empty)
    payload = b'{"hello":"world"}'
    payload_digest = client.push_blob(ref, payload)
    artifact = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/vnd.example+json",
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": "sha256:" + hashlib.sha256(empty).hexdigest(),
                "size": 2,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.example+json",
                    "digest": payload_digest,
                    "size": len(payload),
                }
            ],
            "subject": image.descriptor().to_json(),
        }
    ).encode()
    digest = client.push_manifest(
        ref.with_digest("sha256:" + hashlib.sha256(artifact).hexdigest()),
        artifact,
        "application/vnd.oci.image.manifest.v1+json",
    )
    data, _type, got = client.get_manifest(ref, digest)
    parsed = parse_manifest(data)
    assert got == digest
    assert parsed.subject is not None and parsed.subject.digest == image.digest
    assert parsed.artifact_type == "application/vnd.example+json"


def test_basic_auth_uses_docker_config_credentials(
    basic_registry: LocalRegistry, tmp_path: Path
) -> None:
    client = basic_registry.client(tmp_path / "cache")
    image = small_image(b"basic")
    ref = basic_registry.ref("skanse/basic:v1")
    assert push_image(client, ref, image) == image.digest
    assert open_registry_image(client, ref).manifest_digest == image.digest
    anonymous = RegistryClient(
        cache=BlobCache(tmp_path / "anon"), credentials=_no_credentials(tmp_path)
    )
    with pytest.raises(AuthError, match="no credentials"):
        anonymous.get_manifest(ref)


def test_bearer_token_auth(token_registry, tmp_path: Path) -> None:
    reg, tokens = token_registry
    client = reg.client(tmp_path / "cache")
    image = small_image(b"bearer")
    ref = reg.ref("skanse/bearer:v1")
    assert push_image(client, ref, image) == image.digest
    opened = open_registry_image(client, ref)
    assert opened.manifest_digest == image.digest
    read_view(opened, lambda info: None)
    scopes = {r["scope"] for r in tokens.requests}
    assert "repository:skanse/bearer:pull,push" in scopes
    assert "repository:skanse/bearer:pull" in scopes
    # the token server saw the docker-config credentials, never an empty Authorization
    assert all(r["auth"].startswith("Basic ") for r in tokens.requests)
    anonymous = RegistryClient(
        cache=BlobCache(tmp_path / "anon"), credentials=_no_credentials(tmp_path)
    )
    with pytest.raises(AuthError, match="refused the credentials"):
        anonymous.get_manifest(ref)


def _no_credentials(tmp_path: Path):
    from skanse.oci.auth import DockerConfig

    return DockerConfig.load(tmp_path / "no-such-config.json")


def test_plain_http_is_only_for_loopback_by_default() -> None:
    client = RegistryClient(RegistryOptions())
    assert client._scheme("127.0.0.1:5000") == "http"
    assert client._scheme("localhost:5000") == "http"
    assert client._scheme("registry.example.org") == "https"
    assert (
        RegistryClient(RegistryOptions(plain_http=frozenset({"reg.lan:5000"})))._scheme(
            "reg.lan:5000"
        )
        == "http"
    )


def test_blob_exists_for_a_blob_larger_than_any_body_cap(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    # HEAD answers carry the blob's size as Content-Length; that must not trip a body cap
    client = registry.client(tmp_path / "cache")
    ref = registry.ref("skanse/large:v1")
    big = bytes(3 * 1024 * 1024)
    digest = client.push_blob(ref, big)
    assert client.blob_exists(ref, digest)
    assert client.push_blob(ref, big) == digest
