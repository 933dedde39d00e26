"""Version comparison per ecosystem, and Grype's constraint grammar over it.

    compare(Scheme.DEB, "1:2.0-1", "2.1-1")        # 1: the epoch wins
    satisfies(Scheme.APK, "1.5.1-r1", "> 1.5.1")   # True

Which implementation each scheme uses, and why:

- deb, apk, maven, gem, nuget: `univers` (agrees with every deb and apk case of Grype's
  tests; Maven's ordering is the one Maven itself uses).
- rpm: rpmvercmp written here, because Grype (and so every user comparing with it) does two
  things strict rpmvercmp does not: an epoch written on only one side is ignored (vulnerability
  data often drops or adds `0:`), and trailing zero segments are equal (`el8` = `el8.0.0`).
  `^` (rpm >= 4.15) sorts after the end of a version and before anything else.
- pep440: `packaging`; a local label (`+cgr.1`) is ignored against a bound that has none,
  as PEP 440 specifiers do.
- semver (crates.io, npm, Packagist, Hex, Pub, and any ecosystem without its own rules): a
  lenient SemVer 2.0 in the manner of the Go library Grype uses: a leading `v`, two-part
  versions, `1.21rc2`, `1.0.0.beta` (= `1.0.0-beta`); build metadata never counts.
  Unlike that library, a shorter pre-release sorts first (`alpha` < `alpha.beta`), as
  SemVer 2.0 says.
- go: semver after dropping `go` (`go1.21.3`) and `v`; pseudo-versions are pre-releases of
  the next patch, so they already order correctly; `+incompatible` is build metadata.

Parsed versions are cached: a scan compares the same few versions many times.
"""

from __future__ import annotations

import enum
import functools
import itertools
import re
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import unquote

__all__ = [
    "InvalidVersion",
    "Scheme",
    "compare",
    "parse",
    "satisfies",
    "vers_contains",
]


class InvalidVersion(ValueError):
    """A version (or constraint) that the scheme cannot parse."""


class Scheme(enum.StrEnum):
    DEB = "deb"
    APK = "apk"
    RPM = "rpm"
    PEP440 = "pep440"
    SEMVER = "semver"
    GO = "go"
    MAVEN = "maven"
    GEM = "gem"
    NUGET = "nuget"


class _Ordered(Protocol):
    def __lt__(self, other: Any, /) -> bool: ...


class Version:
    """A parsed version: the text as given and a key that orders within its scheme."""

    __slots__ = ("_cmp", "key", "scheme", "text")

    def __init__(self, scheme: Scheme, text: str, key: Any, cmp: Callable[[Any, Any], int]) -> None:
        self.scheme = scheme
        self.text = text
        self.key = key
        self._cmp = cmp

    def compare(self, other: Version) -> int:
        if other.scheme is not self.scheme:
            raise InvalidVersion(f"cannot compare {self.scheme} with {other.scheme} versions")
        return self._cmp(self.key, other.key)

    def __repr__(self) -> str:
        return f"Version({self.scheme.value}, {self.text!r})"


def _by_operators(a: _Ordered, b: _Ordered) -> int:
    # only `<`: univers' `==` compares the text, so 4.19.01 != 4.19.1 although neither is older
    if a < b:
        return -1
    return 1 if b < a else 0


# -- rpm ------------------------------------------------------------------------------------

_RPM_SEGMENT = re.compile(r"[A-Za-z]+|[0-9]+|~|\^")


class _Rpm:
    __slots__ = ("epoch", "release", "version")

    def __init__(self, epoch: int | None, version: str, release: str) -> None:
        self.epoch = epoch
        self.version = version
        self.release = release


def _parse_rpm(text: str) -> _Rpm:
    body = text.strip()
    epoch: int | None = None
    if ":" in body:
        head, body = body.split(":", 1)
        if not head.strip().isdigit():
            raise InvalidVersion(f"rpm epoch {head!r} is not a number")
        epoch = int(head)
    if not body:
        raise InvalidVersion("empty rpm version")
    version, _, release = body.partition("-")
    return _Rpm(epoch, version, release)


