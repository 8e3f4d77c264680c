"""Concurrent single searches with the same settings answered as one batch.

Under load (a server with 20 clients on 2 cores) most of a search's time is per
call, not per query: the scan of every stored vector, Python's bookkeeping.
``Index`` ranks many queries at once, so searches that arrive while another batch
runs wait, and the next caller to run takes all of them that share its settings
into one batch. A caller alone (one client) runs its search at once, as before.
Each query's results are those of a search of that query alone (``Index`` ranks
each query of a batch independently).

The items are whatever the runner needs per query (``Index`` submits the query text:
a batch is encoded and ranked together, which on 2 cores and 20 clients cost less CPU
a request, and gave half the p99, of encoding each query before it queued here).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Coalescer(Generic[Item, Result]):
    """Runs ``run(items, settings)`` for items waiting with equal ``settings``; one batch at a time."""

    def __init__(self, run: Callable[[list[Item], Hashable], list[Result]]) -> None:
        self._run = run
        self._changed = threading.Condition()  # guards the two fields below; notified when a batch ends
        self._waiting: dict[Hashable, list[tuple[Item, Future[Result]]]] = {}
        self._busy = False  # a caller is running batches
        #: Batches run and items answered (a benchmark reads the mean batch size).
        self.batches = 0
        self.queries = 0

    def submit(self, item: Item, settings: Hashable) -> Result:
        """The result for ``item``: run now, or by another caller in a batch with the items waiting with it.

        A caller whose item another caller answered returns as soon as that batch ends: it
        never queues behind the next batch (which would run batches of one, one after another).
        """
        future: Future[Result] = Future()
        with self._changed:
            self._waiting.setdefault(settings, []).append((item, future))
            while self._busy and not future.done():
                self._changed.wait()
            if future.done():
                return future.result()
            self._busy = True
            groups, self._waiting = self._waiting, {}
        try:
            for group_settings, waiting in groups.items():
                self._run_group(group_settings, waiting)
        finally:
            with self._changed:
                self._busy = False
                self._changed.notify_all()
        return future.result()

    def _run_group(self, settings: Hashable, waiting: list[tuple[Item, Future[Result]]]) -> None:
        try:
            results = self._run([item for item, _ in waiting], settings)
        except BaseException as error:  # every caller of the batch gets the error, not only the one running it
            for _, future in waiting:
                future.set_exception(error)
            return
        self.batches += 1
        self.queries += len(waiting)
        for (_, future), result in zip(waiting, results, strict=True):
            future.set_result(result)
