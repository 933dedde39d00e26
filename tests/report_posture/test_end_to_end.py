"""End to end: a small real estate in every layer, one report in HTML, JSON and PDF.

The estate: the bundled examples (compliant and not) plus a `payments` namespace whose `api`
runs privileged, reaches a PostgreSQL `db` and the internet (no NetworkPolicy), and runs an
image pushed to Debian's docker-registry that is signed, carries an SBOM attestation and
has a vulnerable package (requests 2.19.0, PYSEC-2018-28, fixed in 2.20.0); this host; and
runtime alerts from `skanse runtime replay` of a shell started in the api container.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from skanse.signing.sign import attest_image, predicate_type_for, sign_image
from tests.conftest import ROOT, corpus_path
from tests.signing.helpers import new_key
from tests.vuln.helpers import osv, write_json
from tests.vuln.test_end_to_end import vulnerable_image

PAYMENTS = """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: api, namespace: payments}}
spec:
  selector: {{matchLabels: {{app: api}}}}
  template:
    metadata: {{labels: {{app: api}}}}
    spec:
      containers:
        - name: api
          image: {image}
          securityContext: {{privileged: true}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: db, namespace: payments}}
spec:
  selector: {{matchLabels: {{app: db}}}}
  template:
    metadata: {{labels: {{app: db}}}}
    spec:
      containers:
        - name: postgres
          image: postgres:16.4@sha256:{digest}
          ports: [{{containerPort: 5432}}]
"""

SHELL_RULE = """\
- rule: Shell in a payments container
  desc: an interactive shell in a container of the payments namespace
  condition: evt.type = execve and container.id != host and proc.name = bash and proc.tty != 0
  output: >-
    shell in container (user=%user.name k8s.ns=%k8s.ns.name k8s.pod=%k8s.pod.name
    image=%container.image.repository)
  priority: CRITICAL
