"""Avatar engine: one portrait -> a textured, closed 3D head with live emotion sliders.

Stages (each timed in ``Result.timings``): MediaPipe landmarks (:mod:`.landmarks`), camera
and head pose by PnP against the canonical face with focal refinement (:mod:`.camera`),
head geometry (:mod:`.head`), texture bake (:mod:`.texture`), blendshape basis
(:mod:`.blendshapes`) and the EMFACS emotion map (:mod:`.emotions`). The result is an
:class:`~engines.types.Avatar` whose mesh carries the basis and one morph target per
emotion, so sliders deform it in place (:class:`Deformer`).
"""
from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from engines.api import CancelToken, Engine, EngineError, Result
from engines.types import Avatar, Image, Mesh

MAX_PHOTO_SIDE = 4096


class Deformer:
    """Vertices for emotion slider values, fast enough for every slider tick (< 2 ms).

    Emotions -> blendshape weights through the EMFACS torch module, then
    ``neutral + weights @ basis`` with the basis stacked as one K x 3N float32 matrix.
    """

    def __init__(self, avatar: Avatar):
        from engines.avatar.blendshapes import SHAPE_NAMES

        m = avatar.mesh
        self.names = [n for n in SHAPE_NAMES if n in m.morph_targets]
        self.neutral = m.vertices.astype(np.float32).ravel()
        self.basis = (np.stack([m.morph_targets[n].ravel() for n in self.names]).astype(np.float32) if self.names
                      else np.zeros((0, self.neutral.size), np.float32))  # a head without a basis stays neutral
        self.n = len(m.vertices)

    def weights(self, emotions: dict[str, float]) -> np.ndarray:
        from engines.avatar.blendshapes import SHAPE_NAMES
        from engines.avatar.emotions import emotion_to_expression

        w = emotion_to_expression(emotions)
        return np.array([w[SHAPE_NAMES.index(n)] for n in self.names], np.float32)

    def vertices(self, emotions: dict[str, float]) -> np.ndarray:
        if not any(float(v) for v in emotions.values()):
            return self.neutral.reshape(self.n, 3).copy()  # neutral: no need to load torch
        w = self.weights(emotions)
        if not np.any(w):
            return self.neutral.reshape(self.n, 3).copy()
        return (self.neutral + w @ self.basis).reshape(self.n, 3)


def _fixed_colors(tpl) -> tuple[np.ndarray, np.ndarray]:
    """Per-vertex painted colours for the mouth and eye pockets (teeth band under the upper lip)."""
    from engines.avatar import texture as tx

    col = np.zeros((tpl.n_vertices, 3), np.float32)
    wgt = np.zeros(tpl.n_vertices, np.float32)
    for key in ("L", "R"):
        idx = tpl.bag_idx[key]
        col[idx] = tx.SOCKET
        wgt[idx[1:]] = 1.0
        col[tpl.bag_cap[key]], wgt[tpl.bag_cap[key]] = tx.SOCKET, 1.0
    idx = tpl.bag_idx["mouth"]
    col[idx] = tx.MOUTH_DARK
    wgt[idx[1:]] = 1.0
    col[tpl.bag_cap["mouth"]], wgt[tpl.bag_cap["mouth"]] = tx.MOUTH_DARK, 1.0
    return col, wgt


def warm_up() -> None:
    """Load what a first avatar needs (MediaPipe graphs, torch and the emotion module) ahead
    of time, e.g. in a background job when the app opens a portrait: the first run then
    takes as long as later ones."""
    from engines.avatar import landmarks
    from engines.avatar.emotions import emotion_module

    landmarks.warm_up()
    emotion_module()


