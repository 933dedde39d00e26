"""Where a package's advisories live: an ecosystem key, a normalised name, a version scheme.

Advisory data and installed packages meet on `(ecosystem, name)`:

- language packages by purl type: `pypi` + PEP 503 name, `npm`, `go`, `crates.io`,
  `maven` (`group:artifact`), `rubygems`, `nuget`, `packagist`, `hex`, `pub`;
- OS packages by distribution release and SOURCE package name, never by CPE:
  `debian:12`, `ubuntu:22.04`, `alpine:3.18`, `rhel:9`, `wolfi`... An OSV `Debian:12` or
  `Alpine:v3.18`, a Debian tracker `bookworm`, an Alpine secdb `v3.18` and an os-release
  `VERSION_ID=3.18.4` all land on the same key.
"""

from __future__ import annotations

import re

from skanse.vuln.versions import Scheme

__all__ = [
    "DEBIAN_CODENAMES",
    "distro_key",
    "ecosystem_of_purl_type",
    "normalise_name",
    "osv_ecosystem",
    "scheme_for",
]

# Debian release codenames (the security tracker's keys) and their numbers (VERSION_ID).
DEBIAN_CODENAMES = {
    "hamm": "2",
    "slink": "2.1",
    "potato": "2.2",
    "woody": "3.0",
    "sarge": "3.1",
    "etch": "4",
    "lenny": "5",
    "squeeze": "6",
    "wheezy": "7",
    "jessie": "8",
    "stretch": "9",
    "buster": "10",
    "bullseye": "11",
    "bookworm": "12",
    "trixie": "13",
    "forky": "14",
    "duke": "15",
    "sid": "sid",
}

# OSV ecosystem names of languages -> our key
_LANGUAGE_ECOSYSTEMS = {
    "pypi": "pypi",
    "npm": "npm",
    "go": "go",
    "crates.io": "crates.io",
    "maven": "maven",
    "rubygems": "rubygems",
    "nuget": "nuget",
    "packagist": "packagist",
    "hex": "hex",
    "pub": "pub",
    "swifturl": "swifturl",
    "hackage": "hackage",
    "cran": "cran",
}

# purl types -> our key (purl-spec names; golang/cargo/gem/composer differ from OSV's)
_PURL_TYPES = {
    "pypi": "pypi",
    "npm": "npm",
    "golang": "go",
    "cargo": "crates.io",
    "maven": "maven",
    "gem": "rubygems",
    "nuget": "nuget",
    "composer": "packagist",
    "hex": "hex",
    "pub": "pub",
    "swift": "swifturl",
    "hackage": "hackage",
    "cran": "cran",
}

_SCHEME_OF_ECOSYSTEM = {
    "pypi": Scheme.PEP440,
    "go": Scheme.GO,
    "maven": Scheme.MAVEN,
    "rubygems": Scheme.GEM,
    "nuget": Scheme.NUGET,
}

# distribution family -> version scheme of its packages
_DEB_FAMILIES = frozenset({"debian", "ubuntu", "raspbian", "echo"})
_APK_FAMILIES = frozenset({"alpine", "wolfi", "chainguard", "minimos", "postmarketos"})
_RPM_FAMILIES = frozenset(
    {
        "rhel",
        "redhat",
        "centos",
        "almalinux",
        "rocky",
        "ol",
        "oracle",
        "fedora",
        "amzn",
        "mariner",
        "azurelinux",
        "sles",
        "opensuse",
        "opensuse-leap",
        "opensuse-tumbleweed",
        "suse",
        "photon",
        "openeuler",
        "mageia",
        "openmandriva",
        "hummingbird",
    }
)
# OSV distro ecosystem prefixes (lower case) -> our family
_OSV_DISTROS = {
    "debian": "debian",
    "ubuntu": "ubuntu",
    "alpine": "alpine",
    "almalinux": "almalinux",
    "rocky linux": "rocky",
    "red hat": "rhel",
    "photon os": "photon",
    "mageia": "mageia",
    "openeuler": "openeuler",
    "opensuse": "opensuse",
    "suse": "sles",
    "wolfi": "wolfi",
    "chainguard": "chainguard",
    "minimos": "minimos",
    "echo": "echo",
    "azure linux": "azurelinux",
}
# vunnel/Grype namespace names -> our family
_VUNNEL_DISTROS = {"ol": "ol", "amzn": "amzn", "rhel": "rhel", "sles": "sles"}

