"""Focal stack import: distances from focus.json / file names / EXIF, checks on bad stacks."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from engines.api import EngineError
from engines.io import load_input
from engines.io.focalstack import find_images, intrinsics_from_exif, read_focal_stack
from engines.types import FocalStack, ImageSet

DATA = Path(__file__).parent / "data"


def _frames(n=3, size=(48, 32)):
    base = PILImage.open(DATA / "astronaut.png").convert("RGB").resize(size)
    return [np.asarray(base) // (i + 1) for i in range(n)]  # distinguishable frames


def _save(folder: Path, names, frames=None, exif_distances=None):
    folder.mkdir(parents=True, exist_ok=True)
    frames = frames or _frames(len(names))
    for i, (name, f) in enumerate(zip(names, frames)):
        im = PILImage.fromarray(f)
        kw = {}
        if exif_distances is not None:
            exif = im.getexif()
            sub = exif.get_ifd(0x8769)
            sub[0x9206] = exif_distances[i]
            sub[0x920A] = 4.0
            sub[0xA405] = 28
            kw["exif"] = exif
        im.save(folder / name, quality=95, **kw) if name.endswith(".jpg") else im.save(folder / name, **kw)
    return [folder / n for n in names], frames


def test_distances_from_file_names_sorted_nearest_first(tmp_path):
    files, frames = _save(tmp_path, ["image_0_2.5.png", "image_1_0.85.png", "image_2_1.2.png"])
    fs = read_focal_stack(tmp_path)
    assert isinstance(fs, FocalStack) and len(fs) == 3
    np.testing.assert_allclose(fs.focus_distances, [0.85, 1.2, 2.5])
    assert [p.name for p in fs.paths] == ["image_1_0.85.png", "image_2_1.2.png", "image_0_2.5.png"]
    assert np.array_equal(fs.frames[0], frames[1]) and np.array_equal(fs.frames[2], frames[0])
    assert fs.size == (48, 32)


def test_focus_json_mapping_wins_over_names(tmp_path):
    _save(tmp_path, ["a_9.0.png", "b_8.0.png"])
    (tmp_path / "focus.json").write_text(json.dumps({"a_9.0.png": 0.4, "b_8.0.png": 0.3}))
    fs = read_focal_stack(tmp_path)
    np.testing.assert_allclose(fs.focus_distances, [0.3, 0.4])
    assert fs.paths[0].name == "b_8.0.png"
    assert any("focus.json" in n for n in fs.notes)


def test_focus_json_list_in_natural_name_order(tmp_path):
    _save(tmp_path, ["f2.png", "f10.png", "f1.png"])
    (tmp_path / "focus.json").write_text(json.dumps({"focus_distances": [0.5, 0.7, 0.9]}))
    # natural order f1, f2, f10 -> 0.5, 0.7, 0.9
    fs = read_focal_stack(tmp_path)
    assert [p.name for p in fs.paths] == ["f1.png", "f2.png", "f10.png"]
    np.testing.assert_allclose(fs.focus_distances, [0.5, 0.7, 0.9])


def test_exif_subject_distance_and_intrinsics(tmp_path):
    files, _ = _save(tmp_path, ["p1.jpg", "p2.jpg", "p3.jpg"], exif_distances=[1.5, 0.5, 1.0])
    fs = read_focal_stack(files)
    np.testing.assert_allclose(fs.focus_distances, [0.5, 1.0, 1.5])
    # 28 mm equivalent on a 48x32 image: f = 28 / 43.27 * diag(48, 32)
    assert fs.intrinsics[0, 0] == pytest.approx(28 / np.hypot(36, 24) * np.hypot(48, 32))
    assert fs.intrinsics[0, 2] == pytest.approx(23.5)


def test_intrinsics_from_focal_plane_resolution():
    exif = {
        "FocalLength": 5.0,
        "FocalPlaneXResolution": 2540.0,
        "FocalPlaneResolutionUnit": 2.0,
        "PixelXDimension": 4000.0,
    }
    K = intrinsics_from_exif(exif, (1000, 750))  # loaded at quarter size
    assert K[0, 0] == pytest.approx(5.0 * 100.0 / 4)  # 2540 px/inch = 100 px/mm
    assert intrinsics_from_exif({}, (10, 10)) is None


def test_explicit_distances(tmp_path):
    files, _ = _save(tmp_path, ["x.png", "y.png"])
    fs = read_focal_stack(files, distances=[2.0, 1.0])
    assert [p.name for p in fs.paths] == ["y.png", "x.png"]


def test_missing_distances_explain_focus_json(tmp_path):
    _save(tmp_path, ["IMG_2889.png", "IMG_2890.png"])  # integers are not distances
    with pytest.raises(EngineError) as e:
        read_focal_stack(tmp_path)
    assert "focus.json" in str(e.value) and "missing" in str(e.value)
    # load_input falls back to an image set for a plain folder of photos
    assert isinstance(load_input(tmp_path), ImageSet)


def test_refuses_bad_stacks(tmp_path):
    _save(tmp_path / "one", ["only_0.5.png"])
    with pytest.raises(EngineError, match="at least 2"):
        read_focal_stack(tmp_path / "one")
    frames = _frames(2)
    frames[1] = np.asarray(PILImage.fromarray(frames[1]).resize((40, 32)))
    _save(tmp_path / "sizes", ["s_0.5.png", "t_0.9.png"], frames)
    with pytest.raises(EngineError) as e:
        read_focal_stack(tmp_path / "sizes")
    assert "s_0.5.png" in str(e.value) and "t_0.9.png" in str(e.value) and "40x32" in str(e.value)
    _save(tmp_path / "dup", ["a_0.50.png", "b_0.5.png", "c_1.0.png"])
    with pytest.raises(EngineError) as e:
        read_focal_stack(tmp_path / "dup")
    assert "a_0.50.png" in str(e.value) and "b_0.5.png" in str(e.value)
    _save(tmp_path / "broken", ["u_0.5.png", "v_0.9.png"])
    (tmp_path / "broken" / "v_0.9.png").write_text("not a png")
    with pytest.raises(EngineError, match="v_0.9.png"):
        read_focal_stack(tmp_path / "broken")
    (tmp_path / "json").mkdir()
    _save(tmp_path / "json", ["a.png", "b.png"])
    (tmp_path / "json" / "focus.json").write_text('{"a.png": 0.3}')
    with pytest.raises(EngineError, match="b.png"):
        read_focal_stack(tmp_path / "json")


def test_find_images(tmp_path):
    _save(tmp_path, ["b.png", "a.jpg"])
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "focus.json").write_text("{}")
    assert [p.name for p in find_images(tmp_path)] == ["a.jpg", "b.png"]
    assert [p.name for p in find_images([tmp_path / "b.png", tmp_path / "notes.txt"])] == ["b.png"]
    with pytest.raises(EngineError):
        find_images([tmp_path / "notes.txt"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(EngineError, match="empty"):
        find_images(tmp_path / "empty")


def test_reads_what_the_depth_synthesiser_writes(tmp_path):
    """engines.depth.synth writes focus.json with "files", "focus_distances" and "intrinsics"."""
    frames = _frames(3)
    names = ["frame_00_0.500.png", "frame_01_1.000.png", "frame_02_2.000.png"]
    _save(tmp_path, names, frames)
    K = [[60.0, 0, 23.5], [0, 60.0, 15.5], [0, 0, 1]]
    (tmp_path / "focus.json").write_text(
        json.dumps({"files": names[::-1], "focus_distances": [2.0, 1.0, 0.5], "intrinsics": K, "units": "m"})
    )
    fs = read_focal_stack(tmp_path)
    np.testing.assert_allclose(fs.focus_distances, [0.5, 1.0, 2.0])
    np.testing.assert_allclose(fs.intrinsics, K)
    assert np.array_equal(fs.frames[2], frames[2])


def _xmp(distance: str, element: bool = False) -> bytes:
    value = f"<aux:ApproximateFocusDistance>{distance}</aux:ApproximateFocusDistance>" if element else ""
    attr = "" if element else f' aux:ApproximateFocusDistance="{distance}"'
    return (
        b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
        b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
        b'xmlns:aux="http://ns.adobe.com/exif/1.0/aux/"'
        + attr.encode()
        + b">"
        + value.encode()
        + b'</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    )


def test_xmp_approximate_focus_distance(tmp_path):
    """Adobe's aux:ApproximateFocusDistance (a rational in metres, as an attribute or an
    element) gives the distances when nothing else does; 4294967295/1 means infinity."""
    frames = _frames(3)
    values = [("150/100", False), ("50/100", True), ("1", False)]
    files = []
    for i, (f, (v, element)) in enumerate(zip(frames, values)):
        path = tmp_path / f"x{i}.jpg"
        PILImage.fromarray(f).save(path, quality=95, xmp=_xmp(v, element))
        files.append(path)
    fs = read_focal_stack(files)
    np.testing.assert_allclose(fs.focus_distances, [0.5, 1.0, 1.5])
    assert any("XMP" in n for n in fs.notes)
    PILImage.fromarray(frames[2]).save(files[2], quality=95, xmp=_xmp("4294967295/1"))
    with pytest.raises(EngineError, match="Focus distances are missing"):
        read_focal_stack(files)
