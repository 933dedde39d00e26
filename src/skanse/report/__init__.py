"""Renderers of scan results: text, json, sarif and junit, one module each.

Every renderer is a function `render(result, info) -> str` over a result whose suppressions
and severity filter are already applied; `render()` here maps the format choice to it.
"""

from __future__ import annotations

import enum
from typing import assert_never

from skanse.model import ScanResult
from skanse.printable import valid_text, valid_texts
from skanse.report._info import ReportInfo

__all__ = ["Format", "ReportInfo", "displayable", "render"]


class Format(enum.StrEnum):
    TEXT = "text"
    JSON = "json"
    SARIF = "sarif"
    JUNIT = "junit"
    POLICYREPORT = "policyreport"


def displayable(result: ScanResult) -> ScanResult:
    """`result` with every text a document can hold. The scan keeps a file's name as the file
    system gave it (a name that is not UTF-8 holds lone surrogates) so that it can be opened
    and fixed; shown or written, such a name has U+FFFD for each stray byte."""
    texts = [*result.targets, *result.warnings]
    texts += [f.location.file for f in result.findings]
    texts += [e.location.file for e in result.evaluations]
    texts += [p.file for p in result.problems] + [p.message for p in result.problems]
    texts += [s.file for s in result.skipped] + [s.reason for s in result.skipped]
    if all(valid_text(t) is t for t in texts):
        return result  # the usual case: no walk over every finding
    return valid_texts(result)


def render(fmt: Format, result: ScanResult, info: ReportInfo) -> str:
    """The document for `fmt`; imports the renderer on first use (start-up time matters)."""
    result = displayable(result)
    match fmt:
        case Format.TEXT:
            from skanse.report import text

            return text.render(result, info)
        case Format.JSON:
            from skanse.report import json_report

            return json_report.render(result, info)
        case Format.SARIF:
            from skanse.report import sarif

            return sarif.render(result, info)
        case Format.JUNIT:
            from skanse.report import junit

            return junit.render(result, info)
        case Format.POLICYREPORT:
            from skanse.report import policyreport

            return policyreport.render(result, info)
        case _:
            assert_never(fmt)
