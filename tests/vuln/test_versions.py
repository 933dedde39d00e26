"""Version comparison against Grype's own test cases (vulndb/version-oracles) and by hand."""

from __future__ import annotations

import json
from functools import cache

import pytest

from skanse.vuln.versions import InvalidVersion, Scheme, compare, satisfies, vers_contains
from tests.conftest import corpus_path

_SCHEME = {
    "deb": Scheme.DEB,
    "apk": Scheme.APK,
    "rpm": Scheme.RPM,
    "semantic": Scheme.SEMVER,
    "pep440": Scheme.PEP440,
}
# The oracle file was extracted from Go source by regex; one constraint lost its escaped
# quotes on the way. Grype's test (pep440_version_test.go, "vulndb fuzzy constraint double
# quoted") has `"4.5.1" || "4.5.2"`.
_EXTRACTION_FIXES = {("pep440", "4.5.2", "\\"): '"4.5.1" || "4.5.2"'}


@cache
def _oracle() -> dict:
    path = corpus_path("vulndb", "version-oracles", "grype-version-constraints.json")
    return json.loads(path.read_text())["formats"]


def _cases(kind: str) -> list:
    try:
        formats = _oracle()
    except pytest.skip.Exception:
        return [pytest.param(None, None, id="corpus-absent")]
    return [
        pytest.param(fmt, case, id=f"{fmt}-{i}")
        for fmt, groups in formats.items()
        for i, case in enumerate(groups.get(kind, []))
    ]


@pytest.mark.corpus
@pytest.mark.parametrize(("fmt", "case"), _cases("constraint_cases"))
def test_every_grype_constraint_case(fmt, case) -> None:
    if fmt is None:
        pytest.skip("vulndb corpus absent")
    constraint = _EXTRACTION_FIXES.get((fmt, case["version"], case["constraint"]))
    constraint = constraint or case["constraint"]
    assert satisfies(_SCHEME[fmt], case["version"], constraint) is case["satisfied"], case


@pytest.mark.corpus
@pytest.mark.parametrize(("fmt", "case"), _cases("compare_cases"))
def test_every_grype_rpm_compare_case(fmt, case) -> None:
    if fmt is None:
        pytest.skip("vulndb corpus absent")
    assert compare(_SCHEME[fmt], case["v1"], case["v2"]) == case["result"], case


@pytest.mark.corpus
def test_the_oracle_has_all_299_cases() -> None:
    formats = _oracle()
    counts = {f: sum(len(v) for v in g.values()) for f, g in formats.items()}
    assert counts == {"deb": 75, "apk": 34, "rpm": 71, "semantic": 99, "pep440": 39}
    assert sum(counts.values()) - len(formats["rpm"]["compare_cases"]) == 299


@pytest.mark.parametrize(
    ("scheme", "older", "newer"),
    [
        (Scheme.DEB, "1.2.3-1", "1:0.1-1"),  # epoch first
        (Scheme.DEB, "2.36.1-8+deb11u1", "2.36.1-8+deb11u2"),
        (Scheme.DEB, "1.0~rc1-1", "1.0-1"),  # tilde before anything
        (Scheme.APK, "1.2.3-r0", "1.2.3-r1"),
        (Scheme.APK, "1.2.3_rc1-r0", "1.2.3-r0"),
        (Scheme.RPM, "1.0~rc1-1.el9", "1.0-1.el9"),
        (Scheme.RPM, "1.0-1.el9", "1.0^git1-1.el9"),  # caret after the end
        (Scheme.RPM, "1.0^git1-1.el9", "1.0.1-1.el9"),  # and before any other segment
        (Scheme.RPM, "1:1.0-1", "1:1.1-1"),
        (Scheme.PEP440, "2.0.0rc1", "2.0.0"),
        (Scheme.PEP440, "1.0.post1", "1.1.dev0"),
        (Scheme.SEMVER, "1.0.0-alpha", "1.0.0-alpha.beta"),  # SemVer 2.0, unlike go-version
        (Scheme.SEMVER, "1.0.0-alpha.beta", "1.0.0-beta"),
        (Scheme.SEMVER, "0.9.0", "v1.0.0"),
        (Scheme.GO, "v1.2.3", "v1.2.4-0.20191109021931-daa7c04131f5"),  # pseudo-version
        (Scheme.GO, "v1.2.4-0.20191109021931-daa7c04131f5", "v1.2.4"),
        (Scheme.GO, "go1.20.14", "go1.21.0"),
        (Scheme.MAVEN, "2.14.0-rc1", "2.14.0"),
        (Scheme.MAVEN, "1.2.9", "1.2.10"),
        (Scheme.GEM, "5.2.0.rc1", "5.2.0"),
        (Scheme.NUGET, "4.3.0", "4.3.1"),
    ],
)
def test_order(scheme, older, newer) -> None:
    assert compare(scheme, older, newer) == -1
    assert compare(scheme, newer, older) == 1
    assert compare(scheme, older, older) == 0


