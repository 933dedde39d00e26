"""`skanse scan`: check manifests, report findings, exit 0/1/2."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from skanse.scan import ScanOptions

__all__ = ["add_arguments", "run", "scan_options"]

T = TypeVar("T")

PROFILES = ("pss-baseline", "pss-restricted", "zero-trust")
FORMATS = ("text", "json", "sarif", "junit")


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
        "--severity",
        metavar="SEVERITY",
        default=None,
        help="report findings at or above this severity, or exactly a comma "
        "list (critical,high); any case (default: info)",
    )
    parser.add_argument(
        "--fail-on",
        metavar="SEVERITY",
        default=None,
        help="exit 1 only for unsuppressed findings at or above this severity "
        "(default: any reported finding)",
    )
    parser.add_argument(
        "--exit-zero",
        action="store_true",
        default=None,
        help="exit 0 even when findings fail the run (errors still exit 2)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        default=None,
        help="exit 2 if any input could not be checked",
    )
    parser.add_argument(
        "-f", "--format", choices=FORMATS, default=None, help="output format (default: text)"
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        default=None,
        help="write the report to FILE (atomically) instead of standard output",
    )
    parser.add_argument(
        "--type",
        choices=("auto", "kubernetes", "dockerfile"),
        default=None,
        help="what the inputs are (default: auto, by file name: Dockerfile, Dockerfile.*, "
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
        "--namespace",
        metavar="NS",
        default=None,
        help="namespace of objects that name none (default: default)",
    )
    parser.add_argument(
        "--max-file-size",
        metavar="MIB",
        type=int,
        default=None,
        help="skip files larger than this many MiB, as a problem (default: 32)",
    )
    config = parser.add_mutually_exclusive_group()
    config.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="read settings from FILE (default: .skanse.yaml found upward)",
    )
    config.add_argument("--no-config", action="store_true", help="ignore .skanse.yaml")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also list skipped documents and custom resources",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no warnings or notes on standard error"
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress display (it only appears on a terminal anyway)",
    )


def _truthy(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


class _Settings:
    """Resolves each setting from flag, then SKANSE_* environment, then the config file."""

    def __init__(self, args: argparse.Namespace, env: Mapping[str, str], file: Any, path: str):
        self.args, self.env, self.file, self.path = args, env, file, path

    def get(self, name: str, parse: Callable[[Any], T], default: T) -> T:
        from skanse.errors import ConfigError, SkanseError, UsageError

        attr = name.replace("-", "_")
        flag = getattr(self.args, attr, None)
        env_name = "SKANSE_" + attr.upper()
        error: type[SkanseError] = ConfigError
        if flag is not None:
            raw, source, error = flag, f"--{name}", UsageError
        elif env_name in self.env:
            raw, source = self.env[env_name], env_name
        elif getattr(self.file, attr, None) is not None:
            raw, source = getattr(self.file, attr), f"{self.path}: {name}"
        else:
            return default
        try:
            return parse(raw)
        except ValueError as exc:
            raise error(f"{source}: {exc}") from None


def _load_config(args: argparse.Namespace, paths: list[str]) -> Any:
    from skanse.config import LoadedConfig, find_config, load_config

    if args.no_config:
        return LoadedConfig.empty()
    explicit = args.config or os.environ.get("SKANSE_CONFIG")
    if explicit:
        from pathlib import Path

        return load_config(Path(explicit))
    start = next((p for p in paths if p != "-"), ".")
    found = find_config(start if os.path.exists(start) else ".")
    return load_config(found) if found else LoadedConfig.empty()


def scan_options(settings: _Settings) -> ScanOptions:
    """What to scan and how, from flags, environment and config (shared with `fix`)."""
    from skanse.checks.kubernetes.pss_policy import parse_policy
    from skanse.checks.profiles import Profile, default_pss_level
    from skanse.scan import ScanOptions
    from skanse.sources.files import InputType
    from skanse.sources.manifests import ReadLimits

    pss_text = settings.get("pss", str, "")
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
        from skanse.errors import UsageError

        raise UsageError(f"--pss: {exc}") from None
    no_names: frozenset[str] = frozenset()
    max_mib = settings.get("max-file-size", int, 32)
    return ScanOptions(
        profile=profile,
        pss=pss,
        namespace=settings.get("namespace", str, "default"),
        limits=ReadLimits(max_file_bytes=max_mib * 1024 * 1024),
        input_type=settings.get("type", InputType, InputType.AUTO),
        enable=settings.get("enable", _names, no_names),
        disable=settings.get("disable", _names, no_names),
    )


def run(args: argparse.Namespace) -> int:
    import datetime as dt
    from pathlib import Path

    from rich.console import Console

    from skanse import __version__
    from skanse.checks._all import REGISTRY
    from skanse.config import parse_severities
    from skanse.files import write_atomic
    from skanse.model import Severity
    from skanse.report import Format, ReportInfo, render
    from skanse.report._info import find_repo_root
    from skanse.results import apply_suppressions, decide, filter_severities
    from skanse.scan import scan

    paths: list[str] = args.paths or ["."]
    loaded = _load_config(args, paths)
    settings = _Settings(args, os.environ, loaded.file, str(loaded.path))

    options = scan_options(settings)
    severities = settings.get("severity", parse_severities, frozenset(Severity))
    fail_on = settings.get("fail-on", Severity.parse, None)
    exit_zero = settings.get("exit-zero", _bool, False)
    strict = settings.get("strict", _bool, False)
    fmt = settings.get("format", Format, Format.TEXT)
    output = settings.get("output", str, None)

    err = Console(file=sys.stderr, highlight=False, soft_wrap=True)
    stdin = None
    limits = options.limits
    if "-" in paths:
        stdin = sys.stdin.buffer.read(limits.max_file_bytes + 1)

    show_progress = (
        sys.stderr.isatty() and not args.no_progress and not args.quiet and not os.environ.get("CI")
    )
    if show_progress:
        with err.status("scanning") as status:
            counter = [0]

            def on_file(path: str) -> None:
                counter[0] += 1
                status.update(f"scanning [{counter[0]}] {path}")

            raw = scan(paths, options, stdin=stdin, on_file=on_file)
    else:
        raw = scan(paths, options, stdin=stdin)

    suppressed = apply_suppressions(raw, loaded.suppressions, REGISTRY.resolve, dt.date.today())
    reported = filter_severities(suppressed, severities)
    outcome = decide(
        suppressed, severities=severities, fail_on=fail_on, exit_zero=exit_zero, strict=strict
    )
    to_terminal = output is None and sys.stdout.isatty()
    info = ReportInfo(
        tool_version=__version__,
        source_root=find_repo_root(Path.cwd()),
        exit_code=outcome.exit_code,
        color=to_terminal and not os.environ.get("NO_COLOR"),
        width=max(100, Console().width) if to_terminal else 160,
        verbose=args.verbose,
    )
    document = render(fmt, reported, info)
    if output:
        write_atomic(output, document)
    else:
        sys.stdout.write(document)
        sys.stdout.flush()

    if not args.quiet:
        for warning in suppressed.warnings:
            err.print(f"warning: {warning}", markup=False, style="yellow")
        if raw.objects_scanned == 0 and not raw.problems:
            err.print("warning: no Kubernetes objects found in " + ", ".join(paths), markup=False)
        if outcome.hidden_failing:
            err.print(
                f"note: {outcome.hidden_failing} finding(s) below --severity fail the run "
                "through --fail-on",
                markup=False,
            )
        if outcome.exit_code == 2:
            err.print(f"error: {outcome.reason}", markup=False, style="red")
    return outcome.exit_code


def _names(value: Any) -> frozenset[str]:
    """Check ids from flags (repeatable, comma lists), the environment or a config list."""
    items = value if isinstance(value, list | tuple) else [value]
    return frozenset(n.strip() for item in items for n in str(item).split(",") if n.strip())


def _bool(value: Any) -> bool:
    return value if isinstance(value, bool) else _truthy(str(value))
