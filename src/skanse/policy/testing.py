"""`skanse policy test`: policies as tested code, in the manner of `kyverno test`.

A test file (`skanse-test.yaml`, kind PolicyTest) names the policies (files or directories,
with their bindings, params and namespaces), the resources, and the expected result of each
policy on each resource:

    apiVersion: skanse.io/v1alpha1
    kind: PolicyTest
    metadata: {name: registry-allow-list}
    policies: [../policy.yaml, ../binding.yaml, ../params.yaml]
    resources: [resources.yaml]
    results:
      - policy: registry-allow-list
        resources: [Pod/shop/docker-hub]     # name, Kind/name or Kind/namespace/name
        result: fail                          # pass, fail, skip (did not match) or error
        validation: 0                         # optional: only this validation's outcome
        message: "images must come from..."   # optional: the exact message expected
        operation: CREATE                     # optional: CREATE (default), UPDATE, DELETE
    user: {username: alice, groups: [dev]}    # optional: request.userInfo

UPDATE judges the resource against itself as the old object; DELETE has only the old object.

Every resource is judged as the request `kubectl apply` would make (CREATE by default).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from skanse.errors import PolicyLoadError, PolicyTestError
from skanse.policy.engine import Attributes, PolicyResult, evaluate
from skanse.policy.load import load_objects, policy_set
from skanse.sources.kubernetes import K8sObject

__all__ = ["TEST_FILE_NAMES", "CaseOutcome", "TestFileOutcome", "find_test_files", "run_test_file"]

TEST_FILE_NAMES = ("skanse-test.yaml", "skanse-test.yml")


class _Expected(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: str
    resources: list[str] = Field(min_length=1)
    result: Literal["pass", "fail", "skip", "error"]
    validation: int | None = None
    message: str | None = None
    operation: Literal["CREATE", "UPDATE", "DELETE"] = "CREATE"


class _User(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str = ""
    groups: list[str] = Field(default_factory=list)


class _TestFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    api_version: str = Field(alias="apiVersion")
    kind: Literal["PolicyTest"]
    metadata: dict[str, str] = Field(default_factory=dict)
    policies: list[str] = Field(min_length=1)
    resources: list[str] = Field(min_length=1)
    results: list[_Expected] = Field(min_length=1)
    user: _User = _User()  # request.userInfo


@dataclass(frozen=True, slots=True)
class CaseOutcome:
    policy: str
    resource: str
    expected: str
    actual: str
    expected_message: str | None
    messages: tuple[str, ...]

    @property
    def passed(self) -> bool:
        if self.expected != self.actual:
            return False
        return self.expected_message is None or self.expected_message in self.messages


@dataclass(frozen=True, slots=True)
class TestFileOutcome:
    path: str
    name: str
    cases: tuple[CaseOutcome, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.cases)


def find_test_files(paths: Sequence[str]) -> list[str]:
    found: list[str] = []
    for path in paths:
        if os.path.isfile(path):
            found.append(path)
            continue
        for root, dirs, names in os.walk(path):
            dirs.sort()
            found.extend(os.path.join(root, n) for n in sorted(names) if n in TEST_FILE_NAMES)
    return found


def _read(path: str) -> _TestFile:
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError) as exc:
        raise PolicyTestError(f"{path}: {exc}") from None
    try:
        return _TestFile.model_validate(data)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise PolicyTestError(f"{path}: not a PolicyTest: {details}") from None


def _names(obj: K8sObject) -> set[str]:
    name = str(obj.metadata.get("name") or "")
    ns = obj.namespace or "default"
    return {name, f"{obj.kind}/{name}", f"{obj.kind}/{ns}/{name}"}


def _actual(result: PolicyResult, policy: str, validation: int | None) -> tuple[str, list[str]]:
    if not any(p == policy for p, _ in result.matched):
        return "skip", []
    mine = [
        d
        for d in result.decisions
        if d.policy == policy and (validation is None or d.index in (validation, None))
    ]
    messages = [d.message for d in mine]
    if any(d.error for d in mine):
        return "error", messages
    return ("fail" if mine else "pass"), messages


def run_test_file(path: str) -> TestFileOutcome:
    """Run one test file; PolicyTestError or PolicyLoadError when it cannot be run."""
    test = _read(path)
    base = Path(path).parent
    problems: list[str] = []
    policies = policy_set(load_objects([str(base / p) for p in test.policies], problems), problems)
    if problems:
        raise PolicyLoadError(problems)
    resources = load_objects([str(base / r) for r in test.resources], problems)
    if problems:
        raise PolicyTestError("; ".join(problems))
    known = {p.name for p in policies.policies}
    cases: list[CaseOutcome] = []
    cache: dict[tuple[int, str], PolicyResult] = {}
    for expected in test.results:
        if expected.policy not in known:
            raise PolicyTestError(f"{path}: no policy named {expected.policy} was loaded")
        for ref in expected.resources:
            matches = [r for r in resources if ref in _names(r)]
            if len(matches) != 1:
                what = "no resource" if not matches else f"{len(matches)} resources"
                raise PolicyTestError(f"{path}: {what} named {ref} in {test.resources}")
            obj = matches[0]
            key = (id(obj), expected.operation)
            if key not in cache:
                attrs = dataclasses.replace(
                    Attributes.for_object(obj.data, operation=expected.operation),
                    username=test.user.username,
                    groups=tuple(test.user.groups),
                )
                if expected.operation == "DELETE":
                    attrs = dataclasses.replace(attrs, object=None, old_object=obj.data)
                elif expected.operation == "UPDATE":
                    attrs = dataclasses.replace(attrs, old_object=obj.data)
                cache[key] = evaluate(policies, attrs)
            actual, messages = _actual(cache[key], expected.policy, expected.validation)
            cases.append(
                CaseOutcome(
                    expected.policy,
                    ref,
                    expected.result,
                    actual,
                    expected.message,
                    tuple(messages),
                )
            )
    return TestFileOutcome(path, test.metadata.get("name", ""), tuple(cases))


def run_tests(paths: Iterable[str]) -> list[TestFileOutcome]:
    return [run_test_file(p) for p in paths]


__all__ += ["run_tests"]
