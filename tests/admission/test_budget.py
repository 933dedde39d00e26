"""The in-flight byte budget: what is reserved is bounded, waiters are served in order."""

from __future__ import annotations

import asyncio

from skanse.admission.app import InflightBudget


def test_reservations_wait_for_room_and_give_up_at_the_deadline() -> None:
    async def scenario() -> list[str]:
        budget = InflightBudget(10)
        events: list[str] = []
        assert await budget.acquire(6, 1)
        assert await budget.acquire(4, 1)

        async def waiter(name: str, size: int, timeout: float) -> None:
            granted = await budget.acquire(size, timeout)
            events.append(f"{name} {'granted' if granted else 'gave up'} at {budget.used}")

        first = asyncio.create_task(waiter("a", 5, 5))
        second = asyncio.create_task(waiter("b", 3, 5))
        late = asyncio.create_task(waiter("c", 9, 0.05))
        await asyncio.sleep(0.1)  # nothing is free: c gives up, a and b still wait
        assert budget.used == 10
        budget.release(6)  # room for a (5); b (3) would fit after a only with 4 more
        await asyncio.gather(first, late)
        assert budget.used == 9 and not second.done()
        budget.release(4)
        await second
        budget.release(5)
        budget.release(3)
        assert budget.used == 0
        return events

    assert asyncio.run(scenario()) == ["c gave up at 10", "a granted at 9", "b granted at 8"]


def test_a_reservation_larger_than_the_budget_takes_all_of_it() -> None:
    async def scenario() -> int:
        budget = InflightBudget(10)
        assert await budget.acquire(50, 1)
        used = budget.used
        budget.release(50)
        return used - budget.used

    assert asyncio.run(scenario()) == 10
