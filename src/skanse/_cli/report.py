# ruff: noqa: E501  (argparse help texts)
"""`skanse report`: one posture report across every layer (HTML, JSON, PDF)."""

from __future__ import annotations

import argparse
import sys

from skanse._cli import shown
from skanse._cli._common import load_policy_dirs
from skanse._cli._signing import add_registry_options

__all__ = ["add_arguments", "run"]

FORMATS = ("html", "json", "pdf")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Gather every layer into one posture report: run the layers here, or combine the\n"
        "JSON results that other jobs saved (skanse scan/host audit/vuln/verify/netpol list\n"
        "-f json, runtime alerts as JSON lines). A layer that is not given is shown as\n"
        "'not assessed', never as passing.\n\n"
        "  skanse report --manifests deploy/ --dockerfiles . --host -o posture.html\n"
        "  skanse report --image reg/app:1.0 --db vuln.db --key cosign.pub --alerts alerts.jsonl\n"
        "  skanse report results/*.json -f pdf -o posture.pdf --baseline last-month.json\n\n"
        "Exit status: 0 the report was written; 2 an input could not be used."
    )
    parser.add_argument(
        "results",
        nargs="*",
        metavar="RESULT",
        help="saved layer results (-f json outputs, runtime alert JSON lines)",
    )
    run = parser.add_argument_group("layers to run here")
    run.add_argument(
        "--manifests",
        metavar="PATH",
        action="append",
        default=[],
        help="Kubernetes manifests: skanse scan (repeatable)",
    )
    run.add_argument(
        "--policy",
        metavar="DIR",
        action="append",
        default=None,
        help="ValidatingAdmissionPolicies to check the manifests against, beside the "
        "built-in checks (repeatable)",
    )
    run.add_argument(
        "--dockerfiles",
        metavar="PATH",
        action="append",
        default=[],
        help="Dockerfiles or directories: skanse scan (repeatable)",
    )
    run.add_argument(
        "--netpol",
        metavar="PATH",
        action="append",
        default=[],
        help="manifests with NetworkPolicies: skanse netpol list (default: the --manifests paths)",
    )
    run.add_argument(
        "--image",
        metavar="REF",
        action="append",
        default=[],
        help="an image: its SBOM, vulnerabilities (--db) and signatures (--key); repeatable",
    )
    run.add_argument(
        "--db",
        metavar="PATH",
        default=None,
        help="vulnerability database for --image (default: $SKANSE_DB or the cache; none: no matching)",
    )
    run.add_argument(
        "--key",
        metavar="PUB",
        action="append",
        default=[],
        help="public key that must have signed each --image (repeatable)",
    )
    run.add_argument("--host", action="store_true", help="audit this host (skanse host audit)")
    run.add_argument(
        "--host-root", metavar="DIR", default="/", help="the root --host audits (default: /)"
    )
    run.add_argument(
        "--host-profile", choices=("generic", "k8s-node", "container-node"), default="generic"
    )
    run.add_argument(
        "--rules",
        metavar="FILE",
        action="append",
        default=[],
        help="runtime rules to replay --events with",
    )
    run.add_argument(
        "--events", metavar="FILE", default=None, help="recorded events to replay against --rules"
    )
    run.add_argument(
        "--alerts",
        metavar="FILE",
        action="append",
        default=[],
        help="runtime alerts, Falco JSON lines (skanse runtime replay -f jsonl, the sensor, Falco)",
    )
    parser.add_argument(
        "-f", "--format", choices=FORMATS, default="html", help="output format (default: html)"
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        default=None,
        help="write here (atomically); required for pdf",
    )
    parser.add_argument(
        "--baseline",
        metavar="REPORT",
        default=None,
        help="a previous skanse report -f json, for trends",
    )
    parser.add_argument("--title", default="Security posture", help="the report's title")
    history = parser.add_argument_group("history (evidence over time, GDPR Art. 32(1)(d))")
    history.add_argument(
        "--history",
        metavar="N",
        nargs="?",
        type=int,
        const=10,
        default=None,
        help="record this run in the history store and show the trend over the last N runs "
        "(default 10): new, fixed and still-open findings, and a chart in the HTML",
    )
    history.add_argument(
        "--history-store",
        metavar="URL",
        default=None,
        help="SQLite file or postgresql:// URL (default: $SKANSE_HISTORY, else "
        "~/.local/share/skanse/history.sqlite)",
    )
    history.add_argument(
        "--cluster",
        metavar="NAME",
        default="default",
        help="whose runs these are, when several clusters report to one store (default: default)",
    )
    add_registry_options(parser)
    parser.add_argument("--cache-dir", metavar="DIR", default=None, help="image blob cache")
    config = parser.add_mutually_exclusive_group()
    config.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="suppressions and settings (default: .skanse.yaml found upward)",
    )
    config.add_argument("--no-config", action="store_true", help="ignore .skanse.yaml")
    parser.add_argument("-q", "--quiet", action="store_true", help="no notes on standard error")


