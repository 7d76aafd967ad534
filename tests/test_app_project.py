"""Project files: lossless result encoding, save/open round trip through the window,
autosave and crash recovery, settings."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from app import settings as settings_mod
from app.main_window import MainWindow
from app.project import Project, ResultEntry, decode, encode
from app.settings import Settings
from engines.api import EngineError, Result
from engines.types import Avatar, DepthMap, PointCloud, Strands, VideoResult

from tests.conftest import DATA, box_mesh

pytestmark = pytest.mark.gui


def _rich_result() -> Result:
    rng = np.random.default_rng(1)
    mesh = box_mesh(0.3)
    mesh.uv = rng.random((8, 2)).astype(np.float32)
    mesh.texture = rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)
    mesh.morph_targets = {"happiness": rng.random((8, 3)).astype(np.float32)}
    avatar = Avatar(
        mesh,
        emotions={"happiness": 0.25},
        camera={"K": np.eye(3), "image_size": (64, 48)},
        hair=Strands(rng.random((3, 5, 3)), np.zeros((3, 3), np.uint8)),
        extra_meshes=[box_mesh(0.1)],
        scalp=np.arange(4),
        params={"detail": 2},
    )
    depth = DepthMap(
        rng.random((6, 7)).astype(np.float32),
        confidence=np.ones((6, 7)),
        intrinsics=np.eye(3) * 5,
        image=np.zeros((6, 7, 3), np.uint8),
    )
    depth.depth[0, 0] = np.nan
    return Result(
        items=[avatar, depth, PointCloud(rng.random((5, 3)))],
        metrics={"rmse": np.float32(0.125), "n": 3},
        timings={"fit": 0.5},
        notes=["a note"],
    )


def _same(a, b) -> None:
    """Recursive value comparison for result trees."""
    import dataclasses

    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    elif dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            _same(getattr(a, f.name), getattr(b, f.name))
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    else:
        assert a == b


def test_encoding_is_lossless_and_pickle_free(tmp_path):
    result = _rich_result()
    arrays = {}
    tree = encode(result, arrays, "r")
    json.dumps(tree)  # the structure is plain JSON
    np.savez(tmp_path / "a.npz", **arrays)
    with np.load(tmp_path / "a.npz", allow_pickle=False) as z:
        back = decode(tree, {k: z[k] for k in z.files})
    # float32 metrics come back as Python floats; compare the rest exactly.
    assert back.metrics["rmse"] == pytest.approx(0.125)
    back.metrics["rmse"] = result.metrics["rmse"] = 0.125
    _same(result, back)


def test_project_file_round_trip(tmp_path):
    p = Project()
    p.engine = "fake"
    p.params = {"fake": {"size": 2.0, "mode": "ok"}}
    p.add_result(ResultEntry(_rich_result(), "fake", {"size": 2.0}, "Fake #1", None))
    saved = p.save(tmp_path / "session")
    assert saved.name == "session.capstudio" and (tmp_path / "session.results" / "result_001.npz").exists()
    q = Project.load(saved)
    assert q.engine == "fake" and q.params == p.params
    _same(p.results[0].result.items, q.results[0].result.items)
    assert q.results[0].label == "Fake #1"


def test_video_result_file_is_copied_into_the_results_folder(tmp_path):
    src = tmp_path / "made.mp4"
    src.write_bytes(b"not really a video, but bytes to copy")
    p = Project()
    p.add_result(ResultEntry(Result(items=[VideoResult(25.0, path=src)]), "tryon"))
    saved = p.save(tmp_path / "v.capstudio")
    src.unlink()
    q = Project.load(saved)
    path = q.results[0].result.main.path
    assert path.parent == tmp_path / "v.results" and path.read_bytes().startswith(b"not really")


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ('{"format": "something-else"}', "not a Capture Studio project"),
    ],
)
def test_bad_project_files_are_refused_with_a_message(tmp_path, content, message):
    f = tmp_path / "bad.capstudio"
    f.write_text(content)
    with pytest.raises(EngineError, match=message):
        Project.load(f)


def test_missing_results_folder_names_it(tmp_path):
    p = Project()
    p.add_result(ResultEntry(Result(items=[box_mesh()]), "fake"))
    saved = p.save(tmp_path / "x.capstudio")
    for f in (tmp_path / "x.results").iterdir():
        f.unlink()
    q = Project.load(saved)  # the project opens; what is missing is listed, naming the folder
    assert q.results == [] and len(q.problems) == 1
    assert "result_001.npz" in q.problems[0] and "x.results" in q.problems[0]


def test_save_open_round_trip_through_the_window(qtbot, window, fake_engine, tmp_path):
    with qtbot.waitSignal(window.input_added, timeout=60000):
        window.import_paths([DATA / "astronaut.png"])
    window.refresh_engines()
    window.engine_panel.select("fake")
    window.engine_panel.form.set_values({"size": 0.75, "output": "depth", "label": "saved", "smooth": False})
    with qtbot.waitSignal(window.result_added, timeout=60000):
        window.run_engine()
    window.engine_panel.form.set_values({"size": 3.5})  # edited after the run: saved too
    original = window.project.results[0].result
    path = window.save_project(tmp_path / "round.capstudio")
    assert path == tmp_path / "round.capstudio" and not window.project.dirty

    other = MainWindow(Settings(), samples=False, recovery=False, views=False)
    qtbot.addWidget(other)
    other.refresh_engines()
    with qtbot.waitSignal(other.project_loaded, timeout=60000):
        assert other.open_project(path)
    other.confirm_close = False
    # Inputs: same file, same pixels.
    assert [e.paths for e in other.project.inputs] == [[str(DATA / "astronaut.png")]]
    assert np.array_equal(other.project.inputs[0].obj.pixels, window.project.inputs[0].obj.pixels)
    assert other.inputs_panel.input_labels() == ["astronaut.png"]
    # Parameters: the form shows what was there at save time.
    assert other.engine_panel.current == "fake"
    values = other.engine_panel.values()
    assert values["size"] == 3.5 and values["output"] == "depth" and values["smooth"] is False
    assert values["label"] == "saved"
    # Results: values, not just presence.
    back = other.project.results[0]
    assert back.engine == "fake" and back.params["size"] == 0.75
    assert isinstance(back.result.main, DepthMap) and back.result.main.name == "saved"
    assert np.array_equal(back.result.main.depth, original.main.depth)
    assert back.result.metrics == {"size": 0.75, "smooth": False, "inputs": 1}
    assert other.inputs_panel.results.count() == 1
    other.runner.shutdown(5000)


def test_open_with_a_missing_input_keeps_results(qtbot, window, dialogs, tmp_path):
    img = tmp_path / "gone.png"
    img.write_bytes((DATA / "astronaut.png").read_bytes())
    with qtbot.waitSignal(window.input_added, timeout=60000):
        window.import_paths([img])
    window.project.add_result(ResultEntry(Result(items=[box_mesh(2.0)]), "fake", {}, "Box"))
    path = window.save_project(tmp_path / "p.capstudio")
    img.unlink()
    with qtbot.waitSignal(window.project_loaded, timeout=60000):
        window.open_project(path)
    assert window.project.inputs == []
    assert len(window.project.results) == 1
    assert np.allclose(window.project.results[0].result.main.bounds[1], 1.0)
    assert "gone.png" in dialogs.of("warning")[-1][2]


def test_autosave_and_recovery_offer(qtbot, window, dialogs, tmp_path):
    window.project.add_result(ResultEntry(Result(items=[box_mesh(0.5)]), "fake", {}, "Box"))
    with qtbot.waitSignal(window.runner.finished, timeout=60000) as blocker:
        job = window.autosave()
    saved = blocker.args[1]
    assert saved == settings_mod.autosave_path() and saved.exists()
    assert job.id not in window.jobs_panel.rows  # quiet: not listed in the Jobs panel
    assert window.autosave() is None  # nothing changed since
    # A later start finds an autosave newer than the last clean exit and offers it.
    s = Settings()
    s.data["clean_exit"] = time.time() - 3600
    s.save()
    os.utime(saved, None)
    dialogs.answers["question"] = __import__("PySide6.QtWidgets", fromlist=["QMessageBox"]).QMessageBox.Yes
    w2 = MainWindow(Settings(), samples=False, recovery=True, views=False)
    qtbot.addWidget(w2)
    w2.confirm_close = False
    with qtbot.waitSignal(w2.project_loaded, timeout=60000):
        w2.show()
    assert any("Recover" in t for _k, t, _m in dialogs.of("question"))
    assert len(w2.project.results) == 1 and w2.project.path is None and w2.project.dirty
    # A clean exit removes the autosave and records the time: no offer next start.
    w2.close()
    assert not settings_mod.autosave_path().exists()
    assert Settings().clean_exit_time > time.time() - 60
    w2.runner.shutdown(5000)


def test_no_recovery_offer_after_clean_exit(qtbot, dialogs):
    path = settings_mod.autosave_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")
    s = Settings()
    s.mark_clean_exit()
    os.utime(path, (time.time() - 100, time.time() - 100))
    w = MainWindow(Settings(), samples=False, recovery=True, views=False)
    qtbot.addWidget(w)
    assert w.offer_recovery() is False
    assert dialogs.of("question") == []
    w.confirm_close = False
    w.runner.shutdown(1000)


def test_settings_recent_files_and_onnx(tmp_path):
    s = Settings()
    for i in range(12):
        s.add_recent(tmp_path / f"f{i}.png")
    s.add_recent(tmp_path / "f5.png")
    s2 = Settings()
    assert len(s2.recent_files) == 10 and s2.recent_files[0] == str((tmp_path / "f5.png").resolve())
    s2.onnx_model_path = tmp_path / "depth.onnx"
    assert Settings().onnx_model_path == str(tmp_path / "depth.onnx")
    assert Path(s2.path).is_relative_to(settings_mod.config_dir())


def test_corrupt_settings_file_starts_fresh():
    settings_mod.config_dir().mkdir(parents=True, exist_ok=True)
    (settings_mod.config_dir() / "settings.json").write_text("[1, 2")
    assert Settings().recent_files == []
