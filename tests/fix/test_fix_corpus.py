"""`skanse fix` on copies of the shared corpora (issue 3, "Done when").

For every file that fix changes: the result re-scans with no finding left for any check
marked fixable, is still valid with the same objects in the same order, keeps every comment
line, changes nothing beyond what the fixes are about, and a second fix changes nothing.
The corpora are copied to a temporary directory; nothing is written to them.
"""

from __future__ import annotations

import difflib
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from skanse.checks._all import REGISTRY
from skanse.fix import FixOptions, FixReport, plan_fixes, write_fixes
from skanse.model import ScanResult
from skanse.scan import scan
from skanse.sources.dockerfile import parse_dockerfile
from skanse.sources.yamlpos import YamlDocument, load_documents
from tests.conftest import corpus_path

pytestmark = pytest.mark.corpus

FIXABLE = {c.id for c in REGISTRY.all() if c.meta.fixable}
POLICY_FILE = "default-deny-networkpolicies.yaml"


@dataclass
class Run:
    root: Path  # the fixed copy
    source: Path  # the corpus
    first: FixReport
    rescan: ScanResult
    second: FixReport

    def changed(self) -> list[tuple[Path, Path]]:
        """(original, fixed) for every file the first run wrote, policy file excluded."""
        return [
            (self.source / Path(f.path).relative_to(self.root), Path(f.path))
            for f in self.first.changed
            if not f.created
        ]


def _run(kind: str, tmp: Path, network_policies: bool) -> Run:
    source = corpus_path(kind)
    root = tmp / kind
    shutil.copytree(source, root, symlinks=True)
    options = FixOptions(
        network_policies=str(root / POLICY_FILE) if network_policies else None,
        unsafe_fixes=True,
    )
    first = plan_fixes([str(root)], options)
    outcome = write_fixes(first)
    assert outcome.failed == ()
    rescan = scan([str(root)])
    second = plan_fixes([str(root)], options)
    return Run(root, source, first, rescan, second)


