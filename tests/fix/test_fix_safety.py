"""Fix safety (issue 19, case 1 and 2): safe fixes by default, unsafe ones on request, the
capabilities a workload needs kept, explicit values kept, Dockerfiles corrected in place."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import shutil
import tarfile
from pathlib import Path

import pytest
import yaml

from skanse.fix import FixOptions, plan_fixes
from skanse.fix.dockerfile import fix_dockerfile
from skanse.fix.netpol import NamespacePolicy, default_deny_yaml
from skanse.scan import scan
from tests.conftest import corpus_path
from tests.fix.helpers import after, fix_text

PORT_80 = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      securityContext:
        runAsNonRoot: true
        runAsUser: 10101
        seccompProfile: {type: RuntimeDefault}
      containers:
      - name: web
        image: example.com/web:1
        ports:
        - containerPort: 80
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: false
          capabilities:
            drop: [ALL]
            add: [NET_BIND_SERVICE]
"""


def _container(text: str, name: str) -> dict[str, object]:
    for doc in yaml.safe_load_all(text):
        spec = ((doc or {}).get("spec") or {}).get("template", {}).get("spec")
        if not spec:
            continue
        for c in spec["containers"]:
            if c["name"] == name:
                return dict(c)
    raise AssertionError(name)


def test_a_port_80_container_keeps_net_bind_service_even_with_unsafe_fixes(
    tmp_path: Path,
) -> None:
    item, report = fix_text(tmp_path, PORT_80, unsafe=True)
    fixed = after(item) if item is not None and item.after is not None else PORT_80
    sc = _container(fixed, "web")["securityContext"]
    assert isinstance(sc, dict)
    assert sc["capabilities"]["add"] == ["NET_BIND_SERVICE"]
    assert any(
        d.check_id == "SKN-K8S-024" and "NET_BIND_SERVICE" in d.reason and "port 80" in d.reason
        for d in report.declined
    )


def test_an_explicit_false_is_never_overturned_by_a_safe_fix(tmp_path: Path) -> None:
    item, _ = fix_text(tmp_path, PORT_80, unsafe=False)
    assert item is not None
    assert b"readOnlyRootFilesystem: false" in (item.after or b"")
    assert any(c.check_id == "SKN-K8S-023" and not c.safe for c in item.pending)
    assert item.pending_after is not None
    assert b"readOnlyRootFilesystem: true" in item.pending_after


ROOT_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: p
  namespace: shop
spec:
  containers:
  - name: app
    image: app:1
    securityContext:
      privileged: true
