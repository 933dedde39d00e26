"""The breaker of each registry host (skanse.signing.breaker), on a clock the test moves."""

from __future__ import annotations

from skanse.signing.breaker import BreakerSettings, RegistryBreakers


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _breakers(**settings: float) -> tuple[RegistryBreakers, Clock]:
    clock = Clock()
    chosen = BreakerSettings(**settings)  # type: ignore[arg-type]
    return RegistryBreakers(chosen, clock=clock), clock


def _fail(breakers: RegistryBreakers, host: str, times: int) -> None:
    for _ in range(times):
        assert breakers.enter(host) is None
        breakers.leave(host, answered=False)


def test_the_circuit_opens_after_failures_in_a_row_and_lets_one_probe_through() -> None:
    breakers, clock = _breakers(failures=3, cooldown=30)
    _fail(breakers, "evil:5000", 3)
    refused = breakers.enter("evil:5000")
    assert refused is not None and refused.startswith("registry evil:5000 unreachable")
    assert breakers.enter("good:5000") is None  # other registries are not affected
    clock.now += 31
    assert breakers.enter("evil:5000") is None  # the probe
    probing = breakers.enter("evil:5000")
    assert probing is not None and "probing" in probing  # only one at a time
    breakers.leave("evil:5000", answered=False)  # the probe got no answer: open again
    assert breakers.enter("evil:5000") is not None
    clock.now += 31
    assert breakers.enter("evil:5000") is None
    breakers.leave("evil:5000", answered=True)  # it answers again: closed
    assert not breakers.is_open("evil:5000")
    assert breakers.enter("evil:5000") is None


def test_an_answer_or_the_window_ends_a_streak() -> None:
    breakers, clock = _breakers(failures=3, window=30)
    _fail(breakers, "flaky:5000", 2)
    assert breakers.enter("flaky:5000") is None
    breakers.leave("flaky:5000", answered=True)
    _fail(breakers, "flaky:5000", 2)  # 2 in a row again, not 4
    assert not breakers.is_open("flaky:5000")
    clock.now += 31  # the streak began more than a window ago: this one starts a new one
    _fail(breakers, "flaky:5000", 1)
    assert not breakers.is_open("flaky:5000")


def test_a_busy_registry_refuses_past_per_host_and_frees_its_slots() -> None:
    breakers, _ = _breakers(per_host=2)
    assert breakers.enter("slow:5000") is None
    assert breakers.enter("slow:5000") is None
    busy = breakers.enter("slow:5000", wait=0)
    assert busy is not None and "busy: 2 verifications are already waiting" in busy
    breakers.leave("slow:5000", answered=True)
    assert breakers.enter("slow:5000") is None


def test_the_hosts_kept_are_bounded() -> None:
    breakers, _ = _breakers(max_hosts=10, failures=100)
    for i in range(1000):
        _fail(breakers, f"host{i}:5000", 1)  # a failure keeps state
    assert len(breakers._hosts) <= 10


def test_a_burst_past_per_host_waits_for_slots_instead_of_failing() -> None:
    """A rollout or a drained node sends more Pods for one registry at once than `per_host`:
    failing each past it at once denied Pods of a registry that answers in milliseconds.
    They wait for a slot (at most `per_host` of them); one past those is busy at once."""
    import threading

    breakers, _ = _breakers(per_host=2, queue_wait=30)
    assert breakers.enter("registry:5000") is None
    assert breakers.enter("registry:5000") is None
    results: list[str | None] = []
    waiters = [
        threading.Thread(target=lambda: results.append(breakers.enter("registry:5000")))
        for _ in range(2)
    ]
    for waiter in waiters:
        waiter.start()
    while breakers._hosts["registry:5000"].queued < 2:
        threading.Event().wait(0.01)
    # two wait already: a third does not join them
    third = breakers.enter("registry:5000", wait=30)
    assert third is not None and "busy" in third
    breakers.leave("registry:5000", answered=True)  # each answer lets one waiter in
    breakers.leave("registry:5000", answered=True)
    for waiter in waiters:
        waiter.join(timeout=30)
    assert results == [None, None]
    assert breakers._hosts["registry:5000"].in_flight == 2


def test_a_waiter_is_refused_when_the_circuit_opened_while_it_waited() -> None:
    """The slot a waiter gets may come from a verification that got no answer and opened the
    circuit: it must not go on to ask the registry the circuit just closed off."""
    import threading

    breakers, _ = _breakers(per_host=1, failures=1, queue_wait=30)
    assert breakers.enter("stalls:5000") is None
    results: list[str | None] = []
    waiter = threading.Thread(target=lambda: results.append(breakers.enter("stalls:5000")))
    waiter.start()
    while breakers._hosts["stalls:5000"].queued < 1:
        threading.Event().wait(0.01)
    breakers.leave("stalls:5000", answered=False)  # no answer: the circuit opens
    waiter.join(timeout=30)
    assert len(results) == 1 and results[0] is not None
    assert "circuit open" in results[0]
