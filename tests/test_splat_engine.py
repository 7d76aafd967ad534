"""The splat engine end to end, through the CLI: rendered photos of a scanned mesh on a
textured floor -> SfM cameras -> a trained splat -> scene.ply + cameras.json."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("numba")
pytest.importorskip("pycolmap")

from engines import io, registry  # noqa: E402
from engines.splat.engine import SplatEngine, auto_resolution, held_out_names  # noqa: E402
from engines.types import Splat  # noqa: E402


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from benchmarks.splat_scenes import bunny_on_floor, write_images

    scene = bunny_on_floor(views=16, size=(240, 180), subdivide=1)
    return write_images(scene, tmp_path_factory.mktemp("bunny_photos")), scene


def test_cli_trains_and_writes_ply_and_cameras(photos, tmp_path, capsys):
    from app.cli import main

    paths, scene = photos
    out = tmp_path / "scene.ply"
    sets = ["steps=250", "time_budget_s=0", "resolution=96", "hold_out_every=8", "sh_degree=1", "max_image_size=240"]
    code = main(
        ["run", "splat", "--input", str(paths[0].parent), "--out", str(out), "--json"]
        + [x for s in sets for x in ("--set", s)]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert code == 0, summary
    m = summary["metrics"]
    assert m["registered"] == 16 and m["held_out_images"] == 2 and m["train_images"] == 14
    assert m["steps"] == 250 and m["resolution"] == [96, 72] and m["sh_degree"] == 1
    assert m["train_psnr"] > m["initial_psnr"] + 4.0, m  # about +5.3 dB seen
    assert m["heldout_psnr"] > 18.0 and 0 < m["heldout_ssim"] <= 1, m  # 19.2 dB seen
    # the default start is the dense cloud (of the training photos), thinned to 2 x 96 x 72
    assert m["dense_points"] > m["initial_gaussians"] == 2 * 96 * 72
    assert set(m["heldout_per_image"]) == {"view_000.png", "view_008.png"}
    assert [p.rsplit("/", 1)[-1] for p in summary["outputs"]] == ["scene.ply", "cameras.json"]
    splat = io.read(out)
    assert isinstance(splat, Splat) and len(splat) == m["gaussians"] and splat.sh_degree == 1
    cams = {c["name"]: c for c in splat.cameras}
    assert len(cams) == 16 and cams["view_008"]["held_out"] and not cams["view_001"]["held_out"]
    assert (cams["view_001"]["width"], cams["view_001"]["height"]) == (240, 180)
    entries = json.loads((tmp_path / "cameras.json").read_text())
    assert sum(e["held_out"] for e in entries) == 2


def test_engine_is_registered_with_its_parameters():
    assert registry.get("splat") is SplatEngine
    fields = SplatEngine.Params.model_fields
    assert {"time_budget_s", "steps", "resolution", "sh_degree"} <= set(fields)
    assert auto_resolution(300, 5000) == 256 and auto_resolution(75, 5000) == 128
    assert auto_resolution(1200, 5000) == 512
    names = [f"p{i:02d}.jpg" for i in range(17)]
    assert held_out_names(names, 8) == {"p00.jpg", "p08.jpg", "p16.jpg"} and held_out_names(names, 0) == set()


def test_dense_start_uses_no_held_out_photo(monkeypatch):
    from engines.api import CancelToken, Result, make_params, no_progress
    from engines.multiview import dense
    from engines.multiview.frames import View as Photo
    from engines.multiview.sfm import Cameras, SparseModel
    from engines.splat import engine as se

    names = [f"p{i}.png" for i in range(9)]
    n = len(names)
    cams = Cameras(
        names,
        np.repeat(np.eye(3)[None], n, 0),
        np.repeat(np.eye(3)[None], n, 0),
        np.zeros((n, 3)),
        [(8, 8)] * n,
        np.zeros(n),
    )
    rng = np.random.default_rng(0)
    model = SparseModel(cams, rng.normal(size=(50, 3)), np.zeros((50, 3), np.uint8), n, 0.5)
    views = [Photo(nm, np.zeros((8, 8, 3), np.uint8), nm, (8, 8)) for nm in names]
    scene = se.PreparedScene(views, model, {v.name: v.rgb for v in views}, se.held_out_names(names, 8))
    seen = {}

    def fake_depth_maps(images, cameras, *a, **kw):
        seen["images"], seen["cameras"] = sorted(images), list(cameras.names)
        return []

    monkeypatch.setattr(dense, "compute_depth_maps", fake_depth_maps)
    result = Result()
    cloud = se.scene_points(scene, make_params(SplatEngine, {}), no_progress, CancelToken(), result)
    assert seen["images"] == seen["cameras"] == [x for x in names if x not in ("p0.png", "p8.png")]
    assert len(cloud.points) == 50 and "SfM points" in result.notes[-1]  # nothing dense: the sparse start
