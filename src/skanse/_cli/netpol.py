"""`skanse netpol list | explain | diff | generate`: what NetworkPolicies really allow."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from skanse._cli import shown
from skanse._cli._common import emit

if TYPE_CHECKING:
    from skanse.netpol.model import NetworkModel

__all__ = ["add_arguments", "run"]

LIST_FORMATS = ("table", "txt", "json", "csv", "md", "dot", "svg")
DIFF_FORMATS = ("txt", "table", "json", "csv")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--namespace",
        metavar="NS",
        default="default",
        help="namespace of objects that name none (default: default)",
    )
    parser.add_argument(
        "--max-file-size",
        metavar="MIB",
        type=int,
        default=32,
        help="skip files larger than this many MiB, as a problem (default: 32)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit 2 if any input or policy could not be used"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no warnings on standard error")


def _output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        default=None,
        help="write to FILE (atomically) instead of standard output",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Compute what Kubernetes NetworkPolicies really allow, explain why, compare two\n"
        "versions, and generate default-deny plus allow policies from a service graph.\n\n"
        "  skanse netpol list deploy/\n"
        "  kubectl get ns,pods,netpol -A -o json | skanse netpol list - -f svg -o graph.svg\n"
        "  skanse netpol explain deploy/ shop/frontend shop/db:5432/TCP\n"
        "  skanse netpol diff old/ new/\n"
        "  skanse netpol generate graph.yaml deploy/ -o policies.yaml"
    )
    sub = parser.add_subparsers(dest="netpol_command", metavar="SUBCOMMAND", required=True)

    p = sub.add_parser("list", help="every allowed connection between workloads and addresses")
    p.description = (
        "List every allowed connection between workloads, and to and from addresses outside\n"
        "the cluster, per protocol and port. Formats: table, txt (np-guard netpol-analyzer\n"
        "lines), json, csv, md, dot (Graphviz) and svg (a picture of the graph)."
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="manifests: files, dirs or -")
    p.add_argument("-f", "--format", choices=LIST_FORMATS, default="table")
    p.add_argument(
        "--focus",
        metavar="WORKLOAD",
        default=None,
        help="only connections from or to this workload (ns/name, ns/name[Kind] or name)",
    )
    _output(p)
    _common(p)

    p = sub.add_parser("explain", help="why one connection is allowed or denied")
    p.description = (
        "Explain one connection: allowed or denied, and the policies and rules (file and\n"
        "line) that decide it on the egress and the ingress side.\n\n"
        "SRC and DST are workloads (ns/name, ns/name[Kind], name), IP addresses or CIDRs;\n"
        "SRC may be `node` (traffic from the pod's own node). DST may end in :PORT[/PROTO]\n"
        "with a number or a named port (IPv6: [2001:db8::1]:443)."
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="manifests: files, dirs or -")
    p.add_argument("src", metavar="SRC")
    p.add_argument("dst", metavar="DST[:PORT[/PROTO]]")
    p.add_argument("--json", action="store_true", help="JSON instead of text")
    p.add_argument(
        "--expect",
        choices=("allow", "deny"),
        default=None,
        help="exit 1 unless the connection is allowed (allow) or denied (deny); without a "
        "port, allowed means any port is open. For tests of policies in CI",
    )
    _common(p)

    p = sub.add_parser("diff", help="connections added, removed and changed between versions")
    p.description = (
        "Compare the connections allowed by two versions (files or directories).\n"
        "Exit status: 0 no difference, 1 differences, 2 error (like diff(1))."
    )
    p.add_argument("old", metavar="OLD")
    p.add_argument("new", metavar="NEW")
    p.add_argument("-f", "--format", choices=DIFF_FORMATS, default="txt")
    _output(p)
    _common(p)

    p = sub.add_parser("generate", help="default-deny and allow policies from a service graph")
    p.description = (
        "Write default-deny, DNS and minimal allow policies for the workloads of a declared\n"
        "service graph, then prove them: `list` on manifests plus policies must equal the\n"
        "declaration plus DNS, or nothing is written (exit 2).\n\n"
        "External peers: {cidrs: [...]}, {countries: [NO, SE]} with --rir FILE (an RIR\n"
        "delegated statistics file; {countries: []} takes --allow-country), or\n"
        "{cidr-file: FILE} (one CIDR a line, e.g. an exchange point's peering prefixes)."
    )
    p.add_argument("graph", metavar="GRAPH", help="the service graph (YAML)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="manifests with the workloads")
    p.add_argument("--rir", metavar="FILE", action="append", default=[], help="RIR delegated file")
    p.add_argument(
        "--allow-country",
        metavar="CC,..",
        default="",
        help="countries for {countries: []} peers (ISO codes: NO,SE)",
    )
    p.add_argument(
        "--node-local-dns",
        action="store_true",
        help="also allow NodeLocal DNSCache (169.254.20.10) on UDP and TCP 53",
    )
    p.add_argument(
        "--max-ip-blocks",
        metavar="N",
        type=int,
        default=None,
        help="warn about a policy with more than N ipBlocks after aggregation (default: "
        "1000); many CNIs slow down with thousands",
    )
    _output(p)
    _common(p)


def _load(args: argparse.Namespace, paths: list[str], stdin: bytes | None) -> NetworkModel:
    from skanse.netpol.load import load_model
    from skanse.sources.manifests import ReadLimits

    limits = ReadLimits(max_file_bytes=args.max_file_size * 1024 * 1024)
    return load_model(paths, stdin=stdin, default_namespace=args.namespace, limits=limits)


def _stdin(paths: list[str], args: argparse.Namespace) -> bytes | None:
    if "-" in paths:
        data: bytes = sys.stdin.buffer.read(args.max_file_size * 1024 * 1024 + 1)
        return data
    return None


def _report(model: NetworkModel, args: argparse.Namespace, label: str = "") -> bool:
    """Print what could not be used; True when something could not."""
    prefix = f"{label}: " if label else ""
    troubles = False
    for problem in model.input_problems:
        troubles = True
        if not args.quiet:
            where = f"{problem.file}:{problem.line}" if problem.line else problem.file
            print(f"skanse: {shown(f'{prefix}{where}: {problem.message}')}", file=sys.stderr)
    for policy_problem in model.problems:
        troubles = True
        if not args.quiet:
            print(f"skanse: {shown(f'{prefix}{policy_problem}')}", file=sys.stderr)
    if not args.quiet:
        for warning in model.warnings:
            print(f"skanse: warning: {shown(f'{prefix}{warning}')}", file=sys.stderr)
    return troubles


def _nothing_read(model: NetworkModel) -> bool:
    return not model.workloads and not model.policies and bool(model.input_problems)


def run(args: argparse.Namespace) -> int:
    runner = {
        "list": _run_list,
        "explain": _run_explain,
        "diff": _run_diff,
        "generate": _run_generate,
    }
    return runner[args.netpol_command](args)


def _run_list(args: argparse.Namespace) -> int:
    from skanse.errors import InputError, UsageError
    from skanse.netpol.engine import analyse
    from skanse.netpol.render import ListFormat, render_connections

    model = _load(args, args.paths, _stdin(args.paths, args))
    troubles = _report(model, args)
    if _nothing_read(model):
        raise InputError("no input could be read")
    connections = analyse(model).connections()
    if args.focus:
        found = model.find_workload(args.focus)
        if not found:
            raise UsageError(f"--focus: no workload {args.focus!r} in the inputs")
        labels = {w.ident for w in found}
        connections = [c for c in connections if c.src.label in labels or c.dst.label in labels]
    import datetime as dt

    from skanse import __version__

    provenance = {
        "tool": {"name": "skanse", "version": __version__},
        "targets": list(args.paths),
        "generated": dt.datetime.now(dt.UTC).isoformat(),
    }
    text = render_connections(ListFormat(args.format), connections, model, provenance=provenance)
    emit(_shown_document(text), args.output)
    return 2 if troubles and args.strict else 0


def _run_explain(args: argparse.Namespace) -> int:
    from skanse.errors import InputError
    from skanse.netpol.explain import explain, parse_target
    from skanse.netpol.render import render_explanations

    model = _load(args, args.paths, _stdin(args.paths, args))
    troubles = _report(model, args)
    if _nothing_read(model):
        raise InputError("no input could be read")
    src, _ = parse_target(model, args.src)
    dst, query = parse_target(model, args.dst, allow_port=True)
    explanations = explain(model, src, dst, query)
    sys.stdout.write(_shown_document(render_explanations(explanations, as_json=args.json)))
    if troubles and args.strict:
        return 2
    if args.expect is not None:
        # An allow must prove every port (a named port can stand for several) of every part;
        # a deny must rule out each of them.
        proven = [e.allows for e in explanations]
        possible = [e.may_allow for e in explanations]
        met = all(proven) if args.expect == "allow" else not any(possible)
        if not met:
            found = "denied"
            if all(proven):
                found = "allowed"
            elif any(possible):
                found = "allowed for some of the pods, addresses or ports only"
            reasons = dict.fromkeys(r for e in explanations for r in e.unpoliced)
            if reasons and args.expect == "deny":
                found += ", and a deny cannot be guaranteed: " + "; ".join(reasons)
            print(
                f"skanse: expected {args.src} -> {args.dst} to be "
                f"{'allowed' if args.expect == 'allow' else 'denied'}; it is {found}",
                file=sys.stderr,
            )
            return 1
    return 0


def _run_diff(args: argparse.Namespace) -> int:
    from skanse.errors import InputError, UsageError
    from skanse.netpol.diff import diff_connections
    from skanse.netpol.engine import analyse
    from skanse.netpol.render import ListFormat, render_changes

    if args.old == "-" and args.new == "-":
        raise UsageError("only one of OLD and NEW can be standard input")
    data = _stdin([args.old, args.new], args)
    old = _load(args, [args.old], data if args.old == "-" else None)
    new = _load(args, [args.new], data if args.new == "-" else None)
    troubles = _report(old, args, args.old) | _report(new, args, args.new)
    if _nothing_read(old) or _nothing_read(new):
        raise InputError("an input could not be read")
    changes = diff_connections(
        analyse(old).connections(),
        analyse(new).connections(),
        [w.ident for w in old.workloads],
        [w.ident for w in new.workloads],
    )
    emit(_shown_document(render_changes(changes, ListFormat(args.format))), args.output)
    if troubles and args.strict:
        return 2
    return 1 if changes else 0


def _run_generate(args: argparse.Namespace) -> int:
    from collections.abc import Sequence

    from skanse.errors import GraphError, InputError
    from skanse.model import InputProblem
    from skanse.netpol.addresses import IpNetwork
    from skanse.netpol.generate import generate, parse_graph
    from skanse.netpol.load import read_objects
    from skanse.netpol.rir import RirError, country_cidrs, parse_cidr_list, parse_delegated
    from skanse.sources.files import read_file
    from skanse.sources.manifests import ReadLimits

    limit = args.max_file_size * 1024 * 1024

    def read_text(path: str) -> str:
        # The reader of every other input: a regular file within --max-file-size only, so a
        # device (/dev/zero) or a huge file is refused instead of read into memory.
        data = read_file(path, limit)
        if isinstance(data, InputProblem):
            raise InputError(f"{path}: {data.message}")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{path}: not UTF-8 text") from None

    graph = parse_graph(read_text(args.graph), args.graph)
    limits = ReadLimits(max_file_bytes=limit)
    read = read_objects(args.paths, stdin=_stdin(args.paths, args), limits=limits)
    if read.problems:
        for problem in read.problems:
            print(f"skanse: {shown(f'{problem.file}: {problem.message}')}", file=sys.stderr)
        raise InputError("some manifests could not be read; nothing was generated")
    records = []
    for path in args.rir:
        try:
            records += parse_delegated(read_text(path), path)
        except RirError as exc:
            raise InputError(str(exc)) from None
    cli_countries = [c for c in args.allow_country.split(",") if c.strip()]

    def countries(names: Sequence[str]) -> list[IpNetwork]:
        chosen = list(names) or cli_countries
        if not args.rir:
            raise GraphError("countries need an RIR delegated file: --rir FILE")
        if not chosen:
            raise GraphError("a {countries: []} peer needs --allow-country")
        found = country_cidrs(records, chosen)
        if not found:
            raise GraphError(f"no address ranges for {','.join(chosen)} in the RIR files")
        return found

    def cidr_file(path: str) -> list[IpNetwork]:
        full = _beside(args.graph, path)
        try:
            return parse_cidr_list(read_text(full), full)
        except RirError as exc:
            raise InputError(str(exc)) from None

    result = generate(
        graph,
        read.objects,
        default_namespace=args.namespace,
        countries=countries,
        read_cidr_file=cidr_file,
        node_local_dns=args.node_local_dns,
        **({} if args.max_ip_blocks is None else {"max_ip_blocks": args.max_ip_blocks}),
    )
    emit(result.text, args.output)
    if not args.quiet:
        for warning in result.warnings:
            print(f"skanse: warning: {shown(warning)}", file=sys.stderr)
    if not args.quiet:
        print(
            f"skanse: {result.policies} policies for namespace(s) {', '.join(result.namespaces)}; "
            f"proven: they allow exactly the {len(result.connections)} declared connections "
            "plus DNS",
            file=sys.stderr,
        )
    return 0


def _beside(graph: str, path: str) -> str:
    """A graph's `cidr-file` as a path inside the graph file's directory.

    The graph may come from a repository under review: it names lists next to it, never
    another file of the machine (an absolute path, `..`, or a symlink out of the directory).
    """
    from pathlib import Path

    from skanse.errors import GraphError

    base = Path(graph).parent.resolve()
    relative = Path(path)
    if not path or relative.is_absolute() or ".." in relative.parts:
        raise GraphError(
            f"cidr-file {path!r} must be a relative path inside the graph file's directory"
        )
    full = (base / relative).resolve()
    if not full.is_relative_to(base):
        raise GraphError(f"cidr-file {path!r} leads out of the graph file's directory")
    return str(full)


def _shown_document(text: str) -> str:
    """A connection list, explanation or diff with the manifests' names in it shown, not
    obeyed: control characters escaped (line breaks and tabs are the layout's). JSON escapes
    them itself; names of real objects are DNS labels and never change."""
    from skanse.printable import printable

    return printable(text, keep_newlines=True)
