"""Where MediaPipe's 478 face landmarks sit on the ICT Face Model's topology.

Each MediaPipe face-mesh landmark (468 face points plus the 10 refined iris points) is
a fixed point of the ICT head surface: three ICT vertex indices and barycentric weights,
so the landmarks of any head in ICT topology (the neutral, an identity fit, an expression)
are a weighted sum of its vertices, and the landmarks of a linear model are linear in the
model's coefficients (:func:`landmark_basis`, for the fitter).

The map is built once by ``tools/build_ict_correspondence.py`` and shipped as
``data/ict/mediapipe_to_ict.npz``. Method: a similarity alignment (Umeyama 1991) of the
MediaPipe canonical face onto the ICT neutral from the 51 inner dlib / Multi-PIE 68
points, then an optimal-step non-rigid ICP (Amberg, Romdhani and Vetter, CVPR 2007) of the
canonical mesh onto the ICT face surface (M_Face triangles only) with a stiffness term and
landmark terms that keep the dlib-equivalent points on ICT's ``landmarks68`` and the
eyelid and lip contours on the ICT eyelid margin and lip edges, then the closest point on
the surface as triangle + barycentrics, made left-right symmetric. The iris centres are
the ICT pupil centres and the iris rings lie on the ICT iris front 5.85 mm from the
centre, in MediaPipe's ring order (image right, top, image left, bottom). 468-472 is
the image-left eye (the subject's right, ICT -x), 473-477 the subject's left eye (+x).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np

N_LANDMARKS = 478


def data_path():
    return resources.files("engines.avatar") / "data" / "ict" / "mediapipe_to_ict.npz"


@lru_cache(maxsize=1)
def _data() -> dict[str, np.ndarray]:
    with resources.as_file(data_path()) as p, np.load(p) as d:
        out = {k: d[k] for k in ("vertices", "barycentric", "landmarks68_mediapipe", "method")}
    out["vertices"] = out["vertices"].astype(np.int64)
    out["barycentric"] = out["barycentric"].astype(np.float32)
    out["landmarks68_mediapipe"] = out["landmarks68_mediapipe"].astype(np.int64)
    for v in out.values():
        v.setflags(write=False)
    return out


def landmark_map() -> tuple[np.ndarray, np.ndarray]:
    """(478 x 3 ICT vertex indices, 478 x 3 barycentric weights); cached, read-only."""
    d = _data()
    return d["vertices"], d["barycentric"]


def method() -> str:
    """How the map was built (a short description stored with it)."""
    return str(_data()["method"])


def landmark_points(vertices: np.ndarray) -> np.ndarray:
    """The 478 MediaPipe landmarks on a head in ICT topology.

    ``vertices``: N x 3 (or ... x N x 3) ICT-topology vertex positions; returns 478 x 3
    (or ... x 478 x 3) in the same units and frame.
    """
    vi, b = landmark_map()
    v = np.asarray(vertices)
    w = b.astype(np.result_type(v.dtype, np.float32), copy=False)
    return np.einsum("ij,...ijk->...ik", w, v[..., vi, :])


def landmark_basis(modes: np.ndarray) -> np.ndarray:
    """K x N x 3 vertex modes (identity or expression deltas) -> K x 478 x 3 landmark modes."""
    modes = np.asarray(modes)
    if modes.ndim != 3:
        raise ValueError(f"modes must be K x N x 3, got shape {modes.shape}")
    return landmark_points(modes)


MEDIAPIPE_68: np.ndarray = _data()["landmarks68_mediapipe"]
"""MediaPipe face-mesh index of each dlib / Multi-PIE 68 landmark, in dlib order."""