def test_build_metadata_and_incompatible_do_not_count() -> None:
    assert compare(Scheme.SEMVER, "1.2.3+build.5", "1.2.3") == 0
    assert compare(Scheme.GO, "v2.0.0+incompatible", "2.0.0") == 0


@pytest.mark.parametrize(
    ("scheme", "text"),
    [
        (Scheme.DEB, "abc"),
        (Scheme.DEB, ""),
        (Scheme.PEP440, "not a version"),
        (Scheme.SEMVER, "1.2.3.x y"),
        (Scheme.RPM, "x:1.0"),
        (Scheme.APK, "1" * 300),
    ],
)
def test_invalid_versions_raise_invalid_version(scheme, text) -> None:
    with pytest.raises(InvalidVersion):
        compare(scheme, text, "1.0")


def test_huge_and_hostile_versions_are_bounded() -> None:
    with pytest.raises(InvalidVersion):
        satisfies(Scheme.SEMVER, "1." * 5000, "< 2")
    # a pathological but valid-length version compares quickly and without recursion
    assert compare(Scheme.RPM, "1." * 100 + "1", "1." * 100 + "2") == -1


def test_a_constraint_term_with_a_long_run_of_blanks_is_refused_in_linear_time() -> None:
    # a vunnel VulnerableRange is the database's text: the term pattern backtracked over
    # blanks quadratically (40,000 characters: 5 s; this one: minutes); now one pass
    term = "< 1" + " " * 300_000 + "x"
    with pytest.raises(InvalidVersion):
        satisfies(Scheme.RPM, "1.0-1", term)
    with pytest.raises(InvalidVersion):
        satisfies(Scheme.RPM, "1.0-1", "> 0, <" + " " * 300_000 + "2\n3")


@pytest.mark.parametrize(
    ("constraint", "holds"),
    [
        ("<= 1.0", True),
        (">=1.0", True),
        ("< 1.0", False),
        ("  != '1.0'  ", False),
        ('= "1.0"', True),
        ("1.0", True),
        ("> 0.9, < 1.1", True),
        ("> 1.1 || == 1.0", True),
    ],
)
def test_constraint_terms(constraint: str, holds: bool) -> None:
    assert satisfies(Scheme.SEMVER, "1.0", constraint) is holds


@pytest.mark.parametrize("constraint", ["<", "< 2.0,", "> 2 || ", "> 1\n2"])
def test_constraint_with_an_empty_or_broken_term_is_invalid(constraint: str) -> None:
    with pytest.raises(InvalidVersion):
        satisfies(Scheme.SEMVER, "1.0", constraint)


# what purl-spec's vers algorithm says: univers' VersionRange gives the same for each (with
# vers:npm for the semver one, a scheme univers does not know)
@pytest.mark.parametrize(
    ("vers", "inside"),
    [
        ("vers:npm/>=1.0.0|<2.0.0", ["1.0.0", "1.5.0"]),
        ("vers:npm/<1.0.0|>=2.0.0|<3.0.0", ["0.5.0", "2.0.0"]),
        ("vers:npm/1.0.0|>=2.0.0", ["1.0.0", "2.0.0", "3.0.0", "7.0.0"]),
        ("vers:npm/!=1.5.0", ["0.5.0", "1.0.0", "2.0.0", "3.0.0", "7.0.0"]),
        ("vers:semver/<=1.5.0|7.0.0", ["0.5.0", "1.0.0", "1.5.0", "7.0.0"]),
        ("vers:npm/>1.0.0|!=1.5.0|<2.0.0", []),
        ("vers:npm/>=1.0.0|!=1.5.0|<2.0.0", ["1.0.0"]),
        ("vers:npm/*", ["0.5.0", "1.0.0", "1.5.0", "2.0.0", "3.0.0", "7.0.0"]),
        ("vers:npm/1.0.0|2.0.0", ["1.0.0", "2.0.0"]),
        ("vers:npm/<1.0.0|>3.0.0", ["0.5.0", "7.0.0"]),
    ],
)
def test_vers_ranges_follow_the_vers_algorithm(vers: str, inside: list[str]) -> None:
    versions = ["0.5.0", "1.0.0", "1.5.0", "2.0.0", "3.0.0", "7.0.0"]
    assert [v for v in versions if vers_contains(Scheme.SEMVER, v, vers)] == inside


@pytest.mark.parametrize(
    "vers",
    [
        "vers:generic/>=1.0.0",  # no ordering skanse knows
        "vers:pypi/>=1.0",  # another ecosystem's scheme than the package's
        "vers:npm/<2.0.0|>=1.0.0",  # not in ascending order
        "vers:npm/<1.0.0|<2.0.0",  # two upper bounds in a row
        "vers:npm/>=x",
        "vers:npm/",
        "npm/>=1.0.0",
    ],
)
def test_a_vers_range_skanse_cannot_evaluate_is_invalid(vers: str) -> None:
    with pytest.raises(InvalidVersion):
        vers_contains(Scheme.SEMVER, "1.5.0", vers)
