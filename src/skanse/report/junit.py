"""JUnit XML: one testcase per check and resource, passes included (checkov's shape).

A testcase fails when the check found something unsuppressed on the resource, is skipped
when everything it found is suppressed (the reasons are the skip message), and passes
otherwise. Inputs that could not be checked are testcases with an error. Findings no
evaluation covers (runtime alerts replayed into a report) are failed testcases of their own.
Every text and attribute passes through `printable`: XML 1.0 cannot carry most control
characters even escaped, and a container name may hold any of them.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict

from skanse.model import CheckID, Finding, ResourceRef, ScanResult
from skanse.printable import printable
from skanse.report._info import ReportInfo

__all__ = ["render"]


def render(result: ScanResult, info: ReportInfo) -> str:
    metas = {c.id: c for c in result.checks}
    by_case: dict[tuple[CheckID, str, int, ResourceRef], list[Finding]] = defaultdict(list)
    for f in result.findings:
        by_case[(f.check_id, f.location.file, f.location.document, f.resource)].append(f)

    suite = ET.Element(
        "testsuite",
        name=f"skanse scan ({result.profile}, {result.pss})",
    )
    tests = failures = skipped = errors = 0
    covered: set[tuple[CheckID, str, int, ResourceRef]] = set()
    for evaluation in result.evaluations:
        for check_id in evaluation.check_ids:
            meta = metas.get(check_id)
            if meta is None:  # filtered out by --severity
                continue
            tests += 1
            case = ET.SubElement(
                suite,
                "testcase",
                name=f"[{meta.severity.value}][{meta.id}] {meta.title}",
                classname=f"{evaluation.location.file}.{evaluation.resource}",
                file=evaluation.location.file,
                line=str(evaluation.location.line),
            )
            key = (
                check_id,
                evaluation.location.file,
                evaluation.location.document,
                evaluation.resource,
            )
            covered.add(key)
            found = by_case.get(key, [])
            live = [f for f in found if not f.suppressed]
            if live:
                failures += 1
                failure = ET.SubElement(
                    case, "failure", message=live[0].message, type=meta.severity.value
                )
                failure.text = (
                    "\n".join(
                        f"{f.location.file}:{f.location.line} {f.location.pointer}: {f.message}"
                        for f in live
                    )
                    + f"\n\nFix: {meta.remediation}"
                )
            elif found:
                skipped += 1
                reasons = sorted({f.suppression.reason for f in found if f.suppression})
                ET.SubElement(case, "skipped", message="suppressed: " + "; ".join(reasons))
    for key, found in by_case.items():
        live = [f for f in found if not f.suppressed]
        if key in covered or key[0] not in metas or not live:
            continue
        meta = metas[key[0]]
        tests += 1
        failures += 1
        first = live[0]
        case = ET.SubElement(
            suite,
            "testcase",
            name=f"[{meta.severity.value}][{meta.id}] {meta.title}",
            classname=f"{first.location.file}.{first.resource}",
            file=first.location.file,
            line=str(first.location.line),
        )
        failure = ET.SubElement(case, "failure", message=first.message, type=meta.severity.value)
        failure.text = "\n".join(f"{f.location.file}:{f.location.line}: {f.message}" for f in live)
    for na in result.not_applicable:
        meta = metas.get(na.check_id)
        if meta is None:  # filtered out by --severity
            continue
        tests += 1
        skipped += 1
        case = ET.SubElement(
            suite,
            "testcase",
            name=f"[{meta.severity.value}][{meta.id}] {meta.title}",
            classname=na.file or "-",
        )
        ET.SubElement(case, "skipped", message=f"not applicable: {na.reason}")
    for problem in result.problems:
        tests += 1
        errors += 1
        case = ET.SubElement(
            suite, "testcase", name=f"[ERROR] {problem.kind.value}", classname=problem.file
        )
        where = f"{problem.file}:{problem.line}" if problem.line else problem.file
        error = ET.SubElement(case, "error", message=problem.message, type=problem.kind.value)
        error.text = f"{where}: {problem.message}"
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", str(skipped))
    root = ET.Element(
        "testsuites",
        name="skanse",
        tests=str(tests),
        failures=str(failures),
        errors=str(errors),
        skipped=str(skipped),
    )
    root.append(suite)
    for element in root.iter():
        element.text = printable(element.text, keep_newlines=True) if element.text else None
        for name, value in element.attrib.items():
            element.set(name, printable(value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
