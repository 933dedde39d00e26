"""Falco's syscall_event_drops semantics: threshold, token-bucket rate limit, actions."""

from __future__ import annotations

from skanse.runtime.drops import DropAction, DropMonitor, DropPolicy

LOG_ALERT = frozenset({DropAction.LOG, DropAction.ALERT})


def test_no_report_without_drops_or_under_the_threshold() -> None:
    monitor = DropMonitor(DropPolicy(threshold=0.1))
    assert monitor.check(0.0, 0, 0) is None  # the first look only sets the baseline
    assert monitor.check(1.0, 1000, 0) is None
    assert monitor.check(2.0, 2000, 100) is None  # 100 of 1000: exactly the threshold
    report = monitor.check(3.0, 3000, 201)  # 101 of 1000: over it
    assert report is not None
    assert (report.n_drops, report.n_evts, report.n_drops_total) == (101, 1000, 201)
    assert report.actions == LOG_ALERT


def test_looks_once_per_interval() -> None:
    monitor = DropMonitor(DropPolicy(threshold=0.0, rate=100.0, max_burst=10))
    monitor.check(0.0, 0, 0)
    assert monitor.check(0.5, 100, 100) is None  # not a second yet: not looked at
    report = monitor.check(1.0, 100, 100)
    assert report is not None and report.n_drops == 100


def test_the_token_bucket_limits_how_often_actions_run() -> None:
    monitor = DropMonitor(DropPolicy(threshold=0.0, rate=0.1, max_burst=1))
    monitor.check(0.0, 0, 0)
    reported = [
        second for second in range(1, 31) if monitor.check(float(second), second * 10, second * 5)
    ]
    # one token at start, then one every ten seconds
    assert reported == [1, 11, 21]
    assert monitor.reports == 30 and monitor.throttled == 27


def test_ignore_or_no_actions_report_nothing_but_count() -> None:
    policy = DropPolicy.parse(0.1, ["ignore"], 1.0, 1)
    assert policy.actions == frozenset()
    monitor = DropMonitor(policy)
    monitor.check(0.0, 0, 0)
    assert monitor.check(1.0, 10, 10) is None
    assert monitor.reports == 1


def test_everything_dropped_with_nothing_produced_counts_as_all_lost() -> None:
    monitor = DropMonitor(DropPolicy(threshold=0.5))
    monitor.check(0.0, 100, 0)
    report = monitor.check(1.0, 100, 7)  # produced counter did not move: still a drop
    assert report is not None and report.ratio == 1.0


def test_a_held_back_flood_is_reported_when_the_token_returns() -> None:
    """A small flood spends the token; the flood that hides the attack seconds later was
    only counted as throttled and never reported, not even after the bucket refilled."""
    monitor = DropMonitor(DropPolicy())  # Falco's defaults: one report per 30 s, burst 1
    monitor.check(0.0, 0, 0)
    decoy = monitor.check(1.0, 1000, 200)  # the decoy: 200 of 1000 lost
    assert decoy is not None and decoy.n_drops == 200
    assert monitor.check(2.0, 2000, 200) is None  # quiet
    assert monitor.check(3.0, 102_000, 90_200) is None  # the real flood, held back
    reports = [monitor.check(float(t), 102_000 + t, 90_200) for t in range(4, 40)]
    late = [r for r in reports if r is not None]
    assert len(late) == 1, "the held-back flood must be reported exactly once"
    assert (late[0].n_drops, late[0].n_evts, late[0].intervals) == (90_000, 100_000, 1)
    assert late[0].n_drops_total == 90_200
    assert "90000 system calls dropped" in late[0].message()


def test_held_back_seconds_add_up_into_one_report() -> None:
    monitor = DropMonitor(DropPolicy(threshold=0.0, rate=0.1, max_burst=1))
    monitor.check(0.0, 0, 0)
    assert monitor.check(1.0, 10, 5) is not None  # the token
    for second in range(2, 5):  # three seconds of 5 lost in 10, held back
        assert monitor.check(float(second), second * 10, second * 5) is None
    reports = [monitor.check(float(s), 40, 20) for s in range(5, 12)]  # quiet again
    late = [r for r in reports if r is not None]
    assert len(late) == 1
    assert (late[0].n_drops, late[0].n_evts, late[0].intervals) == (15, 30, 3)
    assert late[0].interval_s == 11.0 - 1.0  # from the start of the first held second
