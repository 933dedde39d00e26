"""The PDF fits A4: read back with pdftotext, every table's last column is on the page (text
past the right margin is outside the page and pdftotext drops it), and no section heading
is the last line of a page. The estate fills every table the report has: 2 images with
long names and vulnerabilities, 5 namespaces, a host with per-interface findings (a long
VLAN name) and runtime alerts joined to workloads."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, cast

import pytest

from skanse.config import LoadedConfig
from skanse.report.posture.build import build_posture
from skanse.report.posture.collect import run_host, run_netpol, run_scan
from skanse.report.posture.documents import ResultDocument, alerts_document
from skanse.report.posture.html import render_html
from tests.host.test_interfaces_and_profiles import AFTER_ALL_ONLY
from tests.host.trees import materialize
from tests.report_posture.test_alert_join import falco_alert
from tests.report_posture.test_severity_and_controls import _match

NAMESPACES = ["billing-eu-west", "checkout-frontend", "customer-data", "ledger-core", "zz-ops"]
IMAGES = [
    "registry.example.internal:5000/platform/payments/checkout-service-with-a-long-name:1.27.3",
    "registry.example.internal:5000/platform/data/customer-records-exporter:2024.11.05-rc1",
]


def _workload(ns: str, name: str, image: str, port: int) -> str:
    return f"""\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
        - name: main
          image: "{image}"
          ports: [{{containerPort: {port}}}]
          securityContext: {{privileged: true}}
"""


def _verification(image: str, n: int) -> dict[str, Any]:
    return {
        "image": image,
        "digest": "sha256:" + f"{n}" * 64,
        "what": "signature",
        "verified": False,
        "reason": "no signature of the image verifies with any of the keys given "
        "(/etc/skanse/keys/platform-release-signing-2024.pub) lastwordsig" + str(n),
        "verified_keys": [],
    }


@pytest.fixture(scope="module")
def posture(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("estate")
    docs = []
    for i, ns in enumerate(NAMESPACES):
        text = "---\n".join(
            _workload(ns, f"{ns}-worker-{j}", IMAGES[(i + j) % 2], 5432 if j == 0 else 8080)
            for j in range(2)
        )
        (root / f"{ns}.yaml").write_text(text)
    docs.append(run_scan([str(root)], LoadedConfig.empty()))
    docs.append(run_netpol([str(root)]))
    verification = {
        "schema_version": 1,
        "kind": "skanse.verification",
        "tool": {"name": "skanse", "version": "test"},
        "checked": "2026-12-07T06:00:00+00:00",
        "images": [_verification(image, n) for n, image in enumerate(IMAGES)],
    }
    docs.append(ResultDocument("skanse.verification", "verify.json", verification))
    docs.extend(_vulnerabilities(n, image) for n, image in enumerate(IMAGES))
    docs.append(run_host(str(_host(tmp_path_factory.mktemp("host"))), LoadedConfig.empty()))
    alerts = [
        falco_alert(
            "Terminal shell in a container of a namespace that keeps personal data",
            "CRITICAL",
            {
                "k8s.ns.name": ns,
                "k8s.pod.name": f"{ns}-worker-0-7d9f8b6c5d-x2x4z",
                "container.image.repository": IMAGES[0].rsplit(":", 1)[0],
            },
        )
        for ns in NAMESPACES
    ]
    docs.append(alerts_document(alerts, "alerts.jsonl"))
    return build_posture(docs, tool_version="test")


def _vulnerabilities(n: int, image: str) -> ResultDocument:
    """Five matches per image, unknown, high and critical, KEV and EPSS, with long package
    names and fixed versions."""
    matches = [
        _match(
            f"GHSA-{n}x{k}v-xcm2-53pg",
            [None, "HIGH", "CRITICAL"][k % 3],
            aliases=[f"CVE-2024-{n}{k:04d}", f"PYSEC-2024-{k}"],
            package={
                "name": "org.apache.logging.log4j:log4j-core-with-a-long-artifact-name",
                "version": "2.14.1-redhat-00001",
            },
            fixed_version=f"2.17.1-redhat-00002-with-a-long-suffix-lastwordfix{k}",
            kev=k == 1,
            epss={"score": 0.2, "percentile": 0.9} if k == 2 else None,
        )
        for k in range(5)
    ]
    return ResultDocument(
        "skanse.vuln",
        f"vuln-{n}.json",
        {
            "schema_version": 1,
            "kind": "skanse.vuln",
            "tool": {"name": "skanse", "version": "test"},
            "target": image,
            "subject": {"manifest_digest": None},
            "summary": {"packages": 1, "checked": 1, "by_severity": {}, "suppressed": 0},
            "matches": matches,
        },
    )


def _host(root: Path) -> Path:
    """A node whose interfaces kept the kernel's defaults, one of them a long VLAN name."""
    files = dict(cast("dict[str, str]", AFTER_ALL_ONLY["files"]))
    vlan = "/proc/sys/net/ipv6/conf/vlan-uplink-datacenter-oslo.1042"
    files[f"{vlan}/accept_ra"] = "1"
    files[f"{vlan}/forwarding"] = "0"
    materialize({"dirs": AFTER_ALL_ONLY["dirs"], "files": files}, root)
    return root


