"""Response policy, journal, safety limits, and the sensor configuration file."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from skanse.errors import ConfigError, ResponseError
from skanse.rules.engine import Alert
from skanse.rules.loader import Priority
from skanse.runtime.config import load_sensor_config
from skanse.runtime.responses import (
    Action,
    JournalEntry,
    Policy,
    Responder,
    ResponseJournal,
    ResponseTargets,
    parse_actions,
    release,
)


def _alert(rule: str, priority: Priority) -> Alert:
    return Alert(1, rule, priority, "syscall", "node", "text", {}, ())


def test_policy_selects_by_rule_and_by_priority_threshold_in_a_safe_order() -> None:
    policy = Policy(
        {"Terminal shell in container": frozenset({Action.KILL})},
        ((Priority.CRITICAL, frozenset({Action.ISOLATE, Action.FREEZE})),),
    )
    assert policy.actions(_alert("Terminal shell in container", Priority.NOTICE)) == [Action.KILL]
    assert policy.actions(_alert("Other", Priority.WARNING)) == []
    assert policy.actions(_alert("Other", Priority.EMERGENCY)) == [Action.FREEZE, Action.ISOLATE]
    # contain before killing: a killed process cannot be followed into its namespace
    both = policy.actions(_alert("Terminal shell in container", Priority.CRITICAL))
    assert both == [Action.FREEZE, Action.ISOLATE, Action.KILL]


def test_unknown_actions_are_refused() -> None:
    with pytest.raises(ResponseError, match="unknown response action 'nuke'"):
        parse_actions("kill,nuke")


def test_journal_round_trip_is_atomic_and_private(tmp_path: Path) -> None:
    journal = ResponseJournal(tmp_path / "state")
    entry = journal.append(
        JournalEntry(0, "t", "freeze", "r", "Critical", "3f2a9c1b7d4e", 7, "done", "froze", "/x", 2)
    )
    assert entry.id == 1
    assert (
        journal.append(
            JournalEntry(0, "t", "kill", "r", "Critical", "3f2a9c1b7d4e", 7, "done", "killed")
        ).id
        == 2
    )
    assert [e.action for e in journal.load()] == ["freeze", "kill"]
    assert journal.path.stat().st_mode & 0o777 == 0o600
    assert json.loads(journal.path.read_text())["schema_version"] == 1


def test_a_corrupt_journal_is_an_error_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "responses.json").write_text("{not json")
    with pytest.raises(ResponseError, match="unreadable"):
        ResponseJournal(tmp_path).load()


def test_release_thaws_a_frozen_cgroup_from_the_journal(tmp_path: Path) -> None:
    cgroup = tmp_path / "cg" / "docker-x.scope"
    cgroup.mkdir(parents=True)
    (cgroup / "cgroup.freeze").write_text("1")
    journal = ResponseJournal(tmp_path / "state")
    journal.append(
        JournalEntry(
            0,
            "t",
            "freeze",
            "r",
            "Critical",
            "3f2a9c1b7d4e",
            7,
            "done",
            "froze",
            "/docker-x.scope",
            2,
        )
    )
    targets = ResponseTargets(cgroup2_mount=str(tmp_path / "cg"))
    results = release("3f2a9c1b7d4e", journal, targets=targets)
    assert [r.ok for r in results] == [True]
    assert (cgroup / "cgroup.freeze").read_text() == "0"
    assert journal.load()[0].status == "released"
    assert release("3f2a9c1b7d4e", journal, targets=targets) == []  # once is enough


def test_release_of_a_quarantine_without_an_api_fails_clearly(tmp_path: Path) -> None:
    journal = ResponseJournal(tmp_path)
    journal.append(
        JournalEntry(
            0, "t", "quarantine", "r", "Critical", "3f2a9c1b7d4e", 7, "done", "x", pod="shop/web"
        )
    )
    (result,) = release("3f2a9c1b7d4e", journal)
    assert not result.ok and "needs the Kubernetes API" in result.message
    assert journal.load()[0].status == "release-failed"


_FULL_A = "3f2a9c1b7d4e" + "a" * 52
_FULL_B = "3f2a9c1b7d4e" + "b" * 52  # the same short id as A: another container
_FULL_C = "3f99999999990000" + "c" * 48


def _frozen_containers(tmp_path: Path, *full_ids: str) -> tuple[ResponseJournal, ResponseTargets]:
    """A journal with one freeze per container, each cgroup frozen."""
    journal = ResponseJournal(tmp_path / "state")
    for full in full_ids:
        cgroup = tmp_path / "cg" / f"docker-{full}.scope"
        cgroup.mkdir(parents=True)
        (cgroup / "cgroup.freeze").write_text("1")
        journal.append(
            JournalEntry(
                0, "t", "freeze", "r", "Critical", full[:12], 7, "done", "froze",
                f"/docker-{full}.scope", 2,
            )
        )  # fmt: skip
    return journal, ResponseTargets(cgroup2_mount=str(tmp_path / "cg"))


def _frozen(tmp_path: Path, full: str) -> str:
    return (tmp_path / "cg" / f"docker-{full}.scope" / "cgroup.freeze").read_text()


@pytest.mark.parametrize(
    "given", ["", "3", "3f", "3f2a9c", "3f2a9c1b7d4", "3F2A-9C1B7D4E", "zz" * 6]
)
def test_release_refuses_a_short_or_malformed_id_and_releases_nothing(
    tmp_path: Path, given: str
) -> None:
    journal, targets = _frozen_containers(tmp_path, _FULL_A, _FULL_C)
    with pytest.raises(ResponseError, match="12 to 64 hex characters"):
        release(given, journal, targets=targets)
    assert _frozen(tmp_path, _FULL_A) == _frozen(tmp_path, _FULL_C) == "1"
    assert [e.status for e in journal.load()] == ["done", "done"]


def test_release_of_an_ambiguous_id_lists_the_candidates_and_releases_nothing(
    tmp_path: Path,
) -> None:
    journal, targets = _frozen_containers(tmp_path, _FULL_A, _FULL_B, _FULL_C)
    with pytest.raises(ResponseError, match="ambiguous") as raised:
        release("3f2a9c1b7d4e", journal, targets=targets)
    assert _FULL_A in str(raised.value) and _FULL_B in str(raised.value)
    assert _FULL_C not in str(raised.value)
    assert {_frozen(tmp_path, f) for f in (_FULL_A, _FULL_B, _FULL_C)} == {"1"}
    assert [e.status for e in journal.load()] == ["done", "done", "done"]


@pytest.mark.parametrize("given", [_FULL_A, _FULL_A[:13], _FULL_A[:40].upper()])
def test_release_of_a_unique_prefix_of_the_full_id_releases_that_container_only(
    tmp_path: Path, given: str
) -> None:
    journal, targets = _frozen_containers(tmp_path, _FULL_A, _FULL_B, _FULL_C)
    (result,) = release(given, journal, targets=targets)
    assert result.ok and result.entry.cgroup == f"/docker-{_FULL_A}.scope"
    assert [_frozen(tmp_path, f) for f in (_FULL_A, _FULL_B, _FULL_C)] == ["0", "1", "1"]
    assert [e.status for e in journal.load()] == ["released", "done", "done"]


def test_release_of_a_full_id_the_journal_does_not_know_releases_nothing(tmp_path: Path) -> None:
    journal, targets = _frozen_containers(tmp_path, _FULL_B)
    # A shares B's short id; the journal knows B's full id from its cgroup
    assert release(_FULL_A, journal, targets=targets) == []
    assert _frozen(tmp_path, _FULL_B) == "1"


def test_release_leaves_a_response_it_cannot_attribute_to_one_container(tmp_path: Path) -> None:
    journal, targets = _frozen_containers(tmp_path, _FULL_A, _FULL_B)
    # a quarantine has no cgroup path: A's or B's?
    journal.append(
        JournalEntry(
            0, "t", "quarantine", "r", "Critical", "3f2a9c1b7d4e", 7, "done", "x", pod="shop/web"
        )
    )
    results = release(_FULL_A, journal, targets=targets)
    assert sorted((r.entry.action, r.ok) for r in results) == [
        ("freeze", True),
        ("quarantine", False),
    ]
    assert [e.status for e in journal.load()] == ["released", "done", "done"]


def test_release_command_refuses_an_ambiguous_id_with_the_candidates(cli, tmp_path: Path) -> None:
    journal, _ = _frozen_containers(tmp_path, _FULL_A, _FULL_B)
    done = cli("runtime", "release", "3f2a9c1b7d4e", "--state-dir", str(tmp_path / "state"))
    assert done.code == 2
    assert "ambiguous" in done.stderr and _FULL_A in done.stderr and _FULL_B in done.stderr
    assert "released" not in done.stdout
    assert [e.status for e in journal.load()] == ["done", "done"]


def _responder(tmp_path: Path, policy: Policy, **kwargs) -> Responder:
    return Responder(policy, ResponseJournal(tmp_path), **kwargs)


def test_host_processes_are_never_frozen_or_isolated(tmp_path: Path) -> None:
    policy = Policy(
        by_priority=((Priority.CRITICAL, frozenset({Action.FREEZE, Action.ISOLATE, Action.KILL})),)
    )
    entries = _responder(tmp_path, policy).handle(
        _alert("r", Priority.CRITICAL), {"pid": os.getpid(), "container_id": "host"}
    )
    assert [(e.action, e.status) for e in entries] == [
        ("freeze", "skipped"),
        ("isolate", "skipped"),
        ("kill", "skipped"),
    ]
    assert os.getpid()  # still alive


def test_a_container_in_the_host_network_namespace_is_not_isolated(tmp_path: Path) -> None:
    """Safety: a container with host networking must not get a drop-all table (the node)."""
    if os.geteuid() != 0:
        pytest.skip("reading other processes' namespaces needs root")
    sleeper = subprocess.Popen(["sleep", "30"])  # on the host network, like hostNetwork: true
    try:
        policy = Policy(by_priority=((Priority.CRITICAL, frozenset({Action.ISOLATE})),))
        (entry,) = _responder(tmp_path, policy).handle(
            _alert("r", Priority.CRITICAL),
            {"pid": sleeper.pid, "container_id": "3f2a9c1b7d4e", "cgroup_path": "/"},
        )
    finally:
        sleeper.kill()
        sleeper.wait()
    assert entry.status == "failed"
    assert "would cut off the node" in entry.detail
    tables = subprocess.run(
        ["nft", "list", "tables"], capture_output=True, text=True, check=False
    ).stdout
    assert "skanse_isolate" not in tables


def test_dry_run_journals_nothing_done(tmp_path: Path) -> None:
    policy = Policy({"r": frozenset({Action.KILL})})
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        (entry,) = _responder(tmp_path, policy, dry_run=True).handle(
            _alert("r", Priority.NOTICE), {"pid": sleeper.pid, "container_id": "3f2a9c1b7d4e"}
        )
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()
    assert (entry.status, entry.detail) == ("skipped", "dry run: would kill")


def test_configuration_file(tmp_path: Path) -> None:
    path = tmp_path / "sensor.yaml"
    path.write_text(
        "rules: [a.yaml]\n"
        "outputs: {stdout: false, file: /var/log/alerts.jsonl, syslog: {address: 'udp://10.0.0.1:514'}}\n"
        "metrics: {port: 9376}\n"
        "responses:\n"
        "  - {rule: Terminal shell in container, actions: [kill]}\n"
        "  - {priority: critical, actions: [freeze, isolate]}\n"
    )
    config = load_sensor_config(path)
    assert config.metrics is not None and config.metrics.address == "127.0.0.1"
    policy = config.policy()
    assert policy.by_rule == {"Terminal shell in container": frozenset({Action.KILL})}
    assert policy.by_priority == ((Priority.CRITICAL, frozenset({Action.FREEZE, Action.ISOLATE})),)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "responses: [{rule: x, priority: critical, actions: [kill]}]\n",
            "either a rule or a priority",
        ),
        ("responses: [{priority: loud, actions: [kill]}]\n", "unknown priority"),
        ("responses: [{rule: x, actions: [explode]}]\n", "unknown action"),
        ("ring_buffer_mib: 48\n", "power of two"),
        ("metrics: {port: 70000}\n", "metrics.port"),
        ("surprise: 1\n", "surprise"),
        ("append_output: 'pod=%'\n", "append_output"),
        ("append_output: '%no.such_field'\n", "append_output"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("a: &x [*x]\n", "YAML"),
    ],
)
def test_bad_configuration_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "sensor.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_sensor_config(path)


FULL_ID = "3f2a9c1b7d4e" + "5" * 52  # the container the alerts' processes are in
OTHER_ID = "9e8d7c6b5a41" + "7" * 52  # another container on the node


def test_a_released_container_is_contained_again_when_it_alerts_again(tmp_path: Path) -> None:
    cgroup = tmp_path / "cg" / f"docker-{FULL_ID}.scope"
    cgroup.mkdir(parents=True)
    (cgroup / "cgroup.freeze").write_text("0")
    journal = ResponseJournal(tmp_path / "state")
    targets = ResponseTargets(cgroup2_mount=str(tmp_path / "cg"), cgroup1_freezer=None)
    policy = Policy({"r": frozenset({Action.FREEZE})})
    responder = Responder(policy, journal, targets=targets)
    context = {
        "pid": 999_999_999,
        "container_id": "3f2a9c1b7d4e",
        "cgroup_path": f"/docker-{FULL_ID}.scope",
    }
    alert = _alert("r", Priority.WARNING)
    assert [e.status for e in responder.handle(alert, context)] == ["done"]
    assert responder.handle(alert, context) == []  # frozen already: nothing new
    assert (cgroup / "cgroup.freeze").read_text() == "1"
    release("3f2a9c1b7d4e", journal, targets=targets)
    assert (cgroup / "cgroup.freeze").read_text() == "0"
    assert [e.status for e in responder.handle(alert, context)] == ["done"]
    assert (cgroup / "cgroup.freeze").read_text() == "1"


def test_freeze_falls_back_to_the_v1_freezer_named_in_proc_cgroup(tmp_path: Path) -> None:
    """No v2 path to freeze: the freezer line of /proc/<pid>/cgroup names the v1 cgroup."""
    pid = 4242
    proc = tmp_path / "proc" / str(pid)
    proc.mkdir(parents=True)
    (proc / "cgroup").write_text(
        f"12:cpu,cpuacct:/docker/{FULL_ID}\n"
        f"5:freezer:/docker/{FULL_ID}\n"
        f"0::/system.slice/docker-{FULL_ID}.scope\n"  # in v2 too, but no cgroup.freeze there
    )
    freezer = tmp_path / "freezer"
    (freezer / "docker" / FULL_ID).mkdir(parents=True)
    (freezer / "docker" / FULL_ID / "freezer.state").write_text("THAWED")
    targets = ResponseTargets(
        cgroup2_mount=str(tmp_path / "cg"),
        cgroup1_freezer=str(freezer),
        proc_root=str(tmp_path / "proc"),
    )
    journal = ResponseJournal(tmp_path / "state")
    responder = Responder(Policy({"r": frozenset({Action.FREEZE})}), journal, targets=targets)
    context = {"pid": pid, "container_id": "3f2a9c1b7d4e"}
    (entry,) = responder.handle(_alert("r", Priority.WARNING), context)
    assert (entry.status, entry.cgroup) == ("done", f"/docker/{FULL_ID}"), entry
    assert (freezer / "docker" / FULL_ID / "freezer.state").read_text() == "FROZEN"


def _scopes(tmp_path: Path, *paths: str) -> Path:
    """A cgroup v2 tree with a `cgroup.freeze` (0) in each of `paths`."""
    mount = tmp_path / "cg"
    for path in paths:
        (mount / path).mkdir(parents=True, exist_ok=True)
        (mount / path / "cgroup.freeze").write_text("0")
    return mount


def test_freeze_acts_on_the_container_cgroup_not_a_sub_cgroup_the_process_moved_into(
    tmp_path: Path,
) -> None:
    """A process with its cgroup tree writable (systemd in a container, a delegated cgroup)
    moves into a sub-cgroup of its own before it execs: freezing only that sub-cgroup left
    the rest of the container running, free to move the frozen process out (a migration
    into an unfrozen cgroup thaws it)."""
    scope = f"system.slice/docker-{FULL_ID}.scope"
    mount = _scopes(tmp_path, scope, f"{scope}/escape")
    targets = ResponseTargets(cgroup2_mount=str(mount), cgroup1_freezer=None)
    responder = Responder(
        Policy({"r": frozenset({Action.FREEZE})}), ResponseJournal(tmp_path / "s"), targets=targets
    )
    context = {
        "pid": 999_999_999,
        "container_id": "3f2a9c1b7d4e",
        "cgroup_path": f"/{scope}/escape",
    }
    (entry,) = responder.handle(_alert("r", Priority.WARNING), context)
    assert (entry.status, entry.cgroup) == ("done", f"/{scope}"), entry
    assert (mount / scope / "cgroup.freeze").read_text() == "1"


def test_freeze_never_acts_on_another_containers_cgroup(tmp_path: Path) -> None:
    """No cgroup path recorded for the event (its cgroup id could not be resolved): the
    pid's /proc/<pid>/cgroup is read, and the pid now belongs to a process of another
    container (reused since the event). That container must not be frozen."""
    pid = 4242
    proc = tmp_path / "proc" / str(pid)
    proc.mkdir(parents=True)
    (proc / "cgroup").write_text(f"0::/system.slice/docker-{OTHER_ID}.scope\n")
    other = f"system.slice/docker-{OTHER_ID}.scope"
    mount = _scopes(tmp_path, other)
    targets = ResponseTargets(
        cgroup2_mount=str(mount), cgroup1_freezer=None, proc_root=str(tmp_path / "proc")
    )
    responder = Responder(
        Policy({"r": frozenset({Action.FREEZE})}), ResponseJournal(tmp_path / "s"), targets=targets
    )
    (entry,) = responder.handle(
        _alert("r", Priority.WARNING), {"pid": pid, "container_id": "3f2a9c1b7d4e"}
    )
    assert entry.status == "failed", entry
    assert (mount / other / "cgroup.freeze").read_text() == "0"


def test_isolate_attaches_to_the_container_cgroup_not_a_sub_cgroup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cgroup BPF programs go on the container's cgroup (they apply to every cgroup
    below it); on a sub-cgroup the process made, the rest of the container stayed connected
    and the process could move back out. The attach itself needs BPF: recorded here."""
    import skanse.runtime.responses as responses

    attached: list[str] = []

    def attach(cgroup_dir: str, pin_dir: str) -> list[str]:
        attached.append(cgroup_dir)
        return [pin_dir]

    monkeypatch.setattr(responses, "isolate_cgroup", attach)
    scope = f"kubepods/burstable/pod1234/{FULL_ID}"
    mount = _scopes(tmp_path, f"{scope}/x/y")
    targets = ResponseTargets(
        cgroup2_mount=str(mount), cgroup1_freezer=None, bpf_pins=str(tmp_path / "pins")
    )
    responder = Responder(
        Policy({"r": frozenset({Action.ISOLATE})}), ResponseJournal(tmp_path / "s"), targets=targets
    )
    context = {"pid": 999_999_999, "container_id": "3f2a9c1b7d4e", "cgroup_path": f"/{scope}/x/y"}
    (entry,) = responder.handle(_alert("r", Priority.WARNING), context)
    assert (entry.status, entry.cgroup) == ("done", f"/{scope}"), entry
    assert attached == [f"{mount}/{scope}"]


