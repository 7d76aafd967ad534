"""Avatar engine: one portrait -> the ICT head model fitted to the person, textured, rigged.

Stages (each timed in ``Result.timings``): Face Landmarker landmarks and ARKit scores
(:mod:`engines.face`), the joint fit of pose, focal, identity and expression
(:mod:`.fit`), the neutral head (identity only) at metric scale, the photo baked into the
model's UV atlas (:mod:`.bake`), the 52 ARKit blendshapes (:mod:`.arkit`) plus one target
per emotion (EMFACS, :mod:`.emotions`), and the skeleton (:mod:`.rig`). The rest pose is
the person's neutral face; the photo's own expression is the preset "As photographed".
The head model is the ICT Face Model (USC ICT, MIT licence, :mod:`.ict`).
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, Field

from engines.api import CancelToken, Choices, Colour, Engine, EngineError, Result
from engines.types import Avatar, Image, Mesh
from engines.avatar.ict import GROUPS as GROUP_NAMES

MAX_PHOTO_SIDE = 4096
AS_PHOTOGRAPHED = "As photographed"


class Deformer:
    """Vertices for emotion sliders and blendshape weights, fast enough for every slider tick.

    Emotions -> ARKit weights through the EMFACS torch module, plus the avatar's direct
    ``expression`` weights (a preset such as "As photographed"), clamped to [0, 1]; then
    ``rest + w[active] @ basis[active]`` over the shapes that are on.
    """

    def __init__(self, avatar: Avatar):
        from engines.avatar.arkit import ARKIT_NAMES

        m = avatar.mesh
        self.names = [n for n in ARKIT_NAMES if n in m.morph_targets]
        self.neutral = m.vertices.astype(np.float32).ravel()
        self.basis = (
            np.stack([m.morph_targets[n].ravel() for n in self.names]).astype(np.float32)
            if self.names
            else np.zeros((0, self.neutral.size), np.float32)
        )  # a head without a basis stays neutral
        self.n = len(m.vertices)
        self.avatar = avatar

    def weights(self, emotions: dict[str, float], expression: dict[str, float] | None = None) -> np.ndarray:
        w = np.zeros(len(self.names), np.float32)
        if any(float(v) for v in emotions.values()):
            from engines.avatar.arkit import ARKIT_NAMES
            from engines.avatar.emotions import emotion_to_expression

            e = emotion_to_expression(emotions)
            w += np.array([e[ARKIT_NAMES.index(n)] for n in self.names], np.float32)
        expr = self.avatar.expression if expression is None else expression
        for k, v in (expr or {}).items():
            if k in self.names:
                w[self.names.index(k)] += float(v)
        return np.clip(w, 0.0, 1.0)

    def vertices(self, emotions: dict[str, float], expression: dict[str, float] | None = None) -> np.ndarray:
        w = self.weights(emotions, expression)
        on = np.flatnonzero(w > 1e-4)
        if not len(on):
            return self.neutral.reshape(self.n, 3).copy()
        return (self.neutral + w[on] @ self.basis[on]).reshape(self.n, 3)


def warm_up() -> None:
    """Load what a first avatar needs (MediaPipe graphs, the head model, torch's emotion
    module) ahead of time, e.g. in a background job when the app opens: the first run then
    takes as long as later ones."""
    from engines.avatar import landmarks
    from engines.avatar.arkit import arkit_basis
    from engines.avatar.emotions import emotion_module
    from engines.avatar.fit import landmark_model
    from engines.avatar.ict import render_layout

    landmarks.warm_up()
    render_layout()
    arkit_basis()
    landmark_model()
    emotion_module()


LIP_PAIRS = ((13, 14), (82, 87), (312, 317), (81, 178), (311, 402))
"""Upper and lower inner-lip landmarks facing each other across the mouth line."""


def seal_lips(V: np.ndarray, basis: np.ndarray, overlap_cm: float = 0.02) -> np.ndarray:
    """The rest face with the lips just touching.

    The model's neutral mouth is parted by about 0.8 mm, and identities vary it: the teeth
    then show through as a white seam between closed lips. ARKit's ``mouthClose`` (lips
    together, jaw still) is added at the small weight that brings the inner lips together.
    """
    from engines.avatar.arkit import ARKIT_NAMES
    from engines.avatar.correspondence import landmark_points

    close = basis[ARKIT_NAMES.index("mouthClose")]
    up, lo = np.array(LIP_PAIRS).T
    L, D = landmark_points(V), landmark_points(close)
    gap = float(np.mean(L[up, 1] - L[lo, 1]))
    rate = float(np.mean(D[lo, 1] - D[up, 1]))
    if rate <= 0 or gap + overlap_cm <= 0:
        return V
    w = min((gap + overlap_cm) / rate, 0.15)
    return V + np.float32(w) * close


def scalp_vertices(model, V: np.ndarray, layout) -> np.ndarray:
    """Render-vertex indices of the skin where hair may grow: above a line from the top of
    the face oval (MediaPipe landmark 10, about the hairline) back and down to the nape."""
    from engines.avatar.correspondence import landmark_points

    L = landmark_points(V)
    front_y, front_z = float(L[10, 1]), float(L[10, 2])
    back_z = float(V[model.part("head_and_neck"), 2].min())
    ear_y = float(L[[234, 454], 1].mean())
    p = V[layout.src]
    s = np.clip((front_z - p[:, 2]) / (front_z - back_z), 0, 1)
    line = (front_y + 2.0) * (1 - s) ** 2 + (ear_y - 3.0) * (1 - (1 - s) ** 2)
    head = layout.group == list(GROUP_NAMES).index("head")
    return np.flatnonzero(head & (p[:, 1] > line))


def hairstyle_choices() -> list[str]:
    """``none``, ``auto`` (matched to the photo) and the library's strand styles."""
    from engines.hair.recipe import list_styles, recipes

    return ["none", "auto", *(n for n in list_styles() if not recipes()[n].is_bald)]


