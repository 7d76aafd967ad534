"""Visual hull by space carving (engines/multiview/hull.py) with known cameras."""

from __future__ import annotations

import numpy as np
import pytest

from engines.api import EngineError
from engines.multiview import evaluate as ev
from engines.multiview import hull
from tests.test_multiview_scenes import bunny_scene


@pytest.fixture(scope="module")
def scene():
    return bunny_scene(n=24)


@pytest.fixture(scope="module")
def carved(scene):
    masks = hull.silhouettes(scene["images"], "background")
    lo, hi = scene["vertices"].min(0) - 0.1, scene["vertices"].max(0) + 0.1
    return hull.carve(masks, scene["K"], scene["R"], scene["t"], lo, hi, resolution=64)


def test_background_masks_match_the_object(scene):
    m = hull.background_mask(scene["images"][0])
    truth = scene["images"][0].max(axis=2) > 0
    iou = (m & truth).sum() / (m | truth).sum()
    assert iou > 0.95


def test_hull_contains_the_true_shape(scene, carved):
    occ, origin, vox = carved
    surface = ev.sample_surface(scene["vertices"], scene["faces"], 20000)
    assert hull.inside_hull(surface, occ, origin, vox).mean() > 0.995
    # and it is carved: far tighter than the box (the bunny fills ~1/3 of its bounds)
    assert occ.mean() < 0.45
    # every voxel of the hull is near the object: none left floating in the box corners
    pts = hull.voxel_points(occ, origin, vox).points
    from scipy.spatial import cKDTree

    d = cKDTree(surface).query(pts)[0]
    assert np.percentile(d, 99) < 0.12 * scene["scene_size"]


def test_hull_mesh_is_closed_and_outward(carved):
    occ, origin, vox = carved
    m = hull.hull_mesh(occ, origin, vox)
    assert len(m.faces) > 1000
    # outward normals: the signed volume (divergence theorem) is positive and close to the voxel volume
    v = m.vertices.astype(np.float64)[m.faces]
    vol = np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum() / 6
    assert vol > 0
    assert abs(vol / (occ.sum() * vox**3) - 1) < 0.2


def test_no_foreground_is_an_error():
    flat = [np.full((60, 80, 3), 30, np.uint8) for _ in range(3)]
    with pytest.raises(EngineError, match="No foreground"):
        hull.silhouettes(flat)


def test_person_mask_finds_a_person():
    import cv2

    from tests.test_multiview_scenes import DATA

    def rgb(name):
        return cv2.cvtColor(cv2.imread(str(DATA / name)), cv2.COLOR_BGR2RGB)

    person = hull.person_mask(rgb("grace_hopper.jpg"))
    h, w = person.shape
    assert 0.2 < person.mean() < 0.9
    assert person[h // 3, w // 2] and not person[5, 5]  # the face, not the top corner
    assert hull.person_mask(rgb("resized_IMG_2889.jpg")).mean() < 0.1  # a church is no person
