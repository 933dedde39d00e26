# ruff: noqa: E501  (HTML and SVG markup reads best unbroken)
"""The posture document as one self-contained HTML page: no scripts, no external fetches,
charts and the network graph as inline SVG, and print rules so the same page makes the PDF.

netpol's own SVG (`skanse netpol list -f svg`) draws connections from the engine's objects;
the graph here is drawn from the report's JSON (so saved results work the same) and adds
what netpol does not know: each workload coloured by its worst finding, with its count.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

__all__ = ["render_html"]

_COLORS = {
    "CRITICAL": "#8e1b1b",
    "HIGH": "#d1401f",
    "MEDIUM": "#e0a100",
    "LOW": "#3b7dd8",
    "INFO": "#8a94a6",
}
_SEVERITIES = list(_COLORS)
_STATUS = {
    "assessed": ("Assessed", "ok"),
    "partial": ("Partly assessed", "warn"),
    "not-assessed": ("Not assessed", "none"),
    "met": ("Met", "ok"),
    "met-with-exceptions": ("Met, with accepted exceptions", "warn"),
    "not-met": ("Not met", "bad"),
    "verified": ("Verified", "ok"),
    "not-verified": ("Not verified", "bad"),
    "not-checked": ("Not checked", "none"),
}

_CSS = """
:root{--ink:#1d2433;--muted:#5b6475;--line:#d9dee7;--bg:#f6f8fb}
*{box-sizing:border-box}
body{font-family:"DejaVu Sans",Helvetica,Arial,sans-serif;color:var(--ink);margin:0;
font-size:13px;line-height:1.45;background:#fff}
main{max-width:1100px;margin:0 auto;padding:28px 32px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:2px solid
var(--ink);padding-bottom:4px}h3{font-size:14px;margin:16px 0 6px}
.muted{color:var(--muted)}table{border-collapse:collapse;width:100%;margin:6px 0 12px;
table-layout:fixed}
th,td{text-align:left;padding:4px 6px;border-bottom:1px solid var(--line);vertical-align:top;
overflow-wrap:anywhere;word-break:break-word}code{overflow-wrap:anywhere;word-break:break-all}
details{margin:4px 0 10px}summary{cursor:pointer;font-weight:600}
td.fix code{white-space:pre-wrap}.graph svg{display:block}
th{background:var(--bg);font-weight:600}td.num,th.num{text-align:right;white-space:nowrap}
.badge{display:inline-block;padding:1px 7px;border-radius:9px;font-size:11px;font-weight:600;
white-space:nowrap}.ok{background:#e3f4e6;color:#1e6b2f}.warn{background:#fff2cc;color:#7a5a00}
.bad{background:#fbe0dc;color:#8e1b1b}.none{background:#eceff4;color:#5b6475}
.sev{color:#fff}.expired{background:#fbe0dc}.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{border:1px solid var(--line);border-radius:8px;padding:10px 12px;min-width:160px;flex:1}
.card .n{font-size:22px;font-weight:700}.graph{border:1px solid var(--line);border-radius:8px;
overflow:auto}code{font-size:12px}.small{font-size:11px}
@media print{main{max-width:none;padding:0}h2,h3,summary{break-after:avoid;
page-break-after:avoid}tr,svg,.card{break-inside:avoid}thead{display:table-header-group}
.graph{overflow:visible;border:none}.graph svg{max-width:100%;height:auto}
details::details-content{content-visibility:visible;display:block}
section{break-before:auto}.pagebreak{break-before:page}a{color:inherit;text-decoration:none}}
@page{size:A4;margin:14mm 12mm;@bottom-right{content:"page " counter(page) " of " counter(pages);
font-size:9px;color:#5b6475}}
"""

# The page runs nothing and fetches nothing: styles are inline, charts are inline SVG. No
# form may post and no <base> may re-point links, whatever text a hostile input slips in.
_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "form-action 'none'; base-uri 'none'"
)


def _e(value: object) -> str:
    """Every value from a document passes here before it reaches the page, text and
    numbers alike: a count in a hostile result file can be markup."""
    return escape("" if value is None else str(value))


def _badge(status: str) -> str:
    label, css = _STATUS.get(status, (status, "none"))
    return f'<span class="badge {css}">{_e(label)}</span>'


def _sev(severity: str) -> str:
    color = _COLORS.get(str(severity).upper(), _COLORS["INFO"])
    return f'<span class="badge sev" style="background:{color}">{_e(severity)}</span>'


def _bar(counts: Mapping[str, int], width: int = 260, height: int = 14) -> str:
    total = sum(counts.get(s, 0) for s in _SEVERITIES)
    if total == 0:
        return (
            f'<svg width="{width}" height="{height}" role="img" aria-label="no findings">'
            f'<rect width="{width}" height="{height}" rx="3" fill="#e3f4e6"/></svg>'
        )
    x = 0.0
    parts = []
    for s in _SEVERITIES:
        n = counts.get(s, 0)
        if not n:
            continue
        w = width * n / total
        parts.append(
            f'<rect x="{x:.1f}" width="{w:.1f}" height="{height}" fill="{_COLORS[s]}">'
            f"<title>{_e(n)} {s.lower()}</title></rect>"
        )
        x += w
    label = ", ".join(f"{counts.get(s, 0)} {s.lower()}" for s in _SEVERITIES if counts.get(s))
    return f'<svg width="{width}" height="{height}" role="img" aria-label="{_e(label)}">{"".join(parts)}</svg>'


def _table(
    head: Sequence[str],
    rows: Sequence[Sequence[str]],
    numeric: Sequence[int] = (),
    widths: Sequence[int] = (),
) -> str:
    """A table whose cells wrap (long image names, digests, reasons) instead of widening it
    past the page; `widths` are column shares in percent (the rest share what is left)."""
    th = "".join(
        ('<th class="num"' if i in numeric else "<th")
        + (f' style="width:{widths[i]}%"' if i < len(widths) and widths[i] else "")
        + f">{_e(h)}</th>"
        for i, h in enumerate(head)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
            for i, c in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _summary(doc: Mapping[str, Any]) -> str:
    s = doc["summary"]
    layers = doc["layers"]
    cards = [
        f'<div class="card"><div class="muted">Findings (unsuppressed)</div><div class="n">'
        f"{_e(s['findings'])}</div>{_bar(s['by_severity'], 200)}</div>",
        f'<div class="card"><div class="muted">Layers assessed</div><div class="n">'
        f"{_e(len(s['layers_assessed']))} of {_e(len(layers))}</div>"
        + (
            f'<div class="small">not assessed: {_e(", ".join(s["layers_not_assessed"]))}</div>'
            if s["layers_not_assessed"]
            else ""
        )
        + "</div>",
    ]
    controls = doc["controls"]
    not_met = sum(1 for c in controls if c["status"] == "not-met")
    met = sum(1 for c in controls if c["status"] in ("met", "met-with-exceptions"))
    cards.append(
        f'<div class="card"><div class="muted">Controls</div><div class="n">{_e(met)} met</div>'
        f'<div class="small">{_e(not_met)} not met, '
        f"{_e(sum(1 for c in controls if c['status'] == 'not-assessed'))} not assessed</div></div>"
    )
    rows = []
    trend = (doc.get("trend") or {}).get("layers", {})
    for name, layer in layers.items():
        delta = trend.get(name)
        if delta and delta.get("compared"):
            change = delta["findings_now"] - (delta["findings_before"] or 0)
            trend_text = f"{change:+d} since baseline"
        elif doc.get("trend"):
            trend_text = "no baseline for this layer"
        else:
            trend_text = ""
        checks = (
            f"{_e(layer['checks_passed'])} passed / {_e(layer['checks_failed'])} failed"
            if layer["checks_run"] is not None
            else "-"
        )
        rows.append(
            [
                _e(layer["name"]),
                _badge(layer["status"]),
                checks,
                _e(layer["findings"]) if layer["status"] != "not-assessed" else "-",
                _bar(layer["by_severity"], 160) if layer["status"] != "not-assessed" else "",
                _e(layer["suppressed"]),
                _e(trend_text),
            ]
        )
    table = _table(
        ["Layer", "Status", "Checks", "Findings", "By severity", "Suppressed", "Trend"],
        rows,
        numeric=(3, 5),
    )
    return f'<section><h2>Posture by layer</h2><div class="cards">{"".join(cards)}</div>{table}</section>'


def _risks(doc: Mapping[str, Any]) -> str:
    rows = []
    for r in doc["top_risks"][:15]:
        s = r["subject"]
        subject = (
            f"{s['kind']}/{s['namespace']}/{s['name']}"
            if s.get("namespace")
            else f"{s['kind']}/{s['name']}"
        )
        why = "<br>".join(
            f"<b>{_e(c['kind'])}</b> +{_e(format(c['points'], 'g'))}: {_e(c['worst'])}"
            + (
                f' <span class="muted">(and {_e(c["count"] - 1)} more)</span>'
                if c["count"] > 1
                else ""
            )
            for c in r["contributions"]
        )
        if r["reach"]:
            why += "<br><i>" + _e("; ".join(r["reach"])) + "</i>"
        rows.append(
            [
                _e(r["rank"]),
                f"<code>{_e(subject)}</code>",
                _e(format(r["score"], "g")),
                _sev(r["worst"]),
                why,
            ]
        )
    body = (
        _table(
            ["#", "Subject", "Score", "Worst", "Why"],
            rows,
            numeric=(0, 2),
            widths=(5, 24, 8, 12, 0),
        )
        if rows
        else "<p>No unsuppressed finding stands against any workload.</p>"
    )
    return (
        "<section><h2>Top risks</h2>"
        '<p class="muted">Score = (worst config finding + worst image vulnerability + unsigned '
        "image + worst runtime alert) &times; 1.5 if the workload can reach a database port "
        "&times; 1.5 if it accepts connections from outside the cluster. Points: critical 40, "
        "high 25, medium 10, low 3; unsigned 15; a vulnerability without a fix counts half."
        f"</p>{body}</section>"
    )


_GRAPH_COLUMNS = 3
_FINDING_ROWS = 2000  # per layer in the HTML; the JSON document always has every one
_RULE_ROWS = 2000  # runtime rules in the HTML, worst first; the JSON has every one


def _findings(doc: Mapping[str, Any]) -> str:
    findings = doc.get("findings") or []
    if not findings:
        return "<section><h2>Where to fix</h2><p>No finding.</p></section>"
    by_layer: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for f in findings:
        by_layer[str(f["layer"])].append(f)
    parts = []
    for layer, items in by_layer.items():
        live = [f for f in items if not f["suppressed"]]
        name = (doc.get("layers") or {}).get(layer, {}).get("name", layer)
        rows = []
        for f in items[:_FINDING_ROWS]:
            where = _e(f.get("file") or "?") + (f":{_e(f['line'])}" if f.get("line") else "")
            fix = (
                f"<code>{_e(f['fix'])}</code>"
                if f.get("fix")
                else _e(f.get("remediation") or "see the check's documentation")
            )
            rows.append(
                [
                    _sev(f["severity"])
                    + ("<br>" + _badge("met-with-exceptions") if f["suppressed"] else ""),
                    f"<code>{_e(f['check_id'])}</code>",
                    f"<code>{where}</code>",
                    _e(f.get("message")),
                    fix,
                ]
            )
        more = (
            f'<p class="small muted">{_e(len(items) - _FINDING_ROWS)} more in the JSON report.</p>'
            if len(items) > _FINDING_ROWS
            else ""
        )
        parts.append(
            f"<details><summary>{_e(name)}: {_e(len(live))} finding(s)"
            + (f", {_e(len(items) - len(live))} suppressed" if len(items) > len(live) else "")
            + "</summary>"
            + _table(
                ["Severity", "Check", "File:line", "Finding", "Fix"],
                rows,
                widths=(11, 12, 22, 30, 25),
            )
            + more
            + "</details>"
        )
    return (
        "<section><h2>Where to fix</h2>"
        '<p class="muted">Every finding with its file and line, its check, and the command '
        "that fixes it (or what to change where skanse has no fix). Open a layer to see its "
        f"findings.</p>{''.join(parts)}</section>"
    )


def _history_chart(runs: Sequence[Mapping[str, Any]]) -> str:
    """Stacked bars of unsuppressed findings by severity, one per run, oldest left."""
    width, height, pad = 640, 180, 30
    top = max((sum(r["by_severity"].get(s, 0) for s in _SEVERITIES) for r in runs), default=0)
    top = max(top, 1)
    step = (width - 2 * pad) / max(len(runs), 1)
    bar = max(step * 0.6, 4)
    parts = [
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#9aa4b5"/>',
        f'<text x="{pad - 4}" y="{pad}" text-anchor="end" font-size="10">{_e(top)}</text>',
        f'<text x="{pad - 4}" y="{height - pad}" text-anchor="end" font-size="10">0</text>',
    ]
    for i, r in enumerate(runs):
        x = pad + i * step + (step - bar) / 2
        y = float(height - pad)
        for severity in reversed(_SEVERITIES):
            n = r["by_severity"].get(severity, 0)
            if not n:
                continue
            h = (height - 2 * pad) * n / top
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{_COLORS[severity]}"><title>{_e(r["generated"])}: {_e(n)} {severity.lower()}</title></rect>'
            )
        parts.append(
            f'<text x="{x + bar / 2:.1f}" y="{height - pad + 14}" text-anchor="middle" font-size="9">{_e(str(r["generated"])[:10])}</text>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'font-family="DejaVu Sans, sans-serif" role="img" aria-label="findings per run">'
        + "".join(parts)
        + "</svg>"
    )


def _history(doc: Mapping[str, Any]) -> str:
    history = doc.get("history")
    if not history:
        return ""
    runs = history["runs"]

    def listing(title: str, items: Sequence[Mapping[str, Any]]) -> str:
        rows = [
            [
                _sev(f["severity"]),
                f"<code>{_e(f['check_id'])}</code>",
                f"<code>{_e(f.get('file') or '?')}"
                + (f":{_e(f['line'])}" if f.get("line") else "")
                + "</code>",
                _e(f.get("message")),
            ]
            for f in items
        ]
        table = (
            _table(["Severity", "Check", "File:line", "Finding"], rows, widths=(12, 14, 30, 44))
            if rows
            else "<p>None.</p>"
        )
        return f"<details><summary>{_e(title)}: {_e(len(items))}</summary>{table}</details>"

    compared = history.get("compared_with")
    note = (
        f"Compared with run {_e(compared['id'])} of {_e(compared['generated'])}."
        if compared
        else "The first recorded run: every finding is new."
    )
    return (
        "<section><h2>Over time</h2>"
        f'<p class="muted">The last {_e(len(runs))} run(s) of cluster <code>{_e(history["cluster"])}</code> '
        f"in <code>{_e(history['store'])}</code>: unsuppressed findings by severity. {note}</p>"
        f'<div class="graph">{_history_chart(runs)}</div>'
        + listing("New since the previous run", history["new"])
        + listing("Fixed since the previous run", history["fixed"])
        + listing("Still open", history["still_open"])
        + "</section>"
    )


def _graph(doc: Mapping[str, Any]) -> str:
    from skanse.netpol.addresses import graph_label

    net = doc["network"]
    if net["status"] == "not-assessed":
        return (
            "<section><h2>Network reachability</h2><p>"
            + _badge("not-assessed")
            + " no network result was given.</p></section>"
        )
    nodes: dict[str, str] = {}
    edges: set[tuple[str, str, str]] = set()
    for c in net["connections"]:
        src, dst = str(c["src"]), str(c["dst"])
        if src == dst:
            continue
        for end in (src, dst):
            nodes.setdefault(
                end, "external" if end.endswith("[External]") else end.split("/", 1)[0]
            )
        edges.add((src, dst, str(c["conn"])))
    worst = net.get("worst", {})
    findings = net.get("findings", {})
    for label in findings:
        nodes.setdefault(label, label.split("/", 1)[0])
    columns: dict[str, list[str]] = defaultdict(list)
    for label, group in sorted(nodes.items()):
        columns[group].append(label)
    order = sorted(columns, key=lambda g: (g != "external", g))
    width_col, node_h, gap = 230, 34, 14
    pos: dict[str, tuple[float, float]] = {}
    frames = []
    # Namespaces in bands of _GRAPH_COLUMNS columns, so the picture keeps its width (and
    # its text size on an A4 page) however many namespaces there are.
    top = 0.0
    for start in range(0, len(order), _GRAPH_COLUMNS):
        band = order[start : start + _GRAPH_COLUMNS]
        for i, group in enumerate(band):
            x = 20.0 + i * (width_col + 60)
            frames.append(
                f'<text x="{x}" y="{top + 22}" font-weight="bold" fill="#33415c">{_e("outside the cluster" if group == "external" else "namespace " + group)}</text>'
            )
            for j, label in enumerate(columns[group]):
                pos[label] = (x, top + 36 + j * (node_h + gap))
        top += 50 + max(len(columns[g]) for g in band) * (node_h + gap)
    width = 40 + min(len(order), _GRAPH_COLUMNS) * (width_col + 60)
    height = top + 10
    parts = []
    for src, dst, conn in sorted(edges):
        (sx, sy), (dx, dy) = pos[src], pos[dst]
        x1 = float(sx + width_col if dx > sx else sx)
        x2 = float(dx if dx > sx else dx + width_col)
        if abs(sx - dx) < 1:
            x1 = x2 = sx + float(width_col)
            bend = x1 + 30
            path = f"M{x1},{sy + node_h / 2} C{bend},{sy + node_h / 2} {bend},{dy + node_h / 2} {x2},{dy + node_h / 2}"
        else:
            path = f"M{x1},{sy + node_h / 2} L{x2},{dy + node_h / 2}"
        db = dst in net.get("databases", [])
        stroke = "#8e1b1b" if db else "#9aa4b5"
        parts.append(
            f'<path d="{path}" fill="none" stroke="{stroke}" stroke-width="{1.8 if db else 1}" marker-end="url(#arr)"><title>{_e(src)} =&gt; {_e(dst)} : {_e(conn)}</title></path>'
        )
    for label, (x, y) in pos.items():
        severity = worst.get(label)
        color = _COLORS.get(severity, "#2e7d32") if not label.endswith("[External]") else "#5b6475"
        count = len(findings.get(label, []))
        tag = " (database)" if label in net.get("databases", []) else ""
        badge = (
            f'<circle cx="{x + width_col - 14}" cy="{y + node_h / 2}" r="10" fill="{color}"/>'
            f'<text x="{x + width_col - 14}" y="{y + node_h / 2 + 4}" text-anchor="middle" fill="#fff" font-size="10">{_e(count)}</text>'
            if count
            else ""
        )
        parts.append(
            f'<g><title>{_e(label)}: {_e(count)} finding(s){_e(tag)}</title><rect x="{x}" y="{y}" width="{width_col}" height="{node_h}" rx="5" fill="#fff" stroke="{color}" stroke-width="2"/>'
            f'<text x="{x + 8}" y="{y + 21}" fill="#1d2433">{_e(graph_label(label, tag, limit=30))}</text>{badge}</g>'
        )
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="DejaVu Sans, sans-serif" font-size="12" role="img" aria-label="network reachability">'
        '<defs><marker id="arr" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#6b7587"/></marker></defs>'
        + "".join(frames + parts)
        + "</svg>"
    )
    reach = ""
    if net.get("reaches_database"):
        reach += (
            "<p><b>Can reach a database port:</b> "
            + _e(", ".join(net["reaches_database"]))
            + "</p>"
        )
    if net.get("reachable_from_outside"):
        reach += (
            "<p><b>Accept connections from outside the cluster:</b> "
            + _e(", ".join(net["reachable_from_outside"]))
            + "</p>"
        )
    return (
        "<section><h2>Network reachability</h2>"
        '<p class="muted">Every allowed connection between workloads (arrows; red into a database). '
        "Boxes are coloured by the workload's worst unsuppressed finding; the number is its "
        f'finding count.</p><div class="graph">{svg}</div>{reach}</section>'
    )


def _images(doc: Mapping[str, Any]) -> str:
    images = doc["images"]
    if not images:
        return (
            f"<section><h2>Images</h2><p>{_badge('not-assessed')} no image was given.</p></section>"
        )
    rows = []
    for i in images:
        sbom = i.get("sbom") or {}
        vulns = i.get("vulnerabilities")
        by_type = ", ".join(f"{k} {v}" for k, v in (sbom.get("by_type") or {}).items())
        rows.append(
            [
                f'<code>{_e(i["image"])}</code><br><span class="small muted">{_e(i.get("digest") or "")}</span>',
                (f"{_e(sbom.get('packages'))} ({_e(by_type)})" if sbom else "-"),
                (
                    f"{_e(vulns['total'])} ({_e(vulns['fixable'])} fixable)<br>{_bar(vulns['by_severity'], 140)}"
                    if vulns
                    else _badge("not-assessed")
                ),
                _badge(i["signature"]["status"])
                + f'<br><span class="small">{_e(i["signature"].get("reason"))}</span>',
                _e(", ".join(i.get("workloads", [])) or "-"),
            ]
        )
    detail = []
    for i in images:
        vulns = i.get("vulnerabilities") or {}
        if vulns.get("top"):
            detail.append(f"<h3>{_e(i['image'])}</h3>")
            detail.append(
                _table(
                    ["Severity", "Advisory", "Package", "Fixed in"],
                    [
                        [
                            _sev(v.get("ranked_as") or v["severity"])
                            + "".join(
                                f'<br><span class="small muted">{_e(n)}</span>'
                                for n in v.get("rating_notes") or []
                            ),
                            _e(v["id"])
                            + (
                                f' <span class="small muted">{_e(", ".join(v["aliases"][:3]))}</span>'
                                if v["aliases"]
                                else ""
                            ),
                            _e(v["package"]),
                            _e(v.get("fixed_version") or "no fix"),
                        ]
                        for v in vulns["top"]
                    ],
                )
            )
    return (
        "<section><h2>Images: SBOM, vulnerabilities, signatures</h2>"
        + _table(
            ["Image", "Packages", "Vulnerabilities", "Signature", "Run by"],
            rows,
            widths=(28, 14, 20, 20, 18),
        )
        + "".join(detail)
        + "</section>"
    )


def _host(doc: Mapping[str, Any]) -> str:
    host = doc["host"]
    if host["status"] == "not-assessed":
        return f"<section><h2>Host isolation and kernel hardening</h2><p>{_badge('not-assessed')} no host audit was given.</p></section>"
    facts = "".join(
        f"<tr><th>{_e(k)}</th><td>{_e(v).replace(chr(10), '<br>')}</td></tr>"
        for k, v in host["facts"].items()
        if k in ("isolation", "isolation evidence", "profile", "kubelet", "docker", "containerd")
    )
    groups = []
    for key, title in (
        ("isolation", "Kernel isolation"),
        ("kernel", "Kernel parameters"),
        ("kubelet", "Kubelet"),
        ("container_runtime", "Container runtime"),
    ):
        g = host[key]
        groups.append([_e(title), _e(g["checks_run"]), _e(g["passed"]), _e(g["failed"])])
    findings = [
        f
        for key in ("isolation", "kernel", "kubelet", "container_runtime")
        for f in host[key]["findings"]
    ]
    rows = [[_sev(f["severity"]), _e(f["check_id"]), _e(f["message"])] for f in findings[:40]]
    could_not = host.get("could_not_check") or []
    return (
        "<section><h2>Host isolation and kernel hardening</h2>"
        f"<table>{facts}</table>"
        + _table(["Area", "Checks run", "Passed", "Failed"], groups, numeric=(1, 2, 3))
        + (_table(["Severity", "Check", "Finding"], rows) if rows else "")
        + (
            f'<p class="muted">Could not check (not counted as passes): {_e(", ".join(could_not))}</p>'
            if could_not
            else ""
        )
        + "</section>"
    )


def _runtime(doc: Mapping[str, Any]) -> str:
    rt = doc["runtime"]
    if rt["status"] == "not-assessed":
        return f"<section><h2>Runtime alerts</h2><p>{_badge('not-assessed')} no runtime alert log was given.</p></section>"
    prio = ", ".join(f"{k}: {v}" for k, v in rt["by_priority"].items()) or "none"
    rows = [
        [
            _e(r["rule"]),
            _sev(r["severity"]) + f' <span class="small">{_e(r["priority"])}</span>',
            _e(r["count"]),
            _e(", ".join(r["workloads"]) or "-"),
            _e(r.get("first")),
            _e(r.get("last")),
        ]
        for r in rt["rules"][:_RULE_ROWS]
    ]
    more = len(rt["rules"]) - _RULE_ROWS
    return (
        "<section><h2>Runtime alerts</h2>"
        f"<p>{_e(rt['alerts'])} alert(s) by priority: {_e(prio)}</p>"
        + _table(["Rule", "Priority", "Alerts", "Workloads", "First", "Last"], rows, numeric=(2,))
        + (
            f'<p class="small muted">{_e(more)} more rule(s) in the JSON report.</p>'
            if more > 0
            else ""
        )
        + "</section>"
    )


def _suppressions(doc: Mapping[str, Any]) -> str:
    items = doc["suppressions"]
    if not items:
        return "<section><h2>Suppressions</h2><p>No finding is suppressed.</p></section>"
    rows = []
    for s in items:
        if s["expired"]:
            expiry = f'<span class="badge bad">expired {_e(s["expires"])}</span>'
        elif s["expires"]:
            expiry = _e(s["expires"]) + (
                f' <span class="small muted">({_e(s["expires_in_days"])} days left)</span>'
                if s["expires_in_days"] is not None
                else ""
            )
        else:
            expiry = '<span class="muted">no expiry</span>'
        rows.append(
            [
                _e(", ".join(s["checks"])),
                _e(s["reason"]),
                _e(f"{s['source']}: {s['origin']}"),
                expiry,
                _e(s["findings"]),
            ]
        )
    table = _table(["Checks", "Reason", "Declared at", "Expires", "Findings"], rows, numeric=(4,))
    # highlight the rows of expired suppressions (their expiry cell carries the "bad" badge)
    table = table.replace("<tr><td>", '<tr class="row"><td>')
    marked = [
        row.replace('<tr class="row">', '<tr class="expired">', 1)
        if 'badge bad">expired' in row
        else row
        for row in table.split("</tr>")
    ]
    return (
        '<section><h2>Suppressions</h2><p class="muted">Accepted risks with their reason. An '
        "expired suppression no longer applies: its findings are counted again above.</p>"
        + "</tr>".join(marked)
        + "</section>"
    )


def _controls(doc: Mapping[str, Any]) -> str:
    frameworks = doc["frameworks"]
    out = [
        '<section class="pagebreak"><h2>Control view</h2><p class="muted">For each control, the checks that give evidence for it: met when every one ran without an unsuppressed finding, not met when one has findings, not assessed when none ran. '
        "&asymp; marks an approximate mapping (the check covers part of the control or goes beyond it). GDPR Article 32 is the legal anchor: technical checks are evidence towards it, never proof.</p>"
    ]
    by_framework: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for c in doc["controls"]:
        by_framework[c["framework"]].append(c)
    for key, controls in by_framework.items():
        info = frameworks.get(key, {})
        out.append(
            f'<h3>{_e(info.get("name", key))} <span class="muted">{_e(info.get("edition", ""))}</span></h3>'
        )
        rows = []
        for c in controls:
            evidence = "; ".join(
                f"{_e(e['check_id'])}{' &asymp;' if e['approximate'] else ''} "
                + (
                    {
                        "met": "passed",
                        "not-met": f"{_e(e['findings'])} finding(s)",
                        "met-with-exceptions": f"{_e(e['suppressed'])} suppressed",
                        "not-assessed": "not run",
                    }[e["status"]]
                )
                for e in c["evidence"][:8]
            )
            if len(c["evidence"]) > 8:
                evidence += f"; and {_e(len(c['evidence']) - 8)} more checks"
            rows.append(
                [
                    f'<b>{_e(c["control"])}</b><br><span class="small muted">{_e(c["title"])}</span>',
                    _badge(c["status"]),
                    evidence,
                ]
            )
        out.append(_table(["Control", "Status", "Evidence (checks)"], rows))
    out.append("</section>")
    return "".join(out)


def _provenance(doc: Mapping[str, Any]) -> str:
    rows = [
        [
            _e(i["kind"]),
            f"<code>{_e(i['origin'])}</code>",
            _e(i.get("tool_version") or "?"),
            _e(", ".join(i.get("targets") or [])[:200]),
            _e(i.get("finished") or i.get("started") or "?"),
            _e(", ".join(f"{k}={v}" for k, v in (i.get("policy") or {}).items())),
        ]
        for i in doc["inputs"]
    ]
    return (
        '<section><h2>Provenance</h2><p class="muted">What this report was made from: each layer result, '
        "where it came from, which skanse wrote it, what it scanned, when, and with which policy.</p>"
        + _table(
            ["Result", "Source", "skanse", "Scanned", "When", "Policy"],
            rows,
            widths=(14, 18, 8, 22, 14, 24),
        )
        + "".join(f'<p class="small muted">{_e(w)}</p>' for w in doc.get("warnings", []))
        + "</section>"
    )


def render_html(doc: Mapping[str, Any]) -> str:
    """The posture document as a standalone HTML page (UTF-8)."""
    title = _e(doc.get("title") or "Security posture")
    head = (
        f'<h1>{title}</h1><p class="muted">Generated {_e(doc["generated"])} by skanse '
        f"{_e(doc['tool']['version'])} from {_e(len(doc['inputs']))} layer result(s).</p>"
    )
    body = "".join(
        [
            head,
            _summary(doc),
            _risks(doc),
            _history(doc),
            _findings(doc),
            _graph(doc),
            _images(doc),
            _host(doc),
            _runtime(doc),
            _suppressions(doc),
            _controls(doc),
            _provenance(doc),
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        f"<title>{title}</title><style>{_CSS}</style></head><body><main>{body}</main></body></html>\n"
    )
