"""What every command that reports findings shares: settings, result flags, the finish.

`Settings` resolves a setting from its flag, then `SKANSE_<NAME>`, then `.skanse.yaml`.
`add_result_arguments` declares the flags of the common vocabulary (`--severity`, `--fail-on`,
`--exit-zero`, `--strict`, `--format`, `--output`, `--config`, `--quiet`), and `conclude`
applies suppressions, the severity filter and the exit decision the same way everywhere.
Imports stay inside functions: start-up time matters.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from skanse._cli import shown

if TYPE_CHECKING:
    from skanse.config import LoadedConfig
    from skanse.model import CheckID, ScanResult, Severity
    from skanse.policy.load import PolicySet
    from skanse.report import ReportInfo
    from skanse.results import Outcome

__all__ = [
    "Conclusion",
    "ResultSettings",
    "Settings",
    "add_result_arguments",
    "as_bool",
    "conclude",
    "emit",
    "load_config_for",
    "load_policy_dirs",
    "names",
    "number",
    "print_notes",
    "report_info",
    "result_settings",
]

T = TypeVar("T")


def _truthy(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def as_bool(value: Any) -> bool:
    """A boolean setting from a flag, an environment string or a config value."""
    return value if isinstance(value, bool) else _truthy(str(value))


def number(low: float, high: float, what: str, *, integer: bool = False) -> Callable[[str], Any]:
    """An argparse type: a finite number from `low` to `high`, or a usage error naming the
    range (nan, inf, 0 where it would busy-loop and 99999 as a port are refused here)."""

    def parse(text: str) -> float | int:
        try:
            value: float | int = int(text) if integer else float(text)
        except ValueError:
            value = math.nan
        if not (low <= value <= high):  # also false for nan
            raise argparse.ArgumentTypeError(f"{text!r} is not {what} from {low:g} to {high:g}")
        return value

    return parse


def names(value: Any) -> frozenset[str]:
    """Check ids from flags (repeatable, comma lists), the environment or a config list."""
    items = value if isinstance(value, list | tuple) else [value]
    return frozenset(n.strip() for item in items for n in str(item).split(",") if n.strip())


class Settings:
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


def load_config_for(args: argparse.Namespace, paths: Sequence[str]) -> LoadedConfig:
    """--config, else $SKANSE_CONFIG, else .skanse.yaml found upward from the first path."""
    from pathlib import Path

    from skanse.configbase import LoadedConfig, discover_config

    if args.no_config:
        return LoadedConfig.empty()
    explicit = args.config or os.environ.get("SKANSE_CONFIG")
    if explicit:
        from skanse.config import load_config

        return load_config(Path(explicit))
    start = next((p for p in paths if p != "-"), ".")
    found = discover_config(start if os.path.exists(start) else ".")
    if not getattr(args, "quiet", False):
        from skanse.printable import printable

        for path in found.ignored:
            print(
                f"warning: {printable(str(path))} is owned by another user; not used "
                "(pass it with --config to trust it)",
                file=sys.stderr,
            )
    if found.path is None:
        return LoadedConfig.empty()
    from skanse.config import load_config

    return load_config(found.path)


def add_result_arguments(
    parser: argparse.ArgumentParser,
    *,
    formats: Sequence[str],
    strict_help: str,
    severity_help: str = "report findings at or above this severity, or exactly a comma list "
    "(critical,high); any case (default: info)",
    config_help: str = "read settings from FILE (default: .skanse.yaml found upward)",
    fail_closed: bool = False,
) -> None:
    """The common result flags. With `fail_closed`, an input that could not be checked
    exits 2 unless --allow-unchecked (scan); otherwise only under --strict."""
    parser.add_argument("--severity", metavar="SEVERITY", default=None, help=severity_help)
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
    parser.add_argument("--strict", action="store_true", default=None, help=strict_help)
    if fail_closed:
        parser.add_argument(
            "--allow-unchecked",
            action="store_true",
            default=None,
            help="an input that could not be checked (unparsable, a duplicate key, "
            "unrendered) is a warning instead of exit 2",
        )
    parser.add_argument(
        "-f",
        "--format",
        choices=tuple(formats),
        default=None,
        help="output format (default: text)",
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        default=None,
        help="write the report to FILE (atomically) instead of standard output",
    )
    config = parser.add_mutually_exclusive_group()
    config.add_argument("--config", metavar="FILE", default=None, help=config_help)
    config.add_argument("--no-config", action="store_true", help="ignore .skanse.yaml")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no warnings or notes on standard error"
    )


@dataclass(frozen=True, slots=True)
class ResultSettings:
    severities: frozenset[Severity]
    fail_on: Severity | None
    exit_zero: bool
    strict: bool
    allow_unchecked: bool
    output: str | None
    # the command fails closed on what it could not check unless --allow-unchecked (scan);
    # otherwise (vuln, host) only --strict makes it fail
    fail_closed: bool = False


def result_settings(settings: Settings) -> ResultSettings:
    from skanse.configbase import parse_severities
    from skanse.model import Severity

    fail_closed = hasattr(settings.args, "allow_unchecked")
    return ResultSettings(
        severities=settings.get("severity", parse_severities, frozenset(Severity)),
        fail_on=settings.get("fail-on", Severity.parse, None),
        exit_zero=settings.get("exit-zero", as_bool, False),
        strict=settings.get("strict", as_bool, False),
        # only commands that declare --allow-unchecked fail closed by default
        allow_unchecked=settings.get("allow-unchecked", as_bool, False) if fail_closed else True,
        # checked before the work: a missing directory or a directory named as the file
        output=settings.get("output", _output_path, None),
        fail_closed=fail_closed,
    )


def _output_path(value: Any) -> str:
    from skanse.files import output_path

    return output_path(str(value))


@dataclass(frozen=True, slots=True)
class Conclusion:
    suppressed: ScanResult  # every finding, suppressions applied
    reported: ScanResult  # what --severity shows
    outcome: Outcome
    fail_closed: bool = False  # see ResultSettings: which flag let unchecked inputs pass


def conclude(
    raw: ScanResult,
    loaded: LoadedConfig,
    resolve: Callable[[str], list[CheckID]],
    rs: ResultSettings,
) -> Conclusion:
    """Suppressions (today's date decides expiry), the severity filter, the exit decision."""
    import datetime as dt

    from skanse.results import apply_suppressions, decide, filter_severities

    suppressed = apply_suppressions(raw, loaded.suppressions, resolve, dt.date.today())
    outcome = decide(
        suppressed,
        severities=rs.severities,
        fail_on=rs.fail_on,
        exit_zero=rs.exit_zero,
        strict=rs.strict,
        allow_unchecked=rs.allow_unchecked,
    )
    reported = filter_severities(suppressed, rs.severities)
    return Conclusion(suppressed, reported, outcome, rs.fail_closed)


def report_info(
    exit_code: int,
    output: str | None,
    *,
    verbose: bool = False,
    kind: str = "skanse.scan",
    targets: Sequence[str] = (),
) -> ReportInfo:
    """Renderer settings: colour, width and wrapping only when writing to a terminal; report
    paths relative to the repository (git top level) of the first target, whatever the
    current directory."""
    from pathlib import Path

    from rich.console import Console

    from skanse import __version__
    from skanse.report import ReportInfo
    from skanse.report._info import find_repo_root

    to_terminal = output is None and sys.stdout.isatty()
    first = next((t for t in targets if t != "-" and os.path.exists(t)), None)
    start = (
        Path.cwd()
        if first is None
        else Path(first if os.path.isdir(first) else os.path.dirname(os.path.abspath(first)))
    )
    return ReportInfo(
        tool_version=__version__,
        source_root=find_repo_root(start),
        exit_code=exit_code,
        color=to_terminal and not os.environ.get("NO_COLOR"),
        width=max(100, Console().width) if to_terminal else 160,
        wrap=to_terminal,
        verbose=verbose,
        kind=kind,
    )


@contextmanager
def progress_line(args: argparse.Namespace, first: str) -> Iterator[Callable[[str], None] | None]:
    """A status line on standard error while a command works, starting with `first`: yields
    the function that replaces its text, or None where no line is wanted (--no-progress,
    --quiet, $CI, or standard error is not a terminal). Texts are shown as given, never as
    rich markup (a path may hold brackets)."""
    if args.no_progress or args.quiet or os.environ.get("CI") or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.text import Text

    console = Console(file=sys.stderr, highlight=False, soft_wrap=True)
    with console.status(Text(first)) as status:
        yield lambda text: status.update(Text(text))


def emit(document: str | bytes, output: str | None) -> None:
    """Write the report to `output` (atomically, or through a device or FIFO; never through
    a symlink out of the working directory), or to standard output (text only: a
    binary report, a PDF, is refused without -o before it is rendered)."""
    if output:
        from skanse.errors import UsageError
        from skanse.files import OutputRefused, write_output

        try:
            write_output(output, document)
        except OutputRefused as exc:
            raise UsageError(f"--output: {exc}") from None
    else:
        assert isinstance(document, str), "a binary report needs an output file"
        sys.stdout.write(document)
        sys.stdout.flush()


@contextmanager
def emit_stream(output: str | None) -> Iterator[Callable[[str], object]]:
    """`emit` for text written while it is made: yields the function that writes a piece.
    To `output` with write_output's rules, the file appearing only when the block ends
    without an exception (never half a report); or to standard output as it comes."""
    if not output:
        yield sys.stdout.write
        sys.stdout.flush()
        return
    from contextlib import ExitStack

    from skanse.errors import UsageError
    from skanse.files import OutputRefused, output_stream

    with ExitStack() as stack:
        try:
            handle = stack.enter_context(output_stream(output))
        except OutputRefused as exc:
            raise UsageError(f"--output: {exc}") from None
        yield lambda text: handle.write(text.encode("utf-8"))


def print_notes(conclusion: Conclusion, *, quiet: bool) -> None:
    """Warnings (expired suppressions...), hidden failures and the reason for exit 2."""
    if quiet:
        return
    from rich.console import Console

    err = Console(file=sys.stderr, highlight=False, soft_wrap=True)
    from skanse.printable import printable

    for warning in conclusion.suppressed.warnings:
        err.print(f"warning: {printable(warning)}", markup=False, style="yellow")
    outcome = conclusion.outcome
    if outcome.hidden_failing:
        err.print(
            f"note: {outcome.hidden_failing} finding(s) below --severity fail the run "
            "through --fail-on",
            markup=False,
        )
    problems = conclusion.suppressed.problems
    if outcome.exit_code == 2:
        err.print(f"error: {shown(outcome.reason)}", markup=False, style="red")
    elif problems:
        # name the flag that let them pass, or the one that would fail on them
        why = "allowed by --allow-unchecked" if conclusion.fail_closed else "--strict fails on them"
        err.print(
            f"warning: {len(problems)} input(s) could not be checked ({why}); "
            "the report lists them",
            markup=False,
            style="yellow",
        )


def load_policy_dirs(paths: list[str] | None) -> PolicySet | None:
    """ValidatingAdmissionPolicies from --policy paths (None when none were given)."""
    if not paths:
        return None
    from skanse.policy.load import load_policies

    policies = load_policies(paths)
    for warning in policies.warnings:
        print(f"warning: {shown(warning)}", file=sys.stderr)
    return policies
