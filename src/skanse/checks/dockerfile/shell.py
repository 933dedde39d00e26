"""Just enough shell to read RUN commands: pipelines of simple commands, by words.

Not a shell interpreter: it splits a command text into pipelines (`a | b`) separated by
`&&`, `||`, `;` and newlines, each a list of simple commands given as words, so checks can ask
"is curl's output piped into sh?" without regular expressions over raw text. Quoting follows
POSIX rules; text that cannot be split (an unbalanced quote) falls back to blanks.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

__all__ = ["Command", "pipelines", "program"]

_SEPARATORS = {"&&", "||", ";", "&", "\n", ";;"}
_WRAPPERS = {"sudo", "env", "nohup", "time", "exec", "command", "xargs", "doas"}


@dataclass(frozen=True, slots=True)
class Command:
    words: tuple[str, ...]

    @property
    def program(self) -> str:
        return program(self.words)

    def has_option(self, *options: str) -> bool:
        """True if any word is one of `options` or starts with `option=`; short flags combine."""
        for word in self.words[1:]:
            for option in options:
                if word == option or (option.startswith("--") and word.startswith(option + "=")):
                    return True
                if (
                    len(option) == 2
                    and option[0] == "-"
                    and word.startswith("-")
                    and not word.startswith("--")
                    and option[1] in word[1:]
                ):
                    return True
        return False


def program(words: tuple[str, ...] | list[str]) -> str:
    """The basename of the program a simple command runs, looking through sudo/env wrappers."""
    index = 0
    while index < len(words):
        word = words[index]
        base = word.rsplit("/", 1)[-1]
        if base in _WRAPPERS or ("=" in word and not word.startswith("-") and index == 0):
            index += 1
            # skip the wrapper's own options (sudo -E -u user, env -i, VAR=value)
            while index < len(words) and (words[index].startswith("-") or "=" in words[index]):
                if words[index] in ("-u", "-g") and index + 1 < len(words):
                    index += 1
                index += 1
            continue
        return base
    return ""


_TOKEN = re.compile(
    r"""(?P<space>[ \t\r]+|\\\n)
      | (?P<op>&&|\|\||;;|[;&|()<>]|\n)
      | (?P<comment>\#[^\n]*)
      | (?P<word>(?:[^\s;&|()<>'"\\]|\\.|'[^']*'|"(?:[^"\\]|\\.)*")+)""",
    re.VERBOSE | re.DOTALL,
)
_PART = re.compile(r"""'([^']*)'|"((?:[^"\\]|\\.)*)"|\\(.)|([^'"\\]+)""", re.DOTALL)
_DQ_ESCAPE = re.compile(r"""\\([$`"\\\n])""")


def _unquote(word: str) -> str:
    out = []
    for single, double, escaped, plain in _PART.findall(word):
        if escaped:
            out.append(escaped)
        elif plain:
            out.append(plain)
        elif double:
            out.append(_DQ_ESCAPE.sub(r"\1", double))
        else:
            out.append(single)
    return "".join(out)


def _tokens(text: str) -> list[str]:
    """POSIX-style words and operators; a regular expression, because shlex is 20x slower."""
    tokens: list[str] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:  # an unbalanced quote: the rest splits on blanks
            tokens.extend(text[position:].split())
            break
        position = match.end()
        kind = match.lastgroup
        if kind == "op":
            tokens.append(match.group())
        elif kind == "word":
            tokens.append(_unquote(match.group()))
    return tokens


@functools.lru_cache(maxsize=4096)
def pipelines(text: str) -> tuple[tuple[Command, ...], ...]:
    """((cmd | cmd | ...), ...) for a command text (a RUN line or a heredoc body); cached,
    since several checks read the same RUN."""
    result: list[tuple[Command, ...]] = []
    current: list[Command] = []
    words: list[str] = []
    for token in _tokens(text):
        if token in _SEPARATORS or token in ("(", ")", "{", "}"):
            if words:
                current.append(Command(tuple(words)))
                words = []
            if current:
                result.append(tuple(current))
                current = []
            continue
        if token == "|":  # noqa: S105 - a shell pipe, not a password
            if words:
                current.append(Command(tuple(words)))
                words = []
            continue
        if token:
            words.append(token)
    if words:
        current.append(Command(tuple(words)))
    if current:
        result.append(tuple(current))
    return tuple(result)
