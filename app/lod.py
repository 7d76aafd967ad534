"""Level of detail for the 3D view: lighter stand-ins drawn while the view moves.

Under a software OpenGL (Mesa llvmpipe: Xvfb, VMs, remote desktops) a 60k-triangle head
with 3000 strands orbited at 5-6 fps (issue 15). A frame with nothing drawn costs about
7 ms (the mouse event, the background, Qt composing the GL widget into the window at
1000 x 700; benchmarks/viewport.py, the empty scene); a 51k-triangle textured head costs
about 25 ms full and 17 ms as a 20k-triangle stand-in, which keeps a face recognisable
while it moves (6k triangles blurred it into a mask). While the user drags (orbit, pan, zoom) or a slider streams
updates, :class:`app.viewport.Viewport` swaps each heavy part for its stand-in made here,
and swaps back when the motion stops (the same idea as VTK's LOD actors, with numpy
stand-ins that are made once, in the worker thread that made the result):

* meshes: vertex clustering (Rossignac and Borrel 1993): vertices snapped to a grid
  sized to reach a triangle budget, each cell's vertices merged (mean position and
  colour), only vertices whose normals point the same way merged (Low and Tan 1997, so
  the two sides of a thin part stay apart), degenerate and duplicated triangles dropped;
  a textured mesh takes its colours from the texture at its vertices' UVs;
* strands: every k-th strand, every other point along it;
* point clouds: every k-th point.

The stand-in geometry is numpy (made off the UI thread, in :func:`app.renderers.prepare`);
only its PolyData and actor are made on the UI thread, at the first motion.
"""  # noqa: E501

from __future__ import annotations

import numpy as np

MESH_FACES = 20_000
"""Triangles in a mesh's stand-in (meshes with fewer than twice this keep their own): with it
the orbit ran at 53-59 fps and a slider step took 22 ms (benchmarks/viewport.py, llvmpipe)."""
STRAND_SEGMENTS = 6_000
"""Segments in a hairstyle's stand-in."""
POINTS = 40_000
"""Points in a cloud's stand-in."""


