"""Licence names -> SPDX licence expressions, with the SPDX licence list.

Debian's machine-readable copyright files (DEP-5) name licences by short names (`GPL-2+`,
`Expat`, `BSD-3-clause`, `GPL-2+ or Artistic`, `GPL-2+ with OpenSSL exception`); other
ecosystems write ids or free text. Each name is looked up case-insensitively in the SPDX licence
list that spdx-tools ships (through `license-expression`, built once), after the DEP-5
conventions: `X+` is "X or later", a bare version is "only", a licence with no version is any
version. A name the list does not know becomes `LicenseRef-<name>` (valid in both SBOM
formats); words that are not licence names at all (`The`, `based`, `none`, `*`) are dropped.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

__all__ = [
    "combine",
    "is_license_ref",
    "parse_debian_copyright",
    "to_spdx",
]

# DEP-5 short names whose SPDX id is not the name itself, or not found by the rules below
_DEBIAN_NAMES = {
    "expat": "MIT",
    "mit/x11": "MIT",
    "x11": "X11",
    "artistic": "Artistic-1.0-Perl",
    "artistic-1": "Artistic-1.0-Perl",
    "perl": "Artistic-1.0-Perl OR GPL-1.0-or-later",
    "gpl": "GPL-1.0-or-later",  # DEP-5: no version means any version
    "lgpl": "LGPL-2.0-or-later",
    "gfdl": "GFDL-1.1-or-later",
    "agpl": "AGPL-3.0-or-later",
    "psf-2": "PSF-2.0",
    "python": "Python-2.0",
    "zope": "ZPL-2.1",
    "apache": "Apache-2.0",
    "apache-2": "Apache-2.0",
    "mpl": "MPL-1.1",
    "cc0": "CC0-1.0",
    "bsd-2-clause-freebsd": "BSD-2-Clause-FreeBSD",
    "zlib": "Zlib",
}
_EXCEPTIONS = {
    "openssl": "LicenseRef-OpenSSL-exception",  # not in the SPDX exception list
    "autoconf": "Autoconf-exception-2.0",
    "bison": "Bison-exception-2.2",
    "gcc": "GCC-exception-3.1",
    "classpath": "Classpath-exception-2.0",
    "font": "Font-exception-2.0",
}
# words that turn up on `License:` lines but name no licence
_JUNK = frozenset(
    {
        "",
        "*",
        "a",
        "all",
        "and",
        "as",
        "based",
        "by",
        "code",
        "copyright",
        "file",
        "files",
        "for",
        "in",
        "is",
        "license",
        "licence",
        "licensed",
        "n/a",
        "no",
        "none",
        "of",
        "on",
        "or",
        "same",
        "see",
        "the",
        "this",
        "under",
        "unknown",
        "with",
    }
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+_\-/]*")
_REF_UNSAFE = re.compile(r"[^A-Za-z0-9.]+")
_LICENSE_REF = re.compile(r"LicenseRef-[A-Za-z0-9.\-]+")
_OPERATOR = re.compile(r"[\s_]+(or|and)[\s_]+", re.IGNORECASE)
_LEADING_OPERATOR = re.compile(r"(?P<operator>or|and)[\s_]+", re.IGNORECASE)
_WITH = re.compile(r"\s+with\s+(?P<exception>.+?)(\s+exception)?$", re.IGNORECASE)
_FIELD = re.compile(r"^License:[ \t]*(?P<synopsis>[^\n]*)", re.MULTILINE)
_COMMON_LICENSE = re.compile(r"/usr/share/common-licenses/(?P<license>[0-9A-Za-z_.+\-]+)")
_VERSION_TAIL = re.compile(r"^(?P<base>.+?)[-v]?(?P<version>\d+(\.\d+)*)(?P<plus>\+?)$")
_MAX_SYNOPSIS = 200
_MAX_FIELDS = 2_000


@functools.lru_cache(maxsize=1)
def _known() -> tuple[dict[str, str], frozenset[str]]:
    """Lower-case key -> SPDX id for licences, and the exception ids, from the licence list.

    Read straight from the licence index that license-expression ships, the one spdx-tools'
    `spdx_licensing` is built from (same ids): building that `Licensing` object (symbols and
    a search automaton) costs more than a whole scan of a small image and is only needed to
    parse free-form expressions (`as_expression`).
    """
    licences: dict[str, str] = {}
    exceptions: set[str] = set()
    for entry in _license_index():
        key = entry.get("spdx_license_key")
        if not key:
            continue
        if entry.get("is_exception", False):
            exceptions.add(key)
        else:
            licences[key.lower()] = key
    return licences, frozenset(exceptions)


def _license_index() -> list[dict[str, Any]]:
    """license-expression's licence index, the file its `get_license_index` reads, parsed by
    orjson: that reader's json.load takes 25 ms of a scan for the 1 MB file, and importing
    the package another 6 ms, which finding the file through its module spec avoids."""
    spec = importlib.util.find_spec("license_expression")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("license-expression is not installed")
    folder = Path(next(iter(spec.submodule_search_locations)))
    index = orjson.loads((folder / "data" / "scancode-licensedb-index.json").read_bytes())
    if not isinstance(index, list):
        raise ValueError("license-expression's licence index is not a list")
    return index


def is_license_ref(text: str) -> bool:
    return text.startswith("LicenseRef-")


def license_ref(name: str) -> str:
    return "LicenseRef-" + (_REF_UNSAFE.sub("-", name).strip("-")[:100] or "unknown")


@functools.lru_cache(maxsize=4_096)
def _lookup(name: str) -> str | None:
    """One licence name -> its SPDX id (or a small expression), None if the list lacks it."""
    licences, _ = _known()
    lowered = name.lower()
    if lowered in _DEBIAN_NAMES:
        return _DEBIAN_NAMES[lowered]
    if lowered in licences:
        return licences[lowered]
    match = _VERSION_TAIL.match(name)
    if match is None:
        return None
    base, version, plus = match["base"].rstrip("-"), match["version"], match["plus"]
    versions = [version] if "." in version else [version, version + ".0"]
    suffixes = ["-or-later", "+"] if plus else ["-only", ""]
    for candidate_version in versions:
        for suffix in suffixes:
            found = licences.get(f"{base}-{candidate_version}{suffix}".lower())
            if found is not None:
                return found
    return None


def _term(word: str) -> str | None:
    """One operand of a synopsis: a licence, possibly `with <exception>`; None for junk."""
    word = word.strip().strip("()").strip().rstrip(".;:")
    exception = None
    with_match = _WITH.search(word)
    if with_match is not None:
        exception = with_match["exception"].strip()
        word = word[: with_match.start()].strip()
    if word.lower() in _JUNK or not _NAME.fullmatch(word):
        return None
    found = _lookup(word) or license_ref(word)
    if exception is None:
        return found
    _, exceptions = _known()
    exception_id = _EXCEPTIONS.get(exception.lower().split()[0]) if exception else None
    if exception_id is None:
        exception_id = next((e for e in exceptions if e.lower() == exception.lower()), None)
    if exception_id is None or is_license_ref(exception_id) or " " in found:
        # SPDX allows WITH only with a listed exception: keep the whole as one reference
        return license_ref(f"{word}-with-{exception}-exception")
    return f"{found} WITH {exception_id}"


def _flat(segment: str) -> tuple[str, int] | None:
    """`A or B and C` (no commas) -> (expression, number of terms); None if nothing in it."""
    parts = _OPERATOR.split(segment)
    # re.split with one group: [term, op, term, op, ...]
    terms: list[str] = []
    operators: list[str] = []
    for index, part in enumerate(parts):
        if index % 2:
            operators.append(part.upper())
            continue
        term = _term(part or "")
        if term is None:
            if operators:
                operators.pop()
            continue
        if len(terms) > len(operators):
            operators.append("AND")
        terms.append(f"({term})" if " " in term and " WITH " not in term else term)
    if not terms:
        return None
    text = terms[0]
    for operator, term in zip(operators, terms[1:], strict=False):
        text = f"{text} {operator} {term}"
    return text, len(terms)


@functools.lru_cache(maxsize=4_096)  # packages repeat the same synopses
def to_spdx(synopsis: str) -> str | None:
    """A licence synopsis (`GPL-2+ or Artistic`) -> an SPDX expression; None if it names none.

    DEP-5 uses commas for precedence: `A or B, and C` is `(A OR B) AND C`.
    """
    synopsis = synopsis.strip()[:_MAX_SYNOPSIS]
    groups: list[tuple[str, str, int]] = []  # (operator joining it to the previous, text, terms)
    for index, segment in enumerate(synopsis.split(",")):
        segment = segment.strip()
        operator = "AND"
        lead = _LEADING_OPERATOR.match(segment)
        if lead is not None:
            operator, segment = lead["operator"].upper(), segment[lead.end() :]
        flat = _flat(segment)
        if flat is not None:
            groups.append((operator if index else "AND", *flat))
    if not groups:
        return None
    if len(groups) == 1:
        return groups[0][1]
    text = ""
    for operator, expression, count in groups:
        wrapped = f"({expression})" if count > 1 else expression
        text = f"{text} {operator} {wrapped}" if text else wrapped
    return text


def combine(expressions: Iterable[str]) -> str | None:
    """Several expressions that all apply -> one (`A AND (B OR C)`); None for none."""
    unique = sorted(set(expressions))
    if not unique:
        return None
    if len(unique) == 1:
        return unique[0]
    return " AND ".join(f"({e})" if " " in e and " WITH " not in e else e for e in unique)


def _is_dep5(text: str) -> bool:
    head = text.lstrip()[:400].lower()
    return head.startswith(("format:", "format-specification:"))


def parse_debian_copyright(text: str) -> tuple[str, ...]:
    """SPDX expressions for the licences a Debian copyright file names, sorted, unique.

    In a DEP-5 file every `License:` field's first line is a synopsis; other files are free
    text, where only `/usr/share/common-licenses/<name>` references and `License:` lines whose
    every name is on the SPDX list count (free prose would otherwise turn into references).
    """
    found: set[str] = set()
    dep5 = _is_dep5(text)
    for count, match in enumerate(_FIELD.finditer(text)):
        if count >= _MAX_FIELDS:
            break
        expression = to_spdx(match["synopsis"])
        if expression is None:
            continue
        if not dep5 and "LicenseRef-" in expression:
            continue
        found.add(expression)
    for match in _COMMON_LICENSE.finditer(text):
        name = match["license"].rstrip(".,;")
        expression = _lookup(name)
        if expression is not None:
            found.add(expression)
    return tuple(sorted(found))


@functools.lru_cache(maxsize=8_192)
def as_expression(text: str) -> str:
    """Any declared licence text -> a valid SPDX expression (free text -> `LicenseRef-`).

    Text that already is a valid expression over listed ids (and `LicenseRef-`s) is kept in
    the list's spelling; a single name goes through the same lookup as a DEP-5 name; anything
    else is one `LicenseRef-` made from the text.
    """
    from license_expression import ExpressionError
    from spdx_tools.common.spdx_licensing import spdx_licensing

    stripped = text.strip()
    if _NAME.fullmatch(stripped):
        return _lookup(stripped) or license_ref(stripped)
    try:
        parsed = spdx_licensing.parse(stripped)
        unknown = spdx_licensing.unknown_license_keys(parsed) if parsed is not None else [""]
        if all(_LICENSE_REF.fullmatch(key) for key in unknown):
            return str(parsed)
    except (ExpressionError, AttributeError, TypeError, ValueError):
        pass  # license-expression's own error paths raise AttributeError on some inputs
    return license_ref(stripped)
