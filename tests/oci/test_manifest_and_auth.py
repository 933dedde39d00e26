"""Manifest, index and config parsing with caps; docker config.json; auth challenges."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from skanse.errors import ConfigError, ManifestError
from skanse.oci.auth import DockerConfig, parse_challenges
from skanse.oci.manifest import (
    Index,
    Manifest,
    Platform,
    parse_config,
    parse_manifest_or_index,
    parse_platform,
)

DIGEST = "sha256:" + "ab" * 32


def descriptor(
    media_type: str = "application/vnd.oci.image.layer.v1.tar+gzip",
) -> dict[str, object]:
    return {"mediaType": media_type, "digest": DIGEST, "size": 10}


def test_manifest_and_index_shapes() -> None:
    manifest = {
        "schemaVersion": 2,
        "config": descriptor("application/vnd.oci.image.config.v1+json"),
        "layers": [descriptor()],
    }
    parsed = parse_manifest_or_index(json.dumps(manifest).encode())  # mediaType omitted: OCI
    assert isinstance(parsed, Manifest) and len(parsed.layers) == 1
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
        "manifests": [
            {
                **descriptor("application/vnd.docker.distribution.manifest.v2+json"),
                "platform": {"os": "linux", "architecture": "arm", "variant": "v7"},
            },
        ],
    }
    parsed_index = parse_manifest_or_index(json.dumps(index).encode())
    assert isinstance(parsed_index, Index)
    assert parsed_index.select(Platform("linux", "arm")).platform == Platform("linux", "arm", "v7")
    with pytest.raises(ManifestError, match="linux/arm/v7"):
        parsed_index.select(Platform("linux", "arm", "v6"))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (b'{"schemaVersion": 1, "fsLayers": []}', "schema 1"),
        (b'{"mediaType": "text/html"}', "unknown manifest media type 'text/html'"),
        (
            json.dumps(
                {
                    "config": descriptor(),
                    "layers": [{"mediaType": "x", "size": 1, "digest": "md5:00"}],
                }
            ).encode(),
            "malformed digest",
        ),
        (
            json.dumps(
                {
                    "config": descriptor(),
                    "layers": [{"mediaType": "x", "size": -1, "digest": DIGEST}],
                }
            ).encode(),
            "no valid size",
        ),
        (
            json.dumps({"config": descriptor(), "layers": [descriptor()] * 10_001}).encode(),
            "over the cap of 10000",
        ),
        (b"{" + b" " * (4 * 1024 * 1024) + b"}", "over the 4194304-byte cap"),
        # deeper than the parser's recursion: malformed input, not an internal error
        (b'{"schemaVersion": 2, "x": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested too deeply"),
    ],
)
def test_malformed_hostile_and_huge_manifests(data: bytes, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        parse_manifest_or_index(data)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (b'"x": ' + b"[" * 3000 + b"]" * 3000, "nested too deeply"),
        # not JSON: a report that repeated them (image inspect -f json) would not be JSON
        (b'"history": [{"created_by": NaN}]', "NaN is not a JSON number"),
        (b'"history": [{"created_by": -Infinity}]', "-Infinity is not a JSON number"),
        (b'"history": [{"created_by": 1e999}]', "1e999 is out of range"),
    ],
)
def test_configs_that_are_not_json_are_refused(extra: bytes, message: str) -> None:
    data = b'{"rootfs": {"type": "layers", "diff_ids": []}, ' + extra + b"}"
    with pytest.raises(ManifestError, match=message):
        parse_config(data)


def test_config_needs_diff_ids() -> None:
    with pytest.raises(ManifestError, match=r"rootfs\.diff_ids"):
        parse_config(b'{"architecture": "amd64", "os": "linux"}')
    config = parse_config(
        json.dumps(
            {
                "architecture": "arm64",
                "variant": "v8",
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": [DIGEST]},
                "config": {"User": "65532", "Cmd": ["app"], "Labels": {"a": "b"}},
                "history": [{"created_by": "COPY app /", "empty_layer": False}, "junk"],
            }
        ).encode()
    )
    assert str(config.platform) == "linux/arm64/v8"
    assert config.user == "65532" and config.cmd == ("app",) and len(config.history) == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linux/amd64", Platform("linux", "amd64")),
        ("arm64", Platform("linux", "arm64")),
        ("linux/arm/v7", Platform("linux", "arm", "v7")),
    ],
)
def test_platform_parsing(text: str, expected: Platform) -> None:
    assert parse_platform(text) == expected


def test_platform_parsing_rejects_garbage() -> None:
    with pytest.raises(ManifestError):
        parse_platform("linux//")


def test_docker_config_auths(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            {
                "auths": {
                    "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:pw").decode()},
                    "reg.example.org:5000": {"username": "u", "password": "p"},
                }
            }
        )
    )
    config = DockerConfig.load(path)
    hub = config.credentials_for("registry-1.docker.io")
    assert hub is not None and (hub.username, hub.password) == ("hub", "pw")
    other = config.credentials_for("reg.example.org:5000")
    assert other is not None and other.username == "u"
    assert config.credentials_for("ghcr.io") is None
    assert "pw" not in repr(config) and "pw" not in repr(hub)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "not valid JSON"),
        ('{"auths": {"h": {"auth": "!!!"}}}', "not base64"),
        ('{"auths": {"h": {"auth": "bm9jb2xvbg=="}}}', "not base64 of user:password"),
    ],
)
def test_docker_config_errors_name_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message) as caught:
        DockerConfig.load(path)
    assert str(path) in caught.value.diagnostics()


def test_missing_credential_helper_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"credHelpers": {"reg.example.org": "no-such-helper-xyz"}}')
    with pytest.raises(ConfigError, match="docker-credential-no-such-helper-xyz is not on PATH"):
        DockerConfig.load(path).credentials_for("reg.example.org")


def test_www_authenticate_challenges() -> None:
    [bearer] = parse_challenges(
        'Bearer realm="https://auth.example.org/token",service="registry.example.org",'
        'scope="repository:a/b:pull,push"'
    )
    assert bearer.scheme == "bearer"
    assert bearer.params == {
        "realm": "https://auth.example.org/token",
        "service": "registry.example.org",
        "scope": "repository:a/b:pull,push",
    }
    schemes = [c.scheme for c in parse_challenges('Basic realm="x", Bearer realm="y"')]
    assert schemes == ["basic", "bearer"]
    assert parse_challenges("") == []
