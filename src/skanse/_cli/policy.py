"""`skanse policy validate|test`: ValidatingAdmissionPolicies, checked and tested offline."""

from __future__ import annotations

import argparse
import json
import sys

from skanse._cli import shown

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "ValidatingAdmissionPolicies (admissionregistration.k8s.io/v1) as tested code:\n"
        "validate them (compile every CEL expression, check field paths against the matched\n"
        "kinds) and run their tests, without an API server.\n\n"
        "  skanse policy validate policies/\n"
        "  skanse policy test policies/\n"
        "  skanse scan --policy policies/ deploy/       # then apply them in CI\n\n"
        "Format of policies and tests: docs/policies.md"
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    validate = sub.add_parser(
        "validate",
        help="compile and type-check policies; exit 1 if any has an error",
        description="Load every ValidatingAdmissionPolicy, binding and param under the paths, "
        "compile every expression and check its object field paths against the schemas of "
        "the kinds the policy matches. Errors name file:line:column and the position inside "
        "the expression. Exit 1 if there is an error.",
    )
    validate.add_argument("paths", nargs="+", metavar="PATH", help="files or directories")
    validate.add_argument("-f", "--format", choices=("text", "json"), default="text")
    test = sub.add_parser(
        "test",
        help="run skanse-test.yaml files; exit 1 if any expectation fails",
        description="Find skanse-test.yaml files under the paths (or take the files given), "
        "evaluate their policies on their resources and compare with the expected results "
        "(pass, fail, skip, error; optional message). Exit 1 if any case differs.",
    )
    test.add_argument("paths", nargs="+", metavar="PATH", help="test files or directories")
    test.add_argument("-v", "--verbose", action="store_true", help="list passing cases too")
    test.add_argument("-f", "--format", choices=("text", "json"), default="text")


def run(args: argparse.Namespace) -> int:
    if args.action == "validate":
        return _validate(args)
    return _test(args)


def _validate(args: argparse.Namespace) -> int:
    from skanse.policy.load import load_objects, policy_set
    from skanse.policy.typecheck import check_policy

    problems: list[str] = []
    policies = policy_set(load_objects(args.paths, problems), problems)
    notes: list[str] = list(policies.warnings)
    for policy in policies.policies:
        found, unchecked = check_policy(policy)
        problems.extend(str(p) for p in found)
        notes.extend(unchecked)
    if not policies.policies and not problems:
        problems.append(f"{', '.join(args.paths)}: no ValidatingAdmissionPolicy found")
    if args.format == "json":
        document = {
            "policies": [p.name for p in policies.policies],
            "errors": problems,
            "notes": notes,
        }
        print(json.dumps(document, indent=2))
    else:
        for line in problems:
            print(f"error: {shown(line)}")
        for line in notes:
            print(f"note: {shown(line)}", file=sys.stderr)
        count = len(policies.policies)
        print(
            f"{count} {'policy' if count == 1 else 'policies'}, "
            f"{len(problems)} {'error' if len(problems) == 1 else 'errors'}"
        )
    return 1 if problems else 0


def _test(args: argparse.Namespace) -> int:
    from skanse.errors import PolicyTestError
    from skanse.policy.testing import find_test_files, run_tests

    files = find_test_files(args.paths)
    if not files:
        raise PolicyTestError(f"no skanse-test.yaml under {', '.join(args.paths)}")
    outcomes = run_tests(files)
    failed = sum(1 for o in outcomes for c in o.cases if not c.passed)
    total = sum(len(o.cases) for o in outcomes)
    if args.format == "json":
        document = [
            {
                "file": o.path,
                "name": o.name,
                "cases": [
                    {
                        "policy": c.policy,
                        "resource": c.resource,
                        "expected": c.expected,
                        "actual": c.actual,
                        "expected_message": c.expected_message,
                        "messages": list(c.messages),
                        "passed": c.passed,
                    }
                    for c in o.cases
                ],
            }
            for o in outcomes
        ]
        print(json.dumps(document, indent=2))
        return 1 if failed else 0
    for outcome in outcomes:
        print(f"{outcome.path} ({outcome.name or 'unnamed'})")
        for case in outcome.cases:
            if case.passed and not args.verbose:
                continue
            mark = "PASS" if case.passed else "FAIL"
            print(f"  {mark} {case.policy} on {case.resource}: expected {case.expected}", end="")
            print(f", got {case.actual}" if case.actual != case.expected else "")
            if not case.passed:
                if case.expected_message is not None and case.expected_message not in case.messages:
                    print(f"    - expected message: {case.expected_message}")
                for message in case.messages:
                    print(f"    + message:          {message}")
    print(f"{total - failed} passed, {failed} failed")
    return 1 if failed else 0
