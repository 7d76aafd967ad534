"""Benchmark: main.py batch throughput, local worker processes against a local Ray cluster.

N real portraits (copies of tests/data's astronaut, grace_hopper and group1, default 12)
through the avatar engine (texture 1024) with 1 and 2 local workers, then on a Ray cluster
started on this machine (``ray start --head --num-cpus=2``) with 1 and 2 tasks at a time
(``--cpus-per-task`` 2 and 1, so the threads per item match the local runs). Per run:
items per minute over the whole run (worker start and warm-up included: what a user
waits for), the speed-up over one worker of the same kind, the mean seconds an item takes
inside its worker (load, run, export; a worker's first item includes the engine's
warm-up), and the overhead per item: the slot time each item costs (wall x slots / items)
minus that, i.e. what a slot spends outside items (worker start and imports, scheduling,
records, idle slots at the tail). Connecting to Ray is shown apart, and the engine's warm
time per item in this process for reference. On a machine shared with other work the
figures move with its load (printed).

``.venv/bin/python benchmarks/batch.py [--items 12] [--no-ray]``
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT / "tests" / "data"
PORTRAITS = ["astronaut.png", "grace_hopper.jpg", "group1.jpg"]
PARAMS = {"texture_size": 1024}


def make_inputs(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True)
    for k in range(n):
        src = DATA / PORTRAITS[k % len(PORTRAITS)]
        shutil.copy(src, folder / f"p{k:03d}{src.suffix}")
    return folder


def warm_seconds(folder: Path) -> float:
    """The engine's time for one item in this process once warm (load, run, export)."""
    from engines import registry
    from engines.api import make_params
    from engines.batch.work import run_to_file

    eng = registry.get("avatar")
    params = make_params(eng, PARAMS)
    files = sorted(folder.iterdir())[: len(PORTRAITS) + 1]
    out = folder.parent / "warm"
    out.mkdir()
    times = []
    for k, f in enumerate(files):
        t0 = time.perf_counter()
        run_to_file(eng, [f], params, out / f"{f.stem}.glb")
        if k:  # the first one warms up
            times.append(time.perf_counter() - t0)
    return sum(times) / len(times)


def one_run(inputs: Path, out: Path, **kw) -> dict:
    from engines.batch.runner import BatchOptions, run_batch

    t0 = time.perf_counter()
    s = run_batch("avatar", BatchOptions(out=out, inputs=[str(inputs / "*")], params=PARAMS, **kw))
    wall = time.perf_counter() - t0
    assert s.done == s.total and s.failed == 0, s.failures
    item_s = [json.loads(p.read_text())["timings"]["total"] for p in (out / "records").glob("*.json")]
    return {"wall": wall, "items": s.total, "slots": s.workers, "item_s": sum(item_s) / len(item_s)}


def start_cluster(cpus: int):
    from tests.test_batch_ray import _free_port, _ray_cli, _start_node, _wait_started

    tmp = Path(tempfile.mkdtemp(prefix="cs-ray-bench-"))
    port = _free_port()
    node = _start_node(
        [
            _ray_cli(),
            "start",
            "--head",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            f"--num-cpus={cpus}",
            "--object-store-memory=200000000",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={tmp / 'r'}",
        ],
        tmp / "head.log",
    )
    _wait_started(node, tmp / "head.log")
    return node, f"127.0.0.1:{port}", tmp


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=12)
    ap.add_argument("--no-ray", action="store_true", help="local runs only")
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="cs-batch-bench-"))
    rows = []
    try:
        inputs = make_inputs(work / "portraits", a.items)
        warm = warm_seconds(inputs)
        for n in (1, 2):
            rows.append(("local", n, one_run(inputs, work / f"local{n}", workers=n), None))
        if not a.no_ray:
            import ray

            from tests.test_batch_ray import _stop_node

            node, address, tmp = start_cluster(2)
            try:
                t0 = time.perf_counter()
                ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
                connect = time.perf_counter() - t0
                for n in (1, 2):
                    r = one_run(inputs, work / f"ray{n}", cluster=address, cpus_per_task=2 / n)
                    rows.append(("ray", n, r, connect))
            finally:
                ray.shutdown()
                _stop_node(node)
                shutil.rmtree(tmp, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    load = os.getloadavg()[1] if hasattr(os, "getloadavg") else float("nan")  # over the last 5 minutes
    print(
        f"\nbatch benchmark: {a.items} portraits -> avatar (texture {PARAMS['texture_size']}), "
        f"{os.cpu_count()} cores, load average {load:.1f}; engine warm in-process {warm:.2f} s/item"
    )
    print(
        f"{'backend':8s} {'slots':>5s} {'items/min':>10s} {'speed-up':>9s} {'item s':>7s} "
        f"{'overhead s/item':>16s} {'wall s':>7s} {'connect s':>10s}"
    )
    base = {}
    for backend, n, r, connect in rows:
        ipm = r["items"] / r["wall"] * 60
        base.setdefault(backend, ipm)
        overhead = r["wall"] * r["slots"] / r["items"] - r["item_s"]
        print(
            f"{backend:8s} {n:5d} {ipm:10.1f} {ipm / base[backend]:8.2f}x {r['item_s']:7.2f} "
            f"{overhead:16.2f} {r['wall']:7.1f} {'' if connect is None else f'{connect:.1f}':>10s}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