"""


def test_safe_fixes_only_add_what_cannot_break_the_workload(tmp_path: Path) -> None:
    item, _ = fix_text(tmp_path, ROOT_POD, unsafe=False)
    assert item is not None
    fixed = after(item)
    assert "privileged: true" in fixed  # the author wrote it: unsafe to overturn
    assert "runAsNonRoot" not in fixed and "runAsUser" not in fixed
    assert "readOnlyRootFilesystem" not in fixed
    assert "drop:" not in fixed  # a root container may need its default capabilities
    assert "seccompProfile" in fixed and "automountServiceAccountToken: false" in fixed
    assert all(c.safe for c in item.changes)
    pending = {c.check_id for c in item.pending}
    assert {"SKN-K8S-002", "SKN-K8S-015", "SKN-K8S-023"} <= pending


def test_select_and_ignore_limit_the_fixes_to_named_checks(tmp_path: Path) -> None:
    path = tmp_path / "pod.yaml"
    path.write_text(ROOT_POD)
    only = plan_fixes([str(path)], FixOptions(unsafe_fixes=True, select=frozenset({"SKN-K8S-002"})))
    assert {c.check_id for f in only.changed for c in f.changes} == {"SKN-K8S-002"}
    # an alias of a peer names the same check
    ignored = plan_fixes([str(path)], FixOptions(unsafe_fixes=True, ignore=frozenset({"KSV-0017"})))
    ids = {c.check_id for f in ignored.changed for c in f.changes}
    assert "SKN-K8S-002" not in ids and "SKN-K8S-023" in ids


def test_cli_diff_says_which_fixes_are_unsafe_and_applies_only_safe_ones(
    cli, tmp_path: Path
) -> None:
    path = tmp_path / "pod.yaml"
    path.write_text(ROOT_POD)
    shown = cli("fix", str(path), "--diff", "--no-config")
    assert shown.code == 0
    assert shown.stdout.startswith("# safe fixes\n")
    assert "# unsafe fixes (not applied; --unsafe-fixes applies them)\n" in shown.stdout
    assert "#   SKN-K8S-002 " in shown.stdout
    assert path.read_text() == ROOT_POD
    done = cli("fix", str(path), "--no-config")
    assert done.code == 0
    assert "privileged: true" in path.read_text()
    assert "unsafe fix not applied" in done.stderr
    forced = cli("fix", str(path), "--no-config", "--unsafe-fixes")
    assert forced.code == 0
    assert "privileged: false" in path.read_text()
    bad = cli("fix", str(path), "--no-config", "--select", "SKN-NOPE-1")
    assert bad.code == 2 and "unknown check id" in bad.stderr


def test_corpus_workloads_keep_their_capabilities(tmp_path: Path) -> None:
    """ingress-nginx (scw) binds 80/443 as UID 101 with NET_BIND_SERVICE and sets
    readOnlyRootFilesystem: false; node-exporter adds SYS_TIME. Neither is taken away, with
    or without unsafe fixes; the explicit false stays under safe fixes."""
    sources = {
        "ingress.yaml": corpus_path(
            "manifests",
            "kubernetes__ingress-nginx/deploy/static/provider/scw/deploy.yaml",
        ),
        "node-exporter.yaml": corpus_path(
            "manifests",
            "prometheus-operator__kube-prometheus/manifests/nodeExporter-daemonset.yaml",
        ),
    }
    for name, source in sources.items():
        shutil.copy(source, tmp_path / name)
    for unsafe in (False, True):
        report = plan_fixes([str(tmp_path)], FixOptions(unsafe_fixes=unsafe))
        fixed = {Path(f.path).name: (f.after or b"").decode() for f in report.changed}
        for name, source in sources.items():
            fixed.setdefault(name, source.read_text())
        controller = _container(fixed["ingress.yaml"], "controller")["securityContext"]
        exporter = _container(fixed["node-exporter.yaml"], "node-exporter")["securityContext"]
        assert isinstance(controller, dict) and isinstance(exporter, dict)
        assert "NET_BIND_SERVICE" in controller["capabilities"]["add"], unsafe
        assert "SYS_TIME" in exporter["capabilities"]["add"], unsafe
        if not unsafe:
            assert controller["readOnlyRootFilesystem"] is False


# --- Dockerfiles -------------------------------------------------------------------------------


def _df(tmp_path: Path, source: str) -> str:
    item, _ = fix_text(tmp_path, source, name="Dockerfile")
    return after(item)


def test_a_trailing_user_root_gives_way_to_the_files_own_user(tmp_path: Path) -> None:
    source = (
        "FROM python:3.12-slim\n"
        "RUN groupadd -r appgroup && useradd -r -g appgroup appuser\n"
        "WORKDIR /app\n"
        "COPY --chown=appuser:appgroup . .\n"
        "USER root\n"
        'CMD ["python", "app.py"]\n'
    )
    fixed = _df(tmp_path, source)
    assert fixed == source.replace("USER root\n", "USER appuser\n")
    assert "adduser" not in fixed and "10001" not in fixed


def test_user_root_after_a_non_root_user_is_dropped(tmp_path: Path) -> None:
    source = (
        "FROM debian:12\nRUN useradd -r svc\nUSER svc\nCOPY --chown=svc app /app\n"
        'USER root\nCMD ["/app"]\n'
    )
    assert _df(tmp_path, source) == source.replace("USER root\n", "")


def test_user_root_before_build_steps_is_followed_by_the_user_after_them(
    tmp_path: Path,
) -> None:
    source = 'FROM node:22\nUSER root\nRUN apt-get update\nCMD ["node", "s.js"]\n'
    assert _df(tmp_path, source) == source.replace("CMD", "USER node\nCMD")


def test_database_images_keep_their_own_user(tmp_path: Path) -> None:
    redis = (
        "FROM debian:bookworm-slim\n"
        "RUN groupadd -r -g 999 redis && useradd -r -g redis -u 999 redis\n"
        "RUN mkdir /data && chown redis:redis /data\n"
        'CMD ["redis-server"]\n'
    )
    assert _df(tmp_path, redis) == redis.replace("CMD", "USER redis\nCMD")
    postgres = "FROM postgres:17\nCOPY init.sql /docker-entrypoint-initdb.d/\n"
    assert _df(tmp_path, postgres) == postgres + "USER postgres\n"


def test_dockerfile_user_fixes_are_unsafe_and_add_to_copy_is_safe(tmp_path: Path) -> None:
    source = "FROM debian:12\nADD app.conf /etc/app.conf\n"
    (tmp_path / "app.conf").write_text("listen 8080\n")  # a plain file in the build context
    item, _ = fix_text(tmp_path, source, name="Dockerfile", unsafe=False)
    assert after(item) == source.replace("ADD", "COPY")
    assert [c.check_id for c in item.pending if not c.safe] == ["SKN-DF-001"] if item else False


def test_a_safe_fix_keeps_file_capabilities_of_a_non_root_port_80_container(
    tmp_path: Path,
) -> None:
    """A non-root web server on port 80 may bind it through a file capability on its binary
    (setcap cap_net_bind_service); allowPrivilegeEscalation: false (no_new_privs) makes exec
    ignore file capabilities, so it is not a safe fix there."""
    implicit = PORT_80.replace("          allowPrivilegeEscalation: false\n", "")
    item, _ = fix_text(tmp_path, implicit, unsafe=False)
    fixed = after(item) if item is not None and item.after is not None else implicit
    assert "allowPrivilegeEscalation" not in fixed
    assert item is not None
    assert any(c.check_id == "SKN-K8S-014" and not c.safe for c in item.pending)
    assert b"allowPrivilegeEscalation: false" in (item.pending_after or b"")


def test_add_with_a_wildcard_is_not_turned_into_copy(tmp_path: Path) -> None:
    """ADD extracts every local tar archive its wildcard matches (dist/app.tar.gz); COPY
    would copy the archive itself, so the workload would lose its files."""
    source = "FROM alpine:3.20\nADD dist/* /opt/app/\nUSER 10001\n"
    item, report = fix_text(tmp_path, source, "SKN-DF-005", name="Dockerfile", unsafe=False)
    assert item is None or item.after is None or b"ADD dist/* /opt/app/" in item.after
    assert any(
        d.check_id == "SKN-DF-005" and "archive" in d.reason and "dist/*" in d.reason
        for d in report.declined
    )


def _tar(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


_PACKED = {
    "tar": lambda data: data,
    "gzip": gzip.compress,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
}


@pytest.mark.parametrize("packing", sorted(_PACKED))
def test_add_of_an_archive_known_by_its_content_is_not_turned_into_copy(
    tmp_path: Path, packing: str
) -> None:
    """ADD extracts a local tar archive whatever its name: `archive` holding a tar became
    COPY under safe fixes, which copied the archive instead of its files into the image."""
    (tmp_path / "archive").write_bytes(_PACKED[packing](_tar({"bin/app": b"#!/bin/sh\n"})))
    (tmp_path / "notes").write_text("plain text\n")
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "site.tar").write_bytes(_tar({"index.html": b"<p>"}))
    source = "FROM alpine:3.20\nADD archive /opt/\nADD notes /etc/\nADD static /srv/\nUSER 10001\n"
    item, _ = fix_text(tmp_path, source, "SKN-DF-005", name="Dockerfile", unsafe=False)
    # the check does not say "use COPY" for the archive; the file and the directory are safe
    assert after(item) == source.replace("ADD notes", "COPY notes").replace(
        "ADD static", "COPY static"
    )
    assert item is not None
    assert [(c.line, c.safe) for c in item.changes] == [(3, True), (4, True)]
    findings = scan([str(tmp_path / "Dockerfile")]).findings
    assert [f.location.line for f in findings if f.check_id == "SKN-DF-005"] == [3, 4]


def test_a_fix_told_another_build_context_declines_an_archive_there(tmp_path: Path) -> None:
    """The fix reads the sources itself: found as a plain file by the scan, an archive in the
    build context the fix is given is still not turned into COPY."""
    source = "FROM alpine:3.20\nADD bundle /opt/\nUSER 10001\n"
    (tmp_path / "bundle").write_text("plain\n")
    (tmp_path / "Dockerfile").write_text(source)
    findings = [
        f for f in scan([str(tmp_path / "Dockerfile")]).findings if f.check_id == "SKN-DF-005"
    ]
    assert len(findings) == 1
    elsewhere = tmp_path / "context"
    elsewhere.mkdir()
    (elsewhere / "bundle").write_bytes(gzip.compress(_tar({"a": b"a"})))
    path = str(tmp_path / "Dockerfile")
    fixed = fix_dockerfile(path, path, source.encode(), findings, context=str(elsewhere))
    assert fixed.after is None and fixed.changes == ()
    (declined,) = fixed.declined
    assert "tar archive by its content" in declined.reason


def test_add_of_a_source_that_cannot_be_examined_is_an_unsafe_fix(tmp_path: Path) -> None:
    """A missing source or a symlink out of the build context may be an archive: COPY only
    with --unsafe-fixes, and the target outside the context is never read."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.tar").write_bytes(_tar({"a": b"a"}))
    context = tmp_path / "context"
    context.mkdir()
    (context / "link").symlink_to(outside / "secret.tar")
    source = "FROM alpine:3.20\nADD missing.conf /etc/\nADD link /opt/\nUSER 10001\n"
    item, _ = fix_text(context, source, "SKN-DF-005", name="Dockerfile", unsafe=False)
    assert item is not None and item.changes == ()
    assert item.after is None or item.after.decode() == source
    assert [(c.line, c.safe) for c in item.pending] == [(2, False), (3, False)]
    assert "missing.conf is not in the build context" in item.pending[0].description
    assert "link leads out of the build context" in item.pending[1].description
    assert item.pending_after == source.replace("ADD", "COPY").encode()
    forced, _ = fix_text(context, source, "SKN-DF-005", name="Dockerfile", unsafe=True)
    assert after(forced) == source.replace("ADD", "COPY")


