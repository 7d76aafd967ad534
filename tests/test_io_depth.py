"""Depth files (16-bit mm PNG, NPY, PLY) and depth-to-mesh, on the Middlebury motorcycle."""

from pathlib import Path

import numpy as np
import pytest

from engines.api import EngineError
from engines.io import export, read
from engines.io.depth import depth_to_mesh, read_depth_npy, read_depth_png16, write_depth_png16
from engines.io.images import read_image
from engines.io.mesh import read_mesh, read_ply
from engines.types import DepthMap, PointCloud

DATA = Path(__file__).parent / "data"
K = np.array([[994.978, 0, 311.193], [0, 994.978, 254.877], [0, 0, 1]])


@pytest.fixture(scope="module")
def motorcycle():
    disp = np.load(DATA / "motorcycle_disp.npz")
    disp = disp[disp.files[0]].astype(np.float64)
    depth = 193.001 * 994.978 / (disp + 31.086) / 1000.0  # metres
    depth[~np.isfinite(disp)] = np.nan  # unknown disparity is stored as inf
    img = read_image(DATA / "motorcycle_left.png").pixels
    # every 4th pixel keeps the test quick; intrinsics scaled to match
    k = K.copy()
    k[:2] /= 4
    return DepthMap(depth[::4, ::4], intrinsics=k, image=img[::4, ::4, :3].copy(), name="moto")


def test_png16_millimetres_round_trip(tmp_path, motorcycle):
    write_depth_png16(motorcycle, tmp_path / "d.png")
    raw = read_image(tmp_path / "d.png").pixels
    assert raw.dtype == np.uint16 and raw.ndim == 2
    ok = np.isfinite(motorcycle.depth)
    assert (raw[~ok] == 0).all() and (raw[ok] > 0).all()
    back = read_depth_png16(tmp_path / "d.png")
    np.testing.assert_allclose(back.depth[ok], motorcycle.depth[ok], atol=0.0005 + 1e-6)
    assert np.isnan(back.depth[~ok]).all()
    assert 2.0 < np.nanmin(back.depth) and np.nanmax(back.depth) < 5.5


def test_npy_float32_metres_round_trip(tmp_path, motorcycle):
    assert export(motorcycle, tmp_path / "d.npy") == [tmp_path / "d.npy"]
    raw = np.load(tmp_path / "d.npy")
    assert raw.dtype == np.float32 and raw.shape == motorcycle.depth.shape
    back = read(tmp_path / "d.npy")
    assert isinstance(back, DepthMap)
    np.testing.assert_array_equal(back.depth, motorcycle.depth)


def test_ply_points_match_to_points(tmp_path, motorcycle):
    export(motorcycle, tmp_path / "d.ply")
    pc = read_ply(tmp_path / "d.ply")
    ref = motorcycle.to_points()
    assert isinstance(pc, PointCloud) and len(pc.points) == np.isfinite(motorcycle.depth).sum()
    np.testing.assert_allclose(pc.points, ref.points, atol=1e-6)
    assert np.array_equal(pc.colors, ref.colors)


def test_depth_to_mesh_geometry_and_discontinuities():
    # two planes: left half at 1 m, right half at 2 m; one unknown pixel
    d = np.ones((20, 30), np.float32)
    d[:, 15:] = 2.0
    d[5, 5] = np.nan
    img = np.zeros((20, 30, 3), np.uint8)
    img[:, :15] = [255, 0, 0]
    dm = DepthMap(d, image=img)
    m = depth_to_mesh(dm, max_depth_jump=0.05)
    pts = dm.to_points()
    np.testing.assert_allclose(m.vertices, pts.points, atol=1e-6)  # same frame as to_points
    assert np.array_equal(m.vertex_colors, pts.colors)
    z = m.vertices[m.faces][:, :, 2]
    assert (np.ptp(z, axis=1) < 1e-6).all()  # no triangle bridges the 1 m -> 2 m step
    # full grid would be 2*19*29 = 1102 triangles; the step column (19*2) and the hole (6) go
    assert len(m.faces) == 1102 - 38 - 6
    # faces look at the camera (+z in the display frame)
    v = m.vertices
    fn = np.cross(v[m.faces[:, 1]] - v[m.faces[:, 0]], v[m.faces[:, 2]] - v[m.faces[:, 0]])
    assert (fn[:, 2] > 0).all()
    # a large tolerance keeps the bridging triangles
    assert len(depth_to_mesh(dm, max_depth_jump=2.0).faces) == 1102 - 6


def test_depth_mesh_exports_read_back(tmp_path, motorcycle):
    m = depth_to_mesh(motorcycle)
    assert len(m.faces) > 0.8 * 2 * np.isfinite(motorcycle.depth).sum()
    export(motorcycle, tmp_path / "d.glb")
    g = read_mesh(tmp_path / "d.glb")
    np.testing.assert_allclose(g.vertices, m.vertices, atol=1e-6)
    assert np.array_equal(g.faces, m.faces) and np.array_equal(g.vertex_colors[:, :3], m.vertex_colors)
    paths = export(motorcycle, tmp_path / "d.obj")
    assert {p.name for p in paths} >= {"d.obj", "d.mtl"}
    o = read_mesh(tmp_path / "d.obj")
    np.testing.assert_allclose(o.vertices, m.vertices, atol=2e-6)
    assert len(o.faces) == len(m.faces)


def test_bad_depth_files(tmp_path):
    np.save(tmp_path / "rgb.npy", np.zeros((4, 4, 3)))
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    for name in ("rgb.npy", "junk.npy", "missing.npy"):
        with pytest.raises(EngineError) as e:
            read_depth_npy(tmp_path / name)
        assert name in str(e.value)
    with pytest.raises(EngineError):
        depth_to_mesh(DepthMap(np.full((4, 4), np.nan)))
    from engines.io.images import write_image

    write_image(np.zeros((4, 4, 3), np.uint8), tmp_path / "colour.png")
    with pytest.raises(EngineError, match="colour.png"):
        read_depth_png16(tmp_path / "colour.png")
