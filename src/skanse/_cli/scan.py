"""`skanse scan`: check manifests, report findings, exit 0/1/2."""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from typing import TYPE_CHECKING

from skanse._cli._common import (
    Settings,
    add_result_arguments,
    conclude,
    emit,
    load_config_for,
    load_policy_dirs,
    names,
    print_notes,
    progress_line,
    report_info,
    result_settings,
)

if TYPE_CHECKING:
    from skanse.scan import ScanOptions

__all__ = ["add_arguments", "run", "scan_options"]

PROFILES = ("pss-baseline", "pss-restricted", "zero-trust")
FORMATS = ("text", "json", "sarif", "junit", "policyreport")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Check Kubernetes manifests and Dockerfiles (files, directories, or - for standard\n"
        "input) against the Pod Security Standards and skanse's zero-trust standard.\n\n"
        "  skanse scan deploy/\n"
        "  helm template chart/ | skanse scan - --format sarif -o skanse.sarif\n"
        "  skanse scan --pss baseline@v1.29 k8s/        # PSS baseline at policy v1.29\n\n"
        "Every setting can also come from SKANSE_<NAME> (SKANSE_FAIL_ON=high) or from\n"
        ".skanse.yaml, found upward from the first path; flags win over both."
    )
    parser.add_argument(
        "paths",
        nargs="*",
        default=None,
        metavar="PATH",
        help="files or directories to scan; - reads standard input (default: .)",
    )
    parser.add_argument(
        "--profile",
        choices=PROFILES,
        default=None,
        help="checks to run (default: zero-trust; with only --pss: that level)",
    )
    parser.add_argument(
        "--pss",
        metavar="LEVEL[@VERSION]",
        default=None,
        help="Pod Security level and policy version: baseline or restricted, "
        "@v1.0 ... @v1.37 or @latest (default: restricted@latest)",
    )
    parser.add_argument(
        "--type",
        choices=("auto", "kubernetes", "dockerfile"),
        default=None,
        help="what the inputs are (default: auto, by file name: Dockerfile, Dockerfile.<variant>, "
        "*.Dockerfile and Containerfile are Dockerfiles)",
    )
    parser.add_argument(
        "--enable",
        metavar="ID[,ID]",
        action="append",
        default=None,
        help="also run these opt-in checks (ids or peers' aliases)",
    )
    parser.add_argument(
        "--disable",
        metavar="ID[,ID]",
        action="append",
        default=None,
        help="never run these checks",
    )
    parser.add_argument(
        "--policy",
        metavar="DIR",
        action="append",
        default=None,
        help="also check ValidatingAdmissionPolicies (and their bindings and params) from "
        "this file or directory; findings are VAP:<policy>/<index> (repeatable)",
    )
    parser.add_argument(
        "--namespace",
        metavar="NS",
        default=None,
        help="namespace of objects that name none (default: default)",
    )
    add_build_context_argument(parser)
    parser.add_argument(
        "--max-file-size",
        metavar="MIB",
        type=int,
        default=None,
        help="skip files larger than this many MiB, as a problem (default: 32)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also list skipped documents and custom resources",
    )
    add_result_arguments(
        parser,
        formats=FORMATS,
        strict_help="also exit 2 when nothing was found to check",
        fail_closed=True,
    )
    parser.add_argument(
        "--render",
        action="store_true",
        default=None,
        help="build kustomize directories (kustomization.yaml) with kubectl kustomize, which "
        "must be on PATH, and scan the objects they build instead of their files",
    )
    parser.add_argument(
        "--stdin-filename",
        metavar="PATH",
        default=None,
        help="the file standard input holds, for reports (SARIF URIs, locations) and to tell "
        "a Dockerfile by its name (default: <stdin>)",
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress display (it only appears on a terminal anyway)",
    )


def add_build_context_argument(parser: argparse.ArgumentParser) -> None:
    """--build-context, shared with `fix`."""
    parser.add_argument(
        "--build-context",
        metavar="DIR",
        default=None,
        help="the build context of the Dockerfiles given (docker build -f FILE DIR: DIR), "
        "where ADD's local sources are examined: an archive there is extracted by ADD, so "
        "ADD -> COPY is not suggested for it (default: each Dockerfile's own directory)",
    )


