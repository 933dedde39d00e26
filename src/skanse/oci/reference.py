"""Image references, parsed and normalised exactly as the container tools do.

The grammar is distribution's `reference` package (the one docker, containerd, skopeo and
cosign share): `[domain/]path[:tag][@digest]`. Normalisation follows `ParseNormalizedNamed`:
a first component that has no `.` or `:`, is not `localhost` and is lower case is a Docker
Hub path, so `alpine` means `docker.io/library/alpine`; `index.docker.io` means `docker.io`.
A reference with neither tag nor digest means `:latest`.

Beyond docker, the registry host is lower-cased (host names are case-insensitive, and an
image policy's globs must not be sidestepped by `LOCALHOST:5000/...`; a one-label host such
as `Foo` keeps its spelling, as `foo/bar` would mean Docker Hub), and an explicit
`:443` is dropped from a host that is not loopback: such hosts are reached over https, where
443 is the port anyway. A loopback host is reached over plain HTTP, so its `:443` stays.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from skanse.errors import ImageReferenceError

__all__ = [
    "DOCKER_HUB",
    "DOCKER_HUB_API",
    "Reference",
    "is_loopback_host",
    "parse_reference",
    "split_reference",
]

DOCKER_HUB = "docker.io"
# Where Docker Hub's registry API actually lives, and its key in ~/.docker/config.json.
DOCKER_HUB_API = "registry-1.docker.io"
DOCKER_HUB_CONFIG_KEY = "https://index.docker.io/v1/"

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

_REFERENCE = re.compile(
    rf"(?P<name>(?:(?P<domain>{_DOMAIN})/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?"
)
_DOMAIN_ONLY = re.compile(_DOMAIN)
_PATH = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_HEX64 = re.compile(r"[a-f0-9]{64}")
_DIGEST_HEX = {"sha256": 64, "sha384": 96, "sha512": 128}
_NAME_MAX = 255


@dataclass(frozen=True, slots=True)
class Reference:
    """A normalised image reference: registry domain, repository path, tag and/or digest."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        """`domain/path`, the fully qualified repository name."""
        return f"{self.domain}/{self.path}"

    @property
    def api_host(self) -> str:
        """The host the distribution API is reached on (Docker Hub's differs from its name)."""
        return DOCKER_HUB_API if self.domain == DOCKER_HUB else self.domain

    @property
    def identifier(self) -> str:
        """What to ask the registry for: the digest if there is one, else the tag."""
        if self.digest:
            return self.digest
        return self.tag or "latest"

    def with_digest(self, digest: str) -> Reference:
        """The same repository pinned to `digest` (the tag is kept for display)."""
        return Reference(self.domain, self.path, self.tag, digest)

    def with_tag(self, tag: str) -> Reference:
        """The same repository at `tag`, with no digest."""
        return Reference(self.domain, self.path, tag, None)

    def __str__(self) -> str:
        text = self.repository
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    @property
    def familiar(self) -> str:
        """The short form docker prints: `alpine:3.19` for `docker.io/library/alpine:3.19`."""
        name = self.repository
        if self.domain == DOCKER_HUB:
            name = self.path.removeprefix("library/") if self.path.count("/") == 1 else self.path
        if self.tag:
            name += f":{self.tag}"
        if self.digest:
            name += f"@{self.digest}"
        return name


def split_reference(text: str) -> tuple[str, str | None, str | None]:
    """(name, tag, digest) of a reference as written, without validation or normalisation:
    what the checks need of an image field that may hold anything (`${REGISTRY}/app`). A
    port in the registry host is not a tag; tag and digest are None when absent."""
    name, _, digest = text.partition("@")
    colon = name.rfind(":")
    tag = None
    if colon > name.rfind("/"):
        name, tag = name[:colon], name[colon + 1 :]
    return name, tag, digest or None


def parse_reference(text: str, *, default_tag: str | None = "latest") -> Reference:
    """Parse and normalise `text`; raise `ImageReferenceError` where docker would refuse it.

    `default_tag` is added when there is neither tag nor digest (None keeps the reference
    untagged, for commands that take a repository).
    """
    if not text or len(text) > 4096:
        raise ImageReferenceError("an image reference must be 1 to 4096 characters", reference=text)
    if _HEX64.fullmatch(text):
        raise ImageReferenceError(
            "a 64-character hexadecimal string is an image id, not a reference "
            "(use repository@sha256:<hex>)",
            reference=text,
        )
    domain, remainder = _split_domain(text)
    match = _REFERENCE.fullmatch(f"{domain}/{remainder}")
    if match is None:
        raise ImageReferenceError(_explain(remainder), reference=text)
    name = match["name"]
    path = name[len(domain) + 1 :]
    if len(name) > _NAME_MAX:
        raise ImageReferenceError(
            f"repository name is longer than {_NAME_MAX} characters", reference=text
        )
    digest = match["digest"]
    if digest is not None:
        algorithm, _, hexpart = digest.partition(":")
        expected = _DIGEST_HEX.get(algorithm)
        if expected is None:
            raise ImageReferenceError(f"unsupported digest algorithm {algorithm!r}", reference=text)
        if len(hexpart) != expected or hexpart != hexpart.lower():
            raise ImageReferenceError(
                f"a {algorithm} digest is {expected} lower-case hexadecimal characters",
                reference=text,
            )
    tag = match["tag"]
    if tag is None and digest is None:
        tag = default_tag
    return Reference(domain, path, tag, digest)


def _split_domain(text: str) -> tuple[str, str]:
    first, slash, rest = text.partition("/")
    if not slash or (
        not any(c in first for c in ".:") and first != "localhost" and first.lower() == first
    ):
        domain, remainder = DOCKER_HUB, text
    else:
        if not _DOMAIN_ONLY.fullmatch(first):
            raise ImageReferenceError(f"invalid registry host {first!r}", reference=text)
        domain, remainder = first, rest
        # a one-label host without a port (`Foo`) keeps its spelling: lower-cased it would
        # read back as a Docker Hub namespace (policy globs ignore case, so it still matches)
        if any(c in first for c in ".:[") or first.lower() == "localhost":
            domain = first.lower()
        if domain.endswith(":443") and not is_loopback_host(domain):
            domain = domain.removesuffix(":443")
    if domain == "index.docker.io":
        domain = DOCKER_HUB
    if domain == DOCKER_HUB and "/" not in remainder.split("@", 1)[0].split(":", 1)[0]:
        remainder = f"library/{remainder}"
    return domain, remainder


def is_loopback_host(host: str) -> bool:
    """Whether registry `host` (`name[:port]`, `[v6]:port`) is this machine."""
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1:].split("]")[0]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _explain(remainder: str) -> str:
    name = remainder.split("@", 1)[0]
    path = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
    if path.lower() != path and _PATH.fullmatch(path.lower()):
        return "repository name must be lowercase"
    if "@" in remainder and not re.fullmatch(_DIGEST, remainder.split("@", 1)[1]):
        return "invalid digest (expected algorithm:hex, e.g. sha256:<64 hex>)"
    if not _PATH.fullmatch(path):
        return "invalid repository name (lower-case letters, digits and . _ - separators)"
    return "invalid tag (letters, digits, _ . -, at most 128, not starting with . or -)"