_PEP503 = re.compile(r"[-_.]+")


def normalise_name(ecosystem: str, name: str) -> str:
    """The name as the ecosystem compares names (PEP 503 for PyPI, case for most)."""
    name = name.strip()
    if ecosystem == "pypi":
        return _PEP503.sub("-", name).lower()
    if ecosystem == "crates.io":
        return name.lower().replace("_", "-")  # crates.io treats - and _ as the same name
    if ecosystem in ("packagist", "nuget", "hex", "pub", "rubygems", "npm"):
        return name.lower()
    if ecosystem == "maven":
        return name.lower()
    if ":" in ecosystem:  # distributions: package names are case-sensitive but lower by rule
        return name
    return name


def ecosystem_of_purl_type(purl_type: str) -> str | None:
    return _PURL_TYPES.get(purl_type.lower())


def family_of(distro_id: str) -> str:
    """`redhat` -> `rhel`, `opensuse-leap` -> `opensuse`: one family per vendor."""
    lowered = distro_id.lower()
    if lowered == "redhat":
        return "rhel"
    if lowered.startswith("opensuse"):
        return "opensuse"
    if lowered == "oracle":
        return "ol"
    return lowered


def _release(family: str, version: str) -> str:
    """The release part of a distro key: `12`, `22.04`, `3.18`, `9`, `2023`."""
    version = version.strip().lower()
    if family == "debian":
        if version in DEBIAN_CODENAMES:
            return DEBIAN_CODENAMES[version]
        return version.split(".")[0]
    if family in ("alpine", "postmarketos"):
        version = version.removeprefix("v")
        if "_alpha" in version or version == "edge":
            return "edge"
        return ".".join(version.split(".")[:2])
    if family in ("rhel", "centos", "almalinux", "rocky", "ol"):
        return version.split(".")[0]
    if family in ("mariner", "azurelinux", "photon"):
        parts = version.split(".")
        return f"{parts[0]}.{parts[1] if len(parts) > 1 else '0'}"
    return version


def distro_key(distro_id: str, version: str) -> str:
    """`debian`, `12.5` -> `debian:12`; a rolling distribution (wolfi) has no release."""
    family = family_of(distro_id)
    if family in ("wolfi", "chainguard", "minimos", "archlinux"):
        return family
    release = _release(family, version)
    return f"{family}:{release}" if release else family


def osv_ecosystem(ecosystem: str) -> str:
    """Our key for an OSV ecosystem: `PyPI` -> `pypi`, `Debian:12` -> `debian:12`,
    `Alpine:v3.18` -> `alpine:3.18`, `Ubuntu:22.04:LTS` -> `ubuntu:22.04`. Unknown
    ecosystems keep their (lower-cased) name and so never match an installed package."""
    text = ecosystem.strip()
    lowered = text.lower()
    if lowered in _LANGUAGE_ECOSYSTEMS:
        return _LANGUAGE_ECOSYSTEMS[lowered]
    head, _, rest = text.partition(":")
    family = _OSV_DISTROS.get(head.lower())
    if family is None:
        return lowered
    if family in ("wolfi", "chainguard", "minimos"):
        return family
    if family == "ubuntu":
        parts = [p for p in rest.split(":") if p and p.lower() not in ("lts", "pro", "fips")]
        parts = [p for p in parts if re.fullmatch(r"\d+\.\d+", p)]
        return f"ubuntu:{parts[0]}" if parts else "ubuntu"
    if family == "opensuse" or family == "sles":
        return f"{family}:{rest.lower()}" if rest else family
    return distro_key(family, rest) if rest else family


def vunnel_namespace(namespace: str) -> str:
    """Grype/vunnel `debian:8`, `alpine:3.18`, `rhel:8`, `amzn:2023` -> our key."""
    family, _, release = namespace.strip().lower().partition(":")
    family = _VUNNEL_DISTROS.get(family, family)
    return distro_key(family, release)


def scheme_for(ecosystem: str) -> Scheme:
    """How versions of `ecosystem` compare; SemVer for languages without rules of their own."""
    if ecosystem in _SCHEME_OF_ECOSYSTEM:
        return _SCHEME_OF_ECOSYSTEM[ecosystem]
    family = ecosystem.split(":", 1)[0]
    if family in _DEB_FAMILIES:
        return Scheme.DEB
    if family in _APK_FAMILIES:
        return Scheme.APK
    if family in _RPM_FAMILIES:
        return Scheme.RPM
    return Scheme.SEMVER
