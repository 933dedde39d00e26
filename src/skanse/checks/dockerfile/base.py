"""What Dockerfile checks are given, and the decorator that declares them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from skanse.checks._registry import Check, CheckSet, Violation
from skanse.model import CheckID, CheckMeta, Layer, Severity
from skanse.sources.dockerfile import Dockerfile

__all__ = ["DockerfileCheck", "DockerfileCheckSet", "DockerfileContext"]


@dataclass(frozen=True, slots=True)
class DockerfileContext:
    """What the scan learned about one Dockerfile outside its text."""

    # ADD sources that are tar archives by their content in the build context (ADD extracts
    # them whatever their name; skanse.sources.buildcontext)
    archives: frozenset[str] = frozenset()


DockerfileCheck = Check[Dockerfile, DockerfileContext]
DockerfileFn = Callable[[Dockerfile, DockerfileContext], Iterable[Violation]]


class DockerfileCheckSet(CheckSet):
    def check(self, **meta: Any) -> Callable[[DockerfileFn], DockerfileCheck]:
        def register(fn: DockerfileFn) -> DockerfileCheck:
            description = meta.pop("description", None) or (fn.__doc__ or "").strip()
            severity = meta.pop("severity")
            check: DockerfileCheck = Check(
                meta=CheckMeta(
                    id=CheckID(meta.pop("id")),
                    severity=severity
                    if isinstance(severity, Severity)
                    else Severity.parse(severity),
                    layer=Layer.DOCKERFILE,
                    description=description,
                    profiles=frozenset(meta.pop("profiles", ("zero-trust",))),
                    references=tuple(meta.pop("references", ())),
                    aliases=tuple(meta.pop("aliases", ())),
                    **meta,
                ),
                run=fn,
                kinds=None,
                package=self.package,
            )
            self.add(check)
            return check

        return register