def hairstyle_icon(style: str) -> str | None:
    """The library thumbnail of a style (front and three-quarter), if there is one."""
    from engines.hair.recipe import styles_dir

    p = styles_dir() / "thumbs" / f"{'bald' if style == 'none' else style}.png"
    return str(p) if p.is_file() else None


def hair_colour_presets() -> dict[str, str]:
    from engines.hair.color import PRESETS

    return dict(PRESETS)


POOR_FIT_PCT = 8.0
"""Landmark fit error (rms, % of the eye distance) above which the face is questioned: real
photos give 2-5 %, drawings and cartoons (eyes and mouth off human proportions) more."""
TURNED_DEG = 40.0
"""Head turn above which the note says the far side is made up."""
SMALL_IOD_PX = 30.0
"""Eye distance (px) below which the note says the texture will be soft."""


def fit_notes(fit, iod_px: float, source: str) -> list[str]:
    """What the user should know about how the face was measured: a poor landmark fit (a
    drawing, a cartoon), a strongly turned face, a small face."""
    notes = []
    err = float(fit.rms_px / max(iod_px, 1e-6) * 100)
    if err > POOR_FIT_PCT:
        notes.append(
            f"The head model fits the face in {source} poorly (landmark error {err:.1f} % of the "
            "eye distance; photos give 2-5 %): is it a drawing, a cartoon or a mask? The avatar is a "
            "human head and may not look like it; a photo of a real face works best."
        )
    if abs(fit.yaw_deg) > TURNED_DEG:
        notes.append(
            f"The face in {source} is turned {abs(fit.yaw_deg):.0f} degrees: the far side of the "
            "head is filled in by mirroring and looks less like the person; a more frontal photo "
            "gives a better avatar."
        )
    if iod_px < SMALL_IOD_PX:
        notes.append(
            f"The face in {source} is small ({iod_px:.0f} px between the eyes): the texture is "
            "soft and fine features are lost; a closer or higher-resolution photo gives more detail."
        )
    return notes


