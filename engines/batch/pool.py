"""Run a function over tasks in local worker processes (the standard library's process pool).

:class:`concurrent.futures.ProcessPoolExecutor` loses every task in flight when one worker
dies (killed, out of memory): the pool breaks. To fail only the item that killed it, the
tasks that were in flight become *suspects* and run again one at a time in a fresh pool.
A suspect that then dies alone is the culprit: it is retried ``worker_retries`` times and
then reported as lost; the others simply finish. A worker killed from outside costs its
item one retry; an item that kills every worker it meets fails alone.

Workers are started with ``spawn`` (nothing inherited: the same conditions as a Ray
worker, and safe from a process that has threads, such as the GUI), at most one task
per worker is in flight, so "in flight" means "running".
"""

from __future__ import annotations

import multiprocessing
from collections import defaultdict, deque
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator


WAKE_S = 0.25
"""The waiting thread wakes this often: Python runs signal handlers (Ctrl-C) only on the
main thread between bytecodes, and the kernel may deliver the signal to any other thread
of the process (Qt's, a library's), which does not interrupt an untimed wait."""


def _wait_interruptibly(futures: list, return_when: str) -> set:
    """``concurrent.futures.wait`` in short slices, so a Ctrl-C is acted on at once."""
    while True:
        done, pending = wait(futures, timeout=WAKE_S, return_when=return_when)
        if (return_when == FIRST_COMPLETED and done) or not pending:
            return done


@dataclass
class Finished:
    """One task's end: ``value`` is what the function returned; ``lost`` says why the
    worker running it was lost (then there is no value); ``error`` is an exception the
    function let escape; ``attempts`` counts the starts."""

    task: Any
    value: Any = None
    lost: str | None = None
    error: str | None = None
    attempts: int = 1


LOST_LOCAL = (
    "The worker process running this item died (killed, or out of memory) "
    "{n} time(s); the other items were not affected."
)


class LocalPool:
    def __init__(
        self, workers: int, initializer: Callable | None = None, initargs: tuple = (), worker_retries: int = 1
    ) -> None:
        self.workers = max(1, int(workers))
        self.initializer, self.initargs = initializer, initargs
        self.worker_retries = max(0, int(worker_retries))
        self.pool_starts = 0
        self._executor: ProcessPoolExecutor | None = None

    def _new_executor(self) -> ProcessPoolExecutor:
        self.pool_starts += 1
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=self.initializer,
            initargs=self.initargs,
        )

    def run(self, fn: Callable, tasks: Iterable) -> Iterator[Finished]:
        """Yield a :class:`Finished` per task, in the order they end. Closing the iterator
        (or an exception such as Ctrl-C while it waits) stops the workers at once."""
        tasks = list(tasks)
        queue = deque(range(len(tasks)))
        suspects: deque[int] = deque()
        starts: dict[int, int] = defaultdict(int)
        deaths: dict[int, int] = defaultdict(int)
        inflight: dict = {}

        def submit(i: int) -> bool:
            """Start task ``i``; False (not started) when the pool broke since the last look: a
            worker died on an item still in flight, found when a finished one freed a slot."""
            try:
                inflight[self._executor.submit(fn, tasks[i])] = i
            except BrokenProcessPool:
                return False
            starts[i] += 1
            return True

        try:
            while queue or suspects or inflight:
                if self._executor is None:
                    self._executor = self._new_executor()
                broken = False
                if suspects:
                    if not inflight:  # a suspect runs alone: if its worker dies, it is the cause
                        if submit(suspects[0]):
                            suspects.popleft()
                        else:
                            broken = True
                else:
                    while queue and len(inflight) < self.workers:
                        if not submit(queue[0]):
                            broken = True
                            break
                        queue.popleft()
                alone = len(inflight) == 1
                lost = []
                if not broken:
                    done = _wait_interruptibly(list(inflight), FIRST_COMPLETED)
                    for f in done:
                        i = inflight.pop(f)
                        try:
                            value = f.result()
                        except BrokenProcessPool:
                            lost.append(i)
                            continue
                        except Exception as e:  # the function raised: not a lost worker
                            yield Finished(tasks[i], error=f"{type(e).__name__}: {e}", attempts=starts[i])
                            continue
                        yield Finished(tasks[i], value, attempts=starts[i])
                    if not lost:
                        continue
                # The pool is broken: whatever else was in flight is lost with it.
                for f in _wait_interruptibly(list(inflight), ALL_COMPLETED):
                    i = inflight.pop(f)
                    try:
                        yield Finished(tasks[i], f.result(), attempts=starts[i])
                    except BrokenProcessPool:
                        lost.append(i)
                    except Exception as e:
                        yield Finished(tasks[i], error=f"{type(e).__name__}: {e}", attempts=starts[i])
                self._executor.shutdown(wait=True)
                self._executor = None
                if alone and len(lost) == 1:
                    i = lost[0]
                    deaths[i] += 1
                    if deaths[i] > self.worker_retries:
                        yield Finished(tasks[i], lost=LOST_LOCAL.format(n=deaths[i]), attempts=starts[i])
                    else:
                        suspects.appendleft(i)
                else:
                    suspects.extend(sorted(lost))
        finally:
            self.close(kill=bool(inflight))

    def close(self, kill: bool = False) -> None:
        """Shut the workers down; ``kill`` stops them mid-item (Ctrl-C) instead of waiting."""
        ex, self._executor = self._executor, None
        if ex is None:
            return
        if kill:
            # The executor has no public way to stop a running task: terminate its processes.
            procs = list((getattr(ex, "_processes", None) or {}).values())
            for p in procs:
                try:
                    p.terminate()
                except Exception:
                    pass
            for p in procs:
                p.join(10)
                if p.is_alive():
                    p.kill()
        ex.shutdown(wait=True, cancel_futures=True)