def _rpmvercmp(a: str, b: str) -> int:
    if a == b:
        return 0
    sa, sb = _RPM_SEGMENT.findall(a), _RPM_SEGMENT.findall(b)
    for x, y in zip(sa, sb, strict=False):
        if x == y:
            continue
        if x in ("~", "^") or y in ("~", "^"):
            # ~ and ^ both sort before any other segment (they differ only at the end)
            if x not in ("~", "^"):
                return 1
            if y not in ("~", "^"):
                return -1
            return -1 if x == "~" else 1
        x_num, y_num = x.isdigit(), y.isdigit()
        if x_num != y_num:
            return 1 if x_num else -1
        if x_num:
            x, y = x.lstrip("0"), y.lstrip("0")
            if len(x) != len(y):
                return 1 if len(x) > len(y) else -1
        if x != y:
            return 1 if x > y else -1
    if len(sa) == len(sb):
        return 0
    longer, sign = (sa, 1) if len(sa) > len(sb) else (sb, -1)
    rest = longer[min(len(sa), len(sb)) :]
    if rest[0] == "~":
        return -sign  # 1.0~rc1 < 1.0
    if rest[0] == "^":
        return sign  # 1.0^git1 > 1.0 (and < 1.0.1, decided in the loop)
    if all(s.strip("0") == "" and s.isdigit() for s in rest):
        return 0  # Grype: trailing zero segments are equal (el8 = el8.0.0)
    return sign


def _cmp_rpm(a: _Rpm, b: _Rpm) -> int:
    if a.epoch is not None and b.epoch is not None and a.epoch != b.epoch:
        return 1 if a.epoch > b.epoch else -1
    return _rpmvercmp(a.version, b.version) or _rpmvercmp(a.release, b.release)


# -- lenient semver -------------------------------------------------------------------------

_SEMVER = re.compile(
    r"""^\s*v?
    (?P<core>[0-9]+(?:\.[0-9]+)*?)
    (?:-(?P<pre1>[0-9]+[0-9A-Za-z\-~]*(?:\.[0-9A-Za-z\-~]+)*)
      |-?(?P<pre2>[A-Za-z\-~]+[0-9A-Za-z\-~]*(?:\.[0-9A-Za-z\-~]+)*))?
    (?:\+(?P<meta>[0-9A-Za-z\-~]+(?:\.[0-9A-Za-z\-~]+)*))?
    \s*$""",
    re.VERBOSE,
)
_PRERELEASE_WORD = re.compile(r"\.(alpha|beta|rc)")


class _Semver:
    __slots__ = ("core", "pre")

    def __init__(self, core: tuple[int, ...], pre: tuple[str, ...]) -> None:
        self.core = core
        self.pre = pre


def _parse_semver(text: str) -> _Semver:
    clean = _PRERELEASE_WORD.sub(r"-\1", text.strip())
    if clean[:1] in ("v", "V"):
        clean = clean[1:]
    match = _SEMVER.match(clean)
    if match is None:
        raise InvalidVersion(f"{text!r} is not a version")
    core = tuple(int(p) for p in match.group("core").split("."))
    core = core + (0,) * (3 - len(core))
    pre = match.group("pre1") or match.group("pre2") or ""
    return _Semver(core, tuple(pre.split(".")) if pre else ())


def _cmp_identifier(a: str, b: str) -> int:
    if a == b:
        return 0
    a_num, b_num = a.isdigit(), b.isdigit()
    if a_num and b_num:
        return 1 if int(a) > int(b) else -1
    if a_num != b_num:
        return -1 if a_num else 1  # numeric identifiers sort before words
    return 1 if a > b else -1


def _cmp_semver(a: _Semver, b: _Semver) -> int:
    width = max(len(a.core), len(b.core))
    ca = a.core + (0,) * (width - len(a.core))
    cb = b.core + (0,) * (width - len(b.core))
    if ca != cb:
        return 1 if ca > cb else -1
    if a.pre == b.pre:
        return 0
    if not a.pre or not b.pre:
        return 1 if not a.pre else -1  # a release is newer than its pre-releases
    for x, y in zip(a.pre, b.pre, strict=False):
        result = _cmp_identifier(x, y)
        if result:
            return result
    return 1 if len(a.pre) > len(b.pre) else -1


