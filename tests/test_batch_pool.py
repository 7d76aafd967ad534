"""The batch's local process pool (engines.batch.pool.LocalPool) when a worker dies between
two looks: found at the next submit, not only in a future's result (a race the full suite
hit: BrokenProcessPool escaped from ``submit`` and ended the whole batch)."""

from __future__ import annotations

from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool

from engines.batch.pool import LocalPool


class FakeExecutor:
    """Runs tasks at once, except ``victim``: its worker dies. On the first executor the death
    is noticed only when the next task is submitted (the victim's future still pending when
    the finished one was collected); on later ones the victim's future fails at once."""

    made = 0

    def __init__(self):
        FakeExecutor.made += 1
        self.first = FakeExecutor.made == 1
        self.broken = False
        self.victim: Future | None = None

    def submit(self, fn, task):
        if self.broken:
            raise BrokenProcessPool("a child process terminated abruptly")
        if self.first and self.victim is not None and not self.victim.done():
            self.broken = True  # the victim's worker died since the last look
            self.victim.set_exception(BrokenProcessPool("a child process terminated abruptly"))
            raise BrokenProcessPool("a child process terminated abruptly")
        f = Future()
        if task == "victim":
            self.victim = f
            if not self.first:
                self.broken = True
                f.set_exception(BrokenProcessPool("a child process terminated abruptly"))
        else:
            f.set_result(fn(task))
        return f

    def shutdown(self, wait=True, cancel_futures=False):
        pass


def test_a_worker_death_found_at_submit_fails_only_its_item(monkeypatch):
    FakeExecutor.made = 0
    pool = LocalPool(workers=2, worker_retries=1)
    monkeypatch.setattr(pool, "_new_executor", FakeExecutor)
    got = {f.task: f for f in pool.run(str.upper, ["a", "victim", "b", "c"])}
    assert set(got) == {"a", "victim", "b", "c"}
    assert got["a"].value == "A" and got["b"].value == "B" and got["c"].value == "C"
    assert got["b"].attempts == 1  # never counted as started on the broken pool
    assert got["victim"].value is None and got["victim"].lost  # lost alone, after its retry
    assert got["victim"].attempts == 2
    assert FakeExecutor.made >= 3  # the pool was restarted after each death
