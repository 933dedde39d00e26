"""A small re-implementation of how kube-bench evaluates its kubelet controls, for comparison.

It follows kube-bench's documented semantics (../shared/corpora/kube-bench/SOURCES.md and
cfg files): the audit is the kubelet's command line (`ps -fC kubelet`), the config is the
first existing file of `node.kubelet.confs` in cfg/config.yaml (not the running `--config`),
each test item looks for its flag in the command line first, then its JSONPath in the config;
`set: false` passes when neither has it; `bin_op` combines items. Checked against kube-bench's
own integration output in test_kube_bench_agreement.py before it is trusted.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml


def kubelet_conf_path(config_yaml: dict[str, Any], root: Path) -> Path | None:
    """kube-bench's $kubeletconf: the first of node.kubelet.confs that exists."""
    for candidate in config_yaml["node"]["kubelet"]["confs"]:
        path = root / candidate.lstrip("/")
        if path.is_file():
            return path
    return None


def _render(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _jsonpath(path: str, config: Any) -> tuple[bool, str]:
    if path.startswith("{range ."):
        key = path[len("{range .") :].split("[", 1)[0]
        value = config.get(key) if isinstance(config, dict) else None
        if not isinstance(value, list) or not value:
            return False, ""
        return True, ",".join(_render(v) for v in value)
    node: Any = config
    for key in path.strip("{}").lstrip(".").split("."):
        if not isinstance(node, dict) or key not in node:
            return False, ""
        node = node[key]
    return True, _render(node)


def _item_passes(item: dict[str, Any], cmdline: str, config: Any) -> bool:
    flag = item.get("flag")
    found, value = False, ""
    if flag and flag in cmdline:
        match = re.search(rf"({re.escape(flag)})(=|: *)*([^\s]*)", cmdline)
        found, value = True, (match.group(3) if match and match.group(3) else "true")
    elif item.get("path") and config is not None:
        found, value = _jsonpath(item["path"], config)
    if not item.get("set", True):
        return not found
    compare = item.get("compare")
    if compare is None:
        return found
    if not found:
        return False
    op, expected = compare["op"], _render(compare["value"])
    if op == "eq":
        return value.lower() == expected.lower()
    if op == "noteq":
        return value.lower() != expected.lower()
    if op == "nothave":
        return expected not in value
    if op == "has":
        return expected in value
    if op == "gte":
        try:
            return int(value) >= int(expected)
        except ValueError:
            return False
    if op == "valid_elements":
        allowed = set(expected.split(","))
        return all(element in allowed for element in value.split(",") if element)
    raise NotImplementedError(op)


def evaluate(node_yaml: Path, cmdline: str, config_file: Path | None) -> dict[str, str]:
    """CIS id -> PASS/FAIL/WARN for the kubelet group (4.2) of one benchmark."""
    node = yaml.safe_load(node_yaml.read_text())
    config = yaml.safe_load(config_file.read_text()) if config_file else None
    results: dict[str, str] = {}
    for group in node["groups"]:
        if str(group["id"]) != "4.2":
            continue
        for check in group["checks"]:
            if check.get("type") in ("manual", "skip"):
                results[str(check["id"])] = "WARN" if check["type"] == "manual" else "INFO"
                continue
            tests = check.get("tests", {})
            items = tests.get("test_items", [])
            uses_config = "audit_config" in check
            outcomes = [_item_passes(i, cmdline, config if uses_config else None) for i in items]
            passed = any(outcomes) if tests.get("bin_op") == "or" else all(outcomes)
            results[str(check["id"])] = (
                "PASS" if passed else ("FAIL" if check.get("scored") else "WARN")
            )
    return results
