"""Shared checks of how fitted hair sits on a head (issue 15, item 4), measured on the mesh
itself, independently of the fitter's own head frame and distance grid:

* the face stays clear: no strand point in front of the face plane within the face outline
  seen in profile (between the brows and the chin), so an artist turning the head sees the
  eyes, nose and mouth, with the hair framing the face from behind the cheekbones;
* short cuts have no brim: their points stay within a small distance of the skin.

Heads follow the engines.types convention (y up, z out of the face, metres).
"""

from __future__ import annotations

import numpy as np

SHORT_CUT_REACH = 0.03
"""Farthest (m) a point of a short cut may stand off the skin. Before the fix short crop, side
part and pixie reached 3.4-5.8 cm (a brim of stiff side hair); now 2.0-2.7 cm."""


def skin(mesh) -> np.ndarray:
    """The skin's faces (the ``head`` group): eyes, teeth and lashes are no surface for hair."""
    g = mesh.face_groups.get("head") if mesh.face_groups else None
    return mesh.faces[g] if g is not None and len(g) else mesh.faces


def face_frame(mesh) -> dict:
    """Face plane (z), brow and chin heights (y) of a head, in its own coordinates.

    With an ``eyes`` group (an ICT avatar): the plane lies 1.5 cm behind the eyeball centres
    (about the outer eye corners), the brows 2 cm above them. Without one (the canonical
    head), the same values the astronaut avatar gives, taken to the canonical head: plane at
    z = 0.055, brows at y = 0.02 (eye level is the ear plane, y = 0). The chin is found on
    the mesh: going down from the eyes, the last height where the face's profile (the skin
    within 3 cm of the mid-line) still stands 2 cm in front of the plane.
    """
    v = mesh.vertices.astype(np.float64)
    g = mesh.face_groups.get("eyes") if mesh.face_groups else None
    if g is not None and len(g):
        e = v[np.unique(mesh.faces[g])]
        eye = e.mean(0)
        plane, brow = float(eye[2] - 0.015), float(eye[1] + 0.02)
    else:
        eye = np.array([0.0, 0.0, 0.07])
        plane, brow = 0.055, 0.02
    s = v[np.unique(skin(mesh))]
    s = s[np.abs(s[:, 0] - eye[0]) < 0.03]
    chin = float(eye[1])
    for y in np.arange(eye[1], eye[1] - 0.25, -0.005):
        row = s[np.abs(s[:, 1] - y) < 0.004]
        if len(row) == 0 or row[:, 2].max() < plane + 0.02:
            break
        chin = float(y)
    return {"plane": plane, "brow": brow, "chin": chin, "eye": eye}


def in_front_of_face(mesh, points: np.ndarray) -> np.ndarray:
    """Which points (N x 3) lie in front of the face plane between the brows and the chin."""
    f = face_frame(mesh)
    p = points.reshape(-1, 3)
    return (p[:, 2] > f["plane"]) & (p[:, 1] < f["brow"]) & (p[:, 1] > f["chin"])


def skin_distance(mesh, points: np.ndarray) -> np.ndarray:
    """Unsigned distance (m) of points to the skin triangles (open3d ray-casting scene)."""
    import open3d as o3d

    sc = o3d.t.geometry.RaycastingScene()
    tm = o3d.t.geometry.TriangleMesh()
    tm.vertex.positions = o3d.core.Tensor(np.ascontiguousarray(mesh.vertices, np.float32))
    tm.triangle.indices = o3d.core.Tensor(np.ascontiguousarray(skin(mesh), np.int32))
    sc.add_triangles(tm)
    q = o3d.core.Tensor(np.ascontiguousarray(points.reshape(-1, 3), np.float32))
    return sc.compute_distance(q).numpy()


def is_short_cut(recipe) -> bool:
    """Short at the sides and loose (no tail, no mohawk crest): buzz cut, short crop, side
    part, pixie."""
    return (
        recipe.length.side <= 0.05 and recipe.gather.kind == "none" and recipe.mohawk.width == 0 and not recipe.is_bald
    )
