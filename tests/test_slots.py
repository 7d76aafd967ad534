"""Named input slots: binding (by name, by type, the refusals), the list the inputs still
are, ``--input name=path`` on the command line and in batch, the try-on engine bound by
name, and the Engine panel's slot labels."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from pydantic import BaseModel, Field

from app import cli
from engines import registry
from engines.api import (
    Engine,
    EngineError,
    Inputs,
    Result,
    Slot,
    assign_slots,
    bind_inputs,
    make_params,
    no_progress,
    slot_problem,
)
from engines.types import Avatar, Image, Mesh, VideoClip

from tests.conftest import box_mesh

DATA = Path(__file__).parent / "data"


def img(name: str) -> Image:
    return Image(np.zeros((4, 4, 3), np.uint8), path=Path(name))


def clip(name: str = "dance.mp4") -> VideoClip:
    return VideoClip(Path(name), 10, 25.0, 8, 8)


def _name(obj) -> str:
    return obj.path.name if obj is not None else ""


class TwoPhotos(Engine):
    """A test engine with three photo slots, the last optional: a box whose metrics say
    which file went in which slot."""

    name = "test-two-photos"
    title = "Two photos (test)"
    slots = (
        Slot("front_image", (Image,), "the photo from the front"),
        Slot("back_image", Image, "the photo from the back"),
        Slot("mask_image", (Image,), "a mask", optional=True),
    )
    produces = (Mesh,)

    class Params(BaseModel):
        size: float = Field(1.0, gt=0, description="Edge of the box, m")

    def run(self, inputs, params, progress, cancel) -> Result:
        inputs = self.bind(inputs)
        return Result(
            items=[box_mesh(params.size)],
            metrics={
                "front": _name(inputs.front_image),
                "back": _name(inputs["back_image"]),
                "mask": _name(inputs.mask_image),
                "listed": [_name(i) for i in inputs],
            },
        )


class Plain(Engine):
    name = "test-plain"
    title = "Plain (test)"
    accepts = (Image, VideoClip)
    min_inputs, max_inputs = 1, 2

    def run(self, inputs, params, progress, cancel):
        return Result()


# -- binding -----------------------------------------------------------------------------
def test_slots_give_accepts_and_input_counts():
    assert TwoPhotos.accepts == (Image,)
    assert (TwoPhotos.min_inputs, TwoPhotos.max_inputs) == (2, 3)
    assert TwoPhotos.slots[1].accepts == (Image,)  # a single type is made a tuple
    assert slot_problem(TwoPhotos) is None and registry.engine_problem(TwoPhotos) is None
    from engines.tryon.engine import TryOnEngine
    from engines.puppet.engine import PuppetEngine

    assert [s.name for s in TryOnEngine.slots] == ["person_video", "garment_image"]
    assert (TryOnEngine.accepts, TryOnEngine.min_inputs, TryOnEngine.max_inputs) == ((VideoClip, Image), 2, 2)
    assert [(s.name, s.accepts, s.optional) for s in PuppetEngine.slots] == [
        ("performance_video", (VideoClip,), False),
        ("avatar", (Avatar, Image), False),
    ]
    assert (PuppetEngine.min_inputs, PuppetEngine.max_inputs) == (2, 2)


def test_inconsistent_slots_are_refused_by_the_registry():
    class Bad(TwoPhotos):
        name = "test-bad-slots"
        slots = TwoPhotos.slots
        max_inputs = 2  # the slots say 3

    assert "max_inputs=2" in slot_problem(Bad)
    with pytest.raises(TypeError, match="max_inputs=2"):
        registry.register(Bad)

    class Clash(TwoPhotos):
        name = "test-clash"
        slots = (Slot("count", (Image,)),)  # would hide list.count

    assert "'count'" in slot_problem(Clash)


def test_inputs_go_by_type_in_slot_order_and_stay_a_list():
    a, b, c = img("a.png"), img("b.png"), img("c.png")
    bound = bind_inputs(TwoPhotos, [a, b])
    assert isinstance(bound, list) and isinstance(bound, Inputs)
    assert bound.front_image is a and bound["back_image"] is b
    assert bound.mask_image is None and bound.get("mask_image", "none") == "none"
    assert list(bound) == [a, b] and bound == [a, b] and len(bound) == 2 and bound[0] is a and bound[-1] is b
    assert [x for x in bound] == [a, b] and bound[:1] == [a]
    assert bound.by_slot == {"front_image": a, "back_image": b, "mask_image": None}
    full = bind_inputs(TwoPhotos, [a, b, c])
    assert (full.front_image, full.back_image, full.mask_image) == (a, b, c)
    # the try-on engine: the video and the photo in either order
    from engines.tryon.engine import TryOnEngine

    v, g = clip(), img("shirt.png")
    for given in ([v, g], [g, v]):
        t = bind_inputs(TryOnEngine, given)
        assert (t.person_video, t.garment_image) == (v, g) and list(t) == [v, g]
    with pytest.raises(AttributeError, match="no input slot named 'garment'.*person_video, garment_image"):
        t.garment  # noqa: B018
    with pytest.raises(KeyError, match="garment"):
        t["garment"]


def test_explicit_names_go_first():
    a, b, c = img("a.png"), img("b.png"), img("c.png")
    bound = bind_inputs(TwoPhotos, [a, c], {"back_image": b})
    assert (_name(bound.front_image), _name(bound.back_image), _name(bound.mask_image)) == ("a.png", "b.png", "c.png")
    swapped = bind_inputs(TwoPhotos, [], {"front_image": b, "back_image": a})
    assert (swapped.front_image, swapped.back_image) == (b, a) and list(swapped) == [b, a]
    # binding again (run() calls self.bind) keeps the assignment
    again = TwoPhotos.bind(swapped)
    assert (again.front_image, again.back_image) == (b, a)

    # an input that fits only one of two slots is placed so that both are filled
    class Either(TwoPhotos):
        name = "test-either"
        slots = (Slot("first", (VideoClip, Image)), Slot("second", (Image,)))
        accepts = (VideoClip, Image)

    v = clip()
    e = bind_inputs(Either, [a, v])
    assert (e.first, e.second) == (v, a)
    assert assign_slots(Either, [a]) == ({"first": a, "second": None}, [])


def test_refusals_name_the_slot_and_what_it_takes():
    a, b, c, d = img("a.png"), img("b.png"), img("c.png"), img("d.png")
    with pytest.raises(EngineError) as e:
        bind_inputs(TwoPhotos, [a])
    assert str(e.value) == (
        "Two photos (test) needs 2 to 3 input(s); got 1: the back_image input is missing; "
        "it takes Image (the photo from the back)."
    )
    with pytest.raises(EngineError) as e:
        bind_inputs(TwoPhotos, [a, b, c, d])
    assert str(e.value) == (
        "Two photos (test) has no place for an Image (d.png): the input(s) that take it "
        "(front_image, back_image, mask_image) are already filled. Its inputs are: "
        "front_image (Image), back_image (Image), mask_image (Image, optional)."
    )
    with pytest.raises(EngineError, match=r"has no input named 'side_image'; its inputs are: front_image \(Image\)"):
        bind_inputs(TwoPhotos, [a], {"side_image": b})
    with pytest.raises(EngineError, match=r"The back_image input of Two photos \(test\) takes Image, not a VideoClip"):
        bind_inputs(TwoPhotos, [a], {"back_image": clip()})
    from engines.tryon.engine import TryOnEngine

    with pytest.raises(EngineError, match="person_video input is missing; it takes VideoClip.*not used: an Image"):
        bind_inputs(TryOnEngine, [a, b])
    with pytest.raises(EngineError, match="no place for a VideoClip.*person_video"):
        bind_inputs(TryOnEngine, [clip("x.mp4"), a, clip("y.mp4")])


def test_an_engine_without_slots_keeps_the_list_in_the_given_order():
    a, v = img("a.png"), clip()
    bound = bind_inputs(Plain, [v, a])
    assert list(bound) == [v, a] and bound.by_slot == {}
    Plain.check_inputs([a])  # the old check still passes
    with pytest.raises(EngineError, match=r"needs 1 to 2 input\(s\) \(Image, VideoClip\); got 3"):
        Plain.check_inputs([a, a, a])
    with pytest.raises(EngineError, match="has no named inputs.*without 'photo='"):
        bind_inputs(Plain, [], {"photo": a})


def test_bound_inputs_survive_pickling():
    """The app sends inputs to an engine worker process by pickling them."""
    a, b = img("a.png"), img("b.png")
    back = pickle.loads(pickle.dumps(bind_inputs(TwoPhotos, [b], {"back_image": a})))
    assert type(back) is Inputs and _name(back.front_image) == "b.png" and _name(back.back_image) == "a.png"
    assert [_name(x) for x in back] == ["b.png", "a.png"]


# -- the command line and batch ---------------------------------------------------------
@pytest.fixture
def two_photos(register_engines):
    return register_engines(TwoPhotos)


@pytest.fixture
def pngs(tmp_path):
    from PIL import Image as PILImage

    out = {}
    for n in ("a", "b", "c"):
        p = tmp_path / f"{n}.png"
        PILImage.fromarray(np.full((6, 8, 3), 40 * len(out), np.uint8)).save(p)
        out[n] = p
    return out


def _run_json(capsys, *args) -> dict:
    rc = cli.main(["run", *args, "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    return json.loads(captured.out.strip().splitlines()[-1])["metrics"]


def test_cli_inputs_by_name_and_by_type(two_photos, pngs, tmp_path, capsys):
    out = str(tmp_path / "box.ply")
    m = _run_json(capsys, two_photos.name, "--input", f"back_image={pngs['a']}", "--input", str(pngs["b"]), "-o", out)
    assert (m["front"], m["back"], m["mask"]) == ("b.png", "a.png", "")
    assert m["listed"] == ["b.png", "a.png"]
    m = _run_json(capsys, two_photos.name, "-i", str(pngs["a"]), "-i", str(pngs["b"]), "-i", str(pngs["c"]), "-o", out)
    assert (m["front"], m["back"], m["mask"]) == ("a.png", "b.png", "c.png")
    m = _run_json(
        capsys, two_photos.name, "-i", f"mask_image={pngs['a']}", "-i", str(pngs["b"]), "-i", str(pngs["c"]), "-o", out
    )
    assert (m["front"], m["back"], m["mask"]) == ("b.png", "c.png", "a.png")


def test_cli_refuses_unknown_or_repeated_slot_names(two_photos, pngs, tmp_path, capsys):
    out = str(tmp_path / "box.ply")
    assert cli.main(["run", two_photos.name, "-i", f"side_image={pngs['a']}", "-i", str(pngs["b"]), "-o", out]) == 2
    err = capsys.readouterr().err
    assert "has no input named 'side_image'" in err
    assert "front_image (Image), back_image (Image), mask_image (Image, optional)" in err
    assert (
        cli.main(["run", two_photos.name, "-i", f"back_image={pngs['a']}", "-i", f"back_image={pngs['b']}", "-o", out])
        == 2
    )
    assert "back_image input is given twice" in capsys.readouterr().err
    assert cli.main(["run", two_photos.name, "-i", str(pngs["a"]), "-o", out]) == 2
    assert "the back_image input is missing" in capsys.readouterr().err
    assert not Path(out).exists()
    # a file whose name holds '=' is still a file
    odd = tmp_path / "x=y.png"
    odd.write_bytes(pngs["a"].read_bytes())
    m = _run_json(capsys, two_photos.name, "-i", str(odd), "-i", str(pngs["b"]), "-o", out)
    assert (m["front"], m["back"]) == ("x=y.png", "b.png")
    assert cli.main(["run", two_photos.name, "--help"]) == 0
    helptext = capsys.readouterr().out
    assert (
        "--input NAME=PATH" in helptext and "back_image  (Image)" in helptext and "the photo from the back" in helptext
    )


def test_batch_inputs_by_name(two_photos, tmp_path):
    from engines.batch.runner import BatchOptions, run_batch

    from PIL import Image as PILImage

    fronts, backs = tmp_path / "fronts", tmp_path / "backs"
    for d in (fronts, backs):
        d.mkdir()
        for n in ("anna", "ben"):
            PILImage.fromarray(np.zeros((6, 8, 3), np.uint8)).save(d / f"{n}.png")
    out = tmp_path / "out"
    # the back photos are named first: the slot names, not the order, say where they go
    summary = run_batch(
        TwoPhotos,
        BatchOptions(out=out, inputs=[f"back_image={backs}/*.png", f"front_image={fronts}"], workers=1),
    )
    assert (summary.done, summary.failed) == (2, 0)
    for item in ("anna", "ben"):
        rec = json.loads((out / "records" / f"{item}.json").read_text())
        assert rec["metrics"]["back"] == rec["metrics"]["front"] == f"{item}.png"
        assert [(Path(i["path"]).parent.name, i.get("slot")) for i in rec["inputs"]] == [
            ("backs", "back_image"),
            ("fronts", "front_image"),
        ]
    with pytest.raises(EngineError, match="has no input named 'side'; its inputs are: front_image"):
        run_batch(TwoPhotos, BatchOptions(out=tmp_path / "o2", inputs=[f"side={backs}"], workers=1))


# -- the try-on engine by name -----------------------------------------------------------
def test_tryon_runs_with_inputs_named_on_the_command_line(tmp_path, capsys):
    from engines.tryon.garment import make_sample_garment
    from PIL import Image as PILImage

    shirt = tmp_path / "shirt.png"
    PILImage.fromarray(make_sample_garment(120, 130)).save(shirt)
    out = tmp_path / "x.mp4"
    video = DATA / "tryon_carphone.mp4"
    rc = cli.main(
        [
            "run",
            "tryon",
            "--input",
            f"garment_image={shirt}",
            "--input",
            f"person_video={video}",
            "--set",
            "max_frames=2",
            "--out",
            str(out),
            "--json",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert json.loads(captured.out.strip().splitlines()[-1])["metrics"]["frames"] == 2 and out.stat().st_size > 0
    # a photo given as the person video is refused by the slot, before any work
    assert cli.main(["run", "tryon", "-i", f"person_video={shirt}", "-i", str(video), "-o", str(out)]) == 2
    assert "person_video input of Video try-on takes VideoClip, not an Image (shirt.png)" in capsys.readouterr().err


def test_tryon_run_gets_its_inputs_by_name(monkeypatch):
    """The engine's run() reads inputs.person_video / inputs.garment_image (no type sorting)."""
    from engines.tryon import engine as tryon

    seen = {}

    def stop(pixels, mask, name):
        seen["garment"] = name
        raise EngineError("stop here")

    monkeypatch.setattr("engines.tryon.garment.prepare_garment", stop)
    bound = bind_inputs(tryon.TryOnEngine, [], {"garment_image": img("shirt.png"), "person_video": clip()})
    with pytest.raises(EngineError, match="stop here"):
        tryon.TryOnEngine().run(bound, make_params(tryon.TryOnEngine), no_progress, None)
    assert seen["garment"] == "shirt.png"