class AvatarEngine(Engine):
    """A textured 3D head with emotion sliders from one portrait photo."""

    name = "avatar"
    title = "Make avatar"
    description = ("One portrait photo to a closed, textured 3D head (landmarks, PnP camera, "
                   "parametric skull, baked texture) with 28 FACS blendshapes and six emotion sliders.")
    accepts = (Image,)
    produces = (Avatar,)

    class Params(BaseModel):
        ipd_mm: float = Field(63.0, ge=50.0, le=80.0, description="Interpupillary distance (sets the metric scale), mm")
        focal_from_exif: bool = Field(True, description="Use the photo's 35 mm-equivalent focal length when EXIF has one")
        texture_size: Literal[2048, 4096] = Field(2048, description="Texture atlas size in pixels")
        happiness: float = Field(0.0, ge=0.0, le=1.0, description="Initial happiness (0..1)")
        anger: float = Field(0.0, ge=0.0, le=1.0, description="Initial anger (0..1)")
        sadness: float = Field(0.0, ge=0.0, le=1.0, description="Initial sadness (0..1)")
        fear: float = Field(0.0, ge=0.0, le=1.0, description="Initial fear (0..1)")
        contempt: float = Field(0.0, ge=0.0, le=1.0, description="Initial contempt (0..1)")
        surprise: float = Field(0.0, ge=0.0, le=1.0, description="Initial surprise (0..1)")
        hairstyle: str = Field("none", description="Hairstyle from the hair library ('none' for a bald head)")
        hair_color: str = Field("auto", description="Hair colour as #rrggbb or a preset name; 'auto' = measured "
                                                    "from the photo's hair (a dark brown when none can be measured)")
        measure_quality: bool = Field(False, description="Also render from the photo camera and report PSNR, SSIM, "
                                                         "landmark re-detection and +-30 degree detection (about 1 s more)")

    def run(self, inputs, params, progress, cancel: CancelToken) -> Result:
        import cv2

        from engines.avatar import blendshapes, camera, head, landmarks, texture
        from engines.avatar.emotions import EMOTIONS, emfacs_matrix

        self.check_inputs(inputs)
        img: Image = inputs[0]
        source = img.path.name if img.path is not None else "the photo"
        res = Result(notes=list(img.notes))
        with res.stage("prepare"):
            if params.hairstyle.strip().lower() not in ("none", "") and params.hair_color.strip().lower() != "auto":
                try:
                    from engines.hair.color import parse_color
                except ImportError:
                    pass
                else:
                    parse_color(params.hair_color)  # a wrong colour is refused before the slow stages
            if img.pixels.size == 0 or min(img.pixels.shape[:2]) < 32:
                raise EngineError(f"{source} is too small ({img.size[0]}x{img.size[1]} px) to hold a face.")
            photo = img.rgb8()
            h, w = photo.shape[:2]
            if max(h, w) > MAX_PHOTO_SIDE:
                s = MAX_PHOTO_SIDE / max(h, w)
                photo = cv2.resize(photo, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
                res.notes.append(f"{source} ({w}x{h}) was reduced to {photo.shape[1]}x{photo.shape[0]} for the avatar.")
                h, w = photo.shape[:2]
        progress(0.05, "Finding the face")
        cancel.raise_if_set()
        with res.stage("landmarks"):
            lm = landmarks.detect_landmarks(photo, source)
        res.notes += lm.notes
        progress(0.3, "Camera and head pose")
        cancel.raise_if_set()
        with res.stage("camera"):
            focal = None
            f35 = img.exif.get("FocalLengthIn35mmFilm") if params.focal_from_exif else None
            if isinstance(f35, (int, float)) and f35 > 0:
                focal = float(f35) / 36.0 * max(w, h)
            cam, L = camera.fit_camera(lm, params.ipd_mm / 1000.0, focal)
            if abs(cam.yaw_deg) > 60:
                raise EngineError(f"The face in {source} is turned {abs(cam.yaw_deg):.0f} degrees away from the camera; "
                                  "the avatar needs a photo within about 60 degrees of frontal.")
        progress(0.45, "Building the head")
        cancel.raise_if_set()
        with res.stage("geometry"):
            tpl = head.head_template()
            V, shape = head.build_vertices(tpl, L)
            scalp = head.scalp_indices(tpl, V, shape)
        progress(0.6, "Baking the texture")
        cancel.raise_if_set()
        with res.stage("texture"):
            skull_w = np.ones(tpl.n_vertices, np.float32)
            rings = tpl.skull_idx.shape[0]
            fade = np.clip(1 - (np.arange(rings) - 3) / 5.0, 0, 1).astype(np.float32)
            skull_w[tpl.skull_idx[1:]] = fade[1:, None]
            skull_w[tpl.skull_pole] = 0.0
            fixed_c, fixed_w = _fixed_colors(tpl)
            tex, seen = texture.bake(V, tpl.faces, tpl.uv, tpl.part, photo, cam.K, cam.R, cam.t, lm.xy,
                                     skull_w, fixed_c, fixed_w, size=int(params.texture_size))
        progress(0.8, "Expressions")
        cancel.raise_if_set()
        with res.stage("expressions"):
            basis = blendshapes.build_basis(tpl, L)
            # One morph target per emotion at 100 %: the emotion module's output for that
            # emotion alone, which is its weight column (EMFACS weights lie in [0, 1], so the
            # clamp leaves them as they are; tests check the module against these targets).
            # Read from the table, so making an avatar does not wait ~1 s for torch: the
            # module itself is loaded for the sliders (Deformer), in the background by the GUI.
            ew = emfacs_matrix().T  # 6 x K
            B = np.stack([basis[n] for n in blendshapes.SHAPE_NAMES])
            targets = dict(basis)
            for j, emo in enumerate(EMOTIONS):
                targets[emo] = np.tensordot(ew[j], B, axes=1).astype(np.float32)
        mesh = Mesh(V.astype(np.float32), tpl.faces, uv=tpl.uv, texture=tex, morph_targets=targets, name="head")
        mesh.compute_normals()
        emotions = {e: float(getattr(params, e)) for e in EMOTIONS}
        avatar = Avatar(mesh=mesh, emotions=emotions, camera=cam.as_dict(), scalp=scalp, photo=photo,
                        params={"ipd_mm": params.ipd_mm, "focal_px": float(cam.K[0, 0]), "yaw_deg": cam.yaw_deg,
                                "source": str(img.path) if img.path else None, "hairstyle": params.hairstyle,
                                "hair_color": params.hair_color, "shape_names": list(blendshapes.SHAPE_NAMES)},
                        name=(img.path.stem if img.path is not None else "avatar"))
        if params.hairstyle != "none":
            with res.stage("hair"):
                try:
                    from engines.hair import apply_hair
                except ImportError:
                    res.notes.append("Hair is not available in this build; the head is left bald.")
                else:
                    avatar = apply_hair(avatar, params.hairstyle, params.hair_color, photo)
        proj = cam.project(L[:468].astype(np.float64))
        iod = lm.iod_px
        err = np.linalg.norm(proj - lm.xy[:468], axis=1)
        res.metrics.update({
            "faces_found": lm.faces_found, "landmarks": int(len(lm.xy)),
            "reprojection_error_pct_iod": float(err.mean() / iod * 100),
            "canonical_pnp_rms_px": cam.pnp_rms_px, "focal_px": float(cam.K[0, 0]), "yaw_deg": cam.yaw_deg,
            "vertices": int(len(V)), "triangles": int(len(tpl.faces)), "texture_px": int(tex.shape[0]),
            "face_texels_seen": seen, "interocular_px": iod,
        })
        for k in ("hairstyle", "hair_color", "hair_color_source", "hair_strands", "hair_match", "hair_photo"):
            if k in avatar.params and (k == "hairstyle" or params.hairstyle != "none"):
                res.metrics[k] = avatar.params[k]
        if avatar.params.get("hair_match"):
            res.metrics["hair_iou"] = avatar.params["hair_match"][0]["iou"]
        if params.measure_quality:
            progress(0.9, "Measuring quality")
            with res.stage("quality"):
                from engines.avatar.quality import measure

                res.metrics.update(measure(avatar, lm))
        progress(1.0, "Avatar ready")
        res.items = [avatar]
        return res
