"""`skanse runtime replay CAPTURE.scap`: incidents recorded with Falco or sysdig re-run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from skanse.rules.loader import RulesFile, load_rules
from skanse.rules.scap import is_scap
from tests.conftest import CORPORA
from tests.rules.scap import SYSDIG, matching, unparse

LEGACY = CORPORA / "falco" / "legacy_tests"
CAT_WRITE = LEGACY / "trace_files" / "cat_write.scap"
RULES = LEGACY / "rules" / "rule_names_with_regex_chars.yaml"

pytestmark = pytest.mark.corpus


def _replay(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "skanse", "runtime", "replay", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )


def test_captures_are_recognised_by_their_header(tmp_path: Path) -> None:
    assert is_scap(CAT_WRITE)  # gzipped, as Falco's fixtures are
    events = tmp_path / "events.jsonl"
    events.write_text('{"type": "open"}\n')
    assert not is_scap(events)
    assert not is_scap(tmp_path / "missing.scap")


@pytest.mark.skipif(SYSDIG is None, reason="sysdig (Debian package) is not installed")
def test_a_legacy_falco_capture_replays_with_libsinsps_count() -> None:
    done = _replay(str(CAT_WRITE), "--rules", str(RULES), "-f", "jsonl")
    assert done.returncode == 0, done.stderr
    alerts = [json.loads(line) for line in done.stdout.splitlines()]
    rule = "Open From Cat ($\\.*+?()[]{}|^)"
    assert alerts and {a["rule"] for a in alerts} == {rule}
    assert all("cat" in a["output"] for a in alerts)
    # runtime alerts of every origin carry evt.time and the appended workload fields
    for alert in alerts:
        fields = alert["output_fields"]
        assert isinstance(fields["evt.time"], int) and fields["evt.time"] > 10**18
        assert fields["container.id"] == "host"
        assert "k8s.pod.name" in fields and fields["k8s.pod.name"] is None
    # libsinsp's own count on the same capture, exit events (Falco >= 0.42 drops enter events)
    loaded = load_rules([RulesFile(RULES.name, RULES.read_bytes())])
    assert loaded.ruleset is not None
    (compiled,) = [r for r in loaded.ruleset.enabled("syscall") if r.name == rule]
    expected = matching(CAT_WRITE, f"({unparse(compiled.ast)}) and evt.dir='<'")
    assert len(alerts) == len(expected) == 4  # the fixture's 8 counted enter events too
    assert "replayed" in done.stderr


def test_without_sysdig_the_error_says_what_is_needed(tmp_path: Path) -> None:
    env = dict(os.environ, PATH=str(tmp_path))  # no sysdig on this PATH
    done = _replay(str(CAT_WRITE), "--rules", str(RULES), env=env)
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "sysdig" in done.stderr


def test_a_reader_that_writes_much_on_standard_error_does_not_stall_the_replay(
    tmp_path: Path,
) -> None:
    # stderr was read only after the last event: a sysdig that wrote more than a pipe holds
    # before it was done waited for skanse, which waited for its next event, for ever
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "sysdig"
    fake.write_text(
        "#!/bin/sh\n"
        "head -c 300000 /dev/zero | tr '\\0' 'w' >&2\n"
        'echo \'{"evt.dir": "<", "evt.num": 7, "evt.type": "execve", "proc.pid": 5,'
        ' "proc.name": "cat"}\'\n'
        'if [ -n "$FAIL" ]; then echo >&2; echo "the capture is truncated" >&2; exit 1; fi\n'
    )
    fake.chmod(0o755)
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "- rule: cat\n  desc: d\n  condition: evt.type = execve and proc.name = cat\n"
        "  output: cat ran\n  priority: WARNING\n"
    )
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    args = [sys.executable, "-m", "skanse", "runtime", "replay", str(CAT_WRITE)]
    args += ["--rules", str(rules), "-f", "jsonl"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False, env=env)
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["rule"] for line in done.stdout.splitlines()] == ["cat"]
    failed = subprocess.run(
        args, capture_output=True, text=True, timeout=60, check=False, env={**env, "FAIL": "1"}
    )
    assert failed.returncode == 2
    message = failed.stderr.splitlines()[-1]
    assert "sysdig could not read the capture: " in message
    assert message.endswith("\\nthe capture is truncated")
    assert len(message) < 1000  # the end of what sysdig wrote, not all of it
