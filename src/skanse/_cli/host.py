"""`skanse host audit`: kernel parameters, kubelet, container runtime and isolation of a host."""

from __future__ import annotations

import argparse
import os
import sys

from skanse._cli._common import (
    Settings,
    add_result_arguments,
    conclude,
    emit,
    load_config_for,
    print_notes,
    report_info,
    result_settings,
)

__all__ = ["add_arguments", "run"]

FORMATS = ("text", "json", "sarif", "junit")
PROFILES = ("generic", "k8s-node", "container-node")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Audit a host the way kube-bench, docker-bench and Lynis do together."
    sub = parser.add_subparsers(dest="host_command", metavar="COMMAND")
    audit = sub.add_parser(
        "audit",
        help="check sysctls, kubelet, Docker/containerd and kernel isolation",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Check a host's kernel parameters, kubelet, container runtime and isolation.\n\n"
            "  skanse host audit                               # this machine\n"
            "  skanse host audit --profile k8s-node --cis k8s-1.30\n"
            "  skanse host audit --root /mnt/node -f sarif -o host.sarif\n"
            "  skanse host audit --fix-file /etc/sysctl.d/99-skanse.conf --apply\n\n"
            "Every check reads through --root, /proc and /sys included. A check that cannot\n"
            "read what it needs is listed under 'Could not check' with the reason (run as\n"
            "root for all of them); a check whose subject does not exist here (a sysctl the\n"
            "kernel lacks, no Docker) is 'not applicable' (-v lists them)."
        ),
    )
    audit.add_argument(
        "--root", default="/", metavar="DIR", help="the host's root directory (default: /)"
    )
    audit.add_argument(
        "--profile",
        choices=PROFILES,
        default="generic",
        help="generic: a hardened host; k8s-node: accept what a Kubernetes node needs and "
        "check the kubelet's protectKernelDefaults values; container-node: a Docker or "
        "Podman host, which keeps unprivileged user namespaces (rootless runtimes, "
        "hostUsers: false) and IP forwarding (bridge networks) (default: generic)",
    )
    audit.add_argument(
        "--cis",
        metavar="VERSION",
        default=None,
        help="CIS Kubernetes Benchmark whose ids findings name: cis-1.23, cis-1.24, "
        "cis-1.10, cis-1.11, cis-1.12, or a Kubernetes version such as k8s-1.30 "
        "(default: cis-1.12)",
    )
    audit.add_argument(
        "--fix-file",
        metavar="FILE",
        default=None,
        help="write a sysctl.d file fixing every failing sysctl to FILE, and the kubelet and "
        "daemon.json fixes next to it (FILE.kubelet.yaml, FILE.daemon.json)",
    )
    audit.add_argument(
        "--apply",
        action="store_true",
        help="also apply the sysctl fixes now (sysctl -p FILE), after writing a backup of "
        "the current values next to FILE; needs --fix-file",
    )
    audit.add_argument(
        "-v", "--verbose", action="store_true", help="also list the checks that do not apply"
    )
    add_result_arguments(
        audit,
        formats=FORMATS,
        strict_help="exit 2 if any check could not be run",
        config_help="read suppressions and settings from FILE (default: .skanse.yaml found upward)",
    )
    listing = sub.add_parser("checks", help="list the host checks with severity and aliases")
    listing.add_argument("-f", "--format", choices=("text", "json"), default="text")


def run(args: argparse.Namespace) -> int:
    command = getattr(args, "host_command", None)
    if command == "checks":
        return _checks(args)
    if command != "audit":
        from skanse.errors import UsageError

        raise UsageError("usage: skanse host {audit,checks} [options]; see skanse host --help")
    return _audit(args)


def _checks(args: argparse.Namespace) -> int:
    import json

    from rich.console import Console
    from rich.table import Table

    from skanse.host.checks._all import HOST_REGISTRY

    checks = HOST_REGISTRY.all()
    if args.format == "json":
        rows = [
            {
                "id": c.id,
                "title": c.meta.title,
                "severity": c.meta.severity.value,
                "aliases": list(c.meta.aliases),
                "fixable": c.meta.fixable,
            }
            for c in checks
        ]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return 0
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("ID", "SEVERITY", "TITLE", "ALIASES"):
        table.add_column(column, overflow="fold")
    for c in checks:
        table.add_row(c.id, c.meta.severity.value, c.meta.title, ", ".join(c.meta.aliases))
    Console(highlight=False).print(table)
    return 0


def _audit(args: argparse.Namespace) -> int:
    from rich.console import Console

    from skanse.errors import HostFactError, UsageError
    from skanse.host.audit import audit_host
    from skanse.host.checks._all import HOST_REGISTRY
    from skanse.host.cis import DEFAULT_BENCHMARK, parse_benchmark
    from skanse.host.facts import AuditContext, HostProfile
    from skanse.host.remediation import apply_sysctls, write_fix_files
    from skanse.host.root import HostRoot
    from skanse.report import Format, render
    from skanse.results import EXIT_ERROR

    if args.apply and not args.fix_file:
        raise UsageError("--apply needs --fix-file FILE (the sysctl file it applies)")
    loaded = load_config_for(args, ["."])
    settings = Settings(args, os.environ, loaded.file, str(loaded.path))
    results = result_settings(settings)
    fmt = settings.get("format", Format, Format.TEXT)
    benchmark = parse_benchmark(args.cis) if args.cis else DEFAULT_BENCHMARK

    root = HostRoot(args.root)
    ctx = AuditContext(profile=HostProfile(args.profile), benchmark=benchmark)
    report = audit_host(root, ctx)
    conclusion = conclude(report.result, loaded, HOST_REGISTRY.resolve, results)
    reported, outcome = conclusion.reported, conclusion.outcome
    info = report_info(
        outcome.exit_code, results.output, verbose=args.verbose, kind="skanse.host-audit"
    )
    emit(render(fmt, reported, info), results.output)

    err = Console(file=sys.stderr, highlight=False, soft_wrap=True)
    code = outcome.exit_code
    if args.fix_file:
        # fix what the report shows: unsuppressed findings within --severity
        live = {f.check_id for f in reported.findings if not f.suppressed}
        fixes = [p for p in report.fixes if p.check_id in live]
        try:
            docker_config = dict(report.facts.docker().daemon_json)
        except HostFactError:
            docker_config = None
        written = write_fix_files(
            args.fix_file, fixes, profile=ctx.profile.value, docker_config=docker_config
        )
        for label, path in (
            ("sysctl fixes", written.sysctl),
            ("kubelet config fixes", written.kubelet),
            ("daemon.json with fixes", written.docker),
        ):
            if path is not None:
                err.print(f"wrote {label} to {path}", markup=False)
        if not fixes:
            err.print("nothing to fix: no fix file written", markup=False)
        if args.apply:
            if written.sysctl is None:
                err.print("--apply: no failing sysctl to apply", markup=False)
            else:
                applied = apply_sysctls(root, written.sysctl, backup_dir=written.sysctl.parent)
                err.print(f"backup of the previous values: {applied.backup}", markup=False)
                err.print(
                    f"applied {len(applied.applied)} setting(s) from {written.sysctl}",
                    markup=False,
                )
                for key, reason in applied.failed:
                    err.print(f"error: could not set {key}: {reason}", markup=False, style="red")
                if applied.failed:
                    code = EXIT_ERROR
    print_notes(conclusion, quiet=args.quiet)
    return code
