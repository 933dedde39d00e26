"""Which kill-marked rules the kernel can decide alone, and the pidfd kill for the rest."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from skanse.errors import ResponseError
from skanse.rules.loader import RulesFile, load_rules
from skanse.runtime.enforce import FMODE_READ, path_hash, plan_kernel_kills
from skanse.runtime.responses import kill_process
from tests.conftest import corpus_path

SIMPLE = """\
- macro: open_read
  condition: >-
    (evt.type in (open,openat,openat2) and evt.is_open_read=true
    and fd.typechar='f' and fd.num>=0)
- list: shadow_files
  items: [/etc/shadow, /etc/gshadow]
- rule: Open shadow
  desc: d
  condition: open_read and fd.name in (shadow_files)
  output: o
  priority: CRITICAL
- rule: Open shadow unless passwd
  desc: d
  condition: open_read and fd.name = /etc/shadow and not proc.name = passwd
  output: o
  priority: CRITICAL
- rule: Open by glob
  desc: d
  condition: open_read and fd.name glob /etc/sha*
  output: o
  priority: CRITICAL
- rule: Open an unnormal path
  desc: d
  condition: open_read and fd.name = //etc/shadow
  output: o
  priority: CRITICAL
- rule: Upper exec
  desc: d
  condition: >-
    evt.type in (execve, execveat) and container.id != host
    and proc.is_exe_upper_layer=true
  output: o
  priority: CRITICAL
- rule: Exec or open
  desc: d
  condition: (evt.type = execve or fd.name = /etc/shadow)
  output: o
  priority: CRITICAL
"""


def _rules(text: str):
    result = load_rules([RulesFile("r.yaml", text.encode())])
    assert result.ruleset is not None, result.errors
    return result.ruleset.enabled("syscall")


def test_only_the_simple_shapes_go_to_the_kernel() -> None:
    rules = _rules(SIMPLE)
    plan, userspace = plan_kernel_kills(rules, [r.name for r in rules], allow_host=True)
    assert plan.rules == ("Open shadow", "Upper exec")
    assert dict(plan.paths) == {"/etc/shadow": (FMODE_READ, 0), "/etc/gshadow": (FMODE_READ, 0)}
    assert plan.upper_exec_rule == 1
    # an exception, a glob, an unnormal literal, an `or`: the kernel could kill a process
    # the rule would not match, so those kills stay in userspace
    assert userspace == [
        "Open shadow unless passwd",
        "Open by glob",
        "Open an unnormal path",
        "Exec or open",
    ]
    assert plan.allow_host is False  # one kernel rule asks for a container


def test_rules_not_marked_for_kill_are_not_planned() -> None:
    rules = _rules(SIMPLE)
    plan, userspace = plan_kernel_kills(rules, [], allow_host=False)
    assert not plan.paths and plan.upper_exec_rule is None and not userspace


def test_the_stable_rules_with_their_exceptions_stay_in_userspace() -> None:
    text = corpus_path("falco", "falco_rules.yaml").read_text()
    rules = _rules(text)
    plan, userspace = plan_kernel_kills(rules, [r.name for r in rules], allow_host=False)
    assert not plan.paths  # every sensitive-file rule carries exceptions
    assert "Read sensitive file untrusted" in userspace


def test_path_hash_is_of_the_normal_path() -> None:
    assert path_hash("//etc/shadow") == path_hash("/etc/shadow")
    assert path_hash("/etc/shadow") != path_hash("/shadow/etc")
    assert path_hash("/etc/shadow") != path_hash("/etc/gshadow")


def _start_boot_ns(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rpartition(")")[2].split()
    return int(fields[19]) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def test_a_pidfd_kill_checks_the_start_time_first() -> None:
    victim = subprocess.Popen(["sleep", "30"])
    try:
        started = _start_boot_ns(victim.pid)
        # the alert's process started 10 s earlier: the pid now names another process
        with pytest.raises(ResponseError, match="another process"):
            kill_process(victim.pid, started - 10_000_000_000)
        assert victim.poll() is None  # not killed
        assert "pidfd" in kill_process(victim.pid, started)
        assert victim.wait(10) == -signal.SIGKILL
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()


def test_a_process_that_exited_is_reported_not_an_error_elsewhere() -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    time.sleep(0.05)
    with pytest.raises(ResponseError, match="exited before"):
        kill_process(gone.pid, None)


def test_more_kill_paths_than_the_kernel_map_holds_leave_the_rule_to_userspace() -> None:
    """skn_kill_paths holds 4,096 paths: a rule past that is killed from userspace, whole,
    rather than the sensor failing to start (or a reload failing half applied)."""
    many = ", ".join(f"/srv/secret/{i}" for i in range(5_000))
    text = (
        "- rule: Few\n  desc: d\n  condition: evt.type = openat and fd.name = /etc/shadow\n"
        "  output: o\n  priority: CRITICAL\n"
        f"- rule: Many\n  desc: d\n  condition: evt.type = openat and fd.name in ({many})\n"
        "  output: o\n  priority: CRITICAL\n"
    )
    rules = _rules(text)
    plan, userspace = plan_kernel_kills(rules, ["Few", "Many"], allow_host=False)
    assert set(plan.paths) == {"/etc/shadow"}
    assert userspace == ["Many"]
    assert plan.rules == ("Few",)


def test_the_planner_sizes_match_the_kernel_program() -> None:
    """KILL_PATHS is how many paths the planner gives the kernel: the kernel's table must
    hold that many (a larger plan would fail to load it; a smaller table loses kills)."""
    from skanse.errors import SensorError
    from skanse.runtime.bpf_sensor import default_object_path
    from skanse.runtime.enforce import KILL_PATHS
    from skanse.runtime.libbpf import BpfObject, load_libbpf

    path = default_object_path()
    if not path.is_file():
        pytest.skip(f"{path} is not built (make bpf)")
    try:
        libbpf = load_libbpf()
    except SensorError as exc:
        pytest.skip(f"libbpf is not available: {exc}")
    obj = BpfObject(libbpf, str(path))
    try:
        assert obj.max_entries("skn_kill_paths") == KILL_PATHS
    finally:
        obj.close()
