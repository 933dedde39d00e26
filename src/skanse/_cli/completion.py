"""`skanse completion SHELL`: a completion script for bash, zsh or fish, generated from the
same argparse parser the commands use (shtab), so it never drifts from the flags."""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_arguments", "run"]

SHELLS = ("bash", "zsh", "fish")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Print a shell completion script for skanse's commands and flags.\n\n"
        "  bash:  skanse completion bash > ~/.local/share/bash-completion/completions/skanse\n"
        "  zsh:   skanse completion zsh > ~/.zfunc/_skanse   (with fpath+=(~/.zfunc))\n"
        "  fish:  skanse completion fish > ~/.config/fish/completions/skanse.fish"
    )
    parser.add_argument("shell", choices=SHELLS, help="the shell to complete in")


def run(args: argparse.Namespace) -> int:
    import shtab

    from skanse._cli import build_parser

    sys.stdout.write(shtab.complete(build_parser(), shell=args.shell))
    sys.stdout.flush()
    return 0
