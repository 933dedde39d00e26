"""Connection lists, explanations and diffs as text, table, JSON, CSV, DOT and SVG.

`txt` is np-guard netpol-analyzer's line format (`src => dst : conns`), so existing scripts
and the analyzer's test outputs compare directly. The SVG is drawn here, without Graphviz:
namespaces are framed boxes in a grid, workloads are boxes inside them, external ranges sit
in a column on the left, and every connection is an arrow labelled with its ports.
"""

from __future__ import annotations

import csv
import enum
import io
import json
import math
from collections.abc import Mapping, Sequence
from typing import assert_never
from xml.sax.saxutils import escape

from skanse.netpol.addresses import graph_label
from skanse.netpol.diff import Change
from skanse.netpol.engine import Connection, Endpoint
from skanse.netpol.explain import Explanation, SideVerdict
from skanse.netpol.model import NetworkModel, Policy, PolicyProblem
from skanse.netpol.ports import ConnSet

__all__ = [
    "ListFormat",
    "render_changes",
    "render_connections",
    "render_explanations",
]

SCHEMA_VERSION = 1


class ListFormat(enum.StrEnum):
    TABLE = "table"
    TXT = "txt"
    JSON = "json"
    CSV = "csv"
    MD = "md"
    DOT = "dot"
    SVG = "svg"


def _ports_json(conns: ConnSet) -> dict[str, list[list[int]]]:
    return {p.value: [[lo, hi] for lo, hi in ranges] for p, ranges in conns.items()}


def _endpoint_json(e: Endpoint) -> dict[str, object]:
    if e.workload is not None:
        w = e.workload
        return {
            "name": e.label,
            "namespace": w.namespace,
            "workload": w.name,
            "kind": w.kind,
            # NetworkPolicy does not police it: its connections are listed as all allowed
            "host_network": _on_host_network(e),
        }
    if e.addresses is not None:
        cidrs = [str(c) for c in e.addresses.cidrs()]
        return {"name": e.label, "external": str(e.addresses), "cidrs": cidrs}
    return {"name": e.label}


def _on_host_network(e: Endpoint) -> bool:
    return e.workload is not None and any(p.host_network for p in e.workload.pods)


def _problems_json(problems: Sequence[PolicyProblem]) -> list[dict[str, object]]:
    out = []
    for p in problems:
        where = p.location
        out.append(
            {
                "file": where.file,
                "line": where.line,
                "pointer": where.pointer,
                "resource": str(p.obj.resource),
                "message": p.message,
            }
        )
    return out