TWO_BARE_CONTAINERS = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: a
        image: example.com/a:1
      - name: b
        image: example.com/b:1
"""


def test_each_fix_sees_what_the_fixes_before_it_wrote(tmp_path: Path) -> None:
    """Fixes are planned one after another on the same object: a pod-level setting the
    first container's finding wrote is there for the second's (once, not twice), and the
    safety of a later fix is judged on the object as the earlier ones left it."""
    from skanse.checks.profiles import Profile
    from skanse.scan import ScanOptions

    options = ScanOptions(profile=Profile.PSS_RESTRICTED)
    full_item, _ = fix_text(tmp_path, TWO_BARE_CONTAINERS, scan=options, unsafe=True)
    assert full_item is not None
    described = [(c.check_id, c.description) for c in full_item.changes]
    pod_level = [d for d in described if d[0] == "SKN-K8S-015"]
    assert pod_level == [("SKN-K8S-015", "pod: set securityContext.runAsNonRoot: true")]
    fixed = yaml.safe_load(after(full_item))["spec"]["template"]["spec"]
    assert fixed["securityContext"]["runAsNonRoot"] is True
    for container in fixed["containers"]:
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_default_deny_quotes_a_namespace_with_a_final_newline() -> None:
    # A bare `shop\n` would be written unquoted and read back as namespace `shop`.
    text = default_deny_yaml([NamespacePolicy("shop\n", "default-deny", ())])
    (document,) = [d for d in yaml.safe_load_all(text) if d]
    assert document["metadata"]["namespace"] == "shop\n"