# -- the Engine panel ----------------------------------------------------------------------
@pytest.mark.gui
def test_engine_panel_labels_inputs_with_their_slots(qtbot):
    from app.engine_panel import EnginePanel
    from engines.tryon.engine import TryOnEngine

    panel = EnginePanel()
    qtbot.addWidget(panel)
    engines = {"tryon": TryOnEngine, "test-plain": Plain}
    panel.set_engines(engines, [img("shirt.png"), clip("dance.mp4")])
    assert panel.select("tryon")
    assert panel.slots_label.text() == "person_video: dance.mp4\ngarment_image: shirt.png"
    assert panel.run_button.isEnabled()
    panel.set_engines(engines, [clip("dance.mp4")])
    assert panel.current == "tryon"
    assert panel.slots_label.text() == "person_video: dance.mp4\ngarment_image: none selected (Image)"
    assert not panel.run_button.isEnabled() and "garment_image input is missing" in panel.run_button.toolTip()
    panel.set_engines(engines, [img("a.png")])
    assert panel.select("test-plain") and panel.slots_label.isHidden() and panel.run_button.isEnabled()


def test_batch_manifest_columns_named_as_the_slots(two_photos, tmp_path):
    """A manifest's columns may be the engine's slot names, in any order, an optional one left
    empty in a row; mixing them with input/input2 columns is refused."""
    from PIL import Image as PILImage

    from engines.batch import items as batch_items
    from engines.batch.runner import BatchOptions, run_batch

    for n in ("anna_front", "anna_back", "ben_front", "ben_back", "ben_mask"):
        PILImage.fromarray(np.zeros((6, 8, 3), np.uint8)).save(tmp_path / f"{n}.png")
    m = tmp_path / "items.csv"
    m.write_text(
        "back_image,id,front_image,mask_image\n"
        "anna_back.png,anna,anna_front.png,\n"
        "ben_back.png,ben,ben_front.png,ben_mask.png\n"
    )
    out = tmp_path / "out"
    summary = run_batch(TwoPhotos, BatchOptions(out=out, manifest=m, workers=1))
    assert (summary.done, summary.failed) == (2, 0)
    anna = json.loads((out / "records" / "anna.json").read_text())
    ben = json.loads((out / "records" / "ben.json").read_text())
    assert (anna["metrics"]["front"], anna["metrics"]["back"], anna["metrics"]["mask"]) == (
        "anna_front.png",
        "anna_back.png",
        "",
    )
    assert ben["metrics"]["listed"] == ["ben_front.png", "ben_back.png", "ben_mask.png"]
    assert [i.get("slot") for i in ben["inputs"]] == ["front_image", "back_image", "mask_image"]
    m.write_text("input,back_image\nanna_front.png,anna_back.png\n")
    with pytest.raises(EngineError, match="use one or the other"):
        batch_items.from_manifest(m, [s.name for s in TwoPhotos.slots])
    m.write_text("photo\nanna_front.png\n")
    with pytest.raises(EngineError, match="front_image, back_image, mask_image"):
        batch_items.from_manifest(m, [s.name for s in TwoPhotos.slots])


def test_a_batch_record_is_current_only_with_the_same_slots():
    from engines.batch import records

    rec = {
        "engine": "e",
        "params": {},
        "format": ".ply",
        "inputs": [{"sha256": "a", "slot": "front_image"}, {"sha256": "b", "slot": "back_image"}],
    }
    assert records.is_current(rec, "e", {}, ".ply", ["a", "b"], ["front_image", "back_image"])
    # the same files bound the other way round: run again
    assert not records.is_current(rec, "e", {}, ".ply", ["a", "b"], ["back_image", "front_image"])
    plain = {**rec, "inputs": [{"sha256": "a"}, {"sha256": "b"}]}
    assert records.is_current(plain, "e", {}, ".ply", ["a", "b"], [None, None])
    assert records.is_current(plain, "e", {}, ".ply", ["a", "b"])
