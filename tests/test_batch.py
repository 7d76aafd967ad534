"""main.py batch on this machine: real portraits through the avatar engine with a damaged file
among them, resuming, pairing and manifests, a worker killed mid-item, a worker that dies on
every try, and Ctrl-C. (The Ray cluster runs in test_batch_ray.py.)

The worker processes are spawned: they import the test engine below by its module path,
as a Ray worker would import a plug-in's."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from pydantic import BaseModel, Field

from engines import registry
from engines.api import Engine, EngineError, Result, make_params
from engines.batch import items as batch_items
from engines.batch.runner import BatchOptions, run_batch
from engines.types import DepthMap, Image

DATA = Path(__file__).parent / "data"
PORTRAITS = ["astronaut.png", "grace_hopper.jpg", "group1.jpg"]


class KillableEngine(Engine):
    """A test engine: a constant depth map the photo's size. For the photo named ``victim``
    it follows the ``mode`` file in the ``control`` folder: ``hold`` waits on its first
    start while the ``hold`` file exists (to be killed there), ``hold-always`` on every
    start, ``crash`` kills its own process; each start leaves ``started-<pid>`` behind."""

    name = "test-batch-killable"
    title = "Killable (batch test)"
    accepts = (Image,)
    produces = (DepthMap,)

    class Params(BaseModel):
        control: str = Field("", description="Folder with the test's control files")
        depth: float = Field(1.0, gt=0, description="Depth of the plane, m")

    def run(self, inputs, params, progress, cancel):
        img = inputs[0]
        if img.path is not None and img.path.stem == "victim" and params.control:
            ctl = Path(params.control)
            mode = (ctl / "mode").read_text().strip()
            starts = len(list(ctl.glob("started-*")))
            (ctl / f"started-{os.getpid()}").write_text(str(starts))
            if mode == "crash":
                os.kill(os.getpid(), signal.SIGKILL)
            if mode == "hold-always" or (mode == "hold" and starts == 0):
                guard = time.monotonic() + 120  # only so that a broken test cannot hang for ever
                while (ctl / "hold").exists() and time.monotonic() < guard:
                    time.sleep(0.02)
        h, w = img.pixels.shape[:2]
        depth = np.full((h, w), params.depth, np.float32)
        return Result(items=[DepthMap(depth, image=img.rgb8())], metrics={"pixels": h * w})


@pytest.fixture
def killable():
    registry.register(KillableEngine)
    yield KillableEngine
    registry.unregister(KillableEngine.name)


def photos(folder: Path, names) -> Path:
    from PIL import Image as PILImage

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for n in names:
        PILImage.fromarray(rng.integers(0, 255, (12, 16, 3), np.uint8)).save(folder / f"{n}.png")
    return folder


def control(tmp_path: Path, mode: str, hold: bool = True) -> Path:
    ctl = tmp_path / "control"
    ctl.mkdir()
    (ctl / "mode").write_text(mode)
    if hold:
        (ctl / "hold").touch()
    return ctl


def wait_for_start(ctl: Path, n: int = 1) -> int:
    """The pid of the n-th start of the victim (polls its marker files)."""
    while True:
        started = sorted(ctl.glob("started-*"), key=lambda p: p.stat().st_mtime_ns)
        if len(started) >= n:
            return int(started[n - 1].name.split("-")[1])
        time.sleep(0.02)


def records(out: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (out / "records").glob("*.json")}


def summary_rows(out: Path) -> dict[str, dict]:
    with open(out / "summary.csv", newline="") as f:
        return {r["item"]: r for r in csv.DictReader(f)}


def leftovers(out: Path) -> list[str]:
    """Hidden temporaries anywhere under the output folder (the lock file is not one)."""
    return sorted(str(p.relative_to(out)) for p in out.rglob(".*") if p.name != ".batch.lock")


def _json_line(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


# ---------------------------------------------------------------------- real portraits
def test_avatar_batch_over_portraits_with_a_damaged_file(tmp_path, capsys):
    from app import cli
    from engines import io

    src = tmp_path / "portraits"
    src.mkdir()
    for name in PORTRAITS:
        shutil.copy(DATA / name, src / name)
    (src / "damaged.jpg").write_bytes((DATA / "grace_hopper.jpg").read_bytes()[:5000])  # cut short
    out = tmp_path / "results"
    argv = [
        "batch",
        "avatar",
        "--inputs",
        str(src / "*"),
        "--out",
        str(out),
        "--set",
        "texture_size=1024",
        "--workers",
        "2",
        "--json",
    ]

    assert cli.main(argv) == 2  # some items failed
    s = _json_line(capsys.readouterr().out)
    assert (s["total"], s["done"], s["failed"], s["ran"], s["skipped"]) == (4, 3, 1, 4, 0)
    assert s["backend"] == "local" and s["workers"] == 2 and s["format"] == ".glb"
    assert [f["item"] for f in s["failures"]] == ["damaged"]
    assert "damaged.jpg" in s["failures"][0]["message"] and s["failures"][0]["kind"] == "input"
    for name in PORTRAITS:
        meshes = io.read(out / f"{Path(name).stem}.glb")
        meshes = meshes if isinstance(meshes, list) else [meshes]
        assert sum(len(m.vertices) for m in meshes) > 10000
    assert not (out / "damaged.glb").exists()
    rows = summary_rows(out)
    assert {k: r["status"] for k, r in rows.items()} == {
        "astronaut": "done",
        "grace_hopper": "done",
        "group1": "done",
        "damaged": "failed",
    }
    assert int(rows["group1"]["metric.faces_found"]) >= 2 and int(rows["astronaut"]["metric.faces_found"]) == 1
    assert all(float(rows[k]["seconds"]) > 0 and float(rows[k]["run_s"]) > 0 for k in ("astronaut", "group1"))
    assert "truncated" in rows["damaged"]["message"]
    recs = records(out)
    assert recs["astronaut"]["params"]["texture_size"] == 1024 and len(recs["astronaut"]["inputs"][0]["sha256"]) == 64
    assert leftovers(out) == []

    # A rerun does no work: nothing runs, no output is touched.
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.glb")}
    assert cli.main(argv) == 2
    s = _json_line(capsys.readouterr().out)
    assert (s["ran"], s["skipped"], s["done"], s["failed"]) == (0, 4, 3, 1)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.glb")} == stamps

    # --retry-failed runs the damaged one again (still damaged), nothing else.
    assert cli.main(argv + ["--retry-failed"]) == 2
    s = _json_line(capsys.readouterr().out)
    assert (s["ran"], s["skipped"], s["failed"]) == (1, 3, 1)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.glb")} == stamps


# ---------------------------------------------------------------------- plan, pairing, manifest
def test_inputs_are_paired_by_name_and_a_single_file_serves_every_item(tmp_path):
    clips, avatars = tmp_path / "clips", tmp_path / "avatars"
    for d, names, ext in ((clips, ["anna", "ben", "cleo"], ".mp4"), (avatars, ["ben", "anna"], ".glb")):
        d.mkdir()
        for n in names:
            (d / f"{n}{ext}").write_bytes(b"x")
    (tmp_path / "garment.png").write_bytes(b"x")
    got = batch_items.from_patterns([str(clips / "*.mp4"), str(avatars / "*.glb")])
    assert [(i.id, [p.name for p in i.inputs], i.problem is None) for i in got] == [
        ("anna", ["anna.mp4", "anna.glb"], True),
        ("ben", ["ben.mp4", "ben.glb"], True),
        ("cleo", ["cleo.mp4"], False),
    ]
    assert "no input named 'cleo'" in got[2].problem
    got = batch_items.from_patterns([str(clips), str(tmp_path / "garment.png")])
    assert [[p.name for p in i.inputs] for i in got] == [
        ["anna.mp4", "garment.png"],
        ["ben.mp4", "garment.png"],
        ["cleo.mp4", "garment.png"],
    ]
    # Same names in two folders: distinct, stable ids. The output folder is never an input.
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir(), (tmp_path / "a" / "out").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(b"1"), (tmp_path / "b" / "x.png").write_bytes(b"2")
    got = batch_items.from_patterns([str(tmp_path / "[ab]" / "*")], exclude=tmp_path / "a" / "out")
    assert len(got) == 2 and len({i.id for i in got}) == 2 and all(i.id.startswith("x-") for i in got)
    assert [
        i.id for i in batch_items.from_patterns([str(tmp_path / "[ab]" / "*")], exclude=tmp_path / "a" / "out")
    ] == [i.id for i in got]
    with pytest.raises(EngineError, match="No inputs match"):
        batch_items.from_patterns([str(tmp_path / "*.nothing")])


def test_manifest_rows_are_items(tmp_path):
    (tmp_path / "in").mkdir()
    for n in ("one", "two"):
        (tmp_path / "in" / f"{n}.mp4").write_bytes(b"x")
    (tmp_path / "shirt.png").write_bytes(b"x")
    m = tmp_path / "items.csv"
    m.write_text("id,input,input2\nfirst,in/one.mp4,shirt.png\n,in/two.mp4,shirt.png\n,,\n")
    got = batch_items.from_manifest(m)
    assert [(i.id, [p.relative_to(tmp_path).as_posix() for p in i.inputs]) for i in got] == [
        ("first", ["in/one.mp4", "shirt.png"]),
        ("two", ["in/two.mp4", "shirt.png"]),
    ]
    m.write_text("path\nx.png\n")
    with pytest.raises(EngineError, match="'input' column"):
        batch_items.from_manifest(m)


def test_batch_refuses_what_cannot_run_before_any_work(killable, tmp_path, capsys):
    from app import cli

    src = photos(tmp_path / "in", ["a"])
    out = tmp_path / "out"
    base = ["batch", killable.name, "--inputs", str(src / "*.png"), "--out", str(out)]
    assert cli.main(base + ["--format", ".mp4"]) == 2
    assert "cannot be written as .mp4" in capsys.readouterr().err
    assert cli.main(base + ["--set", "depth=-1"]) == 2
    assert "depth" in capsys.readouterr().err
    assert cli.main(base + ["--inputs", str(src / "a.png")]) == 2  # two inputs for a one-input engine
    assert "1 input(s) per item" in capsys.readouterr().err
    assert cli.main(["batch", killable.name, "--inputs", str(tmp_path / "none" / "*.png"), "--out", str(out)]) == 2
    assert not out.exists() or not list(out.glob("*.npy"))


def test_changed_inputs_parameters_or_outputs_rerun_their_items(killable, tmp_path):
    src = photos(tmp_path / "in", ["a", "b", "c"])
    opts = BatchOptions(out=tmp_path / "out", inputs=[str(src)], format=".npy", workers=1)
    assert run_batch(killable, opts).ran == 3
    assert run_batch(killable, opts).ran == 0
    opts.params = {"depth": "2.5"}
    s = run_batch(killable, opts)
    assert (s.ran, s.done) == (3, 3) and np.allclose(np.load(tmp_path / "out" / "a.npy"), 2.5)
    (tmp_path / "out" / "b.npy").unlink()  # an output gone: that item runs again
    from PIL import Image as PILImage

    PILImage.fromarray(np.zeros((20, 10, 3), np.uint8)).save(src / "c.png")  # new content: a new hash
    s = run_batch(killable, opts)
    assert s.ran == 2 and sorted(r["item"] for r in s.rows if r["this_run"] == "ran") == ["b", "c"]
    assert np.load(tmp_path / "out" / "c.npy").shape == (20, 10)


def test_numbers_from_the_command_line_match_literal_choices():
    avatar = registry.get("avatar")
    assert make_params(avatar, {"texture_size": "1024"}).texture_size == 1024
    with pytest.raises(EngineError, match="texture_size"):
        make_params(avatar, {"texture_size": "1000"})


# ---------------------------------------------------------------------- failure isolation
def test_worker_killed_mid_item_is_retried_and_the_batch_completes(killable, tmp_path):
    src = photos(tmp_path / "in", ["a", "b", "victim", "z"])
    ctl = control(tmp_path, "hold")
    out = tmp_path / "out"
    done: dict = {}
    opts = BatchOptions(out=out, inputs=[str(src / "*.png")], params={"control": str(ctl)}, format=".npy", workers=2)
    t = threading.Thread(target=lambda: done.update(summary=run_batch(killable, opts)))
    t.start()
    os.kill(wait_for_start(ctl), signal.SIGKILL)  # the worker dies while it runs 'victim'
    t.join(300)
    s = done["summary"]
    assert (s.done, s.failed, s.ran) == (4, 0, 4)
    recs = records(out)
    assert recs["victim"]["status"] == "done" and recs["victim"]["attempts"] == 2
    assert all(np.load(out / f"{n}.npy").shape == (12, 16) for n in ("a", "b", "victim", "z"))
    assert len(list(ctl.glob("started-*"))) == 2
    assert leftovers(out) == []


def test_item_that_kills_every_worker_fails_alone(killable, tmp_path):
    src = photos(tmp_path / "in", ["a", "b", "victim", "z"])
    ctl = control(tmp_path, "crash", hold=False)
    out = tmp_path / "out"
    s = run_batch(
        killable,
        BatchOptions(
            out=out,
            inputs=[str(src / "*.png")],
            params={"control": str(ctl)},
            format=".npy",
            workers=2,
            worker_retries=1,
        ),
    )
    assert (s.done, s.failed) == (3, 1)
    assert s.failures[0]["item"] == "victim" and s.failures[0]["kind"] == "worker"
    assert "died" in s.failures[0]["message"]
    recs = records(out)
    # It fails after dying twice alone (one retry); a first death beside another item
    # (which then is not blamed) adds a start, depending on what was still running.
    assert recs["victim"]["attempts"] in (2, 3)
    assert {k: r["status"] for k, r in recs.items()} == {"a": "done", "b": "done", "victim": "failed", "z": "done"}
    assert not (out / "victim.npy").exists()


def _fresh_sigint() -> None:
    """In the child before exec: SIGINT as a terminal's new command has it (default action,
    not blocked). A signal mask and an ignored disposition are inherited, and after the rest
    of the suite this process has been seen passing SIGINT on blocked or ignored."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_stops_the_batch_and_the_same_command_resumes(killable, tmp_path, capsys):
    from app import cli

    src = photos(tmp_path / "in", ["a", "b", "victim", "z"])
    ctl = control(tmp_path, "hold-always")
    out = tmp_path / "out"
    argv = [
        "batch",
        killable.name,
        "--inputs",
        str(src / "*.png"),
        "--out",
        str(out),
        "--format",
        ".npy",
        "--set",
        f"control={ctl}",
        "--workers",
        "1",
        "--json",
    ]

    # Ctrl-C as a terminal sends it, to a command of its own: in this test process other
    # tests' threads and libraries could receive or hold the signal instead.
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, CAPTURE_STUDIO_ENGINES="tests.test_batch:KillableEngine", PYTHONPATH=str(root))
    proc = subprocess.Popen(
        [sys.executable, str(root / "main.py"), *argv],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_fresh_sigint,
    )
    try:
        guard = time.monotonic() + 300
        while not list(ctl.glob("started-*")) and proc.poll() is None and time.monotonic() < guard:
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr[-3000:]
    s = _json_line(stdout)
    assert s["interrupted"] and (s["done"], s["not_run"]) == (2, 2)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "a.npy",
        "b.npy",
        "batch.log",
        "records",
        "summary.csv",
    ]
    assert sorted(records(out)) == ["a", "b"] and leftovers(out) == []
    assert {k: r["status"] for k, r in summary_rows(out).items()} == {
        "a": "done",
        "b": "done",
        "victim": "pending",
        "z": "pending",
    }

    (ctl / "hold").unlink()
    assert cli.main(argv) == 0
    s = _json_line(capsys.readouterr().out)
    assert (s["ran"], s["skipped"], s["done"]) == (2, 2, 4)
