"""Finding and reading manifests: every input either yields objects or says why not."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skanse.errors import YamlError
from skanse.model import InputProblem, ProblemKind
from skanse.sources import manifests
from skanse.sources.files import Input, InputType, discover, read_file
from skanse.sources.manifests import ReadLimits, read_bytes, read_path
from skanse.sources.yamlpos import Span, YamlDocument, load_documents
from tests._counting import count_reads

LIMITS = ReadLimits()

POD = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: a}]\n"


def test_discover_walks_directories_in_order_and_skips_what_is_not_a_manifest(
    tmp_path: Path,
) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / ".git").mkdir()
    (tmp_path / "b" / "z.yml").write_text(POD)
    (tmp_path / "a.yaml").write_text(POD)
    (tmp_path / "c.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / ".git" / "x.yaml").write_text(POD)
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "pyvenv.cfg").write_text("home = /usr\n")
    (tmp_path / "env" / "x.yaml").write_text(POD)
    (tmp_path / ".skanse.yaml").write_text("profile: zero-trust\n")
    explicit = tmp_path / "manifest.txt"
    explicit.write_text(POD)
    (tmp_path / "b" / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "api.Dockerfile").write_text("FROM scratch\n")
    found = list(discover([str(tmp_path), str(explicit), str(tmp_path / "missing")]))
    names = [
        (Path(p.path).relative_to(tmp_path).as_posix(), p.type.value)
        for p in found
        if isinstance(p, Input)
    ]
    assert names == [
        ("a.yaml", "kubernetes"),
        ("api.Dockerfile", "dockerfile"),
        ("c.json", "kubernetes"),
        ("b/Dockerfile", "dockerfile"),
        ("b/z.yml", "kubernetes"),
        ("manifest.txt", "kubernetes"),
    ]
    only = [p.path for p in discover([str(tmp_path)], InputType.DOCKERFILE) if isinstance(p, Input)]
    assert [Path(p).name for p in only] == ["api.Dockerfile", "Dockerfile"]
    (problem,) = [p for p in found if isinstance(p, InputProblem)]
    assert problem.kind is ProblemKind.MISSING


def test_list_items_become_objects_with_pointers_into_the_list() -> None:
    text = (
        "apiVersion: v1\nkind: List\nitems:\n"
        "- apiVersion: v1\n  kind: Pod\n  metadata: {name: one}\n"
        "- apiVersion: apps/v1\n  kind: Deployment\n  metadata: {name: two, namespace: x}\n"
        "- just-a-string\n"
    )
    result = read_bytes("list.yaml", text.encode(), LIMITS)
    assert [str(o.resource) for o in result.objects] == ["Pod/one", "Deployment/x/two"]
    location = result.objects[1].location("/metadata/name")
    assert (location.pointer, location.line) == ("/items/1/metadata/name", 9)
    assert [s.reason for s in result.skipped] == ["item 2 of the List has no kind"]


def test_kubectl_style_typed_lists_are_expanded() -> None:
    text = '{"apiVersion": "v1", "kind": "PodList", "items": [' + (
        '{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}}]}'
    )
    result = read_bytes("pods.json", text.encode(), LIMITS)
    assert [o.name for o in result.objects] == ["a"]


def test_documents_that_are_not_kubernetes_objects_are_reported_as_skipped() -> None:
    text = "replicaCount: 2\n---\n- a\n- b\n---\n" + POD
    result = read_bytes("values.yaml", text.encode(), LIMITS)
    assert len(result.objects) == 1
    assert [s.reason for s in result.skipped] == [
        "no apiVersion and kind: not a Kubernetes object",
        "document is a list, not an object",
    ]
    assert result.problems == []


def test_a_helm_template_is_a_problem_with_a_hint() -> None:
    """It was skipped: a template cannot be checked, so it is not a pass."""
    text = (
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ .Release.Name }}\n  labels: {{ x }}: y\n"
    )
    for path in ("pod.yaml", "chart/templates/pod.yaml"):
        result = read_bytes(path, text.encode(), LIMITS)
        assert result.skipped == []
        (problem,) = result.problems
        assert problem.kind is ProblemKind.UNRENDERED and problem.line is not None
        assert "helm template" in problem.message


# A malformed privileged Deployment (the TAB) with a `{{` where YAML allows one.
_TAB_PRIVILEGED = (
    "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: priv\n  annotations:\n"
    "    description: {note}\nspec:\n  template:\n    spec:\n      containers:\n"
    "      - name: c\n        image: x\n        securityContext:\n\t  privileged: true\n"
)


@pytest.mark.parametrize(
    "note", ["x   # see {{ docs }}", '"alert on {{ $labels.pod }}"', "'{{ a }}'", "plain"]
)
def test_a_file_that_does_not_parse_is_never_skipped_for_a_brace_pair(note: str) -> None:
    """`{{` anywhere in a file that failed to parse made it a silent skip (exit 0 under
    --strict); a `{{` in a comment or a quoted string is not a template either."""
    text = _TAB_PRIVILEGED.format(note=note)
    result = read_bytes("deploy.yaml", text.encode(), LIMITS)
    assert result.skipped == [] and result.objects == []
    (problem,) = result.problems
    assert problem.kind is ProblemKind.PARSE and problem.line == 14, problem
    assert "helm" not in problem.message


def test_malformed_yaml_is_a_problem_with_line_and_column() -> None:
    result = read_bytes("bad.yaml", b"kind: Pod\nspec: [a, b\nx: 1\n", LIMITS)
    (problem,) = result.problems
    assert problem.kind is ProblemKind.PARSE
    assert problem.line is not None and problem.column is not None


def test_binary_files_are_refused() -> None:
    result = read_bytes("image.yaml", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", LIMITS)
    assert [p.kind for p in result.problems] == [ProblemKind.BINARY]


def test_utf16_with_bom_is_read() -> None:
    result = read_bytes("w.yaml", POD.encode("utf-16"), LIMITS)
    assert [o.name for o in result.objects] == ["p"]


def test_oversized_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as handle:  # sparse: 100 MiB on paper, nothing on disk
        handle.truncate(100 * 1024 * 1024)
    result = read_path(str(big), LIMITS)
    (problem,) = result.problems
    assert problem.kind is ProblemKind.TOO_LARGE
    assert "100.0 MiB, over the 32 MiB limit" in problem.message


def test_file_larger_than_its_stat_size_is_read_whole_and_still_limited() -> None:
    # procfs files are regular files that say size 0 and hold text: what fstat says is
    # where reading starts, never where it stops (a file growing meanwhile is the same case)
    status = "/proc/self/status"
    if not os.path.isfile(status) or os.stat(status).st_size != 0:
        pytest.skip("needs a procfs file that reports size 0")
    whole = read_file(status, 1024 * 1024)
    assert isinstance(whole, bytes)
    assert whole.startswith(b"Name:")
    assert b"\nPid:" in whole
    capped = read_file(status, 16)
    assert isinstance(capped, InputProblem)
    assert capped.kind is ProblemKind.TOO_LARGE


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    result = read_path(str(fifo), LIMITS)
    assert [p.message for p in result.problems] == ["not a regular file"]


def test_read_error_is_reported_not_raised() -> None:
    """/proc/self/mem is a regular file whose first page cannot be read (EIO), even by root."""
    result = read_path("/proc/self/mem", LIMITS)
    (problem,) = result.problems
    assert problem.kind is ProblemKind.UNREADABLE
    assert "Input/output error" in problem.message


def test_permission_denied_is_reported_for_root_too() -> None:
    """A write-only sysctl refuses reading even to root: the EACCES path runs in CI as well,
    where the test below is skipped."""
    result = read_path("/proc/sys/vm/drop_caches", LIMITS)
    (problem,) = result.problems
    assert problem.kind is ProblemKind.UNREADABLE
    assert problem.message == "Permission denied"
    assert result.objects == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "secret.yaml"
    path.write_text(POD)
    path.chmod(0)
    result = read_path(str(path), LIMITS)
    assert [p.kind for p in result.problems] == [ProblemKind.UNREADABLE]


def _ignores(text: str):
    return read_bytes("x.yaml", text.encode(), LIMITS)


def test_inline_ignore_above_a_node_covers_that_subtree() -> None:
    result = _ignores(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n"
        "    - name: a\n"
        '      # skanse:ignore=SKN-K8S-002,ksv-0017 reason="debug image" expires=2030-01-31\n'
        "      securityContext: {privileged: true}\n"
    )
    (ignore,) = result.ignores
    assert ignore.ids == ("SKN-K8S-002", "KSV-0017")
    assert ignore.reason == "debug image"
    assert str(ignore.expires) == "2030-01-31"
    assert ignore.scope == "/spec/containers/0/securityContext"
    assert ignore.covers(0, "/spec/containers/0/securityContext/privileged")
    assert not ignore.covers(0, "/spec/containers/0/image")


def test_inline_ignore_at_the_top_covers_the_whole_document() -> None:
    result = _ignores(
        '---\n# skanse:ignore=SKN-K8S-030 reason="policies live in another repo"\n' + POD
    )
    (ignore,) = result.ignores
    assert ignore.scope == "" and ignore.covers(0, "/anything/at/all")
    assert not ignore.covers(1, "")


def test_trailing_inline_ignore_covers_its_own_line() -> None:
    result = _ignores(
        "apiVersion: v1\nkind: Pod\nspec:\n"
        "  hostNetwork: true  # skanse:ignore=SKN-K8S-001 reason='node exporter'\n"
    )
    (ignore,) = result.ignores
    assert ignore.scope == "/spec/hostNetwork" and ignore.reason == "node exporter"


def test_ignore_text_inside_a_string_is_not_a_comment() -> None:
    result = _ignores(
        "apiVersion: v1\nkind: ConfigMap\ndata:\n  manifest: |\n"
        '    # skanse:ignore=SKN-K8S-002 reason="not mine"\n    kind: Pod\n'
    )
    assert result.ignores == [] and result.warnings == []


def test_ignores_without_reason_or_with_a_bad_date_are_not_applied_and_say_so() -> None:
    result = _ignores(
        "# skanse:ignore=SKN-K8S-001\n"
        + POD
        + '---\n# skanse:ignore=SKN-K8S-001 reason="x" expires=tomorrow\n'
        + POD
    )
    assert result.ignores == []
    assert len(result.warnings) == 2
    assert "without reason" in result.warnings[0]
    assert "invalid expires=tomorrow" in result.warnings[1]


def test_ignore_comments_are_bound_without_a_scan_per_comment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each ignore comment went through every scalar span of the file and every node of its
    document: quadratic, 4,000 ignored containers took 10 s to read, which lets a manifest
    stall a CI scan. Count the reads of Span.start_line and the nodes looked at."""
    reads = count_reads(monkeypatch, Span, "start_line")

    class Positions(dict[str, tuple[int, int]]):
        def items(self) -> Any:
            for item in super().items():
                reads.count += 1  # a node looked at
                yield item

    def counted(*args: Any, **kwargs: Any) -> Iterator[YamlDocument | YamlError]:
        for doc in load_documents(*args, **kwargs):
            if isinstance(doc, YamlDocument):
                doc.positions = Positions(doc.positions)
            yield doc

    monkeypatch.setattr(manifests, "load_documents", counted)
    n = 1000
    pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n" + "".join(
        f'  # skanse:ignore=SKN-K8S-027 reason="x"\n  - name: c{i}\n    image: a\n'
        for i in range(n)
    )
    config = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: m}\ndata:\n" + "".join(
        f'  # skanse:ignore=SKN-K8S-027 reason="x"\n  k{i}: v\n' for i in range(n)
    )
    result = _ignores(pod + "---\n" + config)
    assert len(result.ignores) == 2 * n and not result.warnings
    assert result.ignores[n - 1].scope == f"/spec/containers/{n - 1}"
    assert (result.ignores[-1].document, result.ignores[-1].scope) == (1, f"/data/k{n - 1}")
    spans = (9 + 4 * n) + (8 + 2 * n)  # the Pod's keys and values, then the ConfigMap's
    nodes = (7 + 3 * n) + (6 + n)
    assert reads.count <= 2 * (spans + nodes), reads.count


