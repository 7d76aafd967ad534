"""Splat files: the 3DGS PLY (exact layout, round trip), cameras.json as the reference code
writes it, the turntable MP4 and the share bundle."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from engines import io
from engines.api import EngineError
from engines.types import Mesh, Splat


def random_splat(n=50, degree=3, seed=0, cameras=True) -> Splat:
    rng = np.random.default_rng(seed)
    k = (degree + 1) ** 2
    q = rng.normal(size=(n, 4))
    cams = []
    if cameras:
        for i in range(3):
            a = 0.4 * i
            R = np.array([[np.cos(a), 0, -np.sin(a)], [0, 1, 0], [np.sin(a), 0, np.cos(a)]])
            cams.append(
                dict(
                    name=f"IMG_{i:02d}.jpg",
                    K=np.array([[500.0, 0, 319.5], [0, 500.0, 239.5], [0, 0, 1]]),
                    R=R,
                    t=np.array([0.1 * i, 0.0, 3.0]),
                    width=640,
                    height=480,
                    held_out=i == 0,
                )
            )
    return Splat(
        rng.normal(size=(n, 3)),
        rng.normal(-3, 0.5, (n, 3)),
        q / np.linalg.norm(q, axis=1, keepdims=True),
        rng.normal(size=n),
        rng.normal(size=(n, k, 3)),
        cameras=cams,
    )


def test_ply_layout_is_the_reference_one(tmp_path):
    s = random_splat(n=7, degree=3)
    io.export(s, tmp_path / "scene.ply")
    data = (tmp_path / "scene.ply").read_bytes()
    head, _, body = data.partition(b"end_header\n")
    lines = head.decode().splitlines()
    assert lines[:3] == ["ply", "format binary_little_endian 1.0", lines[2]] and "element vertex 7" in lines
    props = [ln.split()[2] for ln in lines if ln.startswith("property")]
    assert all(ln.split()[1] == "float" for ln in lines if ln.startswith("property"))
    want = (
        ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
        + [f"f_rest_{i}" for i in range(45)]
        + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    )
    assert props == want
    v = np.frombuffer(body, dtype=np.dtype([(p, "<f4") for p in props]))
    assert len(v) == 7
    # f_rest is channel-major: all 15 red coefficients, then green, then blue
    assert (
        v["f_rest_0"][2] == s.sh[2, 1, 0] and v["f_rest_15"][2] == s.sh[2, 1, 1] and v["f_rest_44"][2] == s.sh[2, 15, 2]
    )
    assert v["rot_0"][3] == s.rotations[3, 0] and v["opacity"][4] == s.opacity_logits[4]
    assert v["scale_2"][5] == s.log_scales[5, 2] and v["nx"].max() == 0


@pytest.mark.parametrize("degree", [0, 1, 3])
def test_ply_round_trip(tmp_path, degree):
    s = random_splat(degree=degree)
    written = io.export(s, tmp_path / "scene.ply")
    assert [p.name for p in written] == ["scene.ply", "cameras.json"]
    back = io.read(tmp_path / "scene.ply")
    assert isinstance(back, Splat) and back.sh_degree == degree
    for name in ("positions", "log_scales", "rotations", "opacity_logits", "sh"):
        assert np.array_equal(getattr(back, name), getattr(s, name)), name
    assert len(back.cameras) == 3
    for a, b in zip(back.cameras, s.cameras):
        assert a["name"] == b["name"].rsplit(".", 1)[0] and a["held_out"] == b["held_out"]
        assert np.allclose(a["R"], b["R"]) and np.allclose(a["t"], b["t"]) and np.allclose(a["K"], b["K"])


def test_cameras_json_matches_the_reference_code(tmp_path):
    s = random_splat()
    io.export(s, tmp_path / "scene.ply")
    cams = json.loads((tmp_path / "cameras.json").read_text())
    c = cams[1]
    assert set(c) >= {"id", "img_name", "width", "height", "position", "rotation", "fx", "fy"}
    R, t = s.cameras[1]["R"], s.cameras[1]["t"]
    # position is the camera centre; rotation is camera-to-world (columns: camera axes)
    assert np.allclose(c["position"], -R.T @ t) and np.allclose(np.array(c["rotation"]), R.T)
    assert (c["img_name"], c["width"], c["height"], c["fx"]) == ("IMG_01", 640, 480, 500.0)
    assert [e["held_out"] for e in cams] == [True, False, False]


def test_another_splats_cameras_json_is_kept(tmp_path):
    io.export(random_splat(seed=1), tmp_path / "a.ply")
    first = (tmp_path / "cameras.json").read_text()
    written = io.export(random_splat(seed=2), tmp_path / "b.ply")
    assert (tmp_path / "cameras.json").read_text() == first
    assert written[1].name == "cameras_2.json"
    assert len(io.read(tmp_path / "b.ply").cameras) == 3
    io.export(random_splat(seed=3), tmp_path / "a.ply")  # its own cameras.json is replaced
    assert [p.name for p in sorted(tmp_path.glob("cameras*.json"))] == ["cameras.json", "cameras_2.json"]


def test_plain_ply_still_reads_as_mesh(tmp_path):
    m = Mesh([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 2]])
    io.export(m, tmp_path / "m.ply")
    assert isinstance(io.read(tmp_path / "m.ply"), Mesh)


def test_truncated_splat_ply_is_refused(tmp_path):
    io.export(random_splat(cameras=False), tmp_path / "s.ply")
    data = (tmp_path / "s.ply").read_bytes()
    (tmp_path / "cut.ply").write_bytes(data[:-100])
    with pytest.raises(EngineError, match="cut off"):
        io.read(tmp_path / "cut.ply")


def visible_splat():
    """A small, opaque splat in front of its cameras."""
    s = random_splat(n=300, degree=1)
    s.positions *= 0.3
    s.opacity_logits[:] = 3.0
    return s


def test_turntable_and_bundle(tmp_path):
    from engines.io.video import probe

    s = visible_splat()
    from engines.splat import render

    views = render.turntable_views(s, frames=12, long_side=64)
    imgs = render.render_splat(s, views)
    assert all(im.shape == (48, 64, 3) for im in imgs) and all(im.max() > 50 for im in imgs)
    centre = render.orbit_centre(s)
    dists = [np.linalg.norm(v.center - centre) for v in views]
    assert np.ptp(dists) < 1e-6  # a circle about the subject
    out = render.write_turntable_mp4(s, tmp_path / "orbit.mp4", frames=12, long_side=64)
    assert probe(out[0])["frame_count"] == 12
    io.export(s, tmp_path / "share.zip")
    with zipfile.ZipFile(tmp_path / "share.zip") as z:
        names = set(z.namelist())
    assert {"share.ply", "cameras.json", "renders/IMG_00.png", "renders/IMG_02.png"} <= names
    assert ".mp4" in io.writer_extensions(s) and ".zip" in io.writer_extensions(s)


def test_a_splat_declaring_more_than_the_limit_is_refused_before_reading(tmp_path, monkeypatch):
    from engines.io import limits

    io.export(random_splat(n=10, cameras=False), tmp_path / "s.ply")
    data = (tmp_path / "s.ply").read_bytes().replace(b"element vertex 10", b"element vertex 90000000")
    (tmp_path / "big.ply").write_bytes(data)
    with pytest.raises(limits.FileTooLarge):
        io.read(tmp_path / "big.ply")