class AvatarEngine(Engine):
    """A textured, rigged 3D head with ARKit blendshapes and emotion sliders from one portrait."""

    name = "avatar"
    title = "Make avatar"
    description = (
        "One portrait photo to a full 3D head: the ICT statistical head model fitted to the face "
        "(pose, focal, identity, expression), the photo baked into its texture, the person's neutral "
        "face at rest, 52 ARKit blendshapes, six emotion sliders and a neck/head/jaw/eye rig."
    )
    accepts = (Image,)
    produces = (Avatar,)
    writers = {
        ".glb": [("Avatar", "engines.avatar.export:write_avatar_glb")],
        ".obj": [("Avatar", "engines.avatar.export:write_avatar_obj")],
        ".zip": [("Avatar", "engines.avatar.export:write_avatar_bundle")],
    }
    readers = {".zip": "engines.avatar.export:read_avatar_bundle"}
    # the app's own modules, imported only by the app (a plug-in names its own GUI modules)
    renderers = {"Avatar": "app.renderers:draw_avatar"}
    panels = {"Avatar": "app.avatar_panel:AvatarPanel"}
    input_readers = {
        "Avatar": {".glb": "engines.avatar.reader:read_avatar", ".zip": "engines.avatar.reader:read_avatar"}
    }

    class Params(BaseModel):
        ipd_mm: float = Field(63.0, ge=50.0, le=80.0, description="Interpupillary distance (sets the metric scale), mm")
        focal_from_exif: bool = Field(
            True, description="Use the photo's 35 mm-equivalent focal length when EXIF has one"
        )
        texture_size: Literal[1024, 2048, 4096] = Field(2048, description="Texture atlas size in pixels")
        texture_lighting: Literal["even", "as_photographed"] = Field(
            "even",
            description="'even': the photo's light and shade taken out of the skin (the viewport, "
            "Blender or a game engine light the head); 'as_photographed': kept, for unlit use",
        )
        glasses: Literal["leave_out", "keep"] = Field(
            "leave_out",
            description="'leave_out': eyeglass frames found on the face are not baked into the skin "
            "(filled with the skin around them); 'keep': baked as photographed",
        )
        expression: Literal["neutral", "as_photographed"] = Field(
            "neutral", description="Start from the neutral face, or from the photo's own expression"
        )
        happiness: float = Field(0.0, ge=0.0, le=1.0, description="Initial happiness (0..1)")
        anger: float = Field(0.0, ge=0.0, le=1.0, description="Initial anger (0..1)")
        sadness: float = Field(0.0, ge=0.0, le=1.0, description="Initial sadness (0..1)")
        fear: float = Field(0.0, ge=0.0, le=1.0, description="Initial fear (0..1)")
        contempt: float = Field(0.0, ge=0.0, le=1.0, description="Initial contempt (0..1)")
        surprise: float = Field(0.0, ge=0.0, le=1.0, description="Initial surprise (0..1)")
        hairstyle: Annotated[str, Choices(hairstyle_choices, icon=hairstyle_icon)] = Field(
            "none", description="Hairstyle from the hair library ('none' for a bald head, 'auto' to match the photo)"
        )
        hair_color: Annotated[str, Colour(hair_colour_presets)] = Field(
            "auto",
            description="Hair colour as #rrggbb or a preset name; 'auto' = measured "
            "from the photo's hair (a dark brown when none can be measured)",
        )
        face_index: int = Field(
            0,
            ge=0,
            le=99,
            description="Which face when the photo shows several: 0 = the largest, 1 = the next largest, ...",
        )
        measure_quality: bool = Field(
            False,
            description="Also render from the photo camera and report PSNR, SSIM, "
            "landmark re-detection and +-30 degree detection (about 1 s more)",
        )

    def run(self, inputs, params, progress, cancel: CancelToken) -> Result:
        import cv2

        from engines.avatar import landmarks
        from engines.avatar.arkit import ARKIT_NAMES, arkit_basis
        from engines.avatar.bake import bake_texture
        from engines.avatar.correspondence import landmark_points
        from engines.avatar.emotions import EMOTIONS, emfacs_matrix
        from engines.avatar.fit import FitOptions, fit_head, identity_vertices
        from engines.avatar.ict import GROUPS, load_model, render_layout
        from engines.avatar.rig import build_rig

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
            lm = landmarks.detect_landmarks(photo, source, face_index=params.face_index)
        res.notes += lm.notes
        scores = getattr(lm, "blendshapes", None)
        progress(0.25, "Fitting the head model")
        cancel.raise_if_set()
        with res.stage("fit"):
            model = load_model()
            layout = render_layout()
            basis = arkit_basis()
            focal = None
            f35 = img.exif.get("FocalLengthIn35mmFilm") if params.focal_from_exif else None
            if isinstance(f35, (int, float)) and f35 > 0:
                focal = float(f35) / 36.0 * max(w, h)
            fit = fit_head(lm.xy, (w, h), z=lm.z, scores=scores, options=FitOptions(focal_px=focal))
            if abs(fit.yaw_deg) > 60:
                raise EngineError(
                    f"The face in {source} is turned {abs(fit.yaw_deg):.0f} degrees away from the camera; "
                    "the avatar needs a photo within about 60 degrees of frontal."
                )
            res.notes += fit_notes(fit, lm.iod_px, source)
            V_cm = seal_lips(identity_vertices(fit.identity), basis)
            L = landmark_points(V_cm)
            ipd_cm = float(np.linalg.norm(L[468] - L[473]))
            scale = params.ipd_mm / 10.0 / ipd_cm * 0.01  # model cm -> metres at the requested IPD
            V = (V_cm * scale).astype(np.float32)
            R, t = fit.R, fit.t * scale
            photographed = fit.expression_dict()
        progress(0.45, "Baking the texture")
        cancel.raise_if_set()
        with res.stage("texture"):
            # the photo's own expression is what the camera saw: bake on the posed head
            posed = V + np.tensordot(fit.expression, basis, 1) * scale
            baked = bake_texture(
                posed,
                fit.K,
                R,
                t,
                photo,
                lm.xy,
                size=int(params.texture_size),
                delight=params.texture_lighting == "even",
                leave_out_glasses=params.glasses == "leave_out",
            )
        progress(0.75, "Expressions and rig")
        cancel.raise_if_set()
        with res.stage("expressions"):
            src = layout.src
            targets = {}
            for k, n in enumerate(ARKIT_NAMES):
                d = (basis[k][src] * scale).astype(np.float32)
                d[np.abs(d).max(1) < 2e-5] = 0.0  # under 0.02 mm is the model's float16 noise: keeps files sparse
                targets[n] = d
            # one morph target per emotion at 100 %: the EMFACS weight column over the ARKit shapes
            ew = emfacs_matrix().T  # 6 x 52
            B = np.stack([targets[n] for n in ARKIT_NAMES])
            for j, emo in enumerate(EMOTIONS):
                targets[emo] = np.tensordot(ew[j], B, axes=1).astype(np.float32)
            skeleton, joints, weights = build_rig(model, V_cm, scale)
        groups = {g: layout.group_faces(g) for g in GROUPS}
        mesh = Mesh(
            V[src],
            layout.faces,
            uv=layout.uv,
            texture=baked.texture,
            morph_targets=targets,
            name="head",
            face_groups=groups,
            joints=joints[src],
            weights=weights[src],
        )
        mesh.compute_normals()
        emotions = {e: float(getattr(params, e)) for e in EMOTIONS}
        cam = {"K": fit.K, "R": R, "t": t, "image_size": (w, h)}
        avatar = Avatar(
            mesh=mesh,
            emotions=emotions,
            camera=cam,
            scalp=scalp_vertices(model, V_cm, layout),
            photo=photo,
            skeleton=skeleton,
            presets={AS_PHOTOGRAPHED: photographed},
            expression=dict(photographed) if params.expression == "as_photographed" else {},
            params={
                "ipd_mm": params.ipd_mm,
                "focal_px": float(fit.K[0, 0]),
                "yaw_deg": fit.yaw_deg,
                "source": str(img.path) if img.path else None,
                "hairstyle": params.hairstyle,
                "hair_color": params.hair_color,
                "shape_names": list(ARKIT_NAMES),
                "identity": [round(float(x), 4) for x in fit.identity],
                "head_model": "ICT Face Model Light (USC ICT, MIT)",
                "face_box": [float(x) for x in (*lm.xy.min(0), *lm.xy.max(0))],
                "face_index": int(lm.face_index),
                "faces": [list(map(int, b)) for b in lm.faces],
            },
            name=(img.path.stem if img.path is not None else "avatar"),
        )
        if params.hairstyle != "none":
            with res.stage("hair"):
                try:
                    from engines.hair import apply_hair
                except ImportError:
                    res.notes.append("Hair is not available in this build; the head is left bald.")
                else:
                    avatar = apply_hair(avatar, params.hairstyle, params.hair_color, photo)
        if scores is None:
            res.notes.append(
                "The photo's expression was measured from landmarks only (the blendshape "
                "model found no face on the crop)."
            )
        if baked.glasses_found:
            res.notes.append(
                "Eyeglass frames were found and left out of the skin texture (filled with the skin "
                "around them); the lenses are baked as photographed. Set glasses to 'keep' to bake "
                "the frames too."
            )
        iod = lm.iod_px
        res.metrics.update(
            {
                "glasses_found": bool(baked.glasses_found),
                "faces_found": lm.faces_found,
                "landmarks": int(len(lm.xy)),
                "reprojection_error_pct_iod": float(fit.rms_px / iod * 100),
                "fit_rms_px": fit.rms_px,
                "focal_px": float(fit.K[0, 0]),
                "yaw_deg": fit.yaw_deg,
                "vertices": int(len(mesh.vertices)),
                "triangles": int(len(mesh.faces)),
                "texture_px": int(baked.texture.shape[0]),
                "face_texels_seen": float(baked.seen_fraction),
                "interocular_px": iod,
                "morph_targets": len(targets),
                "joints": len(skeleton.names),
                "photo_expression": {
                    k: round(v, 3) for k, v in sorted(photographed.items(), key=lambda kv: -kv[1])[:8]
                },
            }
        )
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