def run(args: argparse.Namespace) -> int:
    import json
    import os
    from pathlib import Path

    from skanse import __version__
    from skanse._cli._common import emit, load_config_for
    from skanse.errors import ReportInputError, UsageError
    from skanse.report.posture import collect
    from skanse.report.posture.build import build_posture
    from skanse.report.posture.documents import load_result_file

    if args.format == "pdf" and not args.output:
        raise UsageError("-f pdf needs -o FILE (a PDF is not written to a terminal)")
    if args.events and not args.rules:
        raise UsageError("--events needs --rules FILE")
    for option, value in (("--title", args.title), ("--cluster", args.cluster)):
        try:  # bytes that are not UTF-8 come from argv as lone surrogates, which no page holds
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise UsageError(f"{option} must be UTF-8 text") from None
    inputs = list(dict.fromkeys([*args.manifests, *args.dockerfiles]))
    loaded = load_config_for(args, inputs or ["."])

    documents = [load_result_file(Path(p)) for p in args.results]
    documents += [load_result_file(Path(p)) for p in args.alerts]
    baseline = None
    if args.baseline:
        base = load_result_file(Path(args.baseline))
        if base.kind != "skanse.posture":
            raise ReportInputError(
                f"{args.baseline}: a baseline must be a skanse report -f json, not {base.kind}"
            )
        baseline = base.data
    for doc in documents:
        if doc.kind == "skanse.posture":
            raise ReportInputError(
                f"{doc.origin}: a posture report is not a layer result (use --baseline)"
            )
    if inputs:
        documents.append(collect.run_scan(inputs, loaded, load_policy_dirs(args.policy)))
    netpol_paths = args.netpol or args.manifests
    if netpol_paths:
        documents.append(collect.run_netpol(netpol_paths))
    if args.image:
        from skanse.vuln.db import default_database_path

        named = args.db or os.environ.get("SKANSE_DB")
        db = Path(args.db) if args.db else default_database_path()
        # none named and none in the cache: the SBOM and signatures, no vulnerability matching
        database = db if named or db.exists() else None
        options = collect.ImageOptions(
            database=database,
            keys=tuple(args.key),
            plain_http=frozenset(args.plain_http),
            ca_certs=args.ca_certs,
            docker_config=args.docker_config,
            cache_dir=args.cache_dir,
        )
        documents += collect.run_images(args.image, options, loaded)
    if args.host:
        documents.append(collect.run_host(args.host_root, loaded, profile=args.host_profile))
    if args.events:
        documents.append(collect.run_replay(args.events, args.rules))
    if not documents:
        raise UsageError("nothing to report: give results files or layers to run (see --help)")

    posture = build_posture(
        documents, tool_version=__version__, title=args.title, baseline=baseline
    )
    if args.history is not None:
        from skanse.report.history import MAX_RUNS, open_history, trend

        if not 2 <= args.history <= MAX_RUNS:
            raise UsageError(f"--history N needs at least 2 runs to compare, at most {MAX_RUNS}")
        from skanse.report.posture.build import attach_history

        with open_history(args.history_store) as store:
            run = store.record(posture, args.cluster)
            attach_history(posture, trend(store, args.cluster, args.history))
        if not args.quiet:
            seen = posture["history"]
            sys.stderr.write(
                f"history: run {run.id} of cluster {args.cluster} in {seen['store']}; "
                f"{len(seen['new'])} new, {len(seen['fixed'])} fixed, "
                f"{len(seen['still_open'])} still open since the previous run\n"
            )
    if args.format == "json":
        # no NaN or Infinity (not JSON): the input refuses them, this is the last guard
        payload: str | bytes = (
            json.dumps(posture, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
        )
    else:
        from skanse.report.posture.html import render_html

        html = render_html(posture)
        if args.format == "pdf":
            from skanse.report.posture.pdf import render_pdf

            payload = render_pdf(html)
        else:
            payload = html
    emit(payload, args.output)  # a PDF always has -o (checked above)
    if not args.quiet:
        summary = posture["summary"]
        missing = summary["layers_not_assessed"]
        sys.stderr.write(
            f"posture: {summary['findings']} finding(s) across {len(summary['layers_assessed'])} "
            f"layer(s)" + (f"; not assessed: {', '.join(missing)}" if missing else "") + "\n"
        )
        for problems in (layer["problems"] for layer in posture["layers"].values()):
            for problem in problems[:10]:
                sys.stderr.write(f"  could not check: {shown(str(problem))}\n")
    return 0
