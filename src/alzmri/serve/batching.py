"""Micro-batching: requests that arrive together share one forward pass.

Each request submits its slices (an image: 1 slice; a volume: all its slices) to an
``asyncio`` queue. A worker task takes the first waiting request, waits ``max_wait_s``
for more to arrive, takes every request then waiting up to ``max_batch`` slices in all,
runs them as **one** call of the model function in a dedicated thread (so the event
loop keeps accepting requests meanwhile) and hands each request its rows. While a batch
runs, new requests queue up and form the next batch; under no load a request waits at
most ``max_wait_s`` before its forward pass.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np


class Overloaded(RuntimeError):
    """More slices are waiting than the batcher accepts (the service answers 503)."""


class MicroBatcher:
    """Collect concurrent requests into batched calls of ``fn``.

    Parameters
    ----------
    fn : callable
        uint8 ndarray (n, H, W) -> ndarray (n, n_classes); called from one worker
        thread, never concurrently.
    max_batch : int, default=32
        Slices per call at most (a single request larger than this runs alone, whole).
    max_wait_s : float, default=0.002
        Seconds the worker waits after the first request of a batch for others to join.
    max_pending : int, default=4096
        Slices allowed to wait; beyond that :meth:`submit` raises :class:`Overloaded`.

    Attributes
    ----------
    stats : dict
        ``requests``, ``batches``, ``slices`` and ``largest_batch`` (slices) so far.
    """

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], *, max_batch: int = 32, max_wait_s: float = 0.002, max_pending: int = 4096) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1; got {max_batch}")
        self.fn = fn
        self.max_batch = max_batch
        self.max_wait_s = max(0.0, float(max_wait_s))
        self.max_pending = max_pending
        self.pending = 0
        self.stats = {"requests": 0, "batches": 0, "slices": 0, "largest_batch": 0}
        self._executor: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue | None = None
        self._tasks: list[asyncio.Task] = []

    def _ensure_worker(self) -> asyncio.Queue:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or not self._tasks or any(t.done() for t in self._tasks):
            # first use, or a new event loop (a test client may run one per request)
            self._loop, self._queue = loop, asyncio.Queue()
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alzmri-batch")
            self._tasks = [loop.create_task(self._work(self._queue), name="alzmri-micro-batcher")]
        assert self._queue is not None
        return self._queue

    async def submit(self, images: np.ndarray) -> np.ndarray:
        """Probabilities for one request's slices, computed in a shared batch.

        Parameters
        ----------
        images : ndarray of shape (n, H, W), dtype uint8

        Returns
        -------
        ndarray of shape (n, n_classes): the rows of ``fn`` for these slices.

        Raises
        ------
        Overloaded
            Too many slices are waiting.
        Exception
            Whatever ``fn`` raised for the batch.
        """
        queue = self._ensure_worker()
        n = len(images)
        if self.pending + n > self.max_pending:
            raise Overloaded(f"{self.pending} slices are waiting (limit {self.max_pending})")
        fut = asyncio.get_running_loop().create_future()
        self.pending += n
        queue.put_nowait((images, fut))
        try:
            return await fut
        finally:
            self.pending -= n

    async def _work(self, queue: asyncio.Queue) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [await queue.get()]
            n = len(items[0][0])
            if self.max_wait_s and n < self.max_batch:
                await asyncio.sleep(self.max_wait_s)
            while n < self.max_batch and not queue.empty():
                nxt = queue.get_nowait()
                if n + len(nxt[0]) > self.max_batch:
                    items_next = nxt  # keep for the next batch: never split a request
                    await self._run(loop, items)
                    items, n = [items_next], len(items_next[0])
                    continue
                items.append(nxt)
                n += len(nxt[0])
            await self._run(loop, items)

    async def _run(self, loop: asyncio.AbstractEventLoop, items: list) -> None:
        live = [(x, f) for x, f in items if not f.done()]
        if not live:
            return
        batch = np.concatenate([x for x, _ in live]) if len(live) > 1 else live[0][0]
        try:
            out = await loop.run_in_executor(self._executor, self.fn, batch)
        except Exception as exc:  # every request of the batch gets the error
            for _, f in live:
                if not f.done():
                    f.set_exception(exc)
            return
        self.stats["requests"] += len(live)
        self.stats["batches"] += 1
        self.stats["slices"] += len(batch)
        self.stats["largest_batch"] = max(self.stats["largest_batch"], len(batch))
        start = 0
        for x, f in live:
            if not f.done():
                f.set_result(out[start : start + len(x)])
            start += len(x)

    async def aclose(self) -> None:
        """Stop the worker task and its thread (a later :meth:`submit` starts them again)."""
        for task in self._tasks:
            if not task.done():
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, RuntimeError):
                    pass
        self._tasks = []
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
