"""Depth maps as surfaces that do not bridge depth jumps, and the notes that say how much
of the depth was measured (issue 15 item 2)."""

from __future__ import annotations

import numpy as np

from engines.depth.engine import _without_edge_on, confidence_note
from engines.depth.surface import confident_fraction, depth_surface, edge_on
from engines.types import DepthMap

W, H = 80, 60
F = 1000.0  # a real photo's focal length in pixels (a 40 mm lens on a 24 MP camera is ~6000)
K = np.array([[F, 0, (W - 1) / 2], [0, F, (H - 1) / 2], [0, 0, 1]])


def test_no_triangle_spans_an_occluding_edge_far_away():
    """A hill 400 m away in front of mountains at 420 m: a 5 % jump limit lets the 20 m
    step through (the spiky fan), the edge-on test cuts it."""
    d = np.full((H, W), 400.0, np.float32)
    d[:, W // 2 :] = 420.0
    s = depth_surface(DepthMap(d, intrinsics=K))
    z = -s.vertices[s.faces][:, :, 2]
    assert len(s.faces) > 0.9 * 2 * (H - 1) * (W - 2)  # both sides are kept...
    assert (np.ptp(z, axis=1) < 1.0).all()  # ...but nothing joins them


def test_a_tilted_plane_seen_at_an_ordinary_angle_is_kept_whole():
    ys, xs = np.mgrid[0:H, 0:W]
    d = (3.0 + 0.003 * xs).astype(np.float32)  # 3 mm deeper per 3 mm pixel: 45 degrees
    s = depth_surface(DepthMap(d, intrinsics=K))
    assert len(s.faces) == 2 * (H - 1) * (W - 1)


def test_confidence_per_vertex_and_the_confident_share():
    d = np.full((H, W), 2.0, np.float32)
    c = np.zeros((H, W), np.float32)
    c[:, : W // 4] = 0.9
    dm = DepthMap(d, c, K)
    s = depth_surface(dm)
    assert np.isclose((s.confidence >= 0.5).mean(), 0.25, atol=0.02)
    assert np.isclose(confident_fraction(dm, 0.5), 0.25)
    note = confidence_note(0.25, 0.5)
    assert note.startswith("25 % of the pixels are confident") and "slider" in note


def test_the_engine_mesh_loses_its_edge_on_triangles():
    from engines.io.depth import depth_to_mesh

    d = np.full((H, W), 400.0, np.float32)
    d[:, W // 2 :] = 420.0
    mesh = depth_to_mesh(DepthMap(d, intrinsics=K), max_depth_jump=0.2)  # today's jump test lets it through
    assert edge_on(mesh.vertices, mesh.faces).any()
    cut = _without_edge_on(mesh, 84.0)
    assert not edge_on(cut.vertices, cut.faces).any()
    assert len(cut.faces) > 0.9 * len(mesh.faces) - 2 * H
    assert len(cut.vertices) == len(np.unique(cut.faces))  # no vertex left unused