def _parse_go(text: str) -> _Semver:
    clean = text.strip()
    if clean.startswith("go") and clean[2:3].isdigit():
        clean = clean[2:]  # the standard library: go1.21.3
    return _parse_semver(clean)


# -- pep440 -----------------------------------------------------------------------------------


def _parse_pep440(text: str) -> Any:
    from packaging.version import InvalidVersion as PackagingInvalid
    from packaging.version import Version as Pep440

    try:
        return Pep440(text.strip())
    except PackagingInvalid:
        raise InvalidVersion(f"{text!r} is not a PEP 440 version") from None


def _cmp_pep440(a: Any, b: Any) -> int:
    # `a` is the version being checked, `b` the bound: as in PEP 440 specifiers, a local
    # label on the checked version does not count against a bound that has none.
    if a.local is not None and b.local is None:
        a = type(a)(a.public)
    return _by_operators(a, b)


# -- univers ----------------------------------------------------------------------------------


def _univers(class_name: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        from univers import versions

        cls = getattr(versions, class_name)
        try:
            parsed = cls(text.strip())
            # univers accepts some strings it cannot order (NugetVersion("v")): refuse them
            # here, where the text is known, rather than fail in a comparison later
            _ = parsed < cls("0")
        except Exception as exc:  # univers raises InvalidVersion, ValueError or TypeError
            raise InvalidVersion(f"{text!r} is not a {cls.__name__}: {exc}") from None
        return parsed

    return parse


_SCHEMES: dict[Scheme, tuple[Callable[[str], Any], Callable[[Any, Any], int]]] = {
    Scheme.DEB: (_univers("DebianVersion"), _by_operators),
    Scheme.APK: (_univers("AlpineLinuxVersion"), _by_operators),
    Scheme.MAVEN: (_univers("MavenVersion"), _by_operators),
    Scheme.GEM: (_univers("RubygemsVersion"), _by_operators),
    Scheme.NUGET: (_univers("NugetVersion"), _by_operators),
    Scheme.RPM: (_parse_rpm, _cmp_rpm),
    Scheme.PEP440: (_parse_pep440, _cmp_pep440),
    Scheme.SEMVER: (_parse_semver, _cmp_semver),
    Scheme.GO: (_parse_go, _cmp_semver),
}


@functools.lru_cache(maxsize=65_536)
def parse(scheme: Scheme, text: str) -> Version:
    """A comparable version; `InvalidVersion` if `text` is not one in this scheme."""
    if not text or not text.strip():
        raise InvalidVersion("empty version")
    if len(text) > 256:
        raise InvalidVersion("version longer than 256 characters")
    parser, cmp = _SCHEMES[scheme]
    return Version(scheme, text, parser(text), cmp)


def compare(scheme: Scheme, a: str, b: str) -> int:
    """-1, 0 or 1 as `a` is older than, the same as, or newer than `b`."""
    return parse(scheme, a).compare(parse(scheme, b))


# -- constraints ------------------------------------------------------------------------------

_OPERATORS: dict[str, Callable[[int], bool]] = {
    "<": lambda c: c < 0,
    "<=": lambda c: c <= 0,
    ">": lambda c: c > 0,
    ">=": lambda c: c >= 0,
    "=": lambda c: c == 0,
    "==": lambda c: c == 0,
    "!=": lambda c: c != 0,
}
# longest first: `<=` before `<`
_TERM_OPERATORS = ("<=", ">=", "==", "!=", "<", ">", "=")


def satisfies(scheme: Scheme, version: str, constraint: str) -> bool:
    """Whether `version` meets `constraint` in Grype's grammar: `,` is AND, `||` is OR.

    A term is an operator (`< <= > >= = == !=`, `=` when absent) and a version, which may
    be quoted. An empty constraint is met by every version.
    """
    if not constraint.strip():
        return True
    candidate = parse(scheme, version)
    for alternative in constraint.split("||"):
        if all(_term_holds(scheme, candidate, term) for term in alternative.split(",")):
            return True
    return False


def _term_holds(scheme: Scheme, candidate: Version, term: str) -> bool:
    # split by hand, in one pass: the pattern `^\s*(op)?\s*(.+?)\s*$` had backtracked
    # quadratically over a run of blanks inside a term (a 40,000-character term: 5 s)
    text = term.strip()
    operator = next((op for op in _TERM_OPERATORS if text.startswith(op)), "")
    bound = text[len(operator) :].strip().strip("'\"")
    if not bound or "\n" in bound:
        raise InvalidVersion(f"empty term in constraint {term[:80]!r}")
    return _OPERATORS[operator or "="](candidate.compare(parse(scheme, bound)))


# -- vers (purl-spec's version range specifier) ------------------------------------------------

# vers versioning schemes -> ours; a scheme not listed here (`generic`, ...) is not evaluated
_VERS_SCHEMES = {
    "deb": Scheme.DEB,
    "apk": Scheme.APK,
    "alpine": Scheme.APK,
    "rpm": Scheme.RPM,
    "pypi": Scheme.PEP440,
    "golang": Scheme.GO,
    "maven": Scheme.MAVEN,
    "gem": Scheme.GEM,
    "nuget": Scheme.NUGET,
    "semver": Scheme.SEMVER,
    "npm": Scheme.SEMVER,
    "cargo": Scheme.SEMVER,
    "composer": Scheme.SEMVER,
    "hex": Scheme.SEMVER,
    "pub": Scheme.SEMVER,
}
_VERS_OPERATORS = (">=", "<=", "!=", "<", ">", "=")
MAX_VERS_CONSTRAINTS = 1_000


def vers_contains(scheme: Scheme, version: str, vers: str) -> bool:
    """Whether `version` lies in the `vers:` range, by the vers specification's algorithm.

    `InvalidVersion` when it cannot tell: not a vers, a versioning scheme that is not
    `scheme` (a `vers:generic` range, a `vers:pypi` range about an npm package), a version
    that does not parse, constraints out of order or in an invalid sequence. The caller
    decides what not knowing means; nothing here guesses.
    """
    text = vers.strip()
    if not text.startswith("vers:") or "/" not in text:
        raise InvalidVersion(f"{vers[:80]!r} is not a vers range")
    kind, _, body = text[5:].partition("/")
    if _VERS_SCHEMES.get(kind.strip().lower()) is not scheme:
        raise InvalidVersion(f"vers scheme {kind[:40]!r} does not compare {scheme} versions")
    body = body.strip()
    if body == "*":
        return True
    terms = body.split("|")
    if len(terms) > MAX_VERS_CONSTRAINTS:
        raise InvalidVersion(f"vers range of more than {MAX_VERS_CONSTRAINTS} constraints")
    constraints: list[tuple[str, Version]] = []
    for term in terms:
        term = term.strip()
        operator = next((op for op in _VERS_OPERATORS if term.startswith(op)), "=")
        written = unquote(term[len(operator) :] if term.startswith(operator) else term)
        constraints.append((operator, parse(scheme, written.strip())))
    for (_, a), (_, b) in itertools.pairwise(constraints):
        if a.compare(b) >= 0:  # the spec requires them sorted, each version once
            raise InvalidVersion(f"vers constraints not in ascending order: {vers[:80]!r}")
    bounds = [(op, b) for op, b in constraints if op not in ("=", "!=")]
    for (first, _), (second, _) in itertools.pairwise(bounds):
        # a lower bound is followed by an upper one, an upper one by a lower one
        if (first in (">", ">=")) == (second in (">", ">=")):
            raise InvalidVersion(f"vers constraints in an invalid sequence: {vers[:80]!r}")
    candidate = parse(scheme, version)
    for operator, bound in constraints:
        order = candidate.compare(bound)
        if order == 0 and operator == "!=":
            return False
        if order == 0 and "=" in operator:
            return True
    if len(constraints) == 1 or len(bounds) == 1:
        operator, bound = (constraints if len(constraints) == 1 else bounds)[0]
        return _OPERATORS[operator](candidate.compare(bound))
    if not bounds:
        return False  # only `=` and `!=`, and equal to none of them
    if bounds[0][0] in ("<", "<=") and candidate.compare(bounds[0][1]) < 0:
        return True
    for (low_op, low), (_, high) in itertools.pairwise(bounds):
        if low_op in (">", ">=") and candidate.compare(low) > 0 and candidate.compare(high) < 0:
            return True
    return bounds[-1][0] in (">", ">=") and candidate.compare(bounds[-1][1]) > 0