def test_a_run_of_ignore_comments_is_not_walked_once_per_comment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each comment of a run walked the lines after it to the node the run precedes:
    quadratic, 10,000 comments in a row took 10 s. Count the lines read by index (what that
    walk does; the pass over the file iterates them)."""
    reads = 0

    class Lines(list[str]):
        def __getitem__(self, index: Any) -> Any:
            nonlocal reads
            reads += 1
            return super().__getitem__(index)

    class Text(str):
        def splitlines(self, keepends: bool = False) -> list[str]:
            return Lines(super().splitlines(keepends))

    class Data(bytes):
        def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
            return Text(super().decode(encoding, errors))

    def parse(data: bytes, **kwargs: Any) -> Iterator[YamlDocument | YamlError]:
        return load_documents(bytes(data), **kwargs)  # libyaml takes plain bytes only

    monkeypatch.setattr(manifests, "load_documents", parse)
    n = 3000
    text = (
        "apiVersion: v1\nkind: Pod\nspec:\n"
        + '  # skanse:ignore=SKN-K8S-001 reason="x"\n' * n
        + "  hostNetwork: true\n"
    )
    result = read_bytes("x.yaml", Data(text.encode()), LIMITS)
    assert [i.scope for i in result.ignores] == ["/spec/hostNetwork"] * n
    assert reads <= 2 * (n + 4), reads
