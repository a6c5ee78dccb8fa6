"""The collector in a long-lived process (`timbridge.runtime.heap`): young collections on a clock.

The case it exists for is reproduced with real objects: in a steady state where old objects
die as new ones are born, CPython's net allocation counter stays near zero and the young
generation grows without bound (measured in ``serve``: one collection walked 280 000 objects,
115 ms). With the pacer on the loop, what a collection finds is only what one interval left.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from timbridge.runtime.heap import YOUNG_THRESHOLD, CollectionPacer


class Node:
    """A small tracked object, like a reply's bookkeeping."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.links: list[Node] = []


@pytest.fixture
def thresholds() -> Iterator[None]:
    """serve's thresholds for the test's duration (and the collector on)."""
    saved, enabled = gc.get_threshold(), gc.isenabled()
    gc.collect()
    gc.enable()
    gc.set_threshold(YOUNG_THRESHOLD, 20, 100)
    yield
    gc.set_threshold(*saved)
    if not enabled:
        gc.disable()


async def _churn(pool: list[Node], rounds: int) -> int:
    """Replace the pool's old objects by new ones in steps, yielding to the loop in between;
    the largest young generation seen."""
    largest = 0
    step = 2_000
    for start in range(0, rounds, step):
        for i in range(start, start + step):
            pool[i % len(pool)] = Node(i)  # one born, one old one freed: the count stays put
        largest = max(largest, len(gc.get_objects(generation=0)))
        await asyncio.sleep(0.003)
    return largest


@pytest.mark.usefixtures("thresholds")
async def test_the_young_generation_stays_small_with_the_pacer_and_grows_without() -> None:
    pool = [Node(i) for i in range(120_000)]
    gc.collect()  # the pool is old now

    unpaced = await _churn(pool, 120_000)
    gc.collect()

    pacer = CollectionPacer(interval_s=0.01)
    pacer.start()
    try:
        paced = await _churn(pool, 120_000)
    finally:
        pacer.stop()

    assert unpaced > 100_000  # the counter never reached 50 000: nothing was collected
    assert paced < 20_000
    assert pacer.collections[0] > 10


@pytest.mark.usefixtures("thresholds")
async def test_older_generations_follow_cpythons_ratios() -> None:
    gc.set_threshold(YOUNG_THRESHOLD, 3, 2)  # a middle collection every 3rd, a full one soon
    pacer = CollectionPacer(interval_s=0.002)
    pacer.start()
    try:
        await asyncio.sleep(0.3)  # ~150 ticks
    finally:
        pacer.stop()
    young, middle, full = pacer.collections
    assert full >= 1
    assert middle >= 2 * full  # a full collection comes after `threshold2` middle ones
    assert young >= 2 * middle  # each middle one after `threshold1` young ones


async def test_a_stopped_pacer_collects_no_more() -> None:
    pacer = CollectionPacer(interval_s=0.005)
    pacer.start()
    pacer.start()  # a second start is a no-op: one clock
    await asyncio.sleep(0.05)
    pacer.stop()
    seen = sum(pacer.collections)
    await asyncio.sleep(0.05)
    assert seen > 0
    assert sum(pacer.collections) == seen
