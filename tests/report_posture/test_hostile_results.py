"""Results files from elsewhere are input, not trusted: markup in them stays text on the
page, and a file whose values have the wrong shape is refused by name, never a traceback."""

from __future__ import annotations

import copy
from typing import Any

from skanse.report.posture.build import build_posture
from skanse.report.posture.documents import ResultDocument
from skanse.report.posture.html import render_html

# The reviewer's payload: hide every section, claim a clean result, post wherever
MARKUP = (
    "<style>section{display:none}section.pagebreak{display:block}"
    "h1::after{content:' - all controls met, no findings'}</style>"
    "<form action=https://evil.example><button>x</button></form>"
)


def _scan_with_check_id(check_id: str) -> ResultDocument:
    return ResultDocument(
        "skanse.scan",
        "scan.json",
        {
            "schema_version": 1,
            "kind": "skanse.scan",
            "checks": [
                {
                    "id": check_id,
                    "layer": "kubernetes",
                    "title": "t",
                    "controls": [{"framework": "gdpr", "control": "32(1)(b)"}],
                }
            ],
            "findings": [],
        },
    )


def _assert_inert(html: str) -> None:
    assert html.count("<style") == 1  # the page's own, in <head>
    assert "<form" not in html and "<button" not in html
    assert "&lt;form action=https://evil.example&gt;" in html


def test_markup_in_a_check_id_is_text_on_the_page() -> None:
    posture = build_posture([_scan_with_check_id(MARKUP)], tool_version="test")
    _assert_inert(render_html(posture))


def test_markup_in_any_value_of_the_posture_document_is_text_on_the_page() -> None:
    posture = build_posture([_scan_with_check_id("SKN-X-1")], tool_version="test")
    hostile: dict[str, Any] = copy.deepcopy(posture)
    hostile["images"] = [
        {
            "image": "reg.example/app:1",
            "digest": None,
            "sbom": {"packages": MARKUP, "checked": 1, "by_type": {}, "distro": None},
            "vulnerabilities": None,
            "signature": {"status": "not-checked", "reason": None},
            "attestation": {"status": "not-checked", "what": None, "reason": None},
            "workloads": [],
        }
    ]
    hostile["summary"]["findings"] = MARKUP
    _assert_inert(render_html(hostile))


def test_the_page_may_not_post_a_form_or_rebase_its_links() -> None:
    html = render_html(build_posture([_scan_with_check_id("SKN-X-1")], tool_version="test"))
    policy = html.split('http-equiv="Content-Security-Policy" content="', 1)[1].split('"', 1)[0]
    assert "default-src 'none'" in policy
    assert "form-action 'none'" in policy and "base-uri 'none'" in policy
