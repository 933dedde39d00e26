"""The sensor process itself: clean detach, exact drop accounting, metrics, fallbacks."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.runtime.conftest import ROOT, SensorProcess, live, stable_rules

BURST = r"""
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
    long n = atol(argv[2]);
    for (long i = 0; i < n; i++) {
        int fd = open(argv[1], O_RDONLY);
        if (fd < 0) { perror("open"); return 1; }
        close(fd);
    }
    return 0;
}
"""


def _bpftool(kind: str) -> list[dict]:
    done = subprocess.run(
        ["bpftool", "-j", kind, "show"], capture_output=True, text=True, timeout=30, check=True
    )
    return json.loads(done.stdout or "[]")


def _possible_cpus() -> int:
    """What libbpf_num_possible_cpus counts: /sys/devices/system/cpu/possible ("0-3,8")."""
    text = Path("/sys/devices/system/cpu/possible").read_text().strip()
    count = 0
    for part in text.split(","):
        low, _, high = part.partition("-")
        count += int(high or low) - int(low) + 1
    return count


def _ours(kind: str) -> set[int]:
    return {item["id"] for item in _bpftool(kind) if str(item.get("name", "")).startswith("skn_")}


@live
@pytest.mark.parametrize("ending", ["sigterm", "duration"])
def test_stopping_detaches_every_program_and_map(tmp_path: Path, ending: str, sensors) -> None:
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool is not installed")
    before_progs, before_maps = _ours("prog"), _ours("map")
    extra = ["--duration", "2"] if ending == "duration" else []
    sensor = sensors(tmp_path, "--rules", str(stable_rules()), *extra)
    progs, maps = _ours("prog") - before_progs, _ours("map") - before_maps
    from skanse.runtime.bpf_sensor import SHARERS_KFUNCS
    from skanse.runtime.libbpf import load_libbpf

    # the program that kills a killed opener's file-table sharers, where the kernel can
    sharers = load_libbpf().kernel_functions(SHARERS_KFUNCS) == set(SHARERS_KFUNCS)
    assert len(progs) == 4 + sharers, "sys_exit, sched_process_exec, _fork, _exit (+ sharers)"
    cpus = _possible_cpus()
    assert len(maps) == 10 + cpus, (
        "syscalls, counters, config, kill_paths, kill_cgroups, tail, sharers, wakeup, scratch,"
        " rings + a ring each"
    )
    if ending == "duration":
        sensor.process.wait(30)
    summary = sensor.stop(signal.SIGTERM)
    assert sensor.process.returncode == 0
    assert summary["records_produced"] == summary["records_delivered"] + summary["records_dropped"]
    deadline = time.monotonic() + 5  # the kernel frees programs and maps after an RCU period
    while (_ours("prog") & progs or _ours("map") & maps) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _ours("prog") & progs, "a BPF program of the sensor is still loaded"
    assert not _ours("map") & maps, "a BPF map of the sensor is still loaded"


@pytest.fixture(scope="module")
def burst(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a program that opens and closes its first argument N times, a file for it to open)."""
    if shutil.which("clang") is None:
        pytest.skip("clang is not installed (make test installs it)")
    tmp = tmp_path_factory.mktemp("burst")
    source = tmp / "burst.c"
    source.write_text(BURST)
    binary = tmp / "burst"
    subprocess.run(["clang", "-O2", "-o", str(binary), str(source)], check=True, timeout=60)
    target = tmp / "target"
    target.write_text("x")
    return binary, target


@live
def test_openat_burst_drop_accounting_is_exact_and_nothing_is_dropped(
    tmp_path: Path, sensors, burst: tuple[Path, Path]
) -> None:
    binary, target = burst
    sensor = sensors(tmp_path, "--rules", str(stable_rules()))  # default ring buffer size
    try:
        started = time.monotonic()
        done = subprocess.run([str(binary), str(target), "300000"], timeout=120, check=False)
        burst_seconds = time.monotonic() - started
        assert done.returncode == 0
    finally:
        summary = sensor.stop()
    assert summary, sensor.logs()[-3:]
    produced = summary["records_produced"]
    assert produced == summary["records_delivered"] + summary["records_dropped"]
    assert summary["records_dropped"] == 0, json.dumps(summary)
    # a reservation fails with room left when the producer sees a torn consumer position
    # (a zeroed one made a wrapped ring look full): the reader must never write one
    assert summary["reservations_retried"] == 0, json.dumps(summary)
    assert summary["events_by_type"]["openat"] >= 300_000
    assert summary["record_errors"] == 0 and summary["malformed_records"] == 0
    print(
        f"300,000 open+close in {burst_seconds:.2f}s with the sensor; {produced} records, 0 dropped"
    )


