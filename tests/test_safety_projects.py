"""Data safety of projects and bundles (issue 14, items 3, 6, 8): damaged project JSON is an
EngineError with a sentence, a damaged autosave is set aside and start-up goes on, the bundle
reader and load_entry raise nothing raw, a moved or renamed project opens, one missing
result does not sink the rest, a clean exit leaves no autosave behind."""

from __future__ import annotations

import json
import os
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from app import settings as settings_mod
from app.project import InputEntry, Project, ResultEntry, load_entry
from engines.api import EngineError, Result
from engines.types import DepthMap

from tests.conftest import DATA, box_mesh

pytestmark = pytest.mark.gui

HEAD = '"format": "capture-studio-project", "version": 1'
GOOD_TREE = '{"__type__": "Result", "fields": {"items": {"__list__": [], "tuple": false}}}'


# -- 3. damaged project JSON ---------------------------------------------------------------
@pytest.mark.parametrize(
    "body, where",
    [
        ('"inputs": [{"paths": ["a.png"]}]', "inputs[0].kind"),  # missing key
        ('"inputs": [{"kind": "Image", "paths": "a.png"}]', "inputs[0].paths"),  # wrong type
        ('"inputs": {"kind": "Image", "paths": ["a.png"]}', "inputs"),  # wrong nesting
        ('"inputs": [{"kind": "Image", "paths": [["a.png"]]}]', "inputs[0].paths[0]"),
        ('"results": [{"tree": {}}]', "results[0].file"),
        ('"results": [{"file": 3, "tree": {}}]', "results[0].file"),
        ('"results": [{"file": "x.results/result_001.npz", "tree": "oops"}]', "results[0].tree"),
        ('"params": [1, 2]', "params"),
        ('"params": {"depth": 5}', "params.depth"),
        ('"engine": {"name": "depth"}', "engine"),
    ],
)
def test_damaged_project_json_is_an_engine_error_naming_the_field(tmp_path, body, where):
    f = tmp_path / "bad.capstudio"
    f.write_text("{" + HEAD + ", " + body + "}")
    with pytest.raises(EngineError) as e:
        Project.load(f)
    msg = str(e.value)
    assert msg.startswith("bad.capstudio is damaged and cannot be opened: " + where + ":"), msg


def test_damaged_result_tree_is_listed_not_fatal(tmp_path):
    p = Project()
    p.add_result(ResultEntry(Result(items=[box_mesh()]), "fake", label="Box"))
    p.add_result(ResultEntry(Result(items=[DepthMap(np.ones((2, 3), np.float32))]), "fake", label="Depth"))
    saved = p.save(tmp_path / "x.capstudio")
    doc = json.loads(saved.read_text())
    doc["results"][0]["tree"]["fields"]["items"] = {"__type__": "Mesh", "fields": 5}  # wrong nesting
    saved.write_text(json.dumps(doc))
    q = Project.load(saved)
    assert [r.label for r in q.results] == ["Depth"]
    assert len(q.problems) == 1 and "result 1 (Box)" in q.problems[0] and "damaged" in q.problems[0]


def test_open_damaged_project_in_the_window_shows_a_dialog(window, dialogs, tmp_path):
    f = tmp_path / "bad.capstudio"
    f.write_text("{" + HEAD + ', "inputs": [{"kind": 3}]}')
    assert window.open_project(f) is False
    title, text = dialogs.of("warning")[-1][1:]
    assert title == "Open failed" and "bad.capstudio is damaged" in text


