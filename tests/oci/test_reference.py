"""Image references normalise as docker/containerd/skopeo do (distribution's grammar)."""

from __future__ import annotations

import pytest

from skanse.errors import ImageReferenceError
from skanse.oci.reference import parse_reference, split_reference

HEX = "a" * 64


@pytest.mark.parametrize(
    ("text", "domain", "path", "tag", "digest", "familiar"),
    [
        ("alpine", "docker.io", "library/alpine", "latest", None, "alpine:latest"),
        ("alpine:3.19", "docker.io", "library/alpine", "3.19", None, "alpine:3.19"),
        ("library/alpine", "docker.io", "library/alpine", "latest", None, "alpine:latest"),
        ("docker.io/alpine", "docker.io", "library/alpine", "latest", None, "alpine:latest"),
        ("index.docker.io/alpine", "docker.io", "library/alpine", "latest", None, "alpine:latest"),
        ("bitnami/redis:7", "docker.io", "bitnami/redis", "7", None, "bitnami/redis:7"),
        ("docker.io/a/b/c", "docker.io", "a/b/c", "latest", None, "a/b/c:latest"),
        ("localhost/app", "localhost", "app", "latest", None, "localhost/app:latest"),
        ("localhost:5000/app:v1", "localhost:5000", "app", "v1", None, "localhost:5000/app:v1"),
        ("127.0.0.1:5000/x/y:1.0", "127.0.0.1:5000", "x/y", "1.0", None, "127.0.0.1:5000/x/y:1.0"),
        ("ghcr.io/org/tool", "ghcr.io", "org/tool", "latest", None, "ghcr.io/org/tool:latest"),
        ("[::1]:5000/app", "[::1]:5000", "app", "latest", None, "[::1]:5000/app:latest"),
        (
            f"alpine@sha256:{HEX}",
            "docker.io",
            "library/alpine",
            None,
            f"sha256:{HEX}",
            f"alpine@sha256:{HEX}",
        ),
        (f"q.io/a:t@sha256:{HEX}", "q.io", "a", "t", f"sha256:{HEX}", f"q.io/a:t@sha256:{HEX}"),
        (
            "a__b/c--d.e_f:Tag_1.x-y",
            "docker.io",
            "a__b/c--d.e_f",
            "Tag_1.x-y",
            None,
            "a__b/c--d.e_f:Tag_1.x-y",
        ),
        # an upper-case first component is a host name, as in distribution (kept as spelt:
        # lower-cased it would be a Docker Hub namespace); other host names are
        # case-insensitive, so they are lower-cased (an image policy's globs see one spelling)
        ("Foo/bar", "Foo", "bar", "latest", None, "Foo/bar:latest"),
        (
            "LOCALHOST:5000/app",
            "localhost:5000",
            "app",
            "latest",
            None,
            "localhost:5000/app:latest",
        ),
        ("Docker.IO/alpine", "docker.io", "library/alpine", "latest", None, "alpine:latest"),
        # https is the scheme of a non-loopback registry, so :443 is its port anyway;
        # a loopback registry is spoken to over plain HTTP, where :443 is not the default
        ("GHCR.io:443/org/tool", "ghcr.io", "org/tool", "latest", None, "ghcr.io/org/tool:latest"),
        ("localhost:443/app", "localhost:443", "app", "latest", None, "localhost:443/app:latest"),
    ],
)
def test_normalisation(text, domain, path, tag, digest, familiar) -> None:
    ref = parse_reference(text)
    assert (ref.domain, ref.path, ref.tag, ref.digest) == (domain, path, tag, digest)
    assert ref.familiar == familiar
    assert parse_reference(str(ref)) == ref  # the full form parses back to itself


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "1 to 4096"),
        ("Alpine", "lowercase"),
        ("docker.io/Library/alpine", "lowercase"),
        ("alpine:", "invalid tag"),
        ("alpine:-x", "invalid tag"),
        ("alpine:" + "t" * 129, "invalid tag"),
        ("alpine@sha256:abc", "digest"),
        (f"alpine@sha256:{'A' * 64}", "lower-case"),
        (f"alpine@md5:{'a' * 32}", "unsupported digest algorithm"),
        (HEX, "image id"),
        ("a//b", "invalid repository"),
        ("-bad/x", "invalid repository"),
        ("host:port/x", "invalid registry host"),
        ("x/" + "a" * 260, "longer than 255"),
    ],
)
def test_rejections(text, message) -> None:
    with pytest.raises(ImageReferenceError, match=message):
        parse_reference(text)


def test_api_host_for_docker_hub_and_identifier() -> None:
    ref = parse_reference("alpine:3.19")
    assert ref.api_host == "registry-1.docker.io"
    assert ref.identifier == "3.19"
    pinned = ref.with_digest(f"sha256:{HEX}")
    assert pinned.identifier == f"sha256:{HEX}"
    assert parse_reference("x", default_tag=None).tag is None


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("nginx", ("nginx", None, None)),
        ("nginx:1.27", ("nginx", "1.27", None)),
        ("registry:5000/team/app", ("registry:5000/team/app", None, None)),  # a port, no tag
        ("registry:5000/team/app:v2", ("registry:5000/team/app", "v2", None)),
        ("app@sha256:abc", ("app", None, "sha256:abc")),
        ("app:v1@sha256:abc", ("app", "v1", "sha256:abc")),
        ("${REGISTRY}/app:${TAG}", ("${REGISTRY}/app", "${TAG}", None)),  # not validated
    ],
)
def test_split_reference_takes_a_reference_apart_as_written(
    text: str, parts: tuple[str, str | None, str | None]
) -> None:
    assert split_reference(text) == parts