def _directory(value: str) -> str:
    if not os.path.isdir(value):
        raise ValueError(f"{value} is not a directory")
    return value


def scan_options(settings: Settings) -> ScanOptions:
    """What to scan and how, from flags, environment and config (shared with `fix`)."""
    from skanse.checks.kubernetes.pss_policy import parse_policy
    from skanse.checks.profiles import Profile, default_pss_level
    from skanse.errors import UsageError
    from skanse.scan import ScanOptions
    from skanse.sources.files import InputType
    from skanse.sources.manifests import ReadLimits

    pss_text = settings.get("pss", str, "")
    if pss_text:
        try:
            parse_policy(pss_text)
        except ValueError as exc:
            raise UsageError(f"--pss: {exc}") from None
    profile: Profile | None = settings.get("profile", Profile, None)
    if profile is None:
        # `--pss baseline` alone means "check PSS baseline"; otherwise the default profile.
        profile = (
            Profile(f"pss-{pss_text.split('@')[0].lower()}") if pss_text else Profile.ZERO_TRUST
        )
    if not pss_text:
        pss_text = default_pss_level(profile)
    try:
        pss = parse_policy(pss_text)
    except ValueError as exc:
        raise UsageError(f"--pss: {exc}") from None
    no_names: frozenset[str] = frozenset()
    max_mib = settings.get("max-file-size", int, 32)
    return ScanOptions(
        profile=profile,
        pss=pss,
        namespace=settings.get("namespace", str, "default"),
        limits=ReadLimits(max_file_bytes=max_mib * 1024 * 1024),
        input_type=settings.get("type", InputType, InputType.AUTO),
        enable=settings.get("enable", names, no_names),
        disable=settings.get("disable", names, no_names),
        render=_render_setting(settings),
        build_context=settings.get("build-context", _directory, None),
    )


def _render_setting(settings: Settings) -> bool:
    from skanse._cli._common import as_bool

    wanted = settings.get("render", as_bool, False)
    if wanted:
        import shutil

        from skanse.errors import UsageError

        if shutil.which("kubectl") is None:
            raise UsageError(
                "--render needs kubectl on PATH (or: kustomize build DIR | skanse scan -)"
            )
    return wanted


def run(args: argparse.Namespace) -> int:
    from skanse.checks._all import REGISTRY
    from skanse.report import Format, render
    from skanse.scan import STDIN_NAME, scan

    paths: list[str] = args.paths or ["."]
    loaded = load_config_for(args, paths)
    settings = Settings(args, os.environ, loaded.file, str(loaded.path))
    options = scan_options(settings)
    results = result_settings(settings)
    fmt = settings.get("format", Format, Format.TEXT)
    registry = REGISTRY
    policies = load_policy_dirs(args.policy)
    if policies is not None:  # the CEL engine and its models cost 0.1 s of start-up: only here
        from skanse.policy.checks import with_policies

        registry = with_policies(REGISTRY, policies)

    stdin = None
    if "-" in paths:
        if sys.stdin.isatty() and not args.quiet:
            print(
                "skanse: reading manifests or a Dockerfile from standard input (a terminal); "
                "end with Ctrl-D, or pipe them in: helm template CHART | skanse scan -",
                file=sys.stderr,
            )
        stdin = sys.stdin.buffer.read(options.limits.max_file_bytes + 1)
    with progress_line(args, "scanning") as show:
        on_file = None
        if show is not None:
            files = itertools.count(1)

            def on_file(path: str) -> None:
                show(f"scanning [{next(files)}] {path}")

        raw = scan(
            paths,
            options,
            stdin=stdin,
            registry=registry,
            on_file=on_file,
            stdin_name=args.stdin_filename or STDIN_NAME,
        )

    conclusion = conclude(raw, loaded, registry.resolve, results)
    info = report_info(
        conclusion.outcome.exit_code, results.output, verbose=args.verbose, targets=paths
    )
    emit(render(fmt, conclusion.reported, info), results.output)
    if not args.quiet and raw.objects_scanned == 0 and not raw.problems:
        where = ", ".join(paths)
        print(f"warning: no Kubernetes objects or Dockerfiles found in {where}", file=sys.stderr)
    print_notes(conclusion, quiet=args.quiet)
    return conclusion.outcome.exit_code
