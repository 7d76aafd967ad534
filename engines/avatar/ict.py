"""The ICT Face Model (USC ICT, MIT licence; ``data/ict/LICENSE``), loaded once.

Li, Bladin, Zhao, Chinara, Yeh, Xing, Mozgai, Rizzo, McCullough, Hovhannisyan,
Haase, Debevec and Cosker, "Learning Formation of Physically-Based Face Attributes",
CVPR 2020 (ICT-FaceKit). A scanned full head registered to one topology: face, back of
the head and neck, mouth socket, gums and tongue, 32 teeth, eyeballs (sclera + iris),
eyelashes and the shader strips of real-time digital humans (lacrimal fluid, eye blend,
eye occlusion), with 100 unit-variance identity PCA modes and 53 ARKit-named expression
blendshapes. Units are centimetres, +Y up, the face looks along +Z.

This module gives:

* :func:`load_model`: the arrays as float32, quads split into triangles;
* :func:`render_layout`: the mesh we draw and export: the shader strips left out (they need
  a transparent, screen-space shader no exporter carries), vertices split at UV seams, and
  the model's UDIM-style tiles (face, back of head, gums and tongue, teeth, eyeball maps,
  eyelashes) repacked into one square atlas, so one texture covers the whole head.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

import numpy as np

CM_TO_M = 0.01

KEPT_MATERIALS = (
    "M_Face",
    "M_BackHead",
    "M_GumsTongue",
    "M_Teeth",
    "M_ScleraLeft",
    "M_IrisLeft",
    "M_ScleraRight",
    "M_IrisRight",
    "M_EyeLashes",
)
"""Materials drawn and exported; lacrimal fluid, eye blend and eye occlusion are left out."""

ATLAS: dict[str, tuple[float, float, float, float, int]] = {
    # material: (atlas u0, atlas v0, width, height, model tile offset in u)
    # (v up, OBJ convention). The face gets three quarters of the atlas side.
    "M_Face": (0.0, 0.25, 0.75, 0.75, 0),
    "M_BackHead": (0.75, 0.5, 0.25, 0.5, 1),
    "M_GumsTongue": (0.0, 0.0, 0.25, 0.25, 2),
    "M_Teeth": (0.25, 0.0, 0.25, 0.25, 3),
    "M_ScleraLeft": (0.5, 0.0, 0.25, 0.25, 0),
    "M_ScleraRight": (0.5, 0.0, 0.25, 0.25, 0),
    "M_IrisLeft": (0.75, 0.25, 0.25, 0.25, 0),
    "M_IrisRight": (0.75, 0.25, 0.25, 0.25, 0),
    "M_EyeLashes": (0.75, 0.0, 0.25, 0.25, 6),
}
"""Where each material's 0-1 map sits in the atlas. Left and right eyes share one sclera and
one iris map (the model gives both eyes the same layout)."""

GROUPS = {
    "head": ("M_Face", "M_BackHead"),
    "eyes": ("M_ScleraLeft", "M_IrisLeft", "M_ScleraRight", "M_IrisRight"),
    "teeth": ("M_Teeth",),
    "tongue": ("M_GumsTongue",),
    "eyelashes": ("M_EyeLashes",),
}
"""Named meshes of the export (glTF nodes, OBJ groups), by material."""


@dataclass
class IctModel:
    neutral: np.ndarray
    """N x 3 float32, cm."""
    identity: np.ndarray
    """100 x N x 3 float32 identity modes (one standard deviation each), cm."""
    expressions: np.ndarray
    """53 x N x 3 float32 expression deltas, cm."""
    expression_names: list[str]
    triangles: np.ndarray
    """T x 3 vertex indices (quads split)."""
    triangles_uv: np.ndarray
    """T x 3 indices into ``uv``."""
    triangle_material: np.ndarray
    """T material indices into ``materials``."""
    uv: np.ndarray
    materials: list[str]
    parts: dict[str, tuple[int, int]]
    """Vertex ranges [start, end) by part name (face, head_and_neck, teeth, eyeball_left...)."""
    landmarks68: np.ndarray
    mirror: np.ndarray = field(repr=False)
    """Vertex index of each vertex's left-right mirror image (the neutral head is symmetric)."""

    @property
    def n_vertices(self) -> int:
        return len(self.neutral)

    def part(self, name: str) -> np.ndarray:
        a, b = self.parts[name]
        return np.arange(a, b)


def model_path():
    return resources.files("engines.avatar") / "data" / "ict" / "ict_face_model.npz"


