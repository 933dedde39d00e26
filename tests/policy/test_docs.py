"""docs/policies.md as printed: its example files, written out, and its commands, run, give
the output the page shows."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.admission.conftest import review
from tests.admission.test_server import _client_context, _port, _serve, _stop
from tests.conftest import ROOT

PAGE = (ROOT / "docs" / "policies.md").read_text(encoding="utf-8")
FILES = re.findall(r"<!-- file: (\S+) -->\n```yaml\n(.*?)```", PAGE, flags=re.S)
# Each console block: `$ command` lines, each followed by the output the page prints.
COMMANDS = {
    command: output
    for block in re.findall(r"```console\n(.*?)```", PAGE, flags=re.S)
    for command, output in re.findall(r"^\$ (.*)\n((?:(?!\$ ).*\n)*)", block, flags=re.M)
}
SERVE = "skanse admission serve --vap no-loadbalancer/ --cert tls.crt --key tls.key"
READY_SCAN = (
    "skanse scan --policy policies/registry-allow-list --policy policies/data-residency deploy/"
)


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    assert [name for name, _ in FILES] == [
        "no-loadbalancer/policy.yaml",
        "no-loadbalancer/tests/skanse-test.yaml",
        "no-loadbalancer/tests/services.yaml",
        "host-network/policy.yaml",
        "exceptions.yaml",
    ]
    for name, text in FILES:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


PRINTED = [c for c, output in COMMANDS.items() if output]
# The commands the page says exit with 1: an invalid policy, a finding.
FAILING = {
    "skanse policy validate host-network": 1,
    "skanse scan --policy no-loadbalancer no-loadbalancer/tests/services.yaml": 1,
}


def test_every_command_of_the_page_is_run_here() -> None:
    assert sorted(COMMANDS) == sorted([*PRINTED, SERVE, READY_SCAN])
    assert len(PRINTED) == 5


@pytest.mark.parametrize("command", PRINTED)
def test_a_command_prints_what_the_page_shows(cli: Any, example: Path, command: str) -> None:
    program, *args = shlex.split(command)
    assert program == "skanse"
    result = cli(*args)
    assert (result.code, result.stdout) == (FAILING.get(command, 0), COMMANDS[command])


def test_the_ready_policies_scan_of_deploy_reports_images_from_other_registries(
    cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    args = shlex.split(READY_SCAN)[1:]
    result = cli(*args[:-1], "--no-config", "-f", "json", args[-1])
    assert result.code == 1, result.stderr
    found = {
        (f["check_id"], f["resource"]["kind"], f["resource"]["name"])
        for f in json.loads(result.stdout)["findings"]
        if f["check_id"].startswith("VAP:")
    }
    assert found == {
        ("VAP:registry-allow-list/0", "Deployment", "skanse-admission"),
        ("VAP:registry-allow-list/0", "DaemonSet", "skanse-sensor"),
    }


def _service_review(namespace: str) -> bytes:
    """The review of the page's `api` Service, created in `namespace`."""
    service = next(yaml.safe_load_all(dict(FILES)["no-loadbalancer/tests/services.yaml"]))
    service["metadata"]["namespace"] = namespace
    return review(
        {
            "uid": "7c1e",
            "kind": {"group": "", "version": "v1", "kind": "Service"},
            "resource": {"group": "", "version": "v1", "resource": "services"},
            "name": "api",
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "alice"},
            "object": service,
        }
    )


def test_the_webhook_answers_the_review_the_page_shows(example: Path) -> None:
    printed = re.search(r"```json\n(\{\"uid\".*?\})\n```", PAGE, flags=re.S)
    assert printed is not None
    expected = json.loads(printed.group(1))
    args = shlex.split(SERVE)[3:]
    vap = args[: args.index("--cert")]
    process, tls, log = _serve(example, *vap)
    try:
        assert process.poll() is None, log.read_text()
        url = f"https://127.0.0.1:{_port(log)}/validate"
        with httpx.Client(verify=_client_context(tls / "ca.crt"), timeout=10) as client:
            answers = {
                ns: client.post(
                    url, content=_service_review(ns), headers={"content-type": "application/json"}
                ).json()["response"]
                for ns in ("payroll", "shop")
            }
    finally:
        _stop(process)
    denied = answers["payroll"]
    assert denied["allowed"] is False
    assert {k: denied["status"][k] for k in expected["status"]} == expected["status"]
    assert answers["shop"]["allowed"] is True