"""


def _event(image: str) -> str:
    return json.dumps(
        {
            "type": "execve",
            "ts": 1_764_300_000_000_000_000,
            "pid": 4242,
            "res": 0,
            "proc": {
                "pid": 4242,
                "ppid": 1,
                "name": "bash",
                "exepath": "/usr/bin/bash",
                "tty": 34816,
                "uid": 0,
                "user": "root",
                "container_id": "0123456789ab",
            },
            "container": {
                "id": "0123456789ab",
                "name": "api",
                "image": image,
                "k8s": {"ns": "payments", "pod": "api-5d8f7c9b-x2x4z"},
            },
        }
    )


@pytest.fixture(scope="module")
def estate(registry, tmp_path_factory) -> dict:
    from skanse.vuln.db import Source, build_database

    tmp = tmp_path_factory.mktemp("estate")
    client = registry.client(tmp / "push-cache")
    ref = registry.ref("payments/api:v1")
    from skanse.oci.writer import push_image

    push_image(client, ref, vulnerable_image())
    key = new_key()
    sign_image(client, ref, key)
    (tmp / "cosign.pub").write_bytes(key.public_key("cosign.pub").pem())
    # the SBOM, as skanse sbom writes it, attested with the same key
    from skanse._cli import main

    sbom = tmp / "api.cdx.json"
    assert (
        main(["sbom", str(ref), "-o", f"cyclonedx-json={sbom}", "--cache-dir", str(tmp / "cache")])
        == 0
    )
    attest_image(client, ref, key, predicate_type_for("cyclonedx"), json.loads(sbom.read_text()))
    client.close()

    # PyPA's records carry no severity; GitHub's record of the same CVE carries NVD's vector
    # (7.5, HIGH). It is written here as OSV publishes GHSA records, to give the image a rated,
    # fixable vulnerability.
    ghsa = write_json(
        tmp / "ghsa" / "GHSA-x84v-xcm2-53pg.json",
        osv(
            "GHSA-x84v-xcm2-53pg",
            "PyPI",
            "requests",
            [{"introduced": "0"}, {"fixed": "2.20.0"}],
            aliases=["CVE-2018-18074"],
            severity="CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N",
        ),
    )
    db = tmp / "vuln.db"
    build_database(
        db,
        [Source(corpus_path("vulndb", "osv-pypi", "vulns", "requests")), Source(ghsa.parent)],
    )
    manifests = tmp / "payments"
    manifests.mkdir()
    (manifests / "payments.yaml").write_text(PAYMENTS.format(image=ref, digest="a" * 64))
    rules = tmp / "local_rules.yaml"
    rules.write_text(SHELL_RULE)
    events = tmp / "events.jsonl"
    events.write_text(_event(str(ref)) + "\n")
    alerts = tmp / "alerts.jsonl"
    assert (
        main(
            [
                "runtime",
                "replay",
                str(events),
                "--rules",
                str(rules),
                "-f",
                "jsonl",
                "-o",
                str(alerts),
                "-q",
            ]
        )
        == 0
    )
    return {
        "tmp": tmp,
        "ref": str(ref),
        "db": db,
        "manifests": manifests,
        "alerts": alerts,
        "key": tmp / "cosign.pub",
    }


def _report(cli, estate: dict, fmt: str, output: Path) -> None:
    result = cli(
        "report",
        "--manifests",
        str(ROOT / "examples"),
        "--manifests",
        str(estate["manifests"]),
        "--dockerfiles",
        str(ROOT / "examples"),
        "--image",
        estate["ref"],
        "--db",
        str(estate["db"]),
        "--key",
        str(estate["key"]),
        "--cache-dir",
        str(estate["tmp"] / "cache"),
        "--host",
        "--alerts",
        str(estate["alerts"]),
        "--no-config",
        "-f",
        fmt,
        "-o",
        str(output),
    )
    assert result.code == 0, result.stderr


@pytest.fixture(scope="module")
def posture(estate, tmp_path_factory) -> tuple[dict, Path]:
    from skanse._cli import main

    out = tmp_path_factory.mktemp("out")
    path = out / "posture.json"
    args = [
        "report",
        "--manifests", str(ROOT / "examples"), "--manifests", str(estate["manifests"]),
        "--dockerfiles", str(ROOT / "examples"),
        "--image", estate["ref"], "--db", str(estate["db"]), "--key", str(estate["key"]),
        "--cache-dir", str(estate["tmp"] / "cache"),
        "--host", "--alerts", str(estate["alerts"]),
        "--no-config", "-f", "json", "-o", str(path), "-q",
    ]  # fmt: skip
    assert main(args) == 0
    return json.loads(path.read_text()), out


@pytest.mark.registry
@pytest.mark.corpus
def test_the_key_numbers(posture) -> None:
    doc, _ = posture
    layers = doc["layers"]
    assert doc["summary"]["layers_not_assessed"] == []
    assert {n: layer["status"] for n, layer in layers.items()} == {
        "kubernetes": "assessed", "dockerfile": "assessed", "network": "assessed",
        "images": "assessed", "runtime": "assessed",
        "host": layers["host"]["status"],  # partial when not run as root
    }  # fmt: skip
    # 3 example workloads + api + db; the examples' inline suppression is counted, not hidden
    assert layers["kubernetes"]["subjects"] >= 5
    # legacy-app privileged and mounting the Docker socket (SKN-K8S-033), api privileged
    assert layers["kubernetes"]["by_severity"]["CRITICAL"] == 3
    assert layers["kubernetes"]["suppressed"] == 1
    [image] = doc["images"]
    assert image["signature"]["status"] == "verified"
    assert image["attestation"]["status"] == "verified"
    assert image["sbom"]["packages"] == 6 and image["sbom"]["by_type"]["python"] == 3
    vulns = image["vulnerabilities"]
    [cve] = [v for v in vulns["top"] if "CVE-2018-18074" in (v["id"], *v["aliases"])]
    assert cve["fixed_version"] == "2.20.0" and cve["severity"] == "HIGH"
    assert {"PYSEC-2018-28", "GHSA-x84v-xcm2-53pg"} <= {cve["id"], *cve["aliases"]}
    assert vulns["fixable"] == vulns["total"] >= 1
    assert image["workloads"] == ["payments/api[Deployment]"]
    assert doc["runtime"]["alerts"] == 1
    [rule] = doc["runtime"]["rules"]
    assert rule["rule"] == "Shell in a payments container" and rule["severity"] == "CRITICAL"
    assert rule["workloads"] == ["payments/api[Deployment]"]
    assert "payments/api[Deployment]" in doc["network"]["reaches_database"]
    assert doc["network"]["databases"] == ["payments/db[Deployment]"]
    # the joined top risk: privileged + reaches the database and the internet + a fixable
    # vulnerability + a critical runtime alert
    top = doc["top_risks"][0]
    assert top["subject"] == {"kind": "Deployment", "namespace": "payments", "name": "api"}
    points = {c["kind"]: c["points"] for c in top["contributions"]}
    # privileged (critical 40) + CVE-2018-18074, high and fixable (25) + critical alert (40),
    # times 1.5 for the database and 1.5 for the internet
    assert points == {"config": 40, "vulnerability": 25, "runtime": 40}
    assert top["score"] == (40 + 25 + 40) * 1.5 * 1.5
    assert top["reach"] == [
        "can reach a database port (x1.5)",
        "accepts connections from outside the cluster (x1.5)",
    ]
    # legacy-app is privileged too and (no policy anywhere) reaches the same database, but
    # runs no image with a known vulnerability and raised no alert: it ranks below
    legacy = next(r for r in doc["top_risks"] if r["subject"]["name"] == "legacy-app")
    assert legacy["rank"] == 2 and legacy["score"] == 40 * 1.5 * 1.5
    assert [s for s in doc["suppressions"] if s["checks"] == ["SKN-K8S-027"]]
    # the control view: CIS 5.2.2 not met (privileged), image provenance evidenced
    by_id = {(c["framework"], c["control"]): c for c in doc["controls"]}
    assert by_id[("cis-kubernetes", "5.2.2")]["status"] == "not-met"
    assert (
        by_id[("nsa-cisa", "Audit logging and threat detection > Threat detection")]["status"]
        == "not-met"
    )
    kinds = [i["kind"] for i in doc["inputs"]]
    assert sorted(set(kinds)) == [
        "skanse.host-audit", "skanse.netpol-list", "skanse.runtime-alerts", "skanse.scan",
        "skanse.verification", "skanse.vuln",
    ]  # fmt: skip
    assert all(i["tool_version"] for i in doc["inputs"] if i["kind"] != "skanse.runtime-alerts")


@pytest.mark.registry
@pytest.mark.corpus
def test_html_and_pdf(cli, estate, posture) -> None:
    _, out = posture
    html, pdf = out / "posture.html", out / "posture.pdf"
    _report(cli, estate, "html", html)
    text = html.read_text()
    # self-contained, no fetches: no element points anywhere (remediation text may name a
    # documentation address, as text)
    assert not re.search(r"""(src|href|url)\s*[=(]\s*["']?\s*(https?:|//)""", text)
    assert "<script" not in text and "<link" not in text and "<img" not in text
    assert "payments/api" in text and "CVE-2018-18074" in text
    try:
        import weasyprint  # noqa: F401
    except (ImportError, OSError):
        pytest.skip("WeasyPrint or Pango is not installed (make test installs both)")
    _report(cli, estate, "pdf", pdf)
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-") and len(data) > 10_000
    if shutil.which("pdftotext"):
        words = subprocess.run(
            ["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True
        ).stdout
        assert "Top risks" in words and "Control view" in words


@pytest.mark.registry
@pytest.mark.corpus
@pytest.mark.skipif(
    not os.environ.get("SKANSE_DOCS_IMAGES"),
    reason="SKANSE_DOCS_IMAGES is not set: the docs images are made on request",
)
def test_docs_images(estate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Makes docs/report-screenshot.png and docs/report-pdf-page.png from this estate, with a
    history of two runs of cluster prod-oslo (the examples alone, then the whole estate), so
    the images show the report as the code renders it now:

        SKANSE_DOCS_IMAGES=docs .venv/bin/pytest tests/report_posture/test_end_to_end.py -k docs

    Skipped unless SKANSE_DOCS_IMAGES names the directory to write them into."""
    from skanse._cli import main
    from skanse.report.posture.html import render_html
    from skanse.report.posture.pdf import render_pdf

    target = os.environ["SKANSE_DOCS_IMAGES"]
    chromium, pdftoppm = shutil.which("chromium"), shutil.which("pdftoppm")
    if chromium is None or pdftoppm is None:
        pytest.skip("the docs images need Debian's chromium and poppler-utils' pdftoppm")
    # relative paths, as a user in their repository would type them
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    shutil.copytree(estate["manifests"], tmp_path / "payments")
    monkeypatch.chdir(tmp_path)
    posture_json = tmp_path / "posture.json"
    common = ["--history", "10", "--history-store", "history.sqlite", "--cluster", "prod-oslo"]
    common += ["--cache-dir", str(estate["tmp"] / "cache"), "--no-config", "-q"]
    first = ["report", "--manifests", "examples", *common, "-f", "json"]
    assert main([*first, "-o", str(tmp_path / "first.json")]) == 0
    second = [
        "report",
        "--manifests", "examples", "--manifests", "payments", "--dockerfiles", "examples",
        "--image", estate["ref"], "--db", str(estate["db"]), "--key", str(estate["key"]),
        "--host", "--alerts", str(estate["alerts"]),
        *common, "--title", "Security posture: prod-oslo", "-f", "json", "-o", str(posture_json),
    ]  # fmt: skip
    assert main(second) == 0
    doc = json.loads(posture_json.read_text())
    # what the images are meant to show: all six layers, the joined top risk, the trend
    assert doc["summary"]["layers_not_assessed"] == []
    assert doc["top_risks"][0]["subject"]["name"] == "api"
    assert doc["history"]["new"], "the second run's new findings are listed"
    html = render_html(doc)
    page = tmp_path / "posture.html"
    page.write_text(html, encoding="utf-8")
    out = Path(target)
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
         f"--screenshot={out / 'report-screenshot.png'}", "--window-size=1200,1900",
         page.as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    pdf = tmp_path / "posture.pdf"
    pdf.write_bytes(render_pdf(html))
    pages = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout.split("\f")
    # the page where the trend's finding tables begin: wrapped columns, badges, file:line
    number = next(n for n, text in enumerate(pages, start=1) if "Still open" in text)
    subprocess.run(
        [pdftoppm, "-png", "-r", "70", "-singlefile", "-f", str(number), "-l", str(number),
         str(pdf), str(out / "report-pdf-page")],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    print(f"wrote {out / 'report-screenshot.png'} and page {number} of {len(pages) - 1}")
