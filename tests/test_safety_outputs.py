"""Data safety of what we write (issue 14, items 1, 4, 5, 7, 8, 9, 10): an export never
replaces an input, sidecars take clash-free names, multi-file writes are all or nothing,
output failures and Ctrl-C are an exit code and a sentence, stale temporaries are swept.

Every test makes its own small files; faults (full disk, no permission) are injected.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from pydantic import BaseModel, Field

from app import cli
from app import settings as settings_mod
from engines import io, registry
from engines.api import Engine, EngineError, Result
from engines.types import DepthMap, Image, Mesh

ROOT = Path(__file__).resolve().parents[1]
RUNS: list[str] = []


class PlaneDepth(Engine):
    """A depth plane the size of the photo; ``interrupt`` raises KeyboardInterrupt as a Ctrl-C would."""

    name = "test-safety-plane"
    title = "Plane depth (safety test)"
    accepts = (Image,)
    produces = (DepthMap,)

    class Params(BaseModel):
        interrupt: bool = Field(False, description="Raise KeyboardInterrupt during the run")

    def run(self, inputs, params, progress, cancel):
        RUNS.append(self.name)
        if params.interrupt:
            raise KeyboardInterrupt
        h, w = inputs[0].pixels.shape[:2]
        return Result(items=[DepthMap(np.full((h, w), 1.5, np.float32), image=inputs[0].rgb8())])


@pytest.fixture
def plane():
    RUNS.clear()
    registry.register(PlaneDepth)
    yield PlaneDepth
    registry.unregister(PlaneDepth.name)


def _photo(path: Path, seed: int = 0) -> Path:
    from PIL import Image as PILImage

    PILImage.fromarray(np.random.default_rng(seed).integers(0, 255, (24, 32, 3), np.uint8)).save(path)
    return path


def _textured(name: str = "head") -> Mesh:
    v = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], np.float32)
    tex = np.random.default_rng(3).integers(0, 255, (8, 8, 3), np.uint8)
    return Mesh(v, np.array([[0, 1, 2], [0, 2, 3]]), uv=v[:, :2].copy(), texture=tex, name=name)


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _run(capsys, *argv):
    try:
        rc = cli.main(["run", *argv])
    except KeyboardInterrupt:  # today's behaviour: the interrupt escapes as a traceback
        rc = "KeyboardInterrupt"
    out = capsys.readouterr()
    return rc, out.out, out.err


# -- 1. never replace an input; sidecars with names that cannot clash ---------------------
def test_obj_export_beside_the_photo_keeps_the_photo(tmp_path):
    photo = _photo(tmp_path / "portrait.png")
    original = photo.read_bytes()
    io.load_input(photo)  # what the CLI and the app do with an input
    written = io.export(_textured(), tmp_path / "portrait.obj")
    assert photo.read_bytes() == original
    assert [p.name for p in written] == ["portrait.obj", "portrait.mtl", "portrait_texture.png"]
    assert "map_Kd portrait_texture.png" in (tmp_path / "portrait.mtl").read_text()
    back = io.read(tmp_path / "portrait.obj")
    assert np.array_equal(back.texture, _textured().texture)


def test_existing_sidecar_names_are_not_replaced_but_own_sidecars_are(tmp_path):
    theirs = tmp_path / "head_texture.png"
    theirs.write_bytes(b"the user's own picture")
    mtl = tmp_path / "head.mtl"
    mtl.write_text("# someone else's material library\n")
    first = io.export(_textured(), tmp_path / "head.obj")
    assert [p.name for p in first] == ["head.obj", "head_2.mtl", "head_texture_2.png"]
    assert theirs.read_bytes() == b"the user's own picture"
    assert mtl.read_text() == "# someone else's material library\n"
    # Exporting over the same OBJ again replaces its own sidecars, and nothing else.
    again = io.export(_textured(), tmp_path / "head.obj")
    assert [p.name for p in again] == [p.name for p in first]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "head.mtl",
        "head.obj",
        "head_2.mtl",
        "head_texture.png",
        "head_texture_2.png",
    ]


def test_cli_refuses_an_input_as_out_before_running(plane, tmp_path, capsys):
    photo = _photo(tmp_path / "photo.png")
    original = photo.read_bytes()
    rc, _out, err = _run(capsys, PlaneDepth.name, "-i", str(photo), "-o", str(photo))
    assert rc == 2
    assert "--out" in err and "one of the inputs" in err
    assert photo.read_bytes() == original
    assert RUNS == []  # refused before the run


def test_hard_link_to_an_input_is_protected(tmp_path):
    photo = _photo(tmp_path / "photo.png")
    link = tmp_path / "same.png"
    os.link(photo, link)
    io.load_input(photo)
    with pytest.raises(EngineError, match="one of the inputs"):
        io.export(Image(np.zeros((4, 4, 3), np.uint8)), link)
    assert link.read_bytes() == photo.read_bytes() and photo.stat().st_size > 100


def test_help_says_out_may_be_replaced_and_inputs_never(plane, capsys):
    assert cli.main(["run", PlaneDepth.name, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "An existing file of that name is replaced" in text
    assert "An input file is never replaced" in text


# -- 4. output failures: exit 2, a sentence naming --out, no traceback on the terminal ----
@pytest.mark.parametrize("case", ["folder named like the output", "parent is a file"])
def test_cli_unwritable_out_paths_exit_2_with_a_sentence(plane, tmp_path, capsys, case):
    photo = _photo(tmp_path / "photo.png")
    if case == "folder named like the output":
        out = tmp_path / "depth.npy"
        out.mkdir()
        want = "a folder has that name"
    else:
        (tmp_path / "notes").write_text("a file")
        out = tmp_path / "notes" / "depth.npy"
        want = "is a file, not a folder"
    rc, _o, err = _run(capsys, PlaneDepth.name, "-i", str(photo), "-o", str(out))
    assert rc == 2
    assert f"--out {out}" in err and want in err
    assert "Traceback" not in err and ".cs-tmp" not in err and ".depth." not in err
    assert RUNS == []  # found before the run


def test_cli_read_only_folder_exits_2(plane, tmp_path, capsys, monkeypatch):
    photo = _photo(tmp_path / "photo.png")
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    real_mkstemp = tempfile.mkstemp

    def denied(*a, **k):  # root ignores file modes: refuse the write as the kernel would
        if Path(k.get("dir") or a[2]).resolve() == folder.resolve():
            raise PermissionError(errno.EACCES, "Permission denied", str(folder / ".depth.tmp"))
        return real_mkstemp(*a, **k)

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    try:
        rc, _o, err = _run(capsys, PlaneDepth.name, "-i", str(photo), "-o", str(folder / "depth.npy"))
    finally:
        folder.chmod(0o755)
    assert rc == 2
    assert f"--out {folder / 'depth.npy'}" in err and "read-only" in err and "folder you can write to" in err
    assert "Traceback" not in err and ".depth.tmp" not in err
    assert list(folder.iterdir()) == []


def test_cli_full_disk_exits_2_and_keeps_the_traceback_in_the_log(plane, tmp_path, capsys, monkeypatch):
    photo = _photo(tmp_path / "photo.png")
    out = tmp_path / "depth.npy"

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np.lib.format, "write_array", full)
    rc, _o, err = _run(capsys, PlaneDepth.name, "-i", str(photo), "-o", str(out))
    assert rc == 2
    assert f"--out {out}" in err and "disk is full" in err and "Nothing was written" in err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png"]  # no output, no temporary
    log = settings_mod.log_file().read_text()
    assert "Traceback" in log and "No space left on device" in log


def test_cli_bug_traceback_goes_to_the_log_only(plane, tmp_path, capsys, monkeypatch):
    photo = _photo(tmp_path / "photo.png")

    def broken(*a, **k):
        raise ZeroDivisionError("a bug in a writer")

    monkeypatch.setattr("engines.io.depth.write_depth_npy", broken)
    rc, _o, err = _run(capsys, PlaneDepth.name, "-i", str(photo), "-o", str(tmp_path / "d.npy"))
    assert rc == 1
    assert "a bug in a writer" in err and str(settings_mod.log_file()) in err
    assert "Traceback" not in err
    assert "ZeroDivisionError: a bug in a writer" in settings_mod.log_file().read_text()


# -- 5. multi-file exports as one transaction; stale temporaries swept ---------------------
@pytest.mark.parametrize("fault", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()])
def test_failed_obj_export_leaves_nothing(tmp_path, monkeypatch, fault):
    real = Path.write_text

    def failing(self, *a, **k):  # the OBJ itself is written last: fail there
        if self.suffix == ".obj":
            raise fault
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "write_text", failing)
    with pytest.raises((OSError, EngineError, KeyboardInterrupt)):
        io.export(_textured(), tmp_path / "a.obj")
    assert list(tmp_path.iterdir()) == []  # no a.mtl, no texture, no hidden temporary


def test_a_failed_rename_undoes_the_whole_set(tmp_path):
    from engines.io.files import OutputError, WriteSet

    (tmp_path / "a.mtl").write_text("old mtl")
    ws = WriteSet()
    ws.add(tmp_path / "a.mtl").write_text("new mtl")
    ws.add(tmp_path / "a.obj", main=True).write_text("new obj")
    (tmp_path / "a.obj").mkdir()  # the main file cannot be renamed into place
    with pytest.raises(OutputError, match="a folder has that name"):
        ws.commit()
    assert (tmp_path / "a.mtl").read_text() == "old mtl"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mtl", "a.obj"] and (tmp_path / "a.obj").is_dir()


def test_temporaries_left_by_a_killed_export_are_swept_by_the_next(tmp_path):
    script = (
        "import os, signal, sys\nfrom engines.io import atomic_path\n"
        "cm = atomic_path(sys.argv[1]); tmp = cm.__enter__(); tmp.write_bytes(b'half')\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    r = subprocess.run([sys.executable, "-c", script, str(tmp_path / "depth.npy")], cwd=ROOT, timeout=120)
    assert r.returncode == -signal.SIGKILL
    assert len(_hidden(tmp_path)) == 1  # the kill left its temporary behind
    io.export(DepthMap(np.ones((3, 4), np.float32)), tmp_path / "other.npy")
    assert _hidden(tmp_path) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["other.npy"]


def test_live_and_foreign_hidden_files_are_not_swept(tmp_path):
    from engines.io.files import WriteSet

    mine = tmp_path / ".notes.txt"  # the user's own hidden file
    mine.write_text("keep")
    ws = WriteSet()
    live = ws.add(tmp_path / "a.npy")  # a write in progress in this process
    io.export(DepthMap(np.ones((3, 4), np.float32)), tmp_path / "b.npy")
    assert mine.exists() and live.exists()
    ws.abort()
    assert not live.exists()


# -- 7. Ctrl-C: "Cancelled.", exit 130, no partial output ----------------------------------
def test_ctrl_c_during_the_run(plane, tmp_path, capsys):
    photo = _photo(tmp_path / "photo.png")
    rc, _o, err = _run(
        capsys, PlaneDepth.name, "-i", str(photo), "-o", str(tmp_path / "d.obj"), "--set", "interrupt=true"
    )
    assert rc == 130
    assert err.strip().splitlines()[-1] == "Cancelled." and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png"]


def test_ctrl_c_during_the_export_leaves_no_partial_files(plane, tmp_path, capsys, monkeypatch):
    photo = _photo(tmp_path / "photo.png")

    def interrupted(*a, **k):  # Ctrl-C while the array is being written to its temporary
        raise KeyboardInterrupt

    monkeypatch.setattr(np.lib.format, "write_array", interrupted)
    rc, _o, err = _run(capsys, PlaneDepth.name, "-i", str(photo), "-o", str(tmp_path / "d.npy"))
    assert rc == 130 and "Cancelled." in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png"]


# -- 9. an --out the result cannot be written as is refused before the run ------------------
def test_wrong_out_extension_is_refused_before_the_run(plane, tmp_path, capsys):
    photo = _photo(tmp_path / "photo.png")
    rc, _o, err = _run(capsys, PlaneDepth.name, "-i", str(photo), "-o", str(tmp_path / "d.zip"))
    assert rc == 2
    assert "DepthMap" in err and ".zip" in err and ".npy" in err
    assert RUNS == []


# -- 10. native libraries' chatter stays off the terminal ----------------------------------
def test_native_stderr_chatter_goes_to_the_log(tmp_path):
    photo = _photo(tmp_path / "photo.png")
    script = (
        "import os, sys\nfrom app import cli\nfrom engines import registry\n"
        "from tests.test_safety_outputs import PlaneDepth\n"
        "run = PlaneDepth.run\n"
        "def chatty(self, *a):\n"
        "    os.write(2, b'INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n')\n"
        "    return run(self, *a)\n"
        "PlaneDepth.run = chatty\nregistry.register(PlaneDepth)\n"
        "sys.exit(cli.main(['run', PlaneDepth.name, '-i', sys.argv[1], '-o', sys.argv[2]]))\n"
    )
    env = dict(os.environ, CAPTURE_STUDIO_HOME=str(tmp_path / "home"))
    r = subprocess.run(
        [sys.executable, "-c", script, str(photo), str(tmp_path / "d.npy")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    assert "XNNPACK" not in r.stderr
    assert r.stdout.strip() == str(tmp_path / "d.npy")
    assert "XNNPACK" in (tmp_path / "home" / "log" / settings_mod.LOG_NAME).read_text()


# -- 8. try-on runs leave no copies behind --------------------------------------------------
def test_tryon_run_folders_are_removed_at_exit_and_after_a_crash(monkeypatch, tmp_path):
    from engines.tryon import engine as tryon

    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))
    dead = int(
        subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, timeout=60
        ).stdout
    )
    root = tmp_path / "capture-studio" / "tryon"
    crashed = root / f"run-{dead}-abc"
    crashed.mkdir(parents=True)
    (crashed / "clip_tryon.mp4").write_bytes(b"x" * 1000)
    monkeypatch.setattr(tryon, "_RUNS", [])
    d = tryon._cache_dir()
    assert not crashed.exists()  # its process is gone: swept now, not a day later
    assert d.is_dir() and d.name.startswith(f"run-{os.getpid()}-")
    tryon._remove_runs()  # what atexit runs when the process ends
    assert not d.exists()