@pytest.fixture(scope="module")
def manifests(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return _run("manifests", tmp_path_factory.mktemp("fix"), network_policies=True)


@pytest.fixture(scope="module")
def dockerfiles(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return _run("dockerfiles", tmp_path_factory.mktemp("fix"), network_policies=False)


def _comment_lines(text: str) -> Counter[str]:
    return Counter(ln.strip() for ln in text.splitlines() if ln.lstrip().startswith("#"))


# --- manifests -------------------------------------------------------------------------------


def test_fix_changes_most_workload_files_and_refuses_none(manifests: Run) -> None:
    assert len(manifests.changed()) >= 750  # 804 when this was written
    assert manifests.first.failed == ()
    created = [f for f in manifests.first.changed if f.created]
    assert [Path(f.path).name for f in created] == [POLICY_FILE]


def test_no_finding_left_for_fixable_checks_except_declined_malformed_input(
    manifests: Run,
) -> None:
    left = [f for f in manifests.rescan.findings if f.check_id in FIXABLE and not f.suppressed]
    declined = {(d.check_id, d.resource) for d in manifests.first.declined}
    # A finding may only remain when fix said why; for fixable checks that happens only on
    # objects the API server would reject (a securityContext that is a string).
    assert all((f.check_id, f.resource) in declined for f in left), left
    reasons = {
        d.reason for d in manifests.first.declined if d.check_id in FIXABLE
    }  # fixable checks decline only what cannot be edited
    assert reasons <= {"cannot edit: securityContext is not a mapping"}
    assert len({f.location.file for f in left}) <= 2


def test_partly_fixable_checks_only_keep_values_set_by_the_user(manifests: Run) -> None:
    partial = [d for d in manifests.first.declined if d.check_id not in FIXABLE]
    assert partial, "the corpus has user-set UIDs below 10000"
    allowed = (" keeps ", "which is not a", "cannot edit: securityContext is not a mapping")
    assert all(any(a in d.reason for a in allowed) for d in partial), partial


def _identity(doc: object) -> object:
    if not isinstance(doc, dict):
        return doc
    meta = doc["metadata"] if isinstance(doc.get("metadata"), dict) else {}
    items = doc.get("items")
    return (
        doc.get("apiVersion"),
        doc.get("kind"),
        meta.get("name"),
        meta.get("namespace"),
        [_identity(i) for i in items] if isinstance(items, list) else None,
    )


# Keys the fixes write; everything else must read exactly as before.
_FIXED_KEYS = {"securityContext", "automountServiceAccountToken"}
_APPENDED_LISTS = {"volumes", "volumeMounts"}


def _same_apart_from_fixes(before: object, after: object, key: str = "") -> bool:
    if key in _FIXED_KEYS:
        return True
    if key in _APPENDED_LISTS and isinstance(before, list) and isinstance(after, list):
        return after[: len(before)] == before
    if isinstance(before, dict) and isinstance(after, dict):
        keys = set(before) | set(after)
        return all(
            k in _FIXED_KEYS
            or (k in _APPENDED_LISTS and k not in before)
            or _same_apart_from_fixes(before.get(k), after.get(k), k)
            for k in keys
        )
    if isinstance(before, list) and isinstance(after, list):
        return len(before) == len(after) and all(
            _same_apart_from_fixes(b, a) for b, a in zip(before, after, strict=True)
        )
    if key.startswith("seccomp.security.alpha.kubernetes.io"):
        return True
    return before == after


def test_fixed_manifests_hold_the_same_objects_and_keep_every_comment(manifests: Run) -> None:
    for original, fixed in manifests.changed():
        before_text = original.read_text(encoding="utf-8")
        after_text = fixed.read_text(encoding="utf-8")
        before = [d for d in load_documents(before_text) if isinstance(d, YamlDocument)]
        after = [d for d in load_documents(after_text) if isinstance(d, YamlDocument)]
        assert [(d.index, _identity(d.data)) for d in after] == [
            (d.index, _identity(d.data)) for d in before
        ], fixed
        for b, a in zip(before, after, strict=True):
            assert _same_apart_from_fixes(b.data, a.data), (fixed, b.index)
        missing = _comment_lines(before_text) - _comment_lines(after_text)
        assert not missing, (fixed, missing)


def _containers(data: object) -> list[dict]:
    """Every container of a workload document (pod, template or cron job template)."""
    found: list[dict] = []
    if isinstance(data, dict):
        for key in ("containers", "initContainers"):
            found += (
                [c for c in data.get(key) or () if isinstance(c, dict)]
                if isinstance(data.get(key), list)
                else []
            )
        for value in data.values():
            found += _containers(value)
    elif isinstance(data, list):
        for value in data:
            found += _containers(value)
    return found


def test_every_declared_port_below_1024_keeps_working(manifests: Run) -> None:
    """No fix takes NET_BIND_SERVICE from a container that declares a port below 1024 and
    drops ALL capabilities: it is kept where the author added it and added where a fix
    drops ALL."""
    checked = 0
    for _, fixed in manifests.changed():
        for doc in load_documents(fixed.read_text(encoding="utf-8")):
            if not isinstance(doc, YamlDocument):
                continue
            for c in _containers(doc.data):
                ports = [
                    p.get("containerPort") for p in c.get("ports") or () if isinstance(p, dict)
                ]
                if not any(isinstance(p, int) and 0 < p < 1024 for p in ports):
                    continue
                caps = (c.get("securityContext") or {}).get("capabilities") or {}
                if "ALL" in (caps.get("drop") or ()):
                    checked += 1
                    assert "NET_BIND_SERVICE" in (caps.get("add") or ()), (fixed, c.get("name"))
    assert checked >= 10, checked


def test_untouched_manifests_are_byte_for_byte_the_same(manifests: Run) -> None:
    changed = {fixed for _, fixed in manifests.changed()}
    for path in manifests.root.rglob("*"):
        if path.is_file() and path not in changed and path.name != POLICY_FILE:
            assert (
                path.read_bytes()
                == (manifests.source / path.relative_to(manifests.root)).read_bytes()
            )


def test_unparseable_manifests_stay_untouched_and_reported(manifests: Run) -> None:
    problem_files = {p.file for p in manifests.first.problems}
    assert len(problem_files) >= 8  # the corpus keeps 8 files that fail to parse
    for name in problem_files:
        path = Path(name)
        assert (
            path.read_bytes() == (manifests.source / path.relative_to(manifests.root)).read_bytes()
        )


def test_second_fix_on_manifests_changes_nothing(manifests: Run) -> None:
    assert manifests.second.changed == ()
    assert manifests.second.failed == ()


def test_default_deny_policies_cover_every_namespace(manifests: Run) -> None:
    assert not [f for f in manifests.rescan.findings if f.check_id == "SKN-K8S-030"]


# --- Dockerfiles -----------------------------------------------------------------------------

_ADDED = (
    "USER 10001:10001",
    "USER ContainerUser",
    "RUN addgroup -S -g 10001 app && adduser -S -D -u 10001 -G app -h /home/app app",
    "RUN groupadd -r -g 10001 app && useradd -r -l -u 10001 -g app -m -d /home/app app",
)


def _added(line: str) -> bool:
    """A line the user fix adds: one of its own, or a USER naming the file's or the base
    image's user (not root)."""
    return line in _ADDED or (re.fullmatch(r"USER \S+", line) is not None and not _user_root(line))


def _user_root(line: str) -> bool:
    return re.fullmatch(r"\s*USER\s+(root|0)(:\S+)?\s*", line, re.IGNORECASE) is not None


def test_dockerfiles_are_fixed_by_inserting_lines_and_editing_only_add_and_copy(
    dockerfiles: Run,
) -> None:
    assert len(dockerfiles.changed()) >= 400  # 418 when this was written
    assert dockerfiles.first.failed == ()
    for original, fixed in dockerfiles.changed():
        before = original.read_bytes().decode("utf-8").splitlines(keepends=True)
        after = fixed.read_bytes().decode("utf-8").splitlines(keepends=True)
        matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag == "equal":
                continue
            old, new = before[i1:i2], after[j1:j2]
            inserted = [ln.rstrip("\r\n") for ln in new]
            if tag == "insert":
                assert all(_added(ln) for ln in inserted), (fixed, inserted)
                continue
            if all(_user_root(ln) for ln in old):  # a trailing USER root corrected or dropped
                assert tag == "delete" or all(_added(ln) for ln in inserted), (fixed, new)
                continue
            assert tag == "replace", (fixed, tag)
            assert len(new) >= len(old), (fixed, old, new)
            for was, now in zip(old, new, strict=False):
                # ADD became COPY, --chown was added, or the last line gained its ending
                assert was.endswith("\n") or was == before[-1], (fixed, was)
                now = re.sub(r" --chown=\S+", "", now.rstrip("\r\n"), count=1)
                assert was.rstrip("\r\n") in (now, now.replace("COPY", "ADD", 1)), (was, now)
            assert all(_added(ln) for ln in inserted[len(old) :]), (fixed, inserted)


def test_fixed_dockerfiles_parse_to_the_same_stages_and_keep_comments(dockerfiles: Run) -> None:
    for original, fixed in dockerfiles.changed():
        before = parse_dockerfile(str(original), original.read_text(encoding="utf-8"))
        after = parse_dockerfile(str(fixed), fixed.read_text(encoding="utf-8"))
        assert after.problems == ()
        assert [(s.name, s.base) for s in after.stages] == [(s.name, s.base) for s in before.stages]
        missing = _comment_lines(original.read_text()) - _comment_lines(fixed.read_text())
        assert not missing, fixed


def test_no_dockerfile_finding_left_for_fixable_checks(dockerfiles: Run) -> None:
    left = [f for f in dockerfiles.rescan.findings if f.check_id in FIXABLE]
    assert left == []


def test_dockerfiles_with_problems_are_left_untouched(dockerfiles: Run) -> None:
    problem_files = {p.file for p in dockerfiles.first.problems}
    assert problem_files  # the corpus has a file with a stray line
    for name in problem_files:
        path = Path(name)
        assert (
            path.read_bytes()
            == (dockerfiles.source / path.relative_to(dockerfiles.root)).read_bytes()
        )


def test_second_fix_on_dockerfiles_changes_nothing(dockerfiles: Run) -> None:
    assert dockerfiles.second.changed == ()
