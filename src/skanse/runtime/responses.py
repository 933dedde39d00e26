"""Responses: what the sensor does when a rule fires, opt-in per rule or priority.

    kill        SIGKILL the process that triggered the rule
    freeze      freeze the container's cgroup (cgroup v2 `cgroup.freeze`, v1 freezer)
    isolate     install a drop-all nftables table inside the container's network namespace
    quarantine  with a Kubernetes API: label the pod and apply a deny-all NetworkPolicy
                selecting that label (see skanse.runtime.kubernetes)

Every response is written to a journal (a JSON file in the state directory, replaced
atomically) with what it did, so `skanse runtime release CONTAINER` can undo it: thaw the
cgroup, delete the nftables table, remove the pod label. A kill cannot be undone; it is
journaled all the same. Host processes (not in a container) are never frozen or isolated
(that would freeze or cut off the node), and are killed only with `allow_host`.
"""

from __future__ import annotations

import datetime as _dt
import enum
import json
import os
import re
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from skanse.errors import ResponseError
from skanse.files import write_atomic
from skanse.rules.engine import Alert
from skanse.rules.loader import Priority
from skanse.runtime import procfs
from skanse.runtime.containers import container_cgroup, container_from_cgroup
from skanse.runtime.isolation import cgroup_id, isolate_cgroup, release_cgroup

__all__ = [
    "Action",
    "JournalEntry",
    "Policy",
    "Responder",
    "ResponseJournal",
    "ResponseTargets",
    "release",
]

NFT_TABLE = "skanse_isolate"


class Action(enum.StrEnum):
    KILL = "kill"
    FREEZE = "freeze"
    ISOLATE = "isolate"
    QUARANTINE = "quarantine"


# the order actions run in: contain first, then kill (a killed process cannot be followed
# into its namespace any more)
_ORDER = (Action.FREEZE, Action.ISOLATE, Action.QUARANTINE, Action.KILL)


@dataclass(frozen=True, slots=True)
class Policy:
    """Which alerts trigger which actions: by rule name, or by priority and above."""

    by_rule: Mapping[str, frozenset[Action]] = field(default_factory=dict)
    by_priority: tuple[tuple[Priority, frozenset[Action]], ...] = ()
    allow_host: bool = False

    def actions(self, alert: Alert) -> list[Action]:
        return self.rule_actions(alert.rule, alert.priority)

    def rule_actions(self, rule: str, priority: Priority) -> list[Action]:
        chosen: set[Action] = set(self.by_rule.get(rule, ()))
        for threshold, actions in self.by_priority:
            if priority <= threshold:  # lower value = more severe
                chosen |= actions
        return [a for a in _ORDER if a in chosen]

    @property
    def empty(self) -> bool:
        return not self.by_rule and not self.by_priority


def parse_actions(text: str) -> frozenset[Action]:
    actions = set()
    for part in text.split(","):
        name = part.strip().lower()
        if not name:
            continue
        try:
            actions.add(Action(name))
        except ValueError:
            raise ResponseError(
                f"unknown response action {name!r} (expected: kill, freeze, isolate, quarantine)"
            ) from None
    if not actions:
        raise ResponseError(f"no response action in {text!r}")
    return frozenset(actions)


@dataclass(slots=True)
class JournalEntry:
    id: int
    time: str
    action: str
    rule: str
    priority: str
    container_id: str | None
    pid: int | None
    # done, failed, skipped, released, release-failed; superseded: an isolation whose cgroup
    # was recreated (a restart), replaced by the entry that re-isolated it (`reisolates`)
    status: str
    detail: str
    cgroup: str | None = None  # v2 path under the mount, or v1 freezer path
    cgroup_version: int | None = None
    netns: int | None = None
    pod: str | None = None  # namespace/name
    released: str | None = None
    pins: str | None = None  # bpffs directory of the isolation programs' pinned links
    cgroup_id: int | None = None  # the v2 id (inode) of the cgroup the programs went on
    reisolates: int | None = None  # the id of the superseded entry this one re-isolated


