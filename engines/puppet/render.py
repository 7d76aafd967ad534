"""Drawing the animated avatar without a GPU or VTK: the numpy rasteriser
(:mod:`engines.avatar.raster`) with the texture and Lambertian shading from a light at the
camera, from a camera that frames the face (a talking-head shot). Used for the MP4 export of
a take (optionally side by side with the source video) and for the known-truth renders of
:mod:`engines.puppet.synth`.
"""

from __future__ import annotations

import numpy as np

BACKGROUND = (128, 128, 128)


def framing_camera(avatar, size: tuple[int, int], face_fraction: float = 0.5, focal: float = 1.2):
    """(K, R, t) looking straight at the face, which spans ``face_fraction`` of the width."""
    from engines.puppet.solve import R_FRONTAL, avatar_landmarks

    w, h = size
    L = avatar_landmarks(avatar)
    V = avatar.mesh.vertices.astype(np.float64)
    if L is None:  # not an ICT avatar: the front of the head
        c = V.mean(0)
        c[2] = V[:, 2].max()
        width = float(np.ptp(V[:, 0])) * 0.8
    else:
        c = L[:468].mean(0)
        width = float(np.ptp(L[:468, 0]))
    f = focal * max(w, h)
    d = f * width / (face_fraction * w)
    K = np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1.0]])
    R = R_FRONTAL.copy()
    t = -R @ c + np.array([0.0, 0.0, d])
    return K, R, t


def render_shaded(
    avatar,
    V: np.ndarray,
    K,
    R,
    t,
    size: tuple[int, int],
    shading: float = 0.6,
    light=(-0.3, -0.4, -1.0),
    background=BACKGROUND,
) -> np.ndarray:
    """The textured avatar with Lambertian shading from a light fixed to the camera
    (``shading`` = the diffuse share: 0 is the unlit texture, as
    :func:`engines.avatar.raster.render_textured` draws it). Untextured meshes are grey.
    Shading that follows the head as it turns is a depth cue the landmark network uses; the
    unlit texture alone gives it a flat face and biases pitch."""
    import cv2

    from engines.avatar.raster import interpolate, project, rasterize
    from engines.types import Mesh

    m = avatar.mesh
    xy, z = project(np.asarray(K, float), R, t, V)
    r = rasterize(xy, z, m.faces, size)
    if m.uv is not None and m.texture is not None and len(m.uv) == len(V):
        st = interpolate(r, m.faces, m.uv.astype(np.float32))
        th, tw = m.texture.shape[:2]
        tex = np.ascontiguousarray(np.asarray(m.texture)[..., :3])
        if tex.dtype != np.uint8:
            tex = (tex >> 8).astype(np.uint8) if tex.dtype == np.uint16 else np.clip(tex, 0, 255).astype(np.uint8)
        img = cv2.remap(
            tex,
            (st[..., 0] * tw - 0.5).astype(np.float32),
            ((1.0 - st[..., 1]) * th - 0.5).astype(np.float32),
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        ).astype(np.float32)
    elif m.vertex_colors is not None and len(m.vertex_colors) == len(V):
        img = interpolate(r, m.faces, np.asarray(m.vertex_colors, np.float32)[:, :3])
    else:
        img = np.full((size[1], size[0], 3), 200.0, np.float32)
    if shading > 0:
        n = Mesh(V, m.faces).compute_normals() @ np.asarray(R, float).T  # camera frame
        N = interpolate(r, m.faces, n.astype(np.float32))
        N /= np.maximum(np.linalg.norm(N, axis=2, keepdims=True), 1e-9)
        L = np.asarray(light, float) / np.linalg.norm(light)
        img *= ((1.0 - shading) + shading * np.clip(N @ L, 0.0, 1.0))[..., None]
    out = np.clip(img, 0, 255).astype(np.uint8)
    out[~r.mask] = background
    return out
