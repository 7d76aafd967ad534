"""Run the batch's per-item function as Ray tasks on an existing cluster.

Ray (the optional ``cluster`` extra, ``ray[client]==2.60.0``) does the distribution: each
item is one task of :func:`engines.batch.work.process_item` with ``num_cpus`` set to
``--cpus-per-task``; Ray then also sets ``OMP_NUM_THREADS`` for it. Ray's own retries are
off (``max_retries=0``) so that a lost worker is handled as in the local pool: the item
is submitted again up to ``worker_retries`` times, and the count lands in its record.

Addresses: ``ray://HOST:10001`` (Ray Client, from any machine that can reach the head),
``HOST:6379`` or ``auto`` (this machine is a node of the cluster), or none for
``RAY_ADDRESS``. What a cluster needs: the same Python environment with Capture Studio
installed on every node, and the inputs and the output folder at the same path on every
node (a shared folder); see the README.
"""

from __future__ import annotations

import logging
import os
from typing import Callable, Iterable, Iterator

from engines.api import EngineError
from engines.batch.pool import Finished

LOST_RAY = "The Ray worker running this item was lost {n} time(s) ({why})."
INSTALL = (
    "--cluster needs Ray: install the cluster extra (pip install -e '.[cluster]', "
    "which pins ray[client]==2.60.0) into the same environment on every node."
)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise EngineError(INSTALL) from None
    return ray


class RayCluster:
    def __init__(self, address: str | None = None, cpus_per_task: float = 1.0, worker_retries: int = 1) -> None:
        ray = _import_ray()
        self.ray = ray
        self.address = address or os.environ.get("RAY_ADDRESS")
        if not self.address:
            raise EngineError(
                "--cluster needs an address (ray://HOST:10001, HOST:6379 or auto), or RAY_ADDRESS set to one."
            )
        self.cpus_per_task = float(cpus_per_task)
        self.worker_retries = max(0, int(worker_retries))
        self._owned = False
        if not ray.is_initialized():
            # Ray Client starts a server process per connection on the head, which now and
            # then dies as it starts (seen with 2.60 on a busy head): one more try.
            tries = 2 if self.address.startswith("ray://") else 1
            for attempt in range(tries):
                try:
                    ray.init(address=self.address, log_to_driver=False, logging_level=logging.WARNING)
                    break
                except Exception as e:
                    if attempt + 1 < tries:
                        continue
                    raise EngineError(
                        f"Cannot connect to the Ray cluster at {self.address}: {e}. Check that it "
                        "is running ('ray status' on the head node) and that this machine can "
                        "reach it."
                    ) from None
            self._owned = True

    def describe(self) -> dict:
        """Nodes alive and CPUs in the cluster."""
        try:
            nodes = [n for n in self.ray.nodes() if n.get("Alive")]
            cpus = self.ray.cluster_resources().get("CPU", 0)
        except Exception:
            return {"address": self.address}
        return {"address": self.address, "nodes": len(nodes), "cpus": cpus}

    def slots(self) -> int:
        d = self.describe()
        return max(1, int(d.get("cpus", 1) // max(self.cpus_per_task, 1e-6)))

    def run(self, fn: Callable, tasks: Iterable, name: Callable[[dict], str] | None = None) -> Iterator[Finished]:
        """Yield a :class:`Finished` per task as they end; closing the iterator (Ctrl-C)
        cancels what is still queued or running."""
        ray = self.ray
        from ray import exceptions as rx

        tasks = list(tasks)
        remote = ray.remote(num_cpus=self.cpus_per_task, max_retries=0, retry_exceptions=False)(fn)
        starts = [0] * len(tasks)
        deaths = [0] * len(tasks)
        pending: dict = {}

        def submit(i: int) -> None:
            starts[i] += 1
            opts = {"name": name(tasks[i])} if name else {}
            pending[remote.options(**opts).remote(tasks[i])] = i

        for i in range(len(tasks)):
            submit(i)
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=min(len(pending), 16), timeout=0.5)
                for ref in ready:
                    i = pending.pop(ref)
                    try:
                        value = ray.get(ref)
                    except rx.RayTaskError as e:  # the function itself raised (process_item does not)
                        yield Finished(tasks[i], error=str(e).strip().splitlines()[-1], attempts=starts[i])
                        continue
                    except rx.RayError as e:  # a worker or node was lost, killed, out of memory
                        deaths[i] += 1
                        if deaths[i] <= self.worker_retries:
                            submit(i)
                        else:
                            why = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200]}"
                            yield Finished(tasks[i], lost=LOST_RAY.format(n=deaths[i], why=why), attempts=starts[i])
                        continue
                    yield Finished(tasks[i], value, attempts=starts[i])
        finally:
            for ref in list(pending):
                try:
                    ray.cancel(ref, force=True)
                except Exception:
                    pass

    def close(self) -> None:
        if self._owned:
            try:
                self.ray.shutdown()
            except Exception:
                pass
            self._owned = False