def license_text() -> str:
    return (resources.files("engines.avatar") / "data" / "ict" / "LICENSE").read_text()


_lock = threading.Lock()


@lru_cache(maxsize=1)
def _load() -> IctModel:
    with resources.as_file(model_path()) as p:
        d = np.load(p)
        quads, quads_uv, mat = d["faces"], d["faces_uv"], d["face_material"]
        tri = np.concatenate([quads[:, [0, 1, 2]], quads[quads[:, 3] >= 0][:, [0, 2, 3]]])
        tri_uv = np.concatenate([quads_uv[:, [0, 1, 2]], quads_uv[quads[:, 3] >= 0][:, [0, 2, 3]]])
        tri_mat = np.concatenate([mat, mat[quads[:, 3] >= 0]])
        neutral = d["neutral"].astype(np.float32)
        parts = {str(n): (int(a), int(b)) for n, (a, b) in zip(d["part_names"], d["part_ranges"])}
        parts.update({str(n): (int(a), int(b)) for n, (a, b) in zip(d["eyeball_part_names"], d["eyeball_part_ranges"])})
        from scipy.spatial import cKDTree

        dist, mirror = cKDTree(neutral).query(neutral * np.float32([-1, 1, 1]))
        mirror[dist > 0.01] = np.flatnonzero(dist > 0.01)  # no mirror partner: itself
        return IctModel(
            neutral=neutral,
            identity=d["identity"].astype(np.float32),
            expressions=d["expressions"].astype(np.float32),
            expression_names=[str(n) for n in d["expression_names"]],
            triangles=tri.astype(np.int64),
            triangles_uv=tri_uv.astype(np.int64),
            triangle_material=tri_mat.astype(np.int64),
            uv=d["uv"].astype(np.float32),
            materials=[str(m) for m in d["materials"]],
            parts=parts,
            landmarks68=d["landmarks68"].astype(np.int64),
            mirror=mirror.astype(np.int64),
        )


def load_model() -> IctModel:
    """The model (about 1 s the first time, cached; thread-safe)."""
    with _lock:
        return _load()


@dataclass
class RenderLayout:
    """The drawn / exported mesh, as index maps into the model."""

    src: np.ndarray
    """M source model vertex per render vertex (vertices split at UV seams)."""
    uv: np.ndarray
    """M x 2 atlas texture coordinates (v up)."""
    faces: np.ndarray
    """F x 3 triangles into the render vertices."""
    face_material: np.ndarray
    """F material names' indices into ``KEPT_MATERIALS``."""
    group: np.ndarray
    """M group index per render vertex into ``list(GROUPS)``."""

    def group_faces(self, name: str) -> np.ndarray:
        mats = [KEPT_MATERIALS.index(m) for m in GROUPS[name]]
        return np.flatnonzero(np.isin(self.face_material, mats))


@lru_cache(maxsize=1)
def render_layout() -> RenderLayout:
    m = load_model()
    keep_idx = [m.materials.index(k) for k in KEPT_MATERIALS]
    sel = np.isin(m.triangle_material, keep_idx)
    tri, tri_uv, tmat = m.triangles[sel], m.triangles_uv[sel], m.triangle_material[sel]
    kept_mat = np.array([KEPT_MATERIALS.index(m.materials[i]) for i in tmat], np.int64)
    # a render vertex is a (model vertex, uv, material) triple: the eyes share uv numbers
    # with the face tile, so the material is part of the key
    key = np.stack([tri.ravel(), tri_uv.ravel(), np.repeat(kept_mat, 3)], 1)
    uniq, inv = np.unique(key, axis=0, return_inverse=True)
    src, uvi, mat = uniq[:, 0], uniq[:, 1], uniq[:, 2]
    uv = m.uv[uvi].copy()
    for k, name in enumerate(KEPT_MATERIALS):
        u0, v0, w, h, off = ATLAS[name]
        s = mat == k
        local = np.clip(uv[s] - [off, 0.0], 0.0, 1.0)
        uv[s] = [u0, v0] + local * [w, h]
    groups = list(GROUPS)
    gidx = np.array(
        [next(i for i, g in enumerate(groups) if KEPT_MATERIALS[k] in GROUPS[g]) for k in range(len(KEPT_MATERIALS))]
    )
    return RenderLayout(
        src=src.astype(np.int64),
        uv=uv.astype(np.float32),
        faces=inv.reshape(-1, 3).astype(np.int64),
        face_material=kept_mat,
        group=gidx[mat],
    )