@live
def test_drops_are_counted_exactly_when_the_buffer_overflows(
    tmp_path: Path, sensors, burst: tuple[Path, Path]
) -> None:
    """A 1 MiB ring buffer and a stopped consumer: records must be lost, and counted."""
    binary, target = burst
    sensor = sensors(tmp_path, "--rules", str(stable_rules()), "--ring-buffer-mib", "1")
    sensor.process.send_signal(signal.SIGSTOP)
    try:
        subprocess.run([str(binary), str(target), "100000"], timeout=120, check=True)
    finally:
        sensor.process.send_signal(signal.SIGCONT)
    summary = sensor.stop()
    assert summary["records_dropped"] > 50_000  # 1 MiB holds about 8,000 open records
    assert summary["records_dropped_with_room_left"] == 0  # all of them for want of room
    assert summary["records_produced"] == summary["records_delivered"] + summary["records_dropped"]
    assert summary["records_produced"] >= 100_000


def _flood_while_stopped(sensor: SensorProcess, burst: tuple[Path, Path], count: int) -> None:
    binary, target = burst
    sensor.process.send_signal(signal.SIGSTOP)
    try:
        subprocess.run([str(binary), str(target), str(count)], timeout=120, check=True)
    finally:
        sensor.process.send_signal(signal.SIGCONT)


@live
def test_drops_raise_an_alert_and_a_critical_log_line(
    tmp_path: Path, sensors, burst: tuple[Path, Path]
) -> None:
    """An attacker who floods events to blind the sensor is seen: the flood is an alert."""
    sensor = sensors(tmp_path, "--rules", str(stable_rules()), "--ring-buffer-mib", "1")
    time.sleep(1.2)  # the drop monitor's first interval starts
    _flood_while_stopped(sensor, burst, 100_000)
    alert = sensor.wait_for(lambda a: a["rule"] == "Falco internal: syscall event drop", 15)
    summary = sensor.stop()
    assert alert is not None, "records were dropped and no alert said so"
    assert alert["priority"] == "Critical"
    fields = alert["output_fields"]
    assert fields["n_drops"] > 50_000
    assert fields["n_evts"] >= fields["n_drops"]
    assert isinstance(fields["evt.time"], int) and fields["container.id"] == "host"
    assert f"{fields['n_drops']} system calls dropped" in alert["output"]
    logged = [r for r in sensor.logs() if r.get("level") == "critical"]
    assert logged and logged[0]["n_drops"] == fields["n_drops"]
    assert summary["records_dropped"] >= fields["n_drops"]


@live
def test_drops_with_the_exit_action_stop_the_sensor_with_an_error(
    tmp_path: Path, sensors, burst: tuple[Path, Path]
) -> None:
    config = tmp_path / "sensor.yaml"
    config.write_text("syscall_event_drops:\n  threshold: 0.05\n  actions: [log, exit]\n")
    sensor = sensors(
        tmp_path, "--config", str(config), "--rules", str(stable_rules()), "--ring-buffer-mib", "1"
    )
    time.sleep(1.2)
    _flood_while_stopped(sensor, burst, 100_000)
    sensor.process.wait(30)
    assert sensor.process.returncode not in (0, None)
    assert any("syscall_event_drops: exit" in str(r) for r in sensor.logs())
    assert not sensor.alerts()  # log and exit, no alert: only the configured actions run


@live
def test_metrics_endpoint_counts_events_and_rule_matches(tmp_path: Path, sensors) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sensor = sensors(tmp_path, "--rules", str(stable_rules()), "--metrics-port", str(port))
    try:
        subprocess.run(["cat", "/etc/shadow"], stdout=subprocess.DEVNULL, check=True)
        assert sensor.wait_for(lambda a: a["rule"] == "Read sensitive file untrusted", timeout=5)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    finally:
        sensor.stop()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    assert values['skanse_sensor_events_total{source="ebpf"}'] > 0
    assert values['skanse_sensor_events_dropped_total{reason="ringbuf_full"}'] == 0
    assert values['skanse_sensor_events_dropped_total{reason="ringbuf_busy"}'] == 0
    produced = values['skanse_sensor_events_produced_total{source="ebpf"}']
    assert produced >= values['skanse_sensor_events_total{source="ebpf"}'] > 0
    key = (
        'skanse_sensor_rule_matches_total{priority="Warning",rule="Read sensitive file untrusted"}'
    )
    assert values[key] >= 1
    assert any(k.startswith("skanse_build_info{") for k in values)


