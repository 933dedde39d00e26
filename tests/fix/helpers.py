"""Run `plan_fixes` on one small input written to a temporary directory."""

from __future__ import annotations

from pathlib import Path

from skanse.checks._all import REGISTRY
from skanse.config import ConfigSuppression, load_config
from skanse.fix import FileFix, FixOptions, FixReport, plan_fixes
from skanse.scan import ScanOptions


def fix_text(
    tmp_path: Path,
    text: str | bytes,
    *only: str,
    name: str = "app.yaml",
    config: str | None = None,
    scan: ScanOptions | None = None,
    unsafe: bool = True,
) -> tuple[FileFix | None, FixReport]:
    """The plan for one file; `only` limits the checks that run (and so the fixes); unsafe
    fixes are applied too unless `unsafe` is false."""
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    suppressions: tuple[ConfigSuppression, ...] = ()
    if config is not None:
        (tmp_path / ".skanse.yaml").write_text(config, encoding="utf-8")
        suppressions = load_config(tmp_path / ".skanse.yaml").suppressions
    options = scan or ScanOptions()
    if only:
        disable = frozenset(c.id for c in REGISTRY.all() if c.id not in only)
        options = ScanOptions(
            profile=options.profile,
            pss=options.pss,
            disable=disable,
            input_type=options.input_type,
        )
    report = plan_fixes(
        [str(path)], FixOptions(scan=options, unsafe_fixes=unsafe), suppressions=suppressions
    )
    mine = [f for f in report.files if f.path == str(path)]
    return (mine[0] if mine else None), report


def after(item: FileFix | None) -> str:
    assert item is not None and item.after is not None, item
    return item.after.decode("utf-8")
