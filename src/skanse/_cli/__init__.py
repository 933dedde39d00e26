"""The command line: the only code that parses argv, prints, renders progress or exits.

`main()` maps errors to exit codes in one place: a `SkanseError` prints its diagnostics and
exits 2; anything else is an internal error (exit 2; `--debug` shows the traceback).
Command modules are imported only when their command runs, so `skanse --version` is fast.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn, Protocol, cast

from skanse import __version__

__all__ = ["main"]

# command -> (module under skanse._cli, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "scan": ("scan", "check Kubernetes manifests against Pod Security and the zero-trust standard"),
    "fix": ("fix", "rewrite manifests and Dockerfiles into the zero-trust standard"),
    "checks": ("checks", "list the checks or show one with its examples"),
    "config": ("config", "print the JSON Schema of .skanse.yaml"),
    "netpol": ("netpol", "what NetworkPolicies allow: list, explain, diff, generate"),
    "rules": ("rules", "validate and test Falco-compatible runtime rules"),
    "policy": ("policy", "validate and test ValidatingAdmissionPolicies (CEL)"),
    "runtime": ("runtime", "runtime detection: the eBPF sensor, responses, event replay"),
    "image": ("image", "inspect a container image: digest, config, layers, history"),
    "sbom": ("sbom", "list the packages of an image or directory; write CycloneDX/SPDX SBOMs"),
    "vuln": ("vuln", "find known vulnerabilities in an image, a root file system or an SBOM"),
    "db": ("db", "the offline vulnerability database: build, info, export, import"),
    "host": ("host", "audit a host: sysctls, kubelet, container runtime, kernel isolation"),
    "sign": ("sign", "sign an image with a Cosign key (or generate-key-pair)"),
    "verify": ("verify", "verify an image's Cosign signatures with one or more keys"),
    "verify-blob": ("verify_blob", "verify a Sigstore bundle over a file: a key, or keyless"),
    "attest": ("attest", "attach a signed in-toto attestation (an SBOM) to an image"),
    "verify-attestation": ("verify_attestation", "verify an image's in-toto attestations"),
    "admission": ("admission", "the admission webhook: serve it, audit what runs, make its TLS"),
    "report": ("report", "one posture report across every layer: HTML, JSON and PDF"),
    "completion": ("completion", "print a completion script for bash, zsh or fish"),
    "history": ("history", "the posture reports kept over time: list and prune runs"),
}


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32, width=100)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or with `only` the arguments of that one command (the others
    are listed without their arguments): importing every command module costs start-up time
    that a run of one command does not need."""
    parser = argparse.ArgumentParser(
        prog="skanse",
        description="Zero-trust container security, from the Dockerfile to the kernel.",
        epilog="exit codes: 0 nothing fails, 1 findings fail the run, 2 usage, configuration, "
        "input or internal error.\nRun 'skanse COMMAND --help' for a command's options.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"skanse {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for internal errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, summary) in COMMANDS.items():
        command = sub.add_parser(
            name, help=summary, description=summary, formatter_class=_HelpFormatter
        )
        command.set_defaults(_module=module)
        if only is None or only == name:
            _module(module).add_arguments(command)
    return parser


class _Command(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def _module(name: str) -> _Command:
    return cast(_Command, importlib.import_module(f"skanse._cli.{name}"))


_BATCH_COMMANDS = frozenset({"scan", "fix", "sbom"})
# commands that read image layers: a thread decompresses and hashes in C while this one
# parses tar headers in Python; each time the C work returns it waits for the interpreter
# lock, by default up to 5 ms, which on a 200 MB layer added a fifth to the read
_IMAGE_COMMANDS = frozenset({"sbom", "vuln"})
_IMAGE_SWITCH_INTERVAL = 0.0002  # seconds


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list in (["--version"], ["-V"]):  # answer without building every sub-parser
        print(f"skanse {__version__}")
        return 0
    first = next((a for a in args_list if not a.startswith("-")), None)
    if argv is None and first in _BATCH_COMMANDS:
        # A scan builds hundreds of thousands of small dicts and lists without cycles (an
        # SBOM, a tar header and a file entry per member); the cycle collector's default
        # pace (a pass every 700 allocations) costs about a tenth of the run. A process of
        # its own (not a caller's, as tests are) collects cycles every 100,000 allocations
        # instead.
        gc.set_threshold(100_000, 50, 50)
    if argv is None and first in _IMAGE_COMMANDS:
        sys.setswitchinterval(_IMAGE_SWITCH_INTERVAL)
        _prefetch_layers(args_list)
    parser = build_parser(first if first in COMMANDS else None)
    args = parser.parse_args(args_list)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    code = _dispatch(args)
    if argv is None and first in _BATCH_COMMANDS:
        _exit_now(code)
    return code


def _prefetch_layers(args_list: list[str]) -> None:
    """Start hashing the layers of a `docker-archive:FILE[:TAG]` target now, while the
    command's modules load: the digest bounds the run (see `skanse.oci.prefetch`). Only a
    guess from the words given; the reader uses it only for the same file."""
    from skanse.oci import prefetch

    for word in args_list:
        if word.startswith(_DOCKER_ARCHIVE):
            path = word[len(_DOCKER_ARCHIVE) :]
            head, _colon, _tag = path.rpartition(":")
            prefetch.start(head if head and not os.path.isfile(path) else path)
            return


_DOCKER_ARCHIVE = "docker-archive:"


def _exit_now(code: int) -> NoReturn:
    """End a scan's own process without freeing its objects one by one.

    At interpreter exit Python sweeps and frees every object left: after a large scan,
    millions of small dicts, lists and strings, about a tenth of the run. The report is
    written and closed by now and these commands register no exit handlers, so flushing
    the standard streams is all the clean-up there is.
    """
    import os

    for stream in (sys.stdout, sys.stderr):  # each on its own: a closed pipe loses no stderr
        try:
            stream.flush()
        except BrokenPipeError:  # a reader that went away: nothing more to say to it
            pass
        except OSError as exc:  # the report did not reach its reader (a full disk): not a pass
            code = 2
            if stream is sys.stdout:
                print(f"skanse: error: standard output: {exc.strerror or exc}", file=sys.stderr)
    os._exit(code)


def shown(message: str) -> str:
    """A message for standard error, whatever input text it quotes (a member name, a path, a
    registry's answer): control characters escaped, so that nothing repaints the terminal or
    writes a line of its own; only a line break before two spaces, which continues a message
    in the house style, stays a line break."""
    import re

    from skanse.printable import printable

    return re.sub(r"\n(?!  )", r"\\n", printable(message, keep_newlines=True).replace("\t", "\\t"))


def _dispatch(args: argparse.Namespace) -> int:
    from skanse.errors import SkanseError

    try:
        code: int = _module(args._module).run(args)
        return code
    except SkanseError as exc:
        print(f"skanse: error: {shown(exc.diagnostics())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("skanse: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        if args.debug:
            raise
        print(
            f"skanse: internal error: {type(exc).__name__}: {shown(str(exc))}\n"
            "This is a bug in skanse; run again with --debug for the traceback.",
            file=sys.stderr,
        )
        return 2