def test_isolate_fallback_never_enters_the_network_namespace_of_a_reused_pid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The nftables fallback enters /proc/<pid>/ns/net. When the event's process exited and
    its pid went to a process of another container, that namespace is the other
    container's: it must not be cut off. The recorded namespace (the event's) is the one
    that counts, and no process of the container is left in it here."""
    import skanse.runtime.responses as responses

    def attach_fails(cgroup_dir: str, pin_dir: str) -> list[str]:
        raise ResponseError("cgroup BPF not available")

    monkeypatch.setattr(responses, "isolate_cgroup", attach_fails)
    pid = 4242
    (tmp_path / "proc" / str(pid) / "ns").mkdir(parents=True)
    reused = tmp_path / "proc" / str(pid) / "ns" / "net"  # the other container's namespace
    reused.write_text("")
    scope = f"system.slice/docker-{FULL_ID}.scope"
    mount = _scopes(tmp_path, scope)
    (mount / scope / "cgroup.procs").write_text("")  # nothing left in the container
    entered = tmp_path / "entered"
    nsenter = tmp_path / "nsenter"
    nsenter.write_text(f'#!/bin/sh\necho "$@" >> {entered}\n')
    nsenter.chmod(0o755)
    targets = ResponseTargets(
        cgroup2_mount=str(mount),
        cgroup1_freezer=None,
        proc_root=str(tmp_path / "proc"),
        nsenter=str(nsenter),
        bpf_pins=str(tmp_path / "pins"),
    )
    responder = Responder(
        Policy({"r": frozenset({Action.ISOLATE})}), ResponseJournal(tmp_path / "s"), targets=targets
    )
    context = {
        "pid": pid,
        "container_id": "3f2a9c1b7d4e",
        "cgroup_path": f"/{scope}",
        "netns": reused.stat().st_ino + 1,  # the event's process was in another namespace
    }
    (entry,) = responder.handle(_alert("r", Priority.WARNING), context)
    assert entry.status == "failed", entry
    assert not entered.exists(), entered.read_text()