def _render(html: str, renderer: str, tmp_path: Path) -> Path:
    """The report printed to A4 by WeasyPrint (`-f pdf`) or by Chromium (a browser's print)."""
    path = tmp_path / f"posture-{renderer}.pdf"
    if renderer == "weasyprint":
        try:
            from skanse.report.posture.pdf import render_pdf

            path.write_bytes(render_pdf(html))
        except Exception as exc:  # PdfError without WeasyPrint or Pango
            pytest.skip(f"no PDF renderer here: {exc}")
        return path
    binary = shutil.which("chromium")
    if binary is None:
        pytest.skip("Debian's chromium is not installed (make test installs it)")
    page = tmp_path / "posture.html"
    page.write_text(html, encoding="utf-8")
    subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--no-pdf-header-footer",
         f"--print-to-pdf={path}", page.as_uri()],
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    if not path.exists():
        pytest.skip("chromium did not print the page")
    return path


@pytest.fixture(scope="module", params=["weasyprint", "chromium"])
def printed(
    request: pytest.FixtureRequest,
    posture: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    """The report printed once per renderer, read back as text in reading order ("raw") and
    in page layout ("layout")."""
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    path = _render(render_html(posture), request.param, tmp_path_factory.mktemp("pdf"))

    def text(*options: str) -> str:
        return subprocess.run(
            ["pdftotext", *options, str(path), "-"], capture_output=True, text=True, check=True
        ).stdout

    return {"raw": text(), "layout": text("-layout")}


def _flat(text: str) -> str:
    """Without white space, and without hyphens (pdftotext joins a word broken after a
    hyphen at a line end and drops the hyphen)."""
    return "".join(text.split()).replace("-", "")


class _LastCells(HTMLParser):
    """The text of the last cell of every row of every table of a page, per table."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[str]] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._skip = 0  # inside an <svg> (its text is drawn, not a table cell's)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "svg":
            self._skip += 1
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "br" and self._cell is not None:
            self._cell.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._skip -= 1
        elif tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._row and self.tables:
                self.tables[-1].append(self._row[-1])
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None and not self._skip:
            self._cell.append(data)


def _every_table(posture: dict[str, Any]) -> dict[str, list[str]]:
    parser = _LastCells()
    parser.feed(render_html(posture))
    return {f"table {i + 1}": cells for i, cells in enumerate(parser.tables)}


def _last_columns(posture: dict[str, Any]) -> dict[str, list[str]]:
    """The text of the last column of every table, per table."""
    why = []
    for risk in posture["top_risks"][:15]:
        last = risk["contributions"][-1]
        why.append(last["worst"])
        if risk["reach"]:
            why.append("; ".join(risk["reach"]))
    return {
        "top risks: why": why,
        "images: run by": [", ".join(i["workloads"]) for i in posture["images"]],
        "images: signature": [i["signature"]["reason"] for i in posture["images"]],
        "images: fixed in": [
            v.get("fixed_version") or "no fix"
            for i in posture["images"]
            for v in (i.get("vulnerabilities") or {}).get("top", [])
        ],
        "where to fix: fix": sorted({f["fix"] or f["remediation"] for f in posture["findings"]}),
        "provenance: policy": [
            ", ".join(f"{k}={v}" for k, v in (i.get("policy") or {}).items())
            for i in posture["inputs"]
        ],
        "network graph: last namespace": [f"namespace {NAMESPACES[-1]}"],
    }


def _tail(cell: str) -> str:
    """The end of a cell's text: what a column cut at the right margin loses first (the last
    word, or the last 16 characters of a long one, which may be wrapped anywhere)."""
    word = cell.split()[-1]
    return word[-16:]


def test_every_tables_last_column_is_inside_the_a4_page(
    posture: dict[str, Any], printed: dict[str, str]
) -> None:
    # every layer but Dockerfiles has tables to print
    assert {n for n, layer in posture["layers"].items() if layer["status"] == "not-assessed"} == {
        "dockerfile"
    }
    assert posture["runtime"]["rules"][0]["workloads"]
    # reading order (not -layout), so a cell's wrapped lines follow each other
    text = _flat(printed["raw"])
    missing = {
        table: [cell for cell in cells if cell and _flat(_tail(cell)) not in text]
        for table, cells in {**_last_columns(posture), **_every_table(posture)}.items()
    }
    assert {table: cells for table, cells in missing.items() if cells} == {}


def test_no_page_ends_with_a_heading(printed: dict[str, str]) -> None:
    headings = {
        "Posture by layer",
        "Top risks",
        "Where to fix",
        "Network reachability",
        "Images: SBOM, vulnerabilities, signatures",
        "Host isolation and kernel hardening",
        "Runtime alerts",
        "Suppressions",
        "Control view",
        "Provenance",
    }
    pages = printed["layout"].split("\f")
    stranded = []
    for number, page in enumerate(pages, start=1):
        lines = [line.strip() for line in page.splitlines() if line.strip()]
        # the footer ("page N of M") is the last line; the one before it is the content's
        content = [line for line in lines if not line.startswith("page ")]
        if content and content[-1] in headings:
            stranded.append((number, content[-1]))
    assert stranded == []


def test_the_html_page_stays_inside_a_narrow_window(
    posture: dict[str, Any], tmp_path: Path
) -> None:
    """In a 1000-pixel window nothing is drawn in the page's right margin: tables wrap long
    image names, digests and reasons instead of running past the edge."""
    from PIL import Image

    binary = shutil.which("chromium")
    if binary is None:
        pytest.skip("Debian's chromium is not installed (make test installs it)")
    page = tmp_path / "posture.html"
    page.write_text(render_html(posture), encoding="utf-8")
    shot = tmp_path / "shot.png"
    subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
         f"--screenshot={shot}", "--window-size=1000,6000", page.as_uri()],
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    if not shot.exists():
        pytest.skip("chromium took no screenshot")
    with Image.open(shot) as image:
        rgb = image.convert("RGB")
        width, height = rgb.size
        # main has 32 px of padding on each side: its right 24 px must stay background
        margin = rgb.crop((width - 24, 0, width, height))
        colours = margin.getcolors(maxcolors=1 << 16) or []
    drawn = sum(count for count, colour in colours if colour != (255, 255, 255))
    assert drawn == 0, f"{drawn} pixels drawn in the right margin"


def test_a_page_that_asks_for_urls_still_prints_and_fetches_nothing(tmp_path: Path) -> None:
    """The report is self-contained; a stray or injected `url()` or `src` is refused by the
    fetcher (nothing is requested) and the PDF is written without it."""
    import http.server
    import threading

    from skanse.report.posture.pdf import render_pdf

    requested: list[str] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requested.append(self.path)
            self.send_error(404)

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    secret = tmp_path / "secret.css"
    secret.write_text("h1{color:red}")
    html = (
        f'<!DOCTYPE html><html><head><link rel="stylesheet" href="{base}/a.css">'
        f'<link rel="stylesheet" href="{secret.as_uri()}">'
        f"<style>body{{background:url({base}/b.png)}}</style></head>"
        f'<body><h1>posture</h1><img src="{base}/c.png"></body></html>'
    )
    try:
        pdf = render_pdf(html)
    finally:
        server.shutdown()
        server.server_close()
    assert pdf.startswith(b"%PDF")
    assert requested == []
