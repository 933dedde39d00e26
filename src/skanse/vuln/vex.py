"""VEX: statements that a product is not affected by (or fixed for) a vulnerability.

Two formats, both JSON:
- OpenVEX (v0.0.1 to v0.2.x): `statements[]` with `vulnerability` (`{name, aliases}` or a
  string), `products` (`{@id, subcomponents[]}` or purl strings), `status`,
  `justification`, `impact_statement`.
- CycloneDX VEX: `vulnerabilities[]` with `id`, `analysis.{state, justification,
  detail}` and `affects[].ref` (a purl, a bom-ref of a component in the document, or a
  BOM-Link `urn:cdx:...#ref`), optionally narrowed by `affects[].versions[]` (a `version`
  or a `vers:` `range`, each with a `status`: affected, unaffected or unknown).

A statement applies to a match when one of its vulnerability names is the advisory id or an
alias, and one of its products is the package (purl type, namespace, name, and version when
the statement gives one; qualifiers ignored) or the scanned image itself (`pkg:oci/...`,
every package, or only its `subcomponents`; when the image purl names a `repository_url`,
the scanned image must come from that repository). `not_affected` and `fixed` (CycloneDX:
`not_affected`, `false_positive`, `resolved`, `resolved_with_pedigree`) suppress the
match, with the status and justification as the reason; `affected` and
`under_investigation` do not. A match that folds several vulnerabilities together (a DSA
about CVE-1 and CVE-2) is suppressed only when suppressing statements cover all of them
(`Match.covered_by`), and not when any of its ids is last said to be affected.

A CycloneDX `affects` entry that lists `versions` is about those versions only: it
suppresses a package whose version one of them names (`version`, or in its `range`) as
`unaffected`, takes back an earlier suppression when one names it `affected` or `unknown`
(the default status is `affected`), and says nothing about any other version. An entry
skanse cannot evaluate (a `vers:generic` range, a range of another ecosystem's scheme, a
version that does not parse) never suppresses: it is not "every version".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packageurl import PackageURL

from skanse.errors import VexError
from skanse.model import Suppression, SuppressionSource
from skanse.vuln.ecosystems import ecosystem_of_purl_type, normalise_name, scheme_for
from skanse.vuln.model import Match
from skanse.vuln.versions import InvalidVersion, Scheme, parse, vers_contains

__all__ = [
    "VexStatement",
    "VexVersion",
    "apply_vex",
    "normalise_repository",
    "read_vex",
    "repository_of",
]

MAX_VEX_BYTES = 64 * 1024 * 1024
_SUPPRESSING_OPENVEX = frozenset({"not_affected", "fixed"})
_SUPPRESSING_CDX = frozenset(
    {"not_affected", "false_positive", "resolved", "resolved_with_pedigree"}
)


@dataclass(frozen=True, slots=True)
class VexVersion:
    """One entry of a CycloneDX `affects[].versions`: a version or a `vers:` range, and its
    status. Neither (an entry of another shape) is an entry that cannot be evaluated."""

    version: str | None
    range: str | None
    status: str  # affected | unaffected | unknown


@dataclass(frozen=True, slots=True)
class VexStatement:
    vulnerabilities: frozenset[str]
    products: tuple[str, ...]  # purls; an image purl (pkg:oci) applies to its packages
    subcomponents: tuple[str, ...]  # when given, only these packages of the products
    status: str
    justification: str
    statement: str  # impact statement / detail
    origin: str  # file and statement index
    suppresses: bool
    # products about the listed versions only (CycloneDX `affects[].versions`)
    versioned: tuple[tuple[str, tuple[VexVersion, ...]], ...] = ()


def _key(purl_text: str) -> tuple[str, str, str, str | None] | None:
    """(type, namespace, name, version) with names normalised as their ecosystem does."""
    try:
        purl = PackageURL.from_string(purl_text)
    except ValueError:
        return None
    ecosystem = ecosystem_of_purl_type(purl.type) or purl.type
    return (
        purl.type,
        (purl.namespace or "").lower(),
        normalise_name(ecosystem, purl.name),
        purl.version,
    )


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def read_vex(path: Path) -> list[VexStatement]:
    """Every statement of an OpenVEX or CycloneDX VEX document; `VexError` if neither."""
    try:
        if path.stat().st_size > MAX_VEX_BYTES:
            raise VexError(f"{path}: larger than {MAX_VEX_BYTES:,} bytes")
        document = json.loads(path.read_bytes())
    except OSError as exc:
        raise VexError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (ValueError, RecursionError) as exc:
        raise VexError(f"{path}: not JSON: {str(exc)[:120]}") from None
    if not isinstance(document, Mapping):
        raise VexError(f"{path}: a VEX document is a JSON object")
    context = str(document.get("@context", ""))
    if "openvex" in context or isinstance(document.get("statements"), list):
        return _openvex(document, path)
    if document.get("bomFormat") == "CycloneDX":
        return _cyclonedx(document, path)
    raise VexError(f"{path}: neither OpenVEX (@context openvex) nor CycloneDX VEX (bomFormat)")


def _openvex(document: Mapping[str, Any], path: Path) -> list[VexStatement]:
    statements = document.get("statements")
    if not isinstance(statements, list):
        raise VexError(f"{path}: OpenVEX without a `statements` list")
    found = []
    for i, raw in enumerate(statements):
        where = f"{path}: statements[{i}]"
        if not isinstance(raw, Mapping):
            raise VexError(f"{where} is not an object")
        vulnerability = raw.get("vulnerability")
        names: set[str] = set()
        if isinstance(vulnerability, str):
            names.add(vulnerability)
        elif isinstance(vulnerability, Mapping):
            for key in ("name", "@id"):
                if isinstance(vulnerability.get(key), str):
                    names.add(vulnerability[key])
            aliases = vulnerability.get("aliases")
            if isinstance(aliases, list):
                names.update(a for a in aliases if isinstance(a, str))
        if not names:
            raise VexError(f"{where}: no vulnerability name")
        products: list[str] = []
        subcomponents: list[str] = []
        raw_products = raw.get("products")
        if not isinstance(raw_products, list) or not raw_products:
            raise VexError(f"{where}: no products")
        for product in raw_products:
            if isinstance(product, str):
                products.append(product)
            elif isinstance(product, Mapping):
                ident = product.get("@id")
                identifiers = product.get("identifiers")
                if isinstance(identifiers, Mapping) and isinstance(identifiers.get("purl"), str):
                    ident = identifiers["purl"]
                if isinstance(ident, str):
                    products.append(ident)
                for sub in product.get("subcomponents") or []:
                    if isinstance(sub, str):
                        subcomponents.append(sub)
                    elif isinstance(sub, Mapping) and isinstance(sub.get("@id"), str):
                        subcomponents.append(sub["@id"])
        status = _text(raw.get("status"))
        if status not in ("not_affected", "affected", "fixed", "under_investigation"):
            raise VexError(f"{where}: status {status!r} is not an OpenVEX status")
        justification = _text(raw.get("justification"))
        if status == "not_affected" and not justification and not raw.get("impact_statement"):
            raise VexError(f"{where}: not_affected needs a justification or an impact_statement")
        found.append(
            VexStatement(
                vulnerabilities=frozenset(names),
                products=tuple(products),
                subcomponents=tuple(subcomponents),
                status=status,
                justification=justification,
                statement=_text(raw.get("impact_statement")),
                origin=where,
                suppresses=status in _SUPPRESSING_OPENVEX,
            )
        )
    return found


def _cyclonedx(document: Mapping[str, Any], path: Path) -> list[VexStatement]:
    refs: dict[str, str] = {}
    stack = list(document.get("components") or [])
    metadata = document.get("metadata")
    if isinstance(metadata, Mapping) and isinstance(metadata.get("component"), Mapping):
        stack.append(metadata["component"])
    while stack:
        component = stack.pop()
        if not isinstance(component, Mapping):
            continue
        if isinstance(component.get("bom-ref"), str) and isinstance(component.get("purl"), str):
            refs[component["bom-ref"]] = component["purl"]
        stack.extend(component.get("components") or [])
    vulnerabilities = document.get("vulnerabilities")
    if not isinstance(vulnerabilities, list):
        raise VexError(f"{path}: CycloneDX without a `vulnerabilities` list")
    found = []
    for i, raw in enumerate(vulnerabilities):
        where = f"{path}: vulnerabilities[{i}]"
        if not isinstance(raw, Mapping) or not isinstance(raw.get("id"), str):
            raise VexError(f"{where}: no id")
        names = {raw["id"]}
        for ref in raw.get("references") or []:
            if isinstance(ref, Mapping) and isinstance(ref.get("id"), str):
                names.add(ref["id"])
        analysis = raw.get("analysis")
        if not isinstance(analysis, Mapping) or not isinstance(analysis.get("state"), str):
            continue  # a vulnerability without analysis says nothing about exploitability
        products = []
        versioned = []
        for affect in raw.get("affects") or []:
            ref = affect.get("ref") if isinstance(affect, Mapping) else None
            if not isinstance(ref, str):
                continue
            fragment = ref.split("#", 1)[1] if ref.startswith("urn:cdx:") and "#" in ref else ref
            purl = fragment if fragment.startswith("pkg:") else refs.get(fragment)
            if not purl:
                continue
            if "versions" in affect:  # only these versions, whatever the list holds
                versioned.append((purl, _versions(affect["versions"])))
            else:
                products.append(purl)
        if not products and not versioned:
            raise VexError(f"{where}: no `affects` entry names a purl or a component with one")
        state = analysis["state"]
        found.append(
            VexStatement(
                vulnerabilities=frozenset(names),
                products=tuple(products),
                subcomponents=(),
                status=state,
                justification=_text(analysis.get("justification")),
                statement=_text(analysis.get("detail")),
                origin=where,
                suppresses=state in _SUPPRESSING_CDX,
                versioned=tuple(versioned),
            )
        )
    return found


def _versions(raw: object) -> tuple[VexVersion, ...]:
    """The entries of an `affects[].versions` list. An entry of another shape (or a list
    that is not one) is kept as an entry that cannot be evaluated, never dropped: dropping
    it could leave a list that says less than the document does."""
    if not isinstance(raw, list):
        return (VexVersion(None, None, "unknown"),)
    found = []
    for entry in raw:
        if not isinstance(entry, Mapping):
            found.append(VexVersion(None, None, "unknown"))
            continue
        status = entry.get("status", "affected")  # CycloneDX's default
        version, range_ = entry.get("version"), entry.get("range")
        found.append(
            VexVersion(
                version if isinstance(version, str) and range_ is None else None,
                range_ if isinstance(range_, str) and version is None else None,
                status if status in ("affected", "unaffected", "unknown") else "unknown",
            )
        )
    return tuple(found)


def _contains(entry: VexVersion, version: str, scheme: Scheme) -> bool | None:
    """Whether the entry names `version`; None when it cannot tell."""
    try:
        if entry.version is not None:
            return (
                entry.version == version
                or parse(scheme, version).compare(parse(scheme, entry.version)) == 0
            )
        if entry.range is not None:
            return vers_contains(scheme, version, entry.range)
    except InvalidVersion:
        return None
    return None


def _version_says(entries: tuple[VexVersion, ...], version: str, scheme: Scheme) -> bool | None:
    """What a versions list says of `version`: True, unaffected (the statement's state
    applies); False, affected or unknown, or an entry that may name it says so (the
    statement keeps the finding); None, nothing (the statement does not apply)."""
    named = False
    for entry in entries:
        contains = _contains(entry, version, scheme)
        if contains is False:
            continue
        if entry.status != "unaffected":
            return False
        named = named or contains is True
    return True if named else None


def repository_of(purl_text: str) -> str | None:
    """The `repository_url` qualifier of an image purl, normalised; None if it has none.

    Normalised as registries name repositories: no scheme, host in lower case, Docker Hub's
    aliases (`index.docker.io`, `registry-1.docker.io`) as `docker.io`, single names under
    `library/`, no trailing slash, no tag or digest.
    """
    try:
        purl = PackageURL.from_string(purl_text)
    except ValueError:
        return None
    value = (purl.qualifiers or {}).get("repository_url")
    if not isinstance(value, str) or not value.strip():
        return None
    return normalise_repository(value)


def normalise_repository(value: str) -> str:
    text = value.strip().split("://", 1)[-1].rstrip("/")
    text = text.split("@", 1)[0]
    host, _, path = text.partition("/")
    if ":" in path.rsplit("/", 1)[-1]:  # a tag on the last segment
        path = path.rsplit(":", 1)[0]
    if not path or ("." not in host and ":" not in host and host != "localhost"):
        host, path = "docker.io", text.split(":", 1)[0] if not path else f"{host}/{path}"
    host = host.lower()
    if host in ("index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"):
        host = "docker.io"
    if host == "docker.io" and "/" not in path:
        path = f"library/{path}"
    return f"{host}/{path}"


def _image_is(product: str, image_purls: tuple[str, ...]) -> bool:
    """The statement's image is the scanned one: same name, same digest when it gives one,
    and same repository when it names one (a statement about other.example.com/x/debian
    says nothing about registry.example.com/y/debian, nor about an image whose repository
    is not known)."""
    want = _key(product)
    if want is None:
        return False
    repository = repository_of(product)
    for candidate in image_purls:
        have = _key(candidate)
        if have is None or want[2] != have[2] or want[3] not in (None, have[3]):
            continue
        if repository is not None and repository != repository_of(candidate):
            continue
        return True
    return False


# an index key: ("*", id) for a statement about every package of the scanned image, else
# (id, type, namespace, name, version or None) for one package (any version when None)
_IndexKey = tuple[str | None, ...]


@dataclass(slots=True)
class _Last:
    """Of the statements filed under one key: the position of the last, and of the last that
    suppresses (-1: none)."""

    any: int = -1
    suppressing: int = -1


@dataclass(frozen=True, slots=True)
class _Versioned:
    """A statement about some versions of a package (CycloneDX `affects[].versions`)."""

    position: int
    suppresses: bool
    version: str | None  # the product purl's own version, if it gives one
    entries: tuple[VexVersion, ...]


_Packages = tuple[str, str, str, str | None]


def _index(
    statements: list[VexStatement], image_purls: tuple[str, ...]
) -> tuple[dict[_IndexKey, _Last], dict[_IndexKey, list[_Versioned]]]:
    """Each statement filed under every (id, package) it is about: its products, or the
    scanned image (all of it, or only its `subcomponents`). Products and purls are parsed
    once here, not once per match and statement. Products narrowed to some versions are
    filed apart, under (id, type, namespace, name), to be decided per installed version."""
    index: dict[_IndexKey, _Last] = {}
    versioned: dict[_IndexKey, list[_Versioned]] = {}

    def file(key: _IndexKey, position: int, suppresses: bool) -> None:
        last = index.setdefault(key, _Last())
        last.any = position  # statements are filed in order: the last one filed is last
        if suppresses:
            last.suppressing = position

    for position, statement in enumerate(statements):
        packages: list[_Packages] = []
        whole_image = False
        for product in statement.products:
            if (key := _key(product)) is not None:
                packages.append(key)
            if product.startswith(("pkg:oci/", "pkg:docker/")) and _image_is(product, image_purls):
                if not statement.subcomponents:
                    whole_image = True
                packages.extend(k for s in statement.subcomponents if (k := _key(s)) is not None)
        for name in statement.vulnerabilities:
            if whole_image:
                file(("*", name), position, statement.suppresses)
            for key in dict.fromkeys(packages):
                file((name, *key), position, statement.suppresses)
        for product, entries in statement.versioned:
            # versions of an image are not versions of its packages: such a statement is
            # not applied to them (it would otherwise be about every package)
            if product.startswith(("pkg:oci/", "pkg:docker/")) or (key := _key(product)) is None:
                continue
            for name in statement.vulnerabilities:
                versioned.setdefault((name, *key[:3]), []).append(
                    _Versioned(position, statement.suppresses, key[3], entries)
                )
    return index, versioned


def _decide(
    candidates: list[_Versioned], purl_version: str | None, version: str, scheme: Scheme
) -> _Last | None:
    """The last word of the version-narrowed statements about one installed version."""
    last = _Last()
    for candidate in candidates:
        if candidate.version not in (None, purl_version):
            continue
        says = _version_says(candidate.entries, version, scheme)
        if says is None:
            continue  # about other versions, or about versions skanse cannot tell
        last.any = max(last.any, candidate.position)
        if says and candidate.suppresses:
            last.suppressing = max(last.suppressing, candidate.position)
    return last if last.any >= 0 else None


def apply_vex(
    matches: list[Match], statements: list[VexStatement], image_purls: tuple[str, ...] = ()
) -> list[Suppression | None]:
    """The VEX suppression for each match (None: no suppressing statement applies).

    A statement applies to a match when it names one of the match's ids and one of its
    products is the package (type, namespace and name; the version when the product gives
    one, and only the versions a CycloneDX `affects[].versions` names) or the scanned image
    (every package, or only its `subcomponents`). When statements disagree, the last one in
    the documents wins, as OpenVEX orders them: each id's last word counts, so a later
    `affected` about an id takes back an earlier `not_affected` about it, and any id left
    affected keeps the whole match.

    Linear: each match looks up its own (id, package) keys in an index of the statements
    (a match had tried every statement naming one of its ids, parsing each product's purl
    and its own again: 2,000 matches x 2,000 statements about one CVE took 51 s).
    """
    index, versioned = _index(statements, image_purls)
    keys: dict[str, _Packages | None] = {}
    # (id, package, installed version, scheme) -> the versioned statements' last word,
    # decided once per package and id, not once per match
    decided: dict[tuple[object, ...], _Last | None] = {}
    result: list[Suppression | None] = []
    for match in matches:
        purl = match.package.purl
        if purl not in keys:
            keys[purl] = _key(purl) if purl else None
        package = keys[purl]
        status: dict[str, bool] = {}  # each id's last word: does it suppress?
        chosen = -1  # the last suppressing statement about any of the ids
        for name in match.ids:
            filed: list[_IndexKey] = [("*", name)]
            if package is not None:
                filed += [(name, *package[:3], None), (name, *package)]
            lasts = [last for k in dict.fromkeys(filed) if (last := index.get(k)) is not None]
            if package is not None and (candidates := versioned.get((name, *package[:3]))):
                scheme = scheme_for(match.ecosystem)
                at = (name, *package, match.package.version, scheme)
                if at not in decided:
                    decided[at] = _decide(candidates, package[3], match.package.version, scheme)
                if (last := decided[at]) is not None:
                    lasts.append(last)
            if not lasts:
                continue
            final = max(last.any for last in lasts)
            suppressing = max(last.suppressing for last in lasts)
            status[name] = final == suppressing
            chosen = max(chosen, suppressing)
        named = {i for i, suppresses in status.items() if suppresses}
        if not all(status.get(i, True) for i in match.ids) or not match.covered_by(named):
            result.append(None)
            continue
        statement = statements[chosen]
        reason = statement.status
        if statement.justification:
            reason += f": {statement.justification}"
        if statement.statement:
            reason += f" ({statement.statement})"
        result.append(Suppression(SuppressionSource.VEX, reason, statement.origin))
    return result
