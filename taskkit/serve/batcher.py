"""An async micro-batcher per model: requests queue, one worker forms batches, one thread predicts.

A request is a list of examples already checked by the task (``as_example``), so one bad request
never reaches a batch. The worker takes requests until ``max_batch`` examples are gathered or
``max_wait`` seconds have passed since the first, runs ONE ``predict_proba`` per predictor over
all their examples in a single-thread executor (the event loop stays free to accept and answer
requests), decodes, and gives each request its own rows. A request larger than ``max_batch`` runs
as a batch of its own. An exception in a batch fails only that batch's requests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from taskkit.contracts import Predictor


@dataclass
class Job:
    predictor: Predictor  # the model's own, or a zero-shot copy with the request's labels
    examples: list[dict[str, Any]]
    future: asyncio.Future = field(repr=False)


class MicroBatcher:
    """Batches the requests of one model; ``observe(size, queued)`` reports each batch's size."""

    def __init__(self, name: str, max_batch: int, max_wait: float,
                 observe: Callable[[int, int], None] = lambda size, queued: None) -> None:
        self.name, self.max_batch, self.max_wait = name, max_batch, max_wait
        self.observe = observe
        self.queue: asyncio.Queue[Job | None] = asyncio.Queue()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"taskkit-{name}")
        self.worker: asyncio.Task | None = None
        self.queued = 0  # examples waiting, for the queue-depth gauge
        self._held: Job | None = None  # the request that did not fit into the last batch

    def start(self) -> None:
        if self.worker is None:
            self.worker = asyncio.get_running_loop().create_task(self._run(), name=f"batcher-{self.name}")

    async def submit(self, predictor: Predictor, examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The prediction records of ``examples``, once their batch has run."""
        future = asyncio.get_running_loop().create_future()
        self.queued += len(examples)
        await self.queue.put(Job(predictor, examples, future))
        return await future

    async def run_now(self, predictor: Predictor, examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Predict in the model's thread without queueing (the warm-up)."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, records, predictor, examples)

    async def stop(self) -> None:
        """Answer every queued request, then end the worker and its thread."""
        if self.worker is not None:
            await self.queue.put(None)
            await self.worker
            self.worker = None
        self.executor.shutdown(wait=True)

    async def _next_batch(self) -> tuple[list[Job], bool]:
        """Requests up to ``max_batch`` examples or ``max_wait``; True once the stop marker was read."""
        first = self._held if self._held is not None else await self.queue.get()
        self._held = None
        if first is None:
            return [], True
        batch, size = [first], len(first.examples)
        deadline = time.monotonic() + self.max_wait
        while size < self.max_batch:
            try:
                job = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self.queue.get(), left)
                except asyncio.TimeoutError:
                    break
            if job is None:
                return batch, True
            if size + len(job.examples) > self.max_batch:
                self._held = job  # first of the next batch
                break
            batch.append(job)
            size += len(job.examples)
        return batch, False

    async def _run(self) -> None:
        stopping = False
        while not stopping or self._held is not None or not self.queue.empty():
            batch, stop = await self._next_batch()
            stopping = stopping or stop
            if not batch:
                continue
            size = sum(len(job.examples) for job in batch)
            self.queued -= size
            self.observe(size, self.queued)
            await self._answer(batch)

    async def _answer(self, batch: list[Job]) -> None:
        loop = asyncio.get_running_loop()
        groups: dict[int, list[Job]] = {}
        for job in batch:  # requests with their own zero-shot labels are scored apart
            groups.setdefault(id(job.predictor), []).append(job)
        for jobs in groups.values():
            examples = [e for job in jobs for e in job.examples]
            try:
                rows = await loop.run_in_executor(self.executor, records, jobs[0].predictor, examples)
            except BaseException as exc:
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
                if not isinstance(exc, Exception):
                    raise
                continue
            start = 0
            for job in jobs:
                if not job.future.done():  # a client that went away cancelled its future
                    job.future.set_result(rows[start:start + len(job.examples)])
                start += len(job.examples)


def records(predictor: Predictor, examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``taskkit predict``'s records of ``examples`` (taskkit.api.predict after ``as_example``)."""
    task = predictor.task
    try:
        probabilities = predictor.predict_proba(examples)
    finally:
        give_back_freed_memory()
    predicted = task.decode(probabilities, predictor.labels, predictor.threshold)
    return [task.prediction_record(e, p, pr, predictor.labels) for e, p, pr in zip(examples, predicted, probabilities)]


def _malloc_trim() -> Callable[[int], int] | None:
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl): nothing to give back this way
        return None


_trim: list[Callable[[int], int] | None] = []


def give_back_freed_memory() -> None:
    """Return the memory a batch freed to the system (glibc's ``malloc_trim``).

    A batch's activations are freed when it ends, but glibc keeps freed heap pages, and after
    batches of every size and length in turn a long-running server's resident memory creeps up by
    hundreds of MB (measured: +170 MB over 10,000 micro-batched requests) without any leak. Trimming
    after each batch keeps it where warm-up left it; it costs well under a millisecond a batch.
    """
    if not _trim:
        _trim.append(_malloc_trim())
    if _trim[0] is not None:
        _trim[0](0)
