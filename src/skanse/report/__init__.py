"""Renderers of scan results: text, json, sarif and junit, one module each.

Every renderer is a function `render(result, info) -> str` over a result whose suppressions
and severity filter are already applied; `render()` here maps the format choice to it.
"""

from __future__ import annotations

import enum
from typing import assert_never

from skanse.model import ScanResult
from skanse.report._info import ReportInfo

__all__ = ["Format", "ReportInfo", "render"]


class Format(enum.StrEnum):
    TEXT = "text"
    JSON = "json"
    SARIF = "sarif"
    JUNIT = "junit"
    POLICYREPORT = "policyreport"


def render(fmt: Format, result: ScanResult, info: ReportInfo) -> str:
    """The document for `fmt`; imports the renderer on first use (start-up time matters)."""
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
