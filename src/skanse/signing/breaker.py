"""How much of the verifier one registry may hold: a circuit breaker and a cap per host.

The admission webhook decides on a few threads (8 by default) and the API server gives up on
it after `timeoutSeconds`. Whoever may create a Pod chooses its image, so its registry: one
that accepts connections and never answers holds a thread for the whole image deadline (3 s),
and about 8 such Pods every 3 s held every thread, so each other review, with images or
without, queued past the API server's timeout. Two bounds, per registry host:

* at most `per_host` verifications may wait on one registry at once; one more waits for a
  slot at most `queue_wait` seconds (a burst of Pods for a registry that answers, a rollout
  or a drained node, passes in waves), with at most `per_host` such waiters, and is
  "could not check" (busy) past that, so most threads stay free for every other registry
  and for reviews with no image to verify;
* after `failures` verifications in a row within `window` seconds that got no answer at all
  from the registry (nothing reachable, nothing answered before the deadline), the circuit
  opens: for `cooldown` seconds every verification that needs the registry is "could not
  check: registry X unreachable (circuit open)" without asking it. Then one verification is
  let through as a probe (the others still fail fast); an answer closes the circuit, none
  opens it again.

Only silence counts. A registry that answers (a 404 for a tag, a 403, a wrong signature,
signatures too many to read before the deadline) is up, so a pod author cannot open the
circuit of a registry the cluster relies on by naming a missing tag or pushing an image with
a thousand signatures. Fail fast is fail closed: the image is denied (enforce mode) as
"could not check", never admitted, and the decision is not cached.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["BreakerSettings", "RegistryBreakers"]


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    failures: int = 3  # verifications in a row with no answer that open the circuit
    window: float = 30.0  # ... within this many seconds of the first of them
    cooldown: float = 30.0  # seconds the circuit stays open before one probe
    # verifications waiting on one registry at once: half the webhook's 8 decision threads
    per_host: int = 4
    # seconds one more may wait for a slot (at most per_host of them) before it is "busy":
    # a registry that answers frees a slot in a fraction of that
    queue_wait: float = 1.0
    # registries whose state is kept; past it, the one idle longest is forgotten
    max_hosts: int = 4096


class _Host:
    __slots__ = ("first_failure", "in_flight", "open_until", "probing", "queued", "streak")

    def __init__(self) -> None:
        self.in_flight = 0
        self.queued = 0  # waiting for a slot
        self.streak = 0  # verifications in a row with no answer
        self.first_failure = 0.0  # when the streak began
        self.open_until: float | None = None
        self.probing = False


class RegistryBreakers:
    """The breakers of every registry host one verifier talks to; thread-safe.

    `enter(host)` before a verification that needs the registry: None to go ahead, or why it
    must fail at once. Every None is paired with one `leave(host, answered)`."""

    def __init__(
        self,
        settings: BreakerSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings or BreakerSettings()
        self.clock = clock
        self._hosts: OrderedDict[str, _Host] = OrderedDict()
        self._lock = threading.Lock()
        self._freed = threading.Condition(self._lock)  # a slot was freed somewhere

    def enter(self, host: str, wait: float | None = None) -> str | None:
        """`wait`: seconds a verification past `per_host` may wait for a slot (default
        `queue_wait`; a caller passes less when its deadline is nearer)."""
        settings = self.settings
        wait = settings.queue_wait if wait is None else min(wait, settings.queue_wait)
        with self._lock:
            state = self._hosts.get(host)
            if state is None:
                state = self._hosts[host] = _Host()
                self._forget_idle()
            self._hosts.move_to_end(host)
            if state.open_until is None and state.in_flight >= settings.per_host:
                if not self._slot(state, wait):
                    return (
                        f"registry {host} busy: {state.in_flight} verifications are already "
                        f"waiting on it (at most {settings.per_host} at once, so that one "
                        "registry cannot hold every decision thread)"
                    )
            # (asked after a wait too: the circuit may have opened meanwhile)
            if state.open_until is not None:
                now = self.clock()
                if now < state.open_until:
                    return (
                        f"registry {host} unreachable (circuit open: {state.streak} "
                        f"verifications in a row got no answer; asked again in "
                        f"{state.open_until - now:.0f} s)"
                    )
                if state.probing:
                    return (
                        f"registry {host} unreachable (circuit open: one verification is "
                        "probing whether it answers again)"
                    )
                state.probing = True  # this one is the probe
            state.in_flight += 1
            return None

    def _slot(self, state: _Host, wait: float) -> bool:
        """Wait (the lock held by the caller, released while waiting) up to `wait` seconds
        for `state` to have a free slot; False if none came, or too many wait already."""
        if wait <= 0 or state.queued >= self.settings.per_host:
            return False
        state.queued += 1
        try:
            deadline = time.monotonic() + wait
            while state.in_flight >= self.settings.per_host:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._freed.wait(left)
            return True
        finally:
            state.queued -= 1

    def leave(self, host: str, answered: bool) -> None:
        """A verification `enter` let through is done; `answered`: the registry said
        anything at all (an error status included) before the deadline."""
        settings = self.settings
        with self._lock:
            state = self._hosts.get(host)
            if state is None:  # not kept: forgotten while busy cannot happen (_forget_idle)
                return
            now = self.clock()
            state.in_flight -= 1
            if answered:
                state.streak = 0
                state.open_until = None
                state.probing = False
            else:
                if state.streak == 0 or now - state.first_failure > settings.window:
                    state.streak, state.first_failure = 0, now
                state.streak += 1
                if state.probing or state.streak >= settings.failures:
                    state.open_until = now + settings.cooldown
                    state.probing = False
            if state.queued:
                self._freed.notify_all()
            elif state.in_flight == 0 and state.streak == 0:
                del self._hosts[host]  # a healthy registry needs no state

    def is_open(self, host: str) -> bool:
        with self._lock:
            state = self._hosts.get(host)
            return state is not None and state.open_until is not None

    def _forget_idle(self) -> None:
        """Keep at most `max_hosts` registries: drop the idle ones used longest ago (an open
        circuit forgotten only lets its registry be asked again, still `per_host` at most)."""
        excess = len(self._hosts) - self.settings.max_hosts
        if excess <= 0:
            return
        idle = [n for n, s in self._hosts.items() if s.in_flight == 0 and s.queued == 0]
        for name in idle[:excess]:
            del self._hosts[name]
