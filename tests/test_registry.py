"""Engine registry: entry points, run-time registration, broken plug-ins skipped."""

import logging
from importlib.metadata import EntryPoint

import pytest
from pydantic import BaseModel, Field

from engines import registry
from engines.api import CancelToken, Cancelled, Engine, EngineError, Result, make_params
from engines.types import Image, Mesh


class Doubler(Engine):
    name = "test-doubler"
    title = "Doubler"
    accepts = (Image,)
    produces = (Image,)

    class Params(BaseModel):
        factor: float = Field(2.0, ge=0.0, le=10.0, description="Multiply pixels")
        mode: str = "x"

    def run(self, inputs, params, progress, cancel):
        cancel.raise_if_set()
        return Result([Image((inputs[0].pixels * params.factor).astype("uint8"))])


@pytest.fixture(autouse=True)
def fresh_registry():
    registry.reset()
    yield
    registry.reset()


def test_register_and_lookup():
    registry.register(Doubler)
    assert registry.get("test-doubler") is Doubler
    img = Image(__import__("numpy").full((2, 2, 3), 3, "uint8"))
    assert Doubler in registry.for_input(img)
    assert Doubler not in registry.for_input(Mesh([[0, 0, 0]] * 3, [[0, 1, 2]]))
    registry.unregister("test-doubler")
    with pytest.raises(EngineError, match="No engine called 'test-doubler'"):
        registry.get("test-doubler")


def test_register_rejects_non_engine():
    with pytest.raises(TypeError):
        registry.register(int)


def test_broken_plugins_are_skipped(monkeypatch, caplog):
    eps = [
        EntryPoint("broken", "no_such_module_xyz:Engine", registry.GROUP),
        EntryPoint("not-engine", "json:dumps", registry.GROUP),
        EntryPoint("good", "tests.test_registry:Doubler", registry.GROUP),
    ]
    monkeypatch.setattr(registry, "entry_points", lambda group: eps if group == registry.GROUP else [])
    with caplog.at_level(logging.WARNING):
        found = registry.engines()
    assert "test-doubler" in found
    assert any("broken" in p for p in registry.problems)
    assert any("not-engine" in p for p in registry.problems)
    assert "Skipping" in caplog.text


def test_params_from_strings_and_errors():
    p = make_params(Doubler, {"factor": "3.5"})
    assert p.factor == 3.5
    with pytest.raises(EngineError, match="factor"):
        make_params(Doubler, {"factor": "99"})
    with pytest.raises(EngineError, match="Unknown parameter"):
        make_params(Doubler, {"nope": "1"})


def test_check_inputs_and_cancel():
    with pytest.raises(EngineError, match="needs 1 input"):
        Doubler.check_inputs([])
    with pytest.raises(EngineError, match="cannot use a Mesh"):
        Doubler.check_inputs([Mesh([[0, 0, 0]] * 3, [[0, 1, 2]])])
    tok = CancelToken()
    tok.set()
    with pytest.raises(Cancelled):
        Doubler().run([Image(__import__("numpy").zeros((2, 2, 3), "uint8"))], Doubler.Params(), None, tok)


def test_result_stage_timing():
    r = Result()
    with r.stage("a"):
        sum(range(1000))
    with r.stage("a"):
        pass
    assert r.timings["a"] > 0 and list(r.timings) == ["a"]


class _Bare:
    """Passes a shape check on name/Params/accepts/run, but lacks title, produces, min_inputs."""

    name = "bare"
    accepts = (Image,)

    class Params(BaseModel):
        pass

    def run(self, inputs, params, progress, cancel):
        return Result([])


def test_a_class_missing_front_end_attributes_is_refused_with_the_reason():
    with pytest.raises(TypeError, match="title"):
        registry.register(_Bare)
    assert "title" in registry.engine_problem(_Bare)
    assert registry.engine_problem(Doubler) is None


def test_plugins_through_a_real_entry_point(tmp_path, monkeypatch, caplog):
    """A tiny installed distribution (dist-info with entry_points.txt on sys.path) with a good
    engine and a broken one: the good one is listed by the CLI, the broken one is skipped
    with its reason in the log and in the About box's problem list."""
    import subprocess
    import sys

    pkg = tmp_path / "cs_plugin_demo"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "from pydantic import BaseModel\n"
        "from engines.api import Engine, Result\n"
        "from engines.types import Image\n"
        "class Good(Engine):\n"
        "    name = 'demo-good'\n    title = 'Demo good'\n    accepts = (Image,)\n    produces = (Image,)\n"
        "    class Params(BaseModel):\n        pass\n"
        "    def run(self, inputs, params, progress, cancel):\n        return Result([inputs[0]])\n"
        "class Bare:\n"
        "    name = 'demo-bare'\n    accepts = (Image,)\n"
        "    class Params(BaseModel):\n        pass\n"
        "    def run(self, inputs, params, progress, cancel):\n        return None\n"
    )
    dist = tmp_path / "cs_plugin_demo-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: cs-plugin-demo\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[capture_studio.engines]\ndemo-good = cs_plugin_demo:Good\ndemo-bare = cs_plugin_demo:Bare\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with caplog.at_level(logging.WARNING):
        found = registry.engines()
    assert "demo-good" in found and "demo-bare" not in found
    assert any("demo-bare" in p and "title" in p for p in registry.problems)
    assert "demo-bare" in caplog.text
    import os

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run(
        [sys.executable, "main.py", "engines"],
        capture_output=True,
        text=True,
        env=env,
        cwd=__import__("pathlib").Path(__file__).resolve().parents[1],
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "demo-good" in out.stdout and "avatar" in out.stdout


def test_engines_declare_their_formats_and_io_uses_them(tmp_path):
    """Formats come from the engine that owns the result type (npe2-style): the avatar's
    and the puppet's writers are theirs, not the I/O layer's; a registered engine's
    declared writer and reader are used by export / read at once."""
    from engines import io
    from engines.api import Engine, Result
    from engines.types import Image

    core = {t for table in io.WRITERS.values() for t, _ in table}
    assert "Avatar" not in core and "Take" not in core
    w = io.writers()
    assert ("Avatar", "engines.avatar.export:write_avatar_glb") in w[".glb"]
    assert ("Take", "engines.puppet.export:write_take_glb") in w[".glb"]
    assert io.readers()[".zip"] == "engines.avatar.export:read_avatar_bundle"

    class Note:
        def __init__(self, text):
            self.text = text

    import sys
    import types

    mod = types.ModuleType("cs_note_format")

    def write_note(obj, path):
        with io.atomic_path(path) as tmp:
            tmp.write_text(obj.text)
        return [path]

    mod.write_note = write_note
    mod.read_note = lambda path: Note(path.read_text())
    mod.Note = Note
    sys.modules["cs_note_format"] = mod

    class NoteEngine(Engine):
        name, title, accepts, produces = "note", "Note", (Image,), (Note,)
        writers = {".note": [("Note", "cs_note_format:write_note")]}
        readers = {".note": "cs_note_format:read_note"}

        def run(self, inputs, params, progress, cancel):
            return Result([Note("hello")])

    registry.register(NoteEngine)
    try:
        assert ".note" in io.writer_extensions(Note("x")) and ".note" in io.type_extensions([Note])
        out = tmp_path / "a.note"
        io.export(Note("written by a plug-in"), out)
        assert io.read(out).text == "written by a plug-in"
    finally:
        registry.unregister("note")
        sys.modules.pop("cs_note_format", None)
    assert ".note" not in io.writers()
