"""Property tests: every parser of untrusted vulnerability input fails only in its own way."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skanse.errors import SbomError, VexError
from skanse.vuln.importers._common import RecordError
from skanse.vuln.importers.alpine import secdb_advisories
from skanse.vuln.importers.debian import tracker_advisories
from skanse.vuln.importers.osv import osv_advisory
from skanse.vuln.importers.vunnel import vunnel_advisories
from skanse.vuln.model import Rejected
from skanse.vuln.sbom import read_sbom
from skanse.vuln.versions import InvalidVersion, Scheme, compare, satisfies
from skanse.vuln.vex import read_vex

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=30,
)
keys = st.sampled_from(
    [
        "id",
        "affected",
        "package",
        "ranges",
        "events",
        "introduced",
        "fixed",
        "versions",
        "ecosystem",
        "name",
        "type",
        "severity",
        "score",
        "aliases",
        "modified",
        "withdrawn",
    ]
)
osv_like = st.recursive(
    st.text(max_size=12) | st.integers() | st.none(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=5),
    max_leaves=25,
)
version_text = st.text(alphabet="0123456789.-+~^:_abrcv ", max_size=24)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(list(Scheme)), version_text, version_text)
def test_compare_raises_only_invalid_version(scheme, a, b) -> None:
    try:
        result = compare(scheme, a, b)
    except InvalidVersion:
        return
    assert result in (-1, 0, 1)
    assert compare(scheme, b, a) in (-1, 0, 1)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(list(Scheme)),
    version_text,
    st.text(alphabet="<>=!,| 0123456789.'\"", max_size=30),
)
def test_constraints_raise_only_invalid_version(scheme, version, constraint) -> None:
    try:
        satisfies(scheme, version, constraint)
    except InvalidVersion:
        pass


@settings(max_examples=300, deadline=None)
@given(osv_like)
def test_osv_records_raise_only_record_errors(data) -> None:
    try:
        osv_advisory(data)
    except RecordError:
        pass


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_other_importers_yield_rejections_or_raise_record_errors(data) -> None:
    for reader in (secdb_advisories, tracker_advisories, vunnel_advisories):
        try:
            list(reader(data, "fuzz"))
        except RecordError:
            pass


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    json_values,
    st.sampled_from(["bomFormat", "spdxVersion", "artifacts", "statements", "packages"]),
)
def test_sbom_and_vex_readers_raise_only_their_errors(tmp_path: Path, data, key) -> None:
    path = tmp_path / "doc.json"
    document = (
        {key: data, "specVersion": "1.6", "bomFormat": "CycloneDX"}
        if key == "bomFormat"
        else {key: data}
    )
    if key == "artifacts":
        document["schema"] = {}
    if key == "packages":  # skanse's own SBOM JSON
        document.update(tool={"name": "skanse"}, schema_version=1, subject={"name": "x"})
    path.write_text(json.dumps(document))
    try:
        read_sbom(path)
    except SbomError:
        pass
    try:
        read_vex(path)
    except VexError:
        pass


@settings(max_examples=200, deadline=None)
@given(json_values, json_values)
def test_severity_importers_only_yield_records_or_rejections(items, metrics) -> None:
    from skanse.vuln.importers.scores import CveRating, KevEntry, kev_entries, nvd_ratings

    nvd = {"format": "NVD_CVE", "vulnerabilities": items}
    nested = {
        "format": "NVD_CVE",
        "vulnerabilities": [{"cve": {"id": "CVE-2024-0001", "metrics": metrics}}],
    }
    for document in (nvd, nested):
        for item in nvd_ratings(document, "fuzz"):
            assert isinstance(item, CveRating | Rejected)
    for entry in kev_entries({"catalogVersion": "1", "vulnerabilities": items}, "fuzz"):
        assert isinstance(entry, KevEntry | Rejected)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_epss_csv_only_yields_scores_or_rejections(text: str) -> None:
    from skanse.vuln.importers.scores import EpssScore, epss_scores

    for item in epss_scores("cve,epss,percentile\n" + text, "fuzz"):
        assert isinstance(item, EpssScore | Rejected)
