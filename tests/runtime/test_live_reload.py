"""SIGHUP reloads the rules and configuration; a broken file keeps the running ones.

The first version died on SIGHUP (exit 129): a reload meant a restart, and a restart a gap.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from tests.runtime.conftest import SensorProcess, live

pytestmark = live

RULE = """\
- rule: {name}
  desc: a test rule about one marker file
  condition: evt.type in (open, openat, openat2) and fd.name = {path}
  output: "{name} opened %fd.name (pid=%proc.pid)"
  priority: WARNING
"""


def _open(path: Path) -> None:
    with path.open("rb"):
        pass


def _wait_log(sensor: SensorProcess, msg: str, count: int, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [r for r in sensor.logs() if r.get("msg", "").startswith(msg)]
        if len(found) >= count:
            return found[count - 1]
        assert sensor.process.poll() is None, f"the sensor exited: {sensor.logs()[-3:]}"
        time.sleep(0.05)
    raise AssertionError(f"no log {msg!r} #{count}: {sensor.logs()[-5:]}")


def _fired(sensor: SensorProcess, rule: str, marker: Path, timeout: float = 5) -> bool:
    _open(marker)
    found = sensor.wait_for(
        lambda a: a["rule"] == rule and a["output_fields"].get("fd.name") == str(marker),
        timeout=timeout,
    )
    sensor._seen.clear()
    return found is not None


def test_sighup_swaps_the_rules_and_a_broken_file_keeps_the_old_ones(
    tmp_path: Path, sensors
) -> None:
    first, second = tmp_path / "first.marker", tmp_path / "second.marker"
    first.write_text("x")
    second.write_text("x")
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULE.format(name="First marker", path=first))
    sensor = sensors(tmp_path, "--rules", str(rules))
    assert _fired(sensor, "First marker", first)

    rules.write_text(RULE.format(name="Second marker", path=second))
    sensor.process.send_signal(signal.SIGHUP)
    _wait_log(sensor, "rules reloaded", 1)
    assert _fired(sensor, "Second marker", second)
    assert not _fired(sensor, "First marker", first, timeout=1)

    rules.write_text("- rule: Broken\n  condition: evt.type = open and (\n  output: x\n")
    sensor.process.send_signal(signal.SIGHUP)
    error = _wait_log(sensor, "reload failed", 1)
    assert str(rules) in error["error"]  # located: the file (and line) of the error
    assert sensor.process.poll() is None
    assert _fired(sensor, "Second marker", second)  # the old ruleset still runs

    summary = sensor.stop()
    assert sensor.process.returncode == 0
    assert summary.get("record_errors", 0) == 0
