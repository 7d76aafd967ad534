"""Mesh and point-cloud files: the public API behind File > Export / Open.

* ``write_glb(obj, path)`` / ``write_obj(obj, path)``: ``obj`` is a :class:`Mesh` or a
  list of them; each becomes a named node (GLB) or object (OBJ). GLB embeds textures,
  writes morph targets (names in ``mesh.extras.targetNames``), one mesh per face group and,
  given a ``skeleton``, joints and a skin; OBJ writes ``<stem>.mtl``
  and ``<stem>.png`` beside itself. See :mod:`engines.io.gltf` and :mod:`engines.io.obj`.
* ``write_ply(mesh, path)``, ``write_points_ply(cloud, path)``, ``read_ply(path)``:
  see :mod:`engines.io.ply`.
* ``read_mesh(path)``: OBJ or GLB/glTF -> a Mesh, or a list of Mesh when the file holds
  several, with UVs, textures, vertex colours and morph targets.
* ``strands_to_mesh(strands, radius, sides)``: hair polylines as thin tubes, so hair can
  go into formats that have no lines (GLB/OBJ viewers draw triangles). Tube frames are
  carried along each strand by parallel transport (Bishop, "There is more than one way
  to frame a curve", 1975) so the tubes do not twist.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from engines.api import EngineError
from engines.io import gltf as _gltf
from engines.io import obj as _obj
from engines.io.ply import read_ply, write_mesh_ply, write_points_ply
from engines.types import Avatar, Mesh, PointCloud, Skeleton, Strands

__all__ = ["write_glb", "write_obj", "write_ply", "write_points_ply", "read_mesh", "read_ply", "strands_to_mesh"]


def _as_meshes(obj, path: Path) -> list[Mesh]:
    if isinstance(obj, Mesh):
        return [obj]
    if isinstance(obj, Avatar):
        meshes = [obj.mesh, *obj.extra_meshes]
        if obj.hair is not None and len(obj.hair.points):
            meshes.append(strands_to_mesh(obj.hair))
        return meshes
    if isinstance(obj, Strands):
        return [strands_to_mesh(obj)]
    if isinstance(obj, (list, tuple)) and obj and all(isinstance(m, Mesh) for m in obj):
        return list(obj)
    raise EngineError(f"{path.name}: cannot write a {type(obj).__name__} as a mesh; export a mesh result instead.")


def write_glb(
    obj, path: str | os.PathLike, skeleton: Skeleton | None = None, morph_weights: dict[str, float] | None = None
) -> list[Path]:
    """Write a Mesh or list of Meshes as GLB (textures embedded, morph targets kept).

    Face groups become separate named meshes; with ``skeleton`` (an Avatar's own by default)
    meshes that have ``joints``/``weights`` are skinned; ``morph_weights`` are the default
    morph weights by target name. See :func:`engines.io.gltf.write_glb`.
    """
    path = Path(path)
    if skeleton is None and isinstance(obj, Avatar):
        skeleton = obj.skeleton
    return _gltf.write_glb(_as_meshes(obj, path), path, skeleton=skeleton, morph_weights=morph_weights)


def write_obj(obj, path: str | os.PathLike) -> list[Path]:
    """Write a Mesh or list of Meshes as OBJ + MTL (+ PNG textures); returns all paths."""
    path = Path(path)
    return _obj.write_obj(_as_meshes(obj, path), path)


def write_ply(obj, path: str | os.PathLike) -> list[Path]:
    """Write a Mesh (vertex colours and normals when present) or a PointCloud as PLY."""
    path = Path(path)
    if isinstance(obj, PointCloud):
        return write_points_ply(obj, path)
    meshes = _as_meshes(obj, path)
    if len(meshes) > 1:
        meshes = [merge(meshes)]
    if len(meshes[0].faces) == 0:
        raise EngineError(f"{path.name}: the mesh is empty, so there is nothing to export.")
    return write_mesh_ply(meshes[0], path)


def merge(meshes: list[Mesh], name: str | None = None) -> Mesh:
    """One Mesh from several (geometry, normals and vertex colours; textures are dropped)."""
    if len(meshes) == 1:
        return meshes[0]
    verts, faces, normals, cols, off = [], [], [], [], 0
    for m in meshes:
        verts.append(m.vertices)
        faces.append(m.faces + off)
        normals.append(
            m.normals
            if m.normals is not None and len(m.normals) == len(m.vertices)
            else Mesh(m.vertices, m.faces).compute_normals()
        )
        c = _gltf.colors_u8(m.vertex_colors, len(m.vertices))
        cols.append(c[:, :3] if c is not None else np.full((len(m.vertices), 3), 200, np.uint8))
        off += len(m.vertices)
    any_cols = any(m.vertex_colors is not None for m in meshes)
    return Mesh(
        np.vstack(verts),
        np.vstack(faces),
        np.vstack(normals),
        vertex_colors=np.vstack(cols) if any_cols else None,
        name=name or meshes[0].name,
    )


def read_mesh(path: str | os.PathLike) -> Mesh | list[Mesh]:
    """Read an OBJ, GLB or glTF file: one Mesh, or a list when it holds several."""
    path = Path(path)
    if not path.exists():
        raise EngineError(f"{path}: no such file. Check the path or choose the file again.")
    ext = path.suffix.lower()
    if ext == ".obj":
        meshes = _obj.read_obj(path)
    elif ext in (".glb", ".gltf"):
        meshes = _gltf.read_glb(path)
    elif ext == ".ply":
        m = read_ply(path)
        if not isinstance(m, Mesh):
            raise EngineError(f"{path.name}: holds points, not a mesh; open it as a point cloud.")
        meshes = [m]
    else:
        raise EngineError(f"{path.name}: unknown mesh format '{ext}'. Open an OBJ, GLB or PLY file.")
    return meshes[0] if len(meshes) == 1 else meshes


def strands_to_mesh(strands: Strands, radius: float = 0.0004, sides: int = 3, taper: float = 0.3) -> Mesh:
    """Hair strands (S x P x 3) as tubes of ``sides`` faces, ``radius`` metres at the root
    narrowing to ``taper * radius`` at the tip, coloured per strand.

    Strands holding non-finite points are skipped (they cannot be drawn).
    """
    pts = np.asarray(strands.points, np.float64)
    if pts.ndim != 3 or pts.shape[1] < 2 or pts.shape[2] != 3:
        raise EngineError("Hair strands need at least 2 points each (S x P x 3) to become a mesh.")
    keep = np.isfinite(pts).all(axis=(1, 2))
    pts = pts[keep]
    sides = max(3, int(sides))
    if len(pts) == 0:
        raise EngineError("The hair has no strands with valid points, so there is nothing to export.")
    S, P, _ = pts.shape
    tangent = np.gradient(pts, axis=1)
    tangent /= np.maximum(np.linalg.norm(tangent, axis=2, keepdims=True), 1e-12)
    # A first normal perpendicular to each root tangent, then parallel transport.
    ref = np.where(np.abs(tangent[:, 0, 1:2]) < 0.9, [[0.0, 1.0, 0.0]], [[1.0, 0.0, 0.0]])
    normal = np.empty_like(pts)
    n = np.cross(tangent[:, 0], ref)
    normal[:, 0] = n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    for i in range(1, P):
        t = tangent[:, i]
        n = normal[:, i - 1] - (normal[:, i - 1] * t).sum(1, keepdims=True) * t
        bad = np.linalg.norm(n, axis=1) < 1e-9
        if bad.any():
            n[bad] = np.cross(t[bad], ref[bad])
        normal[:, i] = n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    binormal = np.cross(tangent, normal)
    r = radius * (1.0 - (1.0 - taper) * np.linspace(0.0, 1.0, P))[None, :, None]
    ang = 2 * np.pi * np.arange(sides) / sides
    ring = (
        np.cos(ang)[None, None, :, None] * normal[:, :, None] + np.sin(ang)[None, None, :, None] * binormal[:, :, None]
    )
    verts = pts[:, :, None] + r[..., None] * ring  # S x P x sides x 3
    vn = ring.reshape(-1, 3)
    idx = np.arange(S * P * sides).reshape(S, P, sides)
    a = idx[:, :-1, :]
    b = idx[:, :-1, np.r_[1:sides, 0]]
    c = idx[:, 1:, :]
    d = idx[:, 1:, np.r_[1:sides, 0]]
    # Counter-clockwise seen from outside the tube.
    faces = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([b, d, c], -1).reshape(-1, 3)])
    cols = None
    if strands.colors is not None and len(strands.colors) == len(keep):
        cols = np.repeat(strands.colors[keep], P * sides, axis=0)
    return Mesh(verts.reshape(-1, 3), faces, vn, vertex_colors=cols, name=strands.name)