def test_damaged_autosave_is_set_aside_and_start_up_goes_on(qtbot, dialogs):
    from app.main_window import MainWindow
    from app.settings import Settings

    path = settings_mod.autosave_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{" + HEAD + ', "results": [{"file": "autosave.csproj.results/result_001.npz"}]}')
    (path.parent / "autosave.csproj.results").mkdir()
    s = Settings()
    s.data["clean_exit"] = time.time() - 3600
    s.save()
    w = MainWindow(Settings(), samples=False, recovery=True, views=False)
    qtbot.addWidget(w)
    w.confirm_close = False
    with qtbot.waitExposed(w, timeout=60000):
        w.show()
    qtbot.waitUntil(lambda: w.settings.get("running_since") is not None, timeout=60000)  # start-up went on
    assert not path.exists()
    kept = sorted(p.name for p in path.parent.iterdir())
    assert len(kept) == 2 and all(".damaged-" in k for k in kept)
    assert kept[0].endswith(".json") and kept[1].endswith(".results")
    title, text = dialogs.of("warning")[-1][1:]
    assert title == "Autosave could not be recovered" and "results[0].tree" in text and "It was kept as" in text
    assert dialogs.of("question") == []  # nothing to recover, so nothing asked
    w.runner.shutdown(5000)


def test_load_entry_raises_only_engine_errors(tmp_path):
    for entry in (
        InputEntry("Image", [None], "odd"),
        InputEntry("FocalStack", [str(tmp_path)], "stack", [1.0, "x"]),
        InputEntry("Image", [], "empty"),
    ):
        with pytest.raises(EngineError):
            load_entry(entry)


# -- the bundle reader: damage inside is an EngineError naming the bundle --------------------------
def _bundle(tmp_path: Path, meta: bytes, extra: dict | None = None) -> Path:
    from engines.io.mesh import write_glb

    glb = tmp_path / "m.glb"
    write_glb(box_mesh(), glb)
    f = tmp_path / "avatar.zip"
    with zipfile.ZipFile(f, "w") as z:
        z.writestr("avatar.glb", glb.read_bytes())
        z.writestr("avatar.json", meta)
        for k, v in (extra or {}).items():
            z.writestr(k, v)
    return f


@pytest.mark.parametrize(
    "meta, extra",
    [
        (b"[1, 2]", None),  # not an object
        (b'{"emotions": {"happiness": "lots"}}', None),  # wrong type inside
        (b'{"camera": [1, 2]}', None),  # wrong nesting
        (b"\xff\xfe not utf-8", None),
        (b"{}", {"rig.npz": b"not an npz"}),
        (b"{}", {"hair.npz": b"PK\x03\x04 broken"}),
        (b"{}", {"photo.jpg": b"\xff\xd8\xff\xe0 truncated"}),
    ],
)
def test_damaged_bundle_is_an_engine_error(tmp_path, meta, extra):
    from engines import io

    f = _bundle(tmp_path, meta, extra)
    with pytest.raises(EngineError) as e:
        io.read(f)
    assert "avatar.zip" in str(e.value)


# -- 6. projects that are moved or renamed -------------------------------------------------
def _saved_project(folder: Path) -> Path:
    folder.mkdir()
    photo = folder / "photo.png"
    shutil.copy(DATA / "astronaut.png", photo)
    p = Project()
    p.add_input(InputEntry("Image", [str(photo)], "photo.png"))
    p.add_result(ResultEntry(Result(items=[box_mesh(2.0)]), "fake", label="Box", input=0))
    p.add_result(ResultEntry(Result(items=[DepthMap(np.ones((2, 3), np.float32))]), "fake", label="Depth"))
    return p.save(folder / "x.capstudio")


def test_project_moved_and_renamed_with_its_folder_opens(tmp_path):
    _saved_project(tmp_path / "a")
    os.rename(tmp_path / "a", tmp_path / "b")
    os.rename(tmp_path / "b" / "x.capstudio", tmp_path / "b" / "y.capstudio")
    os.rename(tmp_path / "b" / "x.results", tmp_path / "b" / "y.results")  # as the message suggests
    q = Project.load(tmp_path / "b" / "y.capstudio")
    assert q.problems == []
    assert [r.label for r in q.results] == ["Box", "Depth"]
    assert np.allclose(q.results[0].result.main.bounds[1], 1.0)
    assert q.inputs[0].paths == [str((tmp_path / "b" / "photo.png").resolve())]  # found relative to the project
    assert load_entry(q.inputs[0]).pixels.shape[:2] == (512, 512)


def test_project_renamed_alone_still_finds_its_results_folder(tmp_path):
    saved = _saved_project(tmp_path / "a")
    os.rename(saved, saved.with_name("renamed.capstudio"))
    q = Project.load(saved.with_name("renamed.capstudio"))
    assert q.problems == [] and len(q.results) == 2


def test_one_missing_result_file_leaves_the_rest_open_and_names_the_right_folder(tmp_path):
    saved = _saved_project(tmp_path / "a")
    os.rename(saved, saved.with_name("y.capstudio"))
    os.rename(tmp_path / "a" / "x.results", tmp_path / "a" / "y.results")
    (tmp_path / "a" / "y.results" / "result_001.npz").unlink()
    q = Project.load(tmp_path / "a" / "y.capstudio")
    assert [r.label for r in q.results] == ["Depth"]
    assert len(q.problems) == 1
    msg = q.problems[0]
    assert "result 1 (Box)" in msg and "result_001.npz" in msg and "y.results" in msg


def test_result_file_outside_the_project_folder_is_not_read(tmp_path):
    f = tmp_path / "p.capstudio"
    f.write_text("{" + HEAD + ', "results": [{"file": "../elsewhere/result_001.npz", "tree": ' + GOOD_TREE + "}]}")
    q = Project.load(f)
    assert q.results == [] and "not a results file in the project's folder" in q.problems[0]


def test_window_lists_results_that_could_not_be_opened(qtbot, window, dialogs, tmp_path):
    saved = _saved_project(tmp_path / "a")
    (tmp_path / "a" / "x.results" / "result_002.npz").unlink()
    with qtbot.waitSignal(window.project_loaded, timeout=60000):
        assert window.open_project(saved)
    assert len(window.project.results) == 1 and window.inputs_panel.results.count() == 1
    assert any(
        t == "Some results could not be opened" and "result 2 (Depth)" in m for _k, t, m in dialogs.of("warning")
    )


# -- 8. a clean exit leaves no autosave behind ------------------------------------------------
def test_clean_exit_removes_the_autosave_and_its_results(qtbot, window):
    window.project.add_result(ResultEntry(Result(items=[box_mesh(0.5)]), "fake", {}, "Box"))
    with qtbot.waitSignal(window.runner.finished, timeout=60000):
        window.autosave()
    target = settings_mod.autosave_path()
    rdir = target.with_name("autosave.csproj.results")
    assert target.exists() and any(rdir.iterdir())
    window.confirm_close = False
    window.close()
    assert not target.exists() and not rdir.exists()
