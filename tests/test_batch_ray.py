"""main.py batch --cluster on a real Ray cluster on this machine: a head node and a second
worker node (``ray start``), real portraits through the avatar engine with a damaged file,
one Ray worker killed mid-item. Ray comes with the test extra (see pyproject.toml), so
this runs wherever the suite runs; the cluster is stopped whatever happens."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
PORTRAITS = ["astronaut.png", "grace_hopper.jpg", "group1.jpg"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_cli() -> str:
    try:
        import ray  # noqa: F401
    except ImportError:
        pytest.fail(
            "Ray is not installed: the test set-up installs it (pip install -e '.[test]', "
            "whose test extra includes the cluster extra)."
        )
    exe = Path(sys.executable).with_name("ray")
    return str(exe) if exe.exists() else "ray"


def _start_node(args: list[str], log: Path) -> subprocess.Popen:
    """``ray start ... --block`` in its own session: SIGTERM to it stops that node's processes."""
    with open(log, "wb") as f:
        return subprocess.Popen(args + ["--block"], stdout=f, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_started(p: subprocess.Popen, log: Path) -> None:
    while b"Ray runtime started" not in log.read_bytes():
        if p.poll() is not None:
            raise RuntimeError(f"ray start failed:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)


def _stop_node(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(p.pid, signal.SIGKILL)  # anything of that node still alive
    except (ProcessLookupError, PermissionError):
        pass


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    ray = _ray_cli()
    tmp = tmp_path_factory.mktemp("ray")
    temp_dir = Path(f"/tmp/cs-ray-{os.getpid()}")  # short: Ray's socket paths must fit in 107 bytes
    gcs, client = _free_port(), _free_port()
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--object-store-memory=150000000", "--disable-usage-stats"]
    nodes = []
    try:
        nodes.append(
            _start_node(
                [
                    ray,
                    "start",
                    "--head",
                    f"--port={gcs}",
                    f"--ray-client-server-port={client}",
                    "--include-dashboard=false",
                    f"--dashboard-port={_free_port()}",
                    f"--dashboard-agent-listen-port={_free_port()}",
                    f"--temp-dir={temp_dir}",
                    *common,
                ],
                tmp / "head.log",
            )
        )
        # The second node starts at once too: it waits for the head's GCS to come up.
        nodes.append(
            _start_node(
                [ray, "start", f"--address=127.0.0.1:{gcs}", f"--dashboard-agent-listen-port={_free_port()}", *common],
                tmp / "worker.log",
            )
        )
        for p, log in zip(nodes, ("head.log", "worker.log")):
            _wait_started(p, tmp / log)
        yield {"client": f"ray://127.0.0.1:{client}", "gcs": f"127.0.0.1:{gcs}", "groups": {p.pid for p in nodes}}
    finally:
        for p in reversed(nodes):
            _stop_node(p)
        logs = temp_dir / "session_latest" / "logs"
        if logs.is_dir():  # kept in pytest's tmp folder for a failure's post-mortem
            shutil.copytree(logs, tmp / "logs", dirs_exist_ok=True, ignore_dangling_symlinks=True)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _ours(pid: int, groups: set[int]) -> bool:
    """Whether a process descends from one of our ``ray start`` processes (its raylet's
    workers may sit in a process group of their own)."""
    for _ in range(8):
        if pid in groups or os.getpgid(pid) in groups:
            return True
        stat = Path(f"/proc/{pid}/stat").read_text()
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        if pid <= 1:
            return False
    return False


def _ray_tasks(groups: set[int]) -> dict[int, str]:
    """Running batch tasks of our cluster: pid -> item (Ray titles a worker 'ray::<task name>')."""
    found = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            title = (d / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            if title.startswith("ray::batch:") and _ours(int(d.name), groups):
                found[int(d.name)] = title.split("ray::batch:", 1)[1].strip()
        except (OSError, ProcessLookupError, ValueError, IndexError):
            continue
    return found


def test_batch_on_a_ray_cluster_survives_a_killed_worker(ray_cluster, tmp_path):
    from engines import io

    src = tmp_path / "portraits"
    src.mkdir()
    for name in PORTRAITS:
        shutil.copy(DATA / name, src / name)
    (src / "damaged.jpg").write_bytes((DATA / "grace_hopper.jpg").read_bytes()[:5000])
    out = tmp_path / "results"
    base = [
        sys.executable,
        "main.py",
        "batch",
        "avatar",
        "--inputs",
        str(src / "*"),
        "--out",
        str(out),
        "--set",
        "texture_size=1024",
        "--cpus-per-task",
        "1",
        "--json",
    ]
    cmd = base + ["--cluster", ray_cluster["client"]]
    env = {**os.environ, "PYTHONNOUSERSITE": "1"}
    env.pop("RAY_ADDRESS", None)
    driver = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = None
    try:
        while killed is None and driver.poll() is None:
            running = {pid: item for pid, item in _ray_tasks(ray_cluster["groups"]).items() if item != "damaged"}
            if running:
                pid, killed = next(iter(running.items()))
                os.kill(pid, signal.SIGKILL)  # a worker dies mid-item
            else:
                time.sleep(0.05)
        stdout, stderr = driver.communicate(timeout=600)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert killed is not None, f"no batch task was seen running:\n{stderr[-3000:]}"
    assert driver.returncode == 2, stderr[-3000:]  # the damaged file failed
    s = json.loads(stdout.strip().splitlines()[-1])
    assert s["backend"] == "ray" and s["cluster"]["nodes"] == 2 and s["cluster"]["cpus"] == 2
    assert (s["total"], s["done"], s["failed"], s["ran"]) == (4, 3, 1, 4)
    assert s["failures"][0]["item"] == "damaged" and "damaged.jpg" in s["failures"][0]["message"]
    rec = json.loads((out / "records" / f"{killed}.json").read_text())
    assert rec["status"] == "done" and rec["attempts"] == 2  # the killed item ran again
    for name in PORTRAITS:
        meshes = io.read(out / f"{Path(name).stem}.glb")
        meshes = meshes if isinstance(meshes, list) else [meshes]
        assert sum(len(m.vertices) for m in meshes) > 10000

    # Again, as a driver on a node (the GCS address): only the failed item runs again.
    again = subprocess.run(
        base + ["--cluster", ray_cluster["gcs"], "--retry-failed"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    s = json.loads(again.stdout.strip().splitlines()[-1])
    assert again.returncode == 2 and (s["ran"], s["skipped"], s["done"], s["failed"]) == (1, 3, 3, 1)
