"""The cyclic garbage collector in a long-lived server: what it skips, and when it runs.

Python frees almost everything a reply allocates by reference counting; the cyclic collector
only finds what is left in cycles. Left to its defaults it costs a server twice:

* **CPU.** A young collection runs every 700 net allocations and walks every young object;
  a reply allocates thousands. `settle_heap` freezes what start-up built (modules, settings,
  pools) out of collection and raises the young threshold to 50 000.
* **Pauses.** The young generation's counter is *net*: every freed object counts one down,
  also an old one. In a steady state where old objects die as new ones are born (a memory
  window drops its oldest turn as it gains one; a dedupe entry expires), the counter stays
  near zero while the young generation grows without bound. Measured in ``serve`` at 500
  messages/s after 20 000 replies: one young collection found 280 000 objects and took
  115 ms, during which the server answered nothing. `CollectionPacer` collects the young
  generation on a clock instead, every 100 ms, so that each pause covers only what one
  interval left alive (largest pause in the same run: 4 ms).

The long-lived data itself is kept where the collector does not look: a memory window is a
tuple of plain tuples (`timbridge.storage.history.Window`), which the collector stops tracking.
"""

from __future__ import annotations

import asyncio
import gc

__all__ = ["CollectionPacer", "settle_heap"]

YOUNG_THRESHOLD = 50_000  # net allocations before CPython itself collects (default 700)


def settle_heap() -> None:
    """Keep the cyclic garbage collector off what start-up built, and let it run less often.

    Everything alive once the process is ready (modules, settings, pools, caches) is frozen out
    of collection, and the young generation is collected after 50 000 allocations instead of
    700 (``bench/pipeline.py``: collections walking the whole heap took a quarter of ``serve``'s
    CPU; 717 → 1 078 replies/s).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, 20, 100)


class CollectionPacer:
    """Collects on a clock: the young generation every `interval_s`, the middle one every 20th
    time and everything every 100th of those (CPython's own ratios), on the running loop.

    CPython's count-triggered collections stay on as a backstop for allocation bursts that
    outrun the clock.
    """

    def __init__(self, interval_s: float = 0.1) -> None:
        self._interval = interval_s
        self._timer: asyncio.TimerHandle | None = None
        self.collections = [0, 0, 0]  # by generation, since start

    def start(self) -> None:
        if self._timer is None:
            self._arm(asyncio.get_running_loop())

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = loop.call_later(self._interval, self._tick, loop)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        counts, thresholds = gc.get_count(), gc.get_threshold()
        generation = 0  # each collection of one generation counts one in the next one's count
        if counts[1] >= thresholds[1]:
            generation = 2 if counts[2] >= thresholds[2] else 1
        gc.collect(generation)
        self.collections[generation] += 1
        self._arm(loop)