def render_connections(
    fmt: ListFormat,
    connections: Sequence[Connection],
    model: NetworkModel | None = None,
    *,
    provenance: Mapping[str, object] | None = None,
) -> str:
    """`provenance` (tool, targets, generated) goes into the JSON document as it is."""
    match fmt:
        case ListFormat.TXT:
            return "".join(f"{c}\n" for c in connections)
        case ListFormat.TABLE:
            return _table(
                ("SOURCE", "DESTINATION", "CONNECTIONS"),
                [(c.src.label, c.dst.label, str(c.conns)) for c in connections],
            )
        case ListFormat.JSON:
            document = {
                "schema_version": SCHEMA_VERSION,
                "kind": "skanse.netpol-list",
                **(provenance or {}),
                "connections": [
                    {
                        "src": c.src.label,
                        "dst": c.dst.label,
                        "conn": str(c.conns),
                        "source": _endpoint_json(c.src),
                        "destination": _endpoint_json(c.dst),
                        "ports": _ports_json(c.conns),
                    }
                    for c in connections
                ],
                "problems": _problems_json(model.problems) if model is not None else [],
            }
            return json.dumps(document, indent=2) + "\n"
        case ListFormat.CSV:
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(("src", "dst", "conn"))
            writer.writerows((c.src.label, c.dst.label, str(c.conns)) for c in connections)
            return buffer.getvalue()
        case ListFormat.MD:
            lines = ["| src | dst | conn |", "|-----|-----|------|"]
            lines += [f"| {c.src.label} | {c.dst.label} | {c.conns} |" for c in connections]
            return "\n".join(lines) + "\n"
        case ListFormat.DOT:
            return _dot(connections)
        case ListFormat.SVG:
            return _svg(connections)
        case _:
            assert_never(fmt)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.extend(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dot(connections: Sequence[Connection]) -> str:
    namespaces: dict[str, set[Endpoint]] = {}
    external: set[Endpoint] = set()
    for c in connections:
        for e in (c.src, c.dst):
            if e.workload is not None:
                namespaces.setdefault(e.workload.namespace, set()).add(e)
            else:
                external.add(e)
    lines = ["digraph {"]
    for ns in sorted(namespaces):
        lines.append(f"\tsubgraph {_quote('cluster_' + ns)} {{")
        for e in sorted(namespaces[ns]):
            assert e.workload is not None
            label = f"{e.workload.name}[{e.workload.kind}]"
            style = ""
            if _on_host_network(e):  # not policed: marked, dashed
                label += " (hostNetwork)"
                style = ' style="dashed"'
            attributes = f'label={_quote(label)} color="blue" fontcolor="blue"{style}'
            lines.append(f"\t\t{_quote(e.label)} [{attributes}]")
        lines.append(f"\t\tlabel={_quote(ns)}")
        lines.append("\t}")
    for e in sorted(external):
        name = e.label.removesuffix("[External]")
        lines.append(f'\t{_quote(e.label)} [label={_quote(name)} color="red2" fontcolor="red2"]')
    lines.extend(
        f"\t{_quote(c.src.label)} -> {_quote(c.dst.label)} [label={_quote(str(c.conns))} "
        'color="gold2" fontcolor="darkgreen"]'
        for c in connections
    )
    lines.append("}")
    return "\n".join(lines) + "\n"


# SVG geometry (pixels)
_NODE_W, _NODE_H, _GAP = 240, 26, 12
_NS_PAD, _NS_HEAD, _NS_GAP = 14, 28, 60
_MARGIN = 30


def _svg(connections: Sequence[Connection]) -> str:
    namespaces: dict[str, list[Endpoint]] = {}
    external: list[Endpoint] = []
    for c in connections:
        for e in (c.src, c.dst):
            if e.workload is not None:
                members = namespaces.setdefault(e.workload.namespace, [])
                if e not in members:
                    members.append(e)
            elif e not in external:
                external.append(e)
    position: dict[Endpoint, tuple[float, float]] = {}
    frames: list[str] = []
    x0 = _MARGIN
    if external:
        y = _MARGIN + _NS_HEAD
        for e in sorted(external):
            position[e] = (x0, y)
            y += _NODE_H + _GAP
        x0 += _NODE_W + _NS_GAP + 2 * _NS_PAD
    names = sorted(namespaces)
    columns = max(1, math.ceil(math.sqrt(len(names)))) if names else 1
    column_tops = [_MARGIN] * columns
    for i, ns in enumerate(names):
        col = i % columns
        members = sorted(namespaces[ns])
        height = _NS_HEAD + len(members) * (_NODE_H + _GAP) + _NS_PAD
        left = x0 + col * (_NODE_W + 2 * _NS_PAD + _NS_GAP)
        top = column_tops[col]
        frames.append(
            f'<g class="namespace"><rect x="{left}" y="{top}" width="{_NODE_W + 2 * _NS_PAD}" '
            f'height="{height}" rx="8" fill="#f4f6fb" stroke="#7a869a"/>'
            f'<text x="{left + _NS_PAD}" y="{top + 19}" class="ns">{escape(ns)}</text></g>'
        )
        y = top + _NS_HEAD
        for e in members:
            position[e] = (left + _NS_PAD, y)
            y += _NODE_H + _GAP
        column_tops[col] = top + height + _NS_GAP
    width = x0 + columns * (_NODE_W + 2 * _NS_PAD + _NS_GAP) + _MARGIN
    height = max([*column_tops, _MARGIN + _NS_HEAD + len(external) * (_NODE_H + _GAP)]) + _MARGIN

    nodes = []
    for e, (x, top_y) in position.items():
        color = "#b3261e" if e.is_external else "#1a4fa0"
        text = escape(graph_label(e.label))
        title, dash = escape(e.label), ""
        if _on_host_network(e):  # not policed by NetworkPolicy: say so and draw it dashed
            text += " (hostNetwork)"
            title += " (hostNetwork: not isolated by NetworkPolicy)"
            dash = ' stroke-dasharray="4 3"'
        nodes.append(
            f'<g class="node"><title>{title}</title><rect x="{x}" y="{top_y}" '
            f'width="{_NODE_W}" height="{_NODE_H}" rx="4" fill="#ffffff" stroke="{color}"{dash}/>'
            f'<text x="{x + 8}" y="{top_y + 17}" fill="{color}">{text}</text></g>'
        )
    edges = []
    for c in connections:
        sx, sy = position[c.src]
        dx, dy = position[c.dst]
        sy, dy = sy + _NODE_H / 2, dy + _NODE_H / 2
        if abs(sx - dx) < 1:  # same column: bend out to the right
            x1 = x2 = sx + _NODE_W
            bend = x1 + 40 + abs(dy - sy) / 4
            path = f"M{x1},{sy} C{bend},{sy} {bend},{dy} {x2 + 2},{dy}"
            lx, ly = bend - 6, (sy + dy) / 2
        else:
            x1 = sx + _NODE_W if dx > sx else sx
            x2 = dx if dx > sx else dx + _NODE_W
            path = f"M{x1},{sy} L{x2},{dy}"
            lx, ly = (x1 + x2) / 2, (sy + dy) / 2 - 3
        label = escape(str(c.conns))
        edges.append(
            f'<g class="edge"><title>{escape(str(c))}</title>'
            f'<path d="{path}" fill="none" stroke="#c9a227" marker-end="url(#arrow)"/>'
            f'<text x="{lx:.1f}" y="{ly:.1f}" class="conn">{label}</text></g>'
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">\n'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" '
        'markerWidth="8" markerHeight="8" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" fill="#c9a227"/></marker>'
        "<style>.ns{font-weight:bold;fill:#33415c}.conn{fill:#2e6b30;font-size:10px}</style>"
        "</defs>\n"
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>\n'
        + "\n".join(frames + nodes + edges)
        + "\n</svg>\n"
    )


# -- explanations ----------------------------------------------------------------------------


def _where(policy: Policy, pointer: str = "") -> str:
    loc = policy.location(pointer)
    return f"{loc.file}:{loc.line}"


def _side_text(side: SideVerdict, subject: Endpoint, other: Endpoint) -> list[str]:
    verb = "from" if side.direction.value == "Ingress" else "to"
    head = f"{side.direction.value} of {subject.label}"
    if side.unpoliced:
        lines = [f"{head}: not decided by NetworkPolicy ({side.unpoliced}): everything allowed"]
        lines.extend(
            f"  NetworkPolicy {policy.ident} ({_where(policy)}) selects it, to no effect"
            for policy in side.selecting
        )
        return lines
    if not side.isolated:
        return [
            f"{head}: not isolated (no NetworkPolicy of its namespace selects it for "
            f"{side.direction.value}): everything allowed"
        ]
    lines = [
        f"{head}: isolated by {len(side.selecting)} "
        f"polic{'y' if len(side.selecting) == 1 else 'ies'}"
    ]
    for policy in side.selecting:
        lines.append(f"  NetworkPolicy {policy.ident} ({_where(policy)}) selects it")
        for m in side.matches:
            if m.policy is policy:
                allows = str(m.conns) if m.conns else "nothing (its named ports do not resolve)"
                lines.append(
                    f"    {side.direction.value.lower()} rule #{m.rule.index + 1} "
                    f"({_where(policy, m.rule.pointer)}) allows {allows} {verb} {other.label}"
                )
    if not side.matches:
        lines.append(f"  no rule allows anything {verb} {other.label}")
    return lines


def render_explanations(explanations: Sequence[Explanation], as_json: bool = False) -> str:
    if as_json:
        return (
            json.dumps(
                {
                    "schema_version": SCHEMA_VERSION,
                    "explanations": [_explanation_json(e) for e in explanations],
                },
                indent=2,
            )
            + "\n"
        )
    blocks = []
    for e in explanations:
        lines = [f"{e.src.label} => {e.dst.label}"]
        if e.query is not None:
            port = f"{e.query.protocol} {e.query.port}"
            if isinstance(e.query.port, str) and e.ports:
                port += f" ({', '.join(str(p) for p in e.ports)})"
            if not e.ports:
                lines.append(f"{port}: DENIED (the port name does not resolve on the destination)")
            elif e.verdict:
                lines.append(f"{port}: ALLOWED")
            elif e.may_allow:
                open_ports = [p for p in e.ports if e.allowed.contains(e.query.protocol, p)]
                lines.append(
                    f"{port}: ALLOWED on {', '.join(str(p) for p in open_ports)} only; "
                    f"DENIED by {_denied_by(e)} on the others"
                )
            else:
                lines.append(f"{port}: DENIED by {_denied_by(e)}")
        lines.append(f"allowed: {e.allowed}")
        lines.extend(f"note: {note}" for note in e.notes)
        if e.egress is not None:
            lines += _side_text(e.egress, e.src, e.dst)
        elif e.src.is_external:
            lines.append(f"Egress of {e.src.label}: outside the cluster, not policed here")
        if e.ingress is not None:
            lines += _side_text(e.ingress, e.dst, e.src)
        elif e.dst.is_external:
            lines.append(f"Ingress of {e.dst.label}: outside the cluster, not policed here")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def _denied_by(e: Explanation) -> str:
    assert e.query is not None and e.ports
    query = e.query
    sides = [
        side.direction.value.lower()
        for side in (e.egress, e.ingress)
        if side is not None and not all(side.allowed.contains(query.protocol, p) for p in e.ports)
    ]
    return " and ".join(sides) or "nothing"


def _side_json(side: SideVerdict | None) -> dict[str, object] | None:
    if side is None:
        return None
    return {
        "isolated": side.isolated,
        "unpoliced": side.unpoliced or None,
        "allowed": str(side.allowed),
        "policies": [
            {"name": p.ident, "file": p.location().file, "line": p.location().line}
            for p in side.selecting
        ],
        "rules": [
            {
                "policy": m.policy.ident,
                "rule": m.rule.index + 1,
                "file": m.policy.location(m.rule.pointer).file,
                "line": m.policy.location(m.rule.pointer).line,
                "allows": str(m.conns),
            }
            for m in side.matches
        ],
    }


def _explanation_json(e: Explanation) -> dict[str, object]:
    return {
        "src": e.src.label,
        "dst": e.dst.label,
        "allowed": str(e.allowed),
        "query": None if e.query is None else f"{e.query.port}/{e.query.protocol}",
        "verdict": e.verdict,
        "ports": list(e.ports),
        "egress": _side_json(e.egress),
        "ingress": _side_json(e.ingress),
        "notes": list(e.notes),
    }


def render_changes(changes: Sequence[Change], fmt: ListFormat) -> str:
    match fmt:
        case ListFormat.JSON:
            return (
                json.dumps(
                    {
                        "schema_version": SCHEMA_VERSION,
                        "changes": [
                            {
                                "diff_type": c.kind.value,
                                "src": c.src.label,
                                "dst": c.dst.label,
                                "ref1": str(c.old),
                                "ref2": str(c.new),
                                "workloads_diff_info": c.workload_info,
                            }
                            for c in changes
                        ],
                    },
                    indent=2,
                )
                + "\n"
            )
        case ListFormat.CSV:
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(
                ("diff-type", "source", "destination", "ref1", "ref2", "workloads-diff-info")
            )
            writer.writerows(
                (c.kind.value, c.src.label, c.dst.label, str(c.old), str(c.new), c.workload_info)
                for c in changes
            )
            return buffer.getvalue()
        case ListFormat.TABLE:
            return _table(
                ("CHANGE", "SOURCE", "DESTINATION", "BEFORE", "AFTER"),
                [(c.kind.value, c.src.label, c.dst.label, str(c.old), str(c.new)) for c in changes],
            )
        case _:
            return "Connectivity diff:\n" + "".join(f"{c}\n" for c in changes)
