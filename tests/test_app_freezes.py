"""The window never waits on heavy work (issue 15 item 1): engines run in a worker
process, saving runs in a pool thread while the event loop goes on, results arrive with
their display arrays and thumbnail made off the UI thread, the sliders' emotion map needs
no torch in the application's process. Stall lengths are measured by benchmarks/ui_block.py;
these tests check the structure that keeps them short."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
from pydantic import BaseModel, Field

from engines.api import Engine, Result, make_params
from engines.types import Image, ImageSet, Mesh

from tests.conftest import FakeEngine, box_mesh

pytestmark = pytest.mark.gui


class PidEngine(Engine):
    """Says which process and thread ran it (module level: a worker process can import it)."""

    name = "pid-test"
    title = "Pid engine"
    accepts = (Image,)
    produces = (Mesh,)

    class Params(BaseModel):
        crash: bool = Field(False, description="End the process as native code crashing would")

    def run(self, inputs, params, progress, cancel):
        if params.crash:
            os._exit(3)
        progress(0.5, "half way")
        return Result(items=[box_mesh()], metrics={"pid": os.getpid(), "thread": threading.get_ident()})


class PreviewEngine(Engine):
    """Sends one preview image of its work (as the splat engine does while training)."""

    name = "preview-test"
    title = "Preview engine"
    accepts = (Image,)
    produces = (Mesh,)

    class Params(BaseModel):
        width: int = Field(400, ge=1, description="Width of the preview image")

    def run(self, inputs, params, progress, cancel):
        show = getattr(progress, "preview", None)
        if show is not None:
            ramp = np.linspace(0, 255, params.width).astype(np.uint8)
            show(np.dstack([np.tile(ramp, (50, 1))] * 3), "Step 7")
        return Result(items=[box_mesh()], metrics={"pid": os.getpid()})


def _img():
    return Image(np.zeros((8, 8, 3), np.uint8))


@pytest.fixture
def runner(qapp):
    from app.jobs import JobRunner

    r = JobRunner()
    yield r
    r.shutdown(5000)


def test_engine_runs_in_a_worker_process(qtbot, runner):
    progress = []
    runner.progress.connect(lambda j, f, m: progress.append(m))
    with qtbot.waitSignal(runner.finished, timeout=120000) as blocker:
        job = runner.run_engine(PidEngine, [_img()], make_params(PidEngine, {}))
    result = blocker.args[1]
    assert job.meta["process"] is True
    assert result.metrics["pid"] != os.getpid()  # not a thread of this process: its own GIL
    assert "half way" in progress
    # the same worker serves the next job (no new interpreter and imports per job)
    with qtbot.waitSignal(runner.finished, timeout=120000) as again:
        runner.run_engine(PidEngine, [_img()], make_params(PidEngine, {}))
    assert again.args[1].metrics["pid"] == result.metrics["pid"]


def test_a_crashing_engine_fails_its_job_not_the_application(qtbot, runner):
    with qtbot.waitSignal(runner.failed, timeout=120000) as blocker:
        runner.run_engine(PidEngine, [_img()], make_params(PidEngine, {"crash": True}))
    assert "stopped unexpectedly" in blocker.args[1]
    with qtbot.waitSignal(runner.finished, timeout=120000):  # and the next run works
        runner.run_engine(PidEngine, [_img()], make_params(PidEngine, {}))


def test_engines_stay_in_threads_when_asked(qtbot, qapp):
    from app.jobs import JobRunner

    r = JobRunner(engine_processes=False)
    try:
        with qtbot.waitSignal(r.finished, timeout=60000) as blocker:
            r.run_engine(PidEngine, [_img()], make_params(PidEngine, {}))
        assert blocker.args[1].metrics["pid"] == os.getpid()
        assert blocker.args[1].metrics["thread"] != threading.get_ident()
    finally:
        r.shutdown(5000)


def test_save_project_writes_in_a_pool_thread_while_the_event_loop_runs(qtbot, window, tmp_path, monkeypatch):
    from PySide6.QtCore import QTimer

    from app.project import ResultEntry

    window.project.add_result(ResultEntry(Result(items=[box_mesh()]), "fake", {}, "Box"))
    writers, ticks = [], []
    real = np.savez_compressed
    during = threading.Event()

    def slow_savez(*a, **k):
        writers.append(threading.current_thread())
        during.set()
        time.sleep(0.3)  # a big file: on the UI thread this would stop the timer below
        return real(*a, **k)

    monkeypatch.setattr(np, "savez_compressed", slow_savez)
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(during.is_set()))
    timer.start()
    path = window.save_project(tmp_path / "p.capstudio")
    timer.stop()
    assert path == tmp_path / "p.capstudio" and path.exists() and not window.project.dirty
    assert writers and all(t is not threading.main_thread() for t in writers)
    assert any(ticks), "the UI timer should fire while the results are written"


def test_a_change_made_while_saving_keeps_the_project_dirty(qtbot, window, tmp_path, monkeypatch):
    from app.project import ResultEntry

    window.project.add_result(ResultEntry(Result(items=[box_mesh()]), "fake", {}, "Box"))
    real = np.savez_compressed

    def touching_savez(*a, **k):
        window.project.revision += 1  # as a result arriving during the save would
        return real(*a, **k)

    monkeypatch.setattr(np, "savez_compressed", touching_savez)
    window.save_project(tmp_path / "p.capstudio")
    assert window.project.dirty


def test_results_arrive_with_display_arrays_and_thumbnail_made_off_the_ui_thread(qtbot, runner):
    from app import display, renderers
    from app.inputs_panel import _thumbs

    runner.prepare_result = display.prepare_result
    made_in = []
    real = renderers.prepare

    def recording(obj):
        made_in.append(threading.current_thread())
        real(obj)

    renderers.prepare = recording
    try:
        with qtbot.waitSignal(runner.finished, timeout=120000) as blocker:
            runner.run_engine(FakeEngine, [_img()], make_params(FakeEngine, {"output": "depth"}))
    finally:
        renderers.prepare = real
    result = blocker.args[1]
    assert made_in and all(t is not threading.main_thread() for t in made_in)
    dm = result.main
    assert (id(dm), "surface") in renderers._prepared  # the depth surface, ready to wrap
    assert (id(dm), 192) in _thumbs  # the Results list's thumbnail


def test_the_sliders_emotion_map_matches_the_torch_module_without_torch():
    from engines.avatar.emotions import EMOTIONS, emotion_module, emotion_to_expression

    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    module = emotion_module()
    for _ in range(5):
        e = {k: float(v) for k, v in zip(EMOTIONS, rng.uniform(0, 1.2, len(EMOTIONS)))}
        want = module(torch.tensor([[min(max(e[k], 0.0), 1.0) for k in EMOTIONS]]))[0].detach().numpy()
        assert np.allclose(emotion_to_expression(e), want, atol=1e-6)


def test_an_image_sets_thumbnail_shows_several_of_its_photos(tmp_path):
    from PIL import Image as PILImage

    from app.inputs_panel import thumbnail_of

    colours = [(220, 30, 30), (30, 220, 30), (30, 30, 220), (220, 220, 30), (200, 200, 200)]
    paths = []
    for i, c in enumerate(colours):
        p = tmp_path / f"{i}.png"
        PILImage.fromarray(np.full((60, 80, 3), c, np.uint8)).save(p)
        paths.append(p)
    thumb = thumbnail_of(ImageSet(paths))
    h, w = thumb.shape[:2]
    quads = [thumb[h // 4, w // 4], thumb[h // 4, 3 * w // 4], thumb[3 * h // 4, w // 4], thumb[3 * h // 4, 3 * w // 4]]
    # four photos spread over the set: the first, two between and the last
    seen = {tuple(int(v > 128) for v in q) for q in quads}
    assert len(seen) == 4
    assert tuple(int(v > 128) for v in quads[0]) == (1, 0, 0)  # the first photo first
    assert tuple(int(v > 128) for v in quads[3]) == (1, 1, 1)  # the last photo last


@pytest.mark.parametrize("processes", [True, False])
def test_an_engines_preview_reaches_the_jobs_panel(qtbot, qapp, processes):
    """An engine's preview image (the splat's render while it trains, issue 13) arrives on
    the UI thread from a worker process or a thread, and the job's row shows it."""
    from app.jobs import JobRunner
    from app.jobs_panel import PREVIEW_WIDTH, JobsPanel

    r = JobRunner(engine_processes=processes)
    panel = JobsPanel(r)
    qtbot.addWidget(panel)
    seen = []
    r.preview.connect(lambda j, rgb, m: seen.append((j, rgb, m)))
    try:
        with qtbot.waitSignal(r.finished, timeout=120000) as blocker:
            job = r.run_engine(PreviewEngine, [_img()], make_params(PreviewEngine, {"width": 400}))
        assert job.meta["process"] is processes
        assert (blocker.args[1].metrics["pid"] != os.getpid()) is processes
        qtbot.waitUntil(lambda: bool(seen), timeout=10000)
        jid, rgb, caption = seen[0]
        assert jid == job.id and caption == "Step 7"
        assert rgb.shape == (50, 400, 3) and rgb[0, 0, 0] == 0 and rgb[0, -1, 0] == 255
        pix = panel.rows[job.id].preview.pixmap()
        assert not pix.isNull() and pix.width() == PREVIEW_WIDTH  # scaled down to the row
        shown = pix.toImage()
        assert shown.pixelColor(2, 25).red() < 20 and shown.pixelColor(PREVIEW_WIDTH - 3, 25).red() > 235
    finally:
        r.shutdown(10000)