def texture_colours(uv: np.ndarray, texture: np.ndarray) -> np.ndarray:
    """RGB uint8 of the texture at each UV (OBJ convention: v = 0 is the bottom row)."""
    tex = np.asarray(texture)
    if tex.ndim == 2:
        tex = np.repeat(tex[:, :, None], 3, 2)
    if tex.dtype != np.uint8:
        tex = (
            (tex >> 8).astype(np.uint8)
            if tex.dtype == np.uint16
            else np.clip(tex * (255.0 if tex.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        )
    h, w = tex.shape[:2]
    u = np.clip(np.nan_to_num(uv[:, 0]), 0, 1)
    v = np.clip(np.nan_to_num(uv[:, 1]), 0, 1)
    x = np.round(u * (w - 1)).astype(np.int64)
    y = np.round((1 - v) * (h - 1)).astype(np.int64)
    return np.ascontiguousarray(tex[y, x, :3])


def normal_class(normals: np.ndarray) -> np.ndarray:
    """0..5 per vertex: the axis direction (+-x, +-y, +-z) its normal is closest to."""
    n = np.nan_to_num(np.asarray(normals, np.float32))
    axis = np.abs(n).argmax(1)
    return (2 * axis + (n[np.arange(len(n)), axis] < 0)).astype(np.int64)


def cluster_mesh(
    vertices: np.ndarray, faces: np.ndarray, target_faces: int | None = None, normals: np.ndarray | None = None
):
    """Vertex clustering to about ``target_faces`` triangles: ``(cluster, n, faces)`` with
    ``cluster[i]`` the stand-in vertex of vertex ``i``, ``n`` stand-in vertices and their
    triangles; None when the mesh is small already (under twice the target).

    With vertex ``normals`` a cell's vertices are merged only with those whose normals point
    the same way (:func:`normal_class`; Low and Tan's normal-aware clustering, I3D 1997): the
    two sides of a thin part (lips and the mouth socket behind them, eyelids and the eyeball
    under them) stay apart instead of collapsing into one sheet that shows either side."""
    target_faces = MESH_FACES if target_faces is None else int(target_faces)
    v = np.asarray(vertices, np.float32)
    f = np.asarray(faces, np.int64)
    if len(f) <= 2 * target_faces or len(v) == 0:
        return None
    cls = normal_class(normals) if normals is not None and len(normals) == len(v) else np.zeros(len(v), np.int64)
    lo, hi = v.min(0), v.max(0)
    ext = np.maximum(hi - lo, 1e-12)
    # F triangles of a surface have about F / 2 vertices: aim at target / 2 occupied cells
    cells = max(8.0, np.sqrt(target_faces / 2.0) * 1.2)
    best = None
    for _ in range(8):
        size = float(ext.max()) / cells
        q = np.minimum(np.floor((v - lo) / size).astype(np.int64), (1 << 16) - 1)
        key = (((q[:, 0] << 16) | q[:, 1]) << 16 | q[:, 2]) * 6 + cls
        uniq, cluster = np.unique(key, return_inverse=True)
        g = cluster[f]
        g = g[(g[:, 0] != g[:, 1]) & (g[:, 1] != g[:, 2]) & (g[:, 0] != g[:, 2])]
        best = (cluster, len(uniq), g)
        if len(g) > 1.4 * target_faces:
            cells *= 0.8
        elif len(g) < 0.6 * target_faces:
            cells *= 1.25
        else:
            break
    cluster, n, g = best
    # one triangle per set of three clusters (both sides of a thin part collapse together)
    s = np.sort(g, 1)
    _, first = np.unique(s[:, 0] * (n * n) + s[:, 1] * n + s[:, 2], return_index=True)
    return cluster.astype(np.int64), int(n), np.ascontiguousarray(g[np.sort(first)], np.int64)


def cluster_mean(values: np.ndarray, cluster: np.ndarray, n: int) -> np.ndarray:
    """Mean of ``values`` (N x C) per cluster, float32 (bincount: about 1 ms per 30k rows)."""
    counts = np.maximum(np.bincount(cluster, minlength=n), 1).astype(np.float64)
    vals = np.asarray(values, np.float64)
    out = np.empty((n, vals.shape[1]), np.float32)
    for c in range(vals.shape[1]):
        out[:, c] = np.bincount(cluster, weights=vals[:, c], minlength=n) / counts
    return out


def strand_subset(n_strands: int, n_points: int, target_segments: int | None = None):
    """(strand indices, point indices along a strand) of a hairstyle's stand-in."""
    target_segments = STRAND_SEGMENTS if target_segments is None else int(target_segments)
    step_pts = 2 if n_points > 6 else 1
    pts = np.unique(np.r_[np.arange(0, n_points, step_pts), n_points - 1])
    per = max(1, len(pts) - 1)
    keep = max(1, min(n_strands, target_segments // per))
    strands = np.unique(np.linspace(0, n_strands - 1, keep).round().astype(np.int64))
    return strands, pts


def point_subset(n: int, target: int | None = None) -> np.ndarray | slice:
    target = POINTS if target is None else int(target)
    if n <= target:
        return slice(None)
    return slice(None, None, int(np.ceil(n / target)))


# ----------------------------------------------------------------------------- stand-in rules
class MeshRule:
    """A mesh's stand-in: clustered vertices follow the full mesh's (deformed) points."""

    kind = "mesh"

    def __init__(self, cluster: np.ndarray, n: int, faces: np.ndarray, n_source_faces: int):
        self.cluster, self.n, self.faces, self.n_source_faces = cluster, n, faces, n_source_faces
        self._normals = None

    def make_poly(self, full, source=None):
        import pyvista as pv

        from app.renderers import VertexNormals

        pts = cluster_mean(np.asarray(full.points), self.cluster, self.n)
        poly = pv.PolyData.from_regular_faces(pts, self.faces)
        self._normals = VertexNormals(self.faces, self.n)
        poly.point_data["Normals"] = self._normals(pts)
        poly.point_data.active_normals_name = "Normals"
        rgb = None
        if "RGB" in full.point_data:
            rgb = np.asarray(full.point_data["RGB"])[:, :3]
        elif (
            source is not None
            and getattr(source, "uv", None) is not None
            and getattr(source, "texture", None) is not None
            and len(source.uv) == full.n_points
        ):
            rgb = texture_colours(source.uv, source.texture)
        if rgb is not None:
            poly.point_data["RGB"] = np.clip(cluster_mean(rgb, self.cluster, self.n), 0, 255).astype(np.uint8)
        return poly

    def update(self, poly, full) -> None:
        pts = cluster_mean(np.asarray(full.points), self.cluster, self.n)
        poly.points[:] = pts
        poly.GetPoints().Modified()
        if self._normals is not None:
            poly.point_data["Normals"][:] = self._normals(pts)
            poly.GetPointData().GetNormals().Modified()
        poly.Modified()


class SubsetRule:
    """Strands or points: a fixed subset of the full part's points."""

    def __init__(self, kind: str, index: np.ndarray, lines: np.ndarray | None = None):
        self.kind, self.index, self.lines = kind, index, lines

    def make_poly(self, full, source=None):
        import pyvista as pv

        pts = np.asarray(full.points)[self.index]
        poly = pv.PolyData(pts, lines=self.lines) if self.lines is not None else pv.PolyData(pts)
        if "RGB" in full.point_data:
            poly.point_data["RGB"] = np.asarray(full.point_data["RGB"])[self.index]
        return poly

    def update(self, poly, full) -> None:
        poly.points[:] = np.asarray(full.points)[self.index]
        poly.GetPoints().Modified()
        poly.Modified()


_mesh_rules: dict = {}


def mesh_rule(source, faces: np.ndarray, vertices: np.ndarray | None = None) -> MeshRule | None:
    """The (cached) stand-in rule of a mesh or depth surface with these shown ``faces``;
    None when it is light enough already. Safe to call from a worker thread."""
    from app.renderers import _cached

    verts = source.vertices if vertices is None else vertices

    def make():
        from engines.types import vertex_normals

        f = np.asarray(faces, np.int64)
        if len(f) <= 2 * MESH_FACES:
            return None
        got = cluster_mesh(verts, f, normals=vertex_normals(np.asarray(verts, np.float32), f))
        return None if got is None else MeshRule(*got, len(faces))

    return _cached(source, f"lod{len(faces)}/{MESH_FACES}", make)


def lod_map(item):
    """The stand-in rule of a drawn part (:class:`app.renderers._Item`), or None."""
    full = item.poly
    if full.n_lines:
        n_strands = full.n_lines
        per = full.n_points // max(n_strands, 1)
        if n_strands * max(per - 1, 1) <= 2 * STRAND_SEGMENTS or per < 2 or n_strands * per != full.n_points:
            return None
        strands, pts = strand_subset(n_strands, per)
        index = (strands[:, None] * per + pts[None, :]).ravel()
        m = len(pts)
        lines = np.empty((len(strands), m + 1), np.int64)
        lines[:, 0] = m
        lines[:, 1:] = np.arange(len(strands) * m).reshape(-1, m)
        return SubsetRule("strands", index, lines.ravel())
    if full.n_cells and item.normals is not None:
        faces = np.asarray(full.regular_faces)
        if len(faces) <= 2 * MESH_FACES:
            return None
        if item.source is not None and item.depth is None and len(faces) == len(getattr(item.source, "faces", ())):
            rule = mesh_rule(item.source, faces, np.asarray(full.points))
        elif item.depth is not None:
            rule = mesh_rule(item.source, faces, item.depth.vertices)
        else:
            from engines.types import vertex_normals

            pts = np.asarray(full.points)
            got = cluster_mesh(pts, faces, normals=vertex_normals(pts, faces))
            rule = None if got is None else MeshRule(*got, len(faces))
        if rule is not None:
            rule = _WithSource(rule, item.source)
        return rule
    if full.n_points > 2 * POINTS:
        return SubsetRule("points", np.arange(full.n_points)[point_subset(full.n_points)])
    return None


class _WithSource:
    """A rule bound to the engine object it takes texture colours from."""

    def __init__(self, rule, source):
        self.rule, self.source, self.kind = rule, source, rule.kind

    def make_poly(self, full):
        return self.rule.make_poly(full, self.source)

    def update(self, poly, full) -> None:
        self.rule.update(poly, full)
