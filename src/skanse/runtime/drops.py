"""Dropped records are an alert: Falco's `syscall_event_drops` semantics.

Once a second the sensor compares the kernel's produced and dropped counters with the
previous second's. When records were lost and the share lost exceeds `threshold`, the
configured actions run, at most as often as a token bucket allows (`rate` tokens a second,
at most `max_burst` saved up), as Falco's drop manager does:

    ignore   nothing (an empty action list means the same)
    log      a critical log line with the counts
    alert    an alert on every output: rule "Falco internal: syscall event drop",
             priority Critical, the counts in output_fields
    exit     the sensor stops and exits non-zero

An attacker who floods events to blind the sensor is therefore seen: the flood itself is
reported, with how much was lost. The token bucket delays reports but never loses one:
the seconds it holds back are added up and reported, as one report covering them, as soon
as a token is back, whether or not that second lost records. (Before, a throttled second
was only counted: a small flood spent the token, and the flood that hid the real attack a
few seconds later was never reported at all.)
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["DROP_RULE", "DropAction", "DropMonitor", "DropPolicy", "DropReport"]

DROP_RULE = "Falco internal: syscall event drop"


class DropAction(enum.StrEnum):
    IGNORE = "ignore"
    LOG = "log"
    ALERT = "alert"
    EXIT = "exit"


@dataclass(frozen=True, slots=True)
class DropPolicy:
    threshold: float = 0.1  # the share of records lost in a second that triggers actions
    actions: frozenset[DropAction] = frozenset({DropAction.LOG, DropAction.ALERT})
    rate: float = 1 / 30  # actions per second, on average
    max_burst: int = 1

    @classmethod
    def parse(
        cls, threshold: float, actions: Iterable[str], rate: float, max_burst: int
    ) -> DropPolicy:
        chosen = frozenset(DropAction(a.lower()) for a in actions) - {DropAction.IGNORE}
        return cls(threshold, chosen, rate, max_burst)


@dataclass(frozen=True, slots=True)
class DropReport:
    """One second with drops over the threshold, and what to do about it."""

    n_drops: int  # records lost in the last interval
    n_evts: int  # records produced in the last interval (delivered + lost)
    n_drops_total: int
    n_evts_total: int
    interval_s: float  # the time the report covers: from the first second it adds up
    actions: frozenset[DropAction]
    intervals: int = 1  # seconds over the threshold it adds up (more when some were held)

    @property
    def ratio(self) -> float:
        return self.n_drops / self.n_evts if self.n_evts else 1.0

    def message(self) -> str:
        when = (
            "in last second"
            if self.intervals == 1
            else f"in {self.intervals} seconds over the last {self.interval_s:.0f} s"
        )
        return (
            f"{DROP_RULE}. {self.n_drops} system calls dropped {when}."
            f" (n_drops={self.n_drops} n_evts={self.n_evts})"
        )


class DropMonitor:
    """Turns the kernel's cumulative (produced, dropped) counters into DropReports."""

    def __init__(self, policy: DropPolicy, *, interval_s: float = 1.0) -> None:
        self.policy = policy
        self.interval_s = interval_s
        self._last: tuple[float, int, int] | None = None
        self._tokens = float(policy.max_burst)
        self._token_time: float | None = None
        self.reports = 0  # intervals over the threshold
        self.throttled = 0  # of them, the ones the token bucket held back
        # what the held-back intervals add up to, until a token reports it:
        # (n_drops, n_evts, intervals, the start of the first one)
        self._held: tuple[int, int, int, float] | None = None

    def _claim(self, now: float) -> bool:
        if self._token_time is not None:
            elapsed = max(0.0, now - self._token_time)
            self._tokens = min(
                float(self.policy.max_burst), self._tokens + elapsed * self.policy.rate
            )
        self._token_time = now
        if self._tokens >= 1.0 - 1e-9:  # float steps (0.1 * 10) must make a whole token
            self._tokens = max(0.0, self._tokens - 1.0)
            return True
        return False

    def check(self, now: float, produced: int, dropped: int) -> DropReport | None:
        """Called often; looks once per interval. A report when actions are due."""
        if self._last is None:
            self._last = (now, produced, dropped)
            return None
        since, last_produced, last_dropped = self._last
        if now - since < self.interval_s:
            return None
        self._last = (now, produced, dropped)
        n_drops = dropped - last_dropped
        n_evts = produced - last_produced
        ratio = (n_drops / n_evts if n_evts > 0 else 1.0) if n_drops > 0 else 0.0
        over = ratio > self.policy.threshold
        if over:
            self.reports += 1
        if not self.policy.actions:
            return None
        if over:
            held = self._held or (0, 0, 0, since)
            self._held = (held[0] + n_drops, held[1] + max(n_evts, 0), held[2] + 1, held[3])
        elif self._held is None:
            return None
        if not self._claim(now):
            if over:
                self.throttled += 1
            return None
        total_drops, total_evts, intervals, first = self._held
        self._held = None
        return DropReport(
            total_drops,
            total_evts,
            dropped,
            produced,
            now - first,
            self.policy.actions,
            intervals,
        )