@live
def test_dry_run_prints_the_plan_and_loads_nothing(cli, capsys) -> None:
    before = _ours("prog")
    result = cli("runtime", "run", "--rules", str(stable_rules()), "--dry-run")
    assert result.code == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["rules"]["enabled"] == 25
    syscalls = plan["sensor"]["syscalls"]
    assert {"execve", "execveat", "openat", "connect", "ptrace", "socket"} <= set(syscalls)
    assert syscalls["openat"]["nr"] == 257
    assert "read" not in syscalls  # no rule indexes on it: filtered in the kernel
    assert plan["rules_that_cannot_fire"] == []
    assert _ours("prog") == before


def test_not_root_gets_a_clear_error_naming_the_requirement(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    python: tuple[str, ...] = (sys.executable,)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    if os.geteuid() != 0:
        command_prefix: list[str] = []
    else:
        nobody = request.getfixturevalue("nobody")  # reachable from a 0700 parent too
        python, env = nobody.argv, nobody.env
        command_prefix = [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ]
        if shutil.which("setpriv") is None:
            pytest.skip("setpriv (util-linux) is not installed")
    import tempfile

    readable = Path(tempfile.mkdtemp(prefix="skanse-nonroot-"))  # pytest's tmp is root-only
    readable.chmod(0o755)
    rules = readable / "rules.yaml"
    rules.write_text(Path(stable_rules()).read_text())
    rules.chmod(0o644)
    done = subprocess.run(
        [
            *command_prefix,
            *python,
            "-m",
            "skanse",
            "runtime",
            "run",
            "--rules",
            str(rules),
            "--state-dir",
            str(tmp_path / "state"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
        cwd=readable,
    )
    shutil.rmtree(readable)
    assert done.returncode == 2, done.stderr
    assert "missing requirement: root, or the capabilities CAP_BPF and CAP_PERFMON" in done.stderr
    assert "--sensor audit" in done.stderr


def test_missing_btf_and_missing_object_are_named(tmp_path: Path) -> None:
    from skanse.errors import SensorUnavailableError
    from skanse.runtime.bpf_sensor import BpfSensorOptions, preflight

    with pytest.raises(SensorUnavailableError) as caught:
        preflight(BpfSensorOptions(btf_path=str(tmp_path / "no-btf")))
    assert "CONFIG_DEBUG_INFO_BTF" in caught.value.requirement
    assert "--sensor audit" in caught.value.diagnostics()
    if os.geteuid() == 0:
        with pytest.raises(SensorUnavailableError) as caught:
            preflight(BpfSensorOptions(object_path=tmp_path / "sensor.bpf.o"))
        assert "make bpf" in caught.value.requirement


@live
def test_audit_fallback_reports_exec_events_and_removes_its_rule(tmp_path: Path, sensors) -> None:
    marker = f"skanse-audit-{secrets.token_hex(4)}"
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "- rule: audit marker\n"
        "  desc: an exec with the marker\n"
        f"  condition: evt.type in (execve, execveat) and proc.cmdline contains {marker}\n"
        "  output: seen %proc.cmdline (parent=%proc.pname cwd=%proc.cwd)\n"
        "  priority: NOTICE\n"
    )
    sensor = sensors(tmp_path, "--sensor", "audit", "--rules", str(rules))
    try:
        child = subprocess.Popen(["sh", "-c", f": {marker}"], cwd=tmp_path)
        child.wait(10)
        alert = sensor.wait_for(lambda a: a["rule"] == "audit marker", timeout=5)
        while_running = _audit_rules()
    finally:
        sensor.stop()
    assert alert is not None
    assert alert["output_fields"]["proc.cmdline"] == f"sh -c : {marker}"
    assert alert["output_fields"]["proc.cwd"] == str(tmp_path)
    # the listing shows the sensor's rule (key "skanse") while it runs, and not after
    assert while_running is not None and b"skanse" in while_running
    listing = _audit_rules()
    assert listing is not None and b"skanse" not in listing


def _audit_rules() -> bytes | None:
    """The kernel's audit rules (AUDIT_LIST_RULES), raw, or None if unreadable."""
    import socket
    import struct

    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 9)
    except OSError:
        return None
    with sock:
        sock.bind((0, 0))
        sock.send(struct.pack("=IHHII", 16, 1013, 1 | 0x300, 1, 0))  # AUDIT_LIST_RULES, dump
        sock.settimeout(2)
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                return data
            data += chunk
            if struct.unpack_from("=H", chunk, 4)[0] in (2, 3):  # error or done
                return data