class ResponseJournal:
    """The journal file: every response taken, and whether it was released."""

    def __init__(self, state_dir: str | Path) -> None:
        self.path = Path(state_dir) / "responses.json"
        self._lock = threading.Lock()

    def load(self) -> list[JournalEntry]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError, RecursionError) as exc:
            raise ResponseError(f"{self.path}: the response journal is unreadable: {exc}") from None
        entries = data.get("responses") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise ResponseError(f"{self.path}: not a response journal")
        known = set(JournalEntry.__dataclass_fields__)
        return [
            JournalEntry(**{k: v for k, v in e.items() if k in known})
            for e in entries
            if isinstance(e, dict)
        ]

    def save(self, entries: Sequence[JournalEntry]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = {"schema_version": 1, "responses": [asdict(e) for e in entries]}
        write_atomic(self.path, json.dumps(body, indent=2) + "\n", mode=0o600)

    def append(self, entry: JournalEntry) -> JournalEntry:
        with self._lock:
            entries = self.load()
            entry.id = max((e.id for e in entries), default=0) + 1
            entries.append(entry)
            self.save(entries)
        return entry

    def supersede(self, old: JournalEntry, new: JournalEntry) -> JournalEntry:
        """`new` appended and `old` marked superseded, in one write."""
        with self._lock:
            entries = {e.id: e for e in self.load()}
            new.id = max(entries, default=0) + 1
            old.status = "superseded"
            entries[old.id] = old
            entries[new.id] = new
            self.save(sorted(entries.values(), key=lambda e: e.id))
        return new

    def update(self, changed: Sequence[JournalEntry]) -> None:
        with self._lock:
            entries = {e.id: e for e in self.load()}
            for entry in changed:
                entries[entry.id] = entry
            self.save(sorted(entries.values(), key=lambda e: e.id))


@dataclass(frozen=True, slots=True)
class ResponseTargets:
    """Where the cgroup hierarchies are and how to run nft (overridable for a host root)."""

    cgroup2_mount: str | None = "/sys/fs/cgroup"
    cgroup1_freezer: str | None = "/sys/fs/cgroup/freezer"
    proc_root: str = "/proc"
    nft: str = "nft"
    nsenter: str = "nsenter"
    bpf_pins: str = "/sys/fs/bpf/skanse"  # isolation links are pinned under it


def _now() -> str:
    return _dt.datetime.now(tz=_dt.UTC).isoformat(timespec="seconds")


def _cgroup_paths(pid: int, proc_root: str) -> tuple[str | None, str | None]:
    """(cgroup v2 path, cgroup v1 freezer path) of a process, from /proc/<pid>/cgroup."""
    v2 = freezer = None
    for line in (procfs.read_cgroup(pid, proc_root) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and not parts[1]:
            v2 = parts[2]
        elif "freezer" in parts[1].split(","):
            freezer = parts[2]
    return v2, freezer


def kill_process(pid: int, start_boot_ns: int | None, proc_root: str = "/proc") -> str:
    """SIGKILL through a pidfd, after checking the process is the one that started then.

    The pidfd is opened first: from then on it names that process and no other, even if
    the pid is reused. Its start time is then compared with the one recorded for the
    event, so a pid reused before the pidfd was opened is refused, not killed.
    """
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        raise ResponseError(f"process {pid} exited before it could be killed") from None
    try:
        if start_boot_ns is not None:
            ticks = procfs.start_ticks(pid, proc_root)
            if ticks is None:
                raise ResponseError(f"process {pid} exited before it could be killed")
            expected = start_boot_ns * procfs.CLK_TCK // 1_000_000_000
            if abs(ticks - expected) > 1:
                raise ResponseError(
                    f"pid {pid} now belongs to another process (it started at tick {ticks}, "
                    f"the alert's at {expected}): not killed"
                )
        try:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        except ProcessLookupError:
            raise ResponseError(f"process {pid} exited before it could be killed") from None
    finally:
        os.close(pidfd)
    checked = " (start time checked)" if start_boot_ns is not None else ""
    return f"sent SIGKILL to {pid} through a pidfd{checked}"


def freeze_cgroup(path: str, version: int, targets: ResponseTargets, *, frozen: bool) -> None:
    if version == 2:
        assert targets.cgroup2_mount is not None
        control = Path(targets.cgroup2_mount + path, "cgroup.freeze")
        value = "1" if frozen else "0"
    else:
        assert targets.cgroup1_freezer is not None
        control = Path(targets.cgroup1_freezer + path, "freezer.state")
        value = "FROZEN" if frozen else "THAWED"
    try:
        control.write_text(value, encoding="ascii")
    except OSError as exc:
        raise ResponseError(f"cannot write {value} to {control}: {exc.strerror or exc}") from None


def _isolate_ruleset() -> str:
    # loopback stays open so the container's own processes keep talking to each other;
    # everything else in every direction is dropped, early (priority -300, before conntrack)
    chains = []
    for name, hook, iface in (
        ("input", "input", "iif"),
        ("output", "output", "oif"),
        ("forward", "forward", None),
    ):
        loopback = f"{iface} lo accept; " if iface else ""
        chains.append(
            f"  chain {name} {{ type filter hook {hook} priority -300; policy drop; {loopback}}}"
        )
    return f"table inet {NFT_TABLE} {{\n" + "\n".join(chains) + "\n}\n"


def _run_in_netns(
    pid: int, argv: list[str], targets: ResponseTargets, stdin: str | None = None
) -> None:
    command = [targets.nsenter, f"--net={targets.proc_root}/{pid}/ns/net", *argv]
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            command, input=stdin, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ResponseError(f"{' '.join(command)}: {exc}") from None
    if done.returncode != 0:
        raise ResponseError(
            f"{' '.join(argv)} in the network namespace of {pid} failed: {done.stderr.strip()}"
        )


def _netns_inode(pid: int, proc_root: str) -> int | None:
    try:
        return os.stat(f"{proc_root}/{pid}/ns/net").st_ino
    except OSError:
        return None


def _protected_netns(proc_root: str) -> set[int]:
    """Network namespaces never to isolate: the host's and the sensor's own.

    kthreadd (pid 2) always lives in the initial namespaces, and is readable where pid 1
    may not be (a VM's init can deny it).
    """
    found = {_netns_inode(pid, proc_root) for pid in (1, 2)}
    try:
        found.add(os.stat("/proc/self/ns/net").st_ino)
    except OSError:
        pass
    found.discard(None)
    return {n for n in found if n is not None}


def _own_cgroups(proc_root: str) -> set[str]:
    return {p for p in _cgroup_paths(os.getpid(), proc_root) if p}


def _processes_in(path: str, version: int, targets: ResponseTargets) -> list[int]:
    if version == 2 and targets.cgroup2_mount:
        procs = Path(targets.cgroup2_mount + path, "cgroup.procs")
    elif targets.cgroup1_freezer:
        procs = Path(targets.cgroup1_freezer + path, "cgroup.procs")
    else:
        return []
    try:
        return [int(x) for x in procs.read_text(encoding="ascii").split()]
    except (OSError, ValueError):
        return []


@dataclass(frozen=True, slots=True)
class _InForce:
    stamp: int  # the journal's st_mtime_ns when read
    active: set[tuple[str, str]]  # (container, action) done and not released
    isolated: dict[str, list[JournalEntry]]  # cgroup v2 isolations in force, by container


class Responder:
    """Runs the policy's actions for each alert and journals them."""

    def __init__(
        self,
        policy: Policy,
        journal: ResponseJournal,
        *,
        targets: ResponseTargets | None = None,
        kubernetes: Any = None,  # skanse.runtime.kubernetes.Quarantine
        dry_run: bool = False,
        log: Callable[[JournalEntry], None] | None = None,
    ) -> None:
        self.policy = policy
        self.journal = journal
        self.targets = targets or ResponseTargets()
        self.kubernetes = kubernetes
        self.dry_run = dry_run
        self.log = log
        # what the journal says is in force, with the journal's mtime it was read at
        self._in_force: _InForce | None = None
        # (entry id, cgroup id) re-isolations that failed: not retried every second (logged
        # once); a later restart (another cgroup id) is tried again
        self._reisolate_failed: set[tuple[int, int]] = set()

    def handle(self, alert: Alert, context: Mapping[str, Any]) -> list[JournalEntry]:
        actions = self.policy.actions(alert)
        entries = []
        for action in actions:
            entry = self._act(action, alert, context)
            if entry is not None:
                entries.append(entry)
        return entries

    def _read_in_force(self) -> _InForce:
        """The responses in force, read again whenever the journal changed (by anyone:
        `skanse runtime release` stops re-isolation and lets a response be taken again)."""
        try:
            stamp = self.journal.path.stat().st_mtime_ns
        except FileNotFoundError:
            return _InForce(0, set(), {})
        if self._in_force is None or self._in_force.stamp != stamp:
            entries = self.journal.load()
            isolated: dict[str, list[JournalEntry]] = {}
            for e in entries:
                if (
                    e.action == Action.ISOLATE
                    and e.status == "done"
                    and e.pins
                    and e.cgroup
                    and e.cgroup_version == 2
                ):
                    isolated.setdefault(str(e.container_id), []).append(e)
            active = {
                (str(e.container_id), e.action)
                for e in entries
                if e.status == "done" and e.action != Action.KILL
            }
            self._in_force = _InForce(stamp, active, isolated)
        return self._in_force

    def _active(self) -> set[tuple[str, str]]:
        """(container, action) pairs in force: done and not released."""
        return self._read_in_force().active

    def _isolated(self) -> dict[str, list[JournalEntry]]:
        """cgroup BPF isolations in force (done, not released), by container id."""
        return self._read_in_force().isolated

    def reisolate(self, container: str | None = None) -> list[JournalEntry]:
        """Isolate again the journaled containers (or the one `container`) whose cgroup was
        recreated since: a restart (`podman restart`, a restart policy) makes a new cgroup
        at the same path, without the programs attached to the old one. Called for each
        new container cgroup the sensor sees and periodically as a backstop; the new
        entries (done or failed), each also logged."""
        if self.dry_run or not self.targets.cgroup2_mount:
            return []
        isolated = self._isolated()
        if container is None:
            candidates = [e for entries in isolated.values() for e in entries]
        else:
            candidates = list(isolated.get(container, ()))
        changed = []
        for old in candidates:
            entry = self._reisolate(old)
            if entry is not None:
                changed.append(entry)
        return changed

    def _reisolate(self, old: JournalEntry) -> JournalEntry | None:
        assert old.cgroup is not None and old.pins is not None
        assert self.targets.cgroup2_mount is not None
        directory = self.targets.cgroup2_mount + old.cgroup
        # measured before the attach: if the cgroup is recreated again in between, the
        # next check sees another id and attaches again (an entry journaled before ids
        # were recorded has none, and is attached again once)
        current = cgroup_id(directory)
        if current is None or current == old.cgroup_id:
            return None  # stopped (nothing to cover), or still the cgroup isolated
        if (old.id, current) in self._reisolate_failed:
            return None
        new = JournalEntry(
            id=0,
            time=_now(),
            action=old.action,
            rule=old.rule,
            priority=old.priority,
            container_id=old.container_id,
            pid=None,
            status="done",
            detail="",
            cgroup=old.cgroup,
            cgroup_version=2,
            netns=None,
            pins=old.pins,
            cgroup_id=current,
            reisolates=old.id,
        )
        recreated = (
            f"cgroup v2 {old.cgroup} was recreated (id {old.cgroup_id} -> {current}: "
            "the container restarted)"
        )
        try:
            # the old links hold the removed cgroup, which no process can join again
            release_cgroup(old.pins)
            isolate_cgroup(directory, old.pins)
        except ResponseError as exc:
            if len(self._reisolate_failed) > 4096:
                self._reisolate_failed.clear()
            self._reisolate_failed.add((old.id, current))
            new.status = "failed"
            new.detail = f"{recreated}; isolating it again failed: {exc}"
            entry = self.journal.append(new)
        else:
            new.detail = (
                f"re-isolated: {recreated}; attached the cgroup BPF programs (cgroup_skb "
                f"ingress/egress, connect4/6) again, pinned in {old.pins}"
            )
            entry = self.journal.supersede(old, new)
        if self.log is not None:
            self.log(entry)
        return entry

    def _entry(
        self,
        action: Action,
        alert: Alert,
        context: Mapping[str, Any],
        status: str,
        detail: str,
        **extra: Any,
    ) -> JournalEntry:
        entry = JournalEntry(
            id=0,
            time=_now(),
            action=action.value,
            rule=alert.rule,
            priority=alert.priority.label,
            container_id=context.get("container_id"),
            pid=context.get("pid"),
            status=status,
            detail=detail,
            **extra,
        )
        if status != "skipped" or not self.dry_run:
            entry = self.journal.append(entry)
        if self.log is not None:
            self.log(entry)
        return entry

    def _act(self, action: Action, alert: Alert, context: Mapping[str, Any]) -> JournalEntry | None:
        pid = context.get("pid")
        container = context.get("container_id")
        in_container = bool(container) and container != "host"
        if not isinstance(pid, int):
            return self._entry(action, alert, context, "skipped", "no process id")
        if action in (Action.FREEZE, Action.ISOLATE, Action.QUARANTINE):
            if not in_container:
                return self._entry(
                    action, alert, context, "skipped", "the process is not in a container"
                )
            if (str(container), action.value) in self._active():
                return None  # contained already (and not released): one journal entry
        if action is Action.KILL and not in_container and not self.policy.allow_host:
            return self._entry(
                action, alert, context, "skipped", "host process (allow_host is off)"
            )
        if action is Action.KILL and (pid <= 1 or pid == os.getpid()):
            return self._entry(action, alert, context, "skipped", f"refusing to kill pid {pid}")
        if self.dry_run:
            return self._entry(action, alert, context, "skipped", "dry run: would " + action.value)
        if action is Action.KILL and context.get("killed_in_kernel"):
            return self._entry(
                action,
                alert,
                context,
                "done",
                f"the kernel program sent SIGKILL to {pid} before the syscall returned "
                "(bpf_send_signal)",
            )
        try:
            if action is Action.KILL:
                detail = kill_process(pid, context.get("start_boot_ns"), self.targets.proc_root)
                return self._entry(action, alert, context, "done", detail)
            if action is Action.FREEZE:
                entry = self._freeze(alert, context, pid)
            elif action is Action.ISOLATE:
                entry = self._isolate(alert, context, pid)
            else:
                entry = self._quarantine(alert, context)
        except (ResponseError, OSError) as exc:
            return self._entry(action, alert, context, "failed", str(exc))
        return entry

    def _cgroup(self, pid: int, context: Mapping[str, Any]) -> tuple[str, int]:
        """The container's cgroup (v2 if it can be frozen there, else the v1 freezer)."""
        targets = self.targets
        # the path from the cgroup id is the host's view; /proc/<pid>/cgroup is relative to
        # the sensor's cgroup namespace when it runs in a container
        v2, freezer = _cgroup_paths(pid, targets.proc_root)
        container = str(context.get("container_id"))
        # the container's own cgroup, never a sub-cgroup the process moved into, nor the
        # cgroup of another container (the pid reused since the event: /proc/<pid> is then
        # another process's)
        path = container_cgroup(context.get("cgroup_path") or v2 or "", container)
        if (
            path
            and targets.cgroup2_mount
            and Path(targets.cgroup2_mount + path, "cgroup.freeze").exists()
        ):
            return path, 2
        freezer = container_cgroup(freezer or "", container)
        if freezer and targets.cgroup1_freezer:
            return freezer, 1
        raise ResponseError(f"no freezable cgroup of container {container} for process {pid}")

    def _freeze(self, alert: Alert, context: Mapping[str, Any], pid: int) -> JournalEntry:
        path, version = self._cgroup(pid, context)
        if path in _own_cgroups(self.targets.proc_root):
            raise ResponseError(f"the sensor itself is in cgroup {path}: refusing to freeze it")
        freeze_cgroup(path, version, self.targets, frozen=True)
        return self._entry(
            Action.FREEZE,
            alert,
            context,
            "done",
            f"froze cgroup v{version} {path}",
            cgroup=path,
            cgroup_version=version,
        )

    def _isolate(self, alert: Alert, context: Mapping[str, Any], pid: int) -> JournalEntry:
        """cgroup BPF programs on the container's cgroup v2 (no live process needed);
        nftables in the process's network namespace when that cannot be done."""
        targets = self.targets
        container = str(context.get("container_id"))
        recorded = context.get("cgroup_path")
        # the whole container's cgroup: programs on a sub-cgroup the process moved into would
        # leave the rest of the container connected, and the process free to move back out
        path = container_cgroup(recorded, container) if isinstance(recorded, str) else None
        fallback = ""
        if path is not None and targets.cgroup2_mount:
            if path in _own_cgroups(targets.proc_root):
                raise ResponseError(
                    f"the sensor itself is in cgroup {path}: refusing to isolate it"
                )
            pin_dir = os.path.join(targets.bpf_pins, f"isolate-{container}")
            # before the attach: a cgroup recreated in between differs from it, and the
            # sensor attaches again (see reisolate)
            attached_id = cgroup_id(targets.cgroup2_mount + path)
            try:
                isolate_cgroup(targets.cgroup2_mount + path, pin_dir)
            except ResponseError as exc:
                fallback = f" (cgroup BPF failed: {exc})"
            else:
                return self._entry(
                    Action.ISOLATE,
                    alert,
                    context,
                    "done",
                    f"attached cgroup BPF programs (cgroup_skb ingress/egress, connect4/6: "
                    f"drop all but loopback) to cgroup v2 {path}, pinned in {pin_dir}",
                    cgroup=path,
                    cgroup_version=2,
                    netns=context.get("netns"),
                    pins=pin_dir,
                    cgroup_id=attached_id,
                )
        else:
            fallback = " (no cgroup v2 path known for the container)"
        try:
            entry = self._isolate_nft(alert, context, pid)
        except ResponseError as exc:
            raise ResponseError(f"{exc}{fallback}") from None
        entry.detail += fallback
        return entry

    def _isolate_nft(self, alert: Alert, context: Mapping[str, Any], pid: int) -> JournalEntry:
        targets = self.targets
        netns = _netns_inode(pid, targets.proc_root)
        wanted = context.get("netns")
        path: str | None = None
        version: int | None = None
        # the process is gone, or its pid now names another process (reused since the event:
        # another container's, whose network would be cut): any process of the container in
        # the network namespace the event's process was in
        if netns is None or (isinstance(wanted, int) and netns != wanted):
            path, version = self._cgroup(pid, context)
            for other in _processes_in(path, version, targets):
                if _netns_inode(other, targets.proc_root) == wanted:
                    pid, netns = other, wanted
                    break
            else:
                raise ResponseError(
                    f"process {pid} is gone (or its pid is another process's now) and no "
                    "process of its container is left in its network namespace"
                )
        protected = _protected_netns(targets.proc_root)
        if not protected:
            raise ResponseError("cannot tell the host's network namespace: refusing to isolate")
        if netns in protected:
            raise ResponseError(
                "the process is in the host's (or the sensor's) network namespace: "
                "isolating it would cut off the node"
            )
        if path is None:
            try:
                path, version = self._cgroup(pid, context)
            except ResponseError:
                path = version = None  # release will say it cannot find the namespace again
        _run_in_netns(pid, [targets.nft, "-f", "-"], targets, stdin=_isolate_ruleset())
        return self._entry(
            Action.ISOLATE,
            alert,
            context,
            "done",
            f"installed nftables table inet {NFT_TABLE} (drop all but loopback) in netns {netns}",
            netns=netns,
            cgroup=path,
            cgroup_version=version,
        )

    def _quarantine(self, alert: Alert, context: Mapping[str, Any]) -> JournalEntry:
        if self.kubernetes is None:
            raise ResponseError("quarantine needs a Kubernetes API (--kube-api)")
        namespace = context.get("k8s_ns")
        pod = context.get("k8s_pod")
        if not namespace or not pod:
            raise ResponseError("the container's pod is unknown (no Kubernetes metadata)")
        detail = self.kubernetes.quarantine(namespace, pod)
        return self._entry(
            Action.QUARANTINE, alert, context, "done", detail, pod=f"{namespace}/{pod}"
        )


@dataclass(frozen=True, slots=True)
class ReleaseResult:
    entry: JournalEntry
    ok: bool
    message: str


# the shortest id `release` takes: the 12-hex short id every alert, log line and journal
# entry shows (`container.id`). Docker and podman take any unique prefix, one character
# included; here a shorter prefix would let a typo pick whichever contained container
# happened to start with it and lift its containment.
MIN_RELEASE_ID = 12
_RELEASE_ID = re.compile(rf"[0-9a-f]{{{MIN_RELEASE_ID},64}}")


def _journal_full_id(entry: JournalEntry) -> str | None:
    """The container's 64-hex id, where the entry's cgroup path carries it."""
    found = container_from_cgroup(entry.cgroup) if entry.cgroup else None
    if found is None or found.id != entry.container_id:
        return None
    return found.full_id


def _release_entries(
    container: str, entries: Sequence[JournalEntry]
) -> tuple[list[JournalEntry], list[JournalEntry]]:
    """The journal entries of the one container `container` names, and those of its short
    id that the journal cannot attribute (see below).

    `container` is the 12-hex short id or a longer prefix of the full id, which the journal
    knows from an entry's cgroup path. Two containers whose full ids both begin with it
    (the short id is only 48 bits, and `ctr run` or `runc run` take any id the caller
    chooses) make it ambiguous: an error naming both, raised before anything is undone.
    An entry without a cgroup (a quarantine, an nftables isolation) is the short id's; when
    the journal knows another container with that short id, it cannot tell whose it is.
    """
    wanted = container.lower()
    if not _RELEASE_ID.fullmatch(wanted):
        raise ResponseError(
            f"a container id is {MIN_RELEASE_ID} to 64 hex characters (the short id alerts "
            f"show, or more of the full id), not {container!r}; nothing was released"
        )
    short = wanted[:MIN_RELEASE_ID]
    full_ids = {e.id: _journal_full_id(e) for e in entries if e.container_id == short}
    known = {full for full in full_ids.values() if full is not None}
    chosen = {full for full in known if full.startswith(wanted)}
    if len(chosen) > 1:
        raise ResponseError(
            f"container id {container!r} is ambiguous: the journal has responses against "
            + " and ".join(sorted(chosen))
            + "; give enough of the full id to name one (nothing was released)"
        )
    if known and not chosen:
        return [], []  # the containers of this short id the journal knows are others
    others = known - chosen
    mine: list[JournalEntry] = []
    unattributed: list[JournalEntry] = []
    for entry in entries:
        if entry.id not in full_ids:
            continue
        full = full_ids[entry.id]
        if full is None:
            (unattributed if others else mine).append(entry)
        elif full in chosen or not known:
            mine.append(entry)
    return mine, unattributed


def release(
    container: str,
    journal: ResponseJournal,
    *,
    targets: ResponseTargets | None = None,
    kubernetes: Any = None,
) -> list[ReleaseResult]:
    """Undo every response still in force for a container: `container` is its 12-hex short
    id or a longer unique prefix of its full id (see _release_entries). An id that is too
    short, not hex, or ambiguous raises ResponseError before anything is undone."""
    targets = targets or ResponseTargets()
    mine, unattributed = _release_entries(container, journal.load())

    def in_force(entry: JournalEntry) -> bool:
        return entry.status == "done" and entry.action in (
            Action.FREEZE,
            Action.ISOLATE,
            Action.QUARANTINE,
        )

    results = [
        ReleaseResult(
            entry,
            False,
            f"the journal does not say which container with the short id "
            f"{entry.container_id} this response was against: not released",
        )
        for entry in unattributed
        if in_force(entry)
    ]
    for entry in filter(in_force, mine):
        try:
            message = _undo(entry, targets, kubernetes)
        except ResponseError as exc:
            entry.status = "release-failed"
            results.append(ReleaseResult(entry, False, str(exc)))
            continue
        entry.status = "released"
        entry.released = _now()
        results.append(ReleaseResult(entry, True, message))
    if results:
        journal.update([r.entry for r in results])
    return results


def _undo(entry: JournalEntry, targets: ResponseTargets, kubernetes: Any) -> str:
    if entry.action == Action.FREEZE:
        if entry.cgroup is None or entry.cgroup_version is None:
            raise ResponseError(f"journal entry {entry.id} has no cgroup")
        freeze_cgroup(entry.cgroup, entry.cgroup_version, targets, frozen=False)
        return f"thawed cgroup v{entry.cgroup_version} {entry.cgroup}"
    if entry.action == Action.ISOLATE and entry.pins:
        released = release_cgroup(entry.pins)
        return (
            f"detached the cgroup BPF isolation of {entry.cgroup} ({len(released)} links unpinned)"
        )
    if entry.action == Action.ISOLATE:
        if entry.cgroup is None or entry.cgroup_version is None:
            raise ResponseError(f"journal entry {entry.id} has no cgroup")
        for pid in _processes_in(entry.cgroup, entry.cgroup_version, targets):
            if _netns_inode(pid, targets.proc_root) == entry.netns:
                _run_in_netns(pid, [targets.nft, "delete", "table", "inet", NFT_TABLE], targets)
                return f"deleted nftables table inet {NFT_TABLE} in netns {entry.netns}"
        raise ResponseError(
            f"no process of the container is left in network namespace {entry.netns}: "
            "nothing to undo there (the namespace is gone with its rules)"
        )
    if entry.action == Action.QUARANTINE:
        if kubernetes is None:
            raise ResponseError("releasing a quarantine needs the Kubernetes API (--kube-api)")
        if not entry.pod or "/" not in entry.pod:
            raise ResponseError(f"journal entry {entry.id} has no pod")
        namespace, name = entry.pod.split("/", 1)
        return str(kubernetes.release(namespace, name))
    raise ResponseError(f"{entry.action} cannot be undone")
