"""Strand hair for avatars: a JSON hairstyle library, fitting to the head, photo matching.

Public API::

    apply_hair(avatar, style, color, photo_rgb=None) -> Avatar   # new Avatar, input untouched
    list_styles() -> list[str]                                    # "bald" + strand styles
    fit_style(avatar, style, color="dark brown") -> Strands       # one style on one head
    match_hair(avatar, photo_rgb) -> HairMatch                    # top styles by silhouette IoU

``style`` is a style name, ``"none"``/``"bald"`` (no hair) or ``"auto"`` (the style whose
silhouette from the photo's camera best matches the hair segmented in the photo; needs a
photo and ``avatar.camera``). ``color`` is ``#rrggbb``, a preset name (see
:data:`engines.hair.color.PRESETS`) or ``"auto"`` (the median colour of the hair segmented
in the photo, for ``auto`` and named styles alike; :data:`DEFAULT_COLOR`, a dark brown, when
there is no photo or too little hair in it to measure).

``avatar.params`` gains ``hairstyle``, ``hair_color``, ``hair_strands``, for an ``auto``
colour ``hair_color_source`` (``photo`` or ``default``), and, for ``auto``, ``hair_match``
(top three ``{"style", "iou"}``) and ``hair_photo`` (measured colour, length below the
chin, volume, fringe coverage); the avatar engine copies these into its result metrics. Modules: recipe (JSON schema), generate (strands on the
canonical head), head (fitting and collision), color, photo (hair segmentation),
match (silhouette matching), render (software previews and silhouettes).
"""  # noqa: E501

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict

import numpy as np

from engines.api import EngineError
from engines.hair.recipe import get_recipe, list_styles, recipes
from engines.types import Avatar, Mesh, Strands

__all__ = ["apply_hair", "list_styles", "fit_style", "match_hair", "is_cached", "recipes", "NO_HAIR"]

NO_HAIR = ("none", "bald", "")
DEFAULT_COLOR = "#3b2619"
"""A typical dark brown (the "dark brown" preset): ``auto`` colour when the photo gives none."""
MIN_COLOR_PIXELS = 200
"""Fewest segmented hair pixels from which the photo's hair colour is trusted."""
MIN_HAIR_FRACTION = 0.08
"""... and the fewest relative to the face (segmented hair area / face-oval area): less is a
bald or close-cropped head, whose few "hair" pixels are mostly scalp and stubble."""
MIN_SKIN_DELTA_E = 12.0
"""... and the hair colour must stand apart from the skin: its CIE76 colour difference from
the cheeks' mean colour at least this (a just-noticeable difference is about 2.3; skin
tones across one face span about 5-10); closer, the "hair" is skin (a bald head, a scalp
under stubble) and Auto falls back to the default colour. The same difference from the
background's mean colour beside the head: closer, the segmentation took the background."""


def measured_color(measurements: dict) -> str | None:
    """The photo's hair colour (#rrggbb) when the segmentation measured enough real hair:
    enough pixels, enough relative to the face, and not skin-coloured; else None."""
    m = measurements or {}
    if int(m.get("hair_pixels", 0)) < MIN_COLOR_PIXELS:
        return None
    if float(m.get("hair_fraction", 1.0)) < MIN_HAIR_FRACTION:
        return None
    if float(m.get("skin_delta_e", np.inf)) < MIN_SKIN_DELTA_E:
        return None
    if float(m.get("background_delta_e", np.inf)) < MIN_SKIN_DELTA_E:
        return None  # what was segmented looks like the background beside the head
    return m.get("color")


_lock = threading.Lock()
"""Guards the caches: the picker may fit one style in a job while the UI switches to a cached one."""
_fitted: OrderedDict = OrderedDict()
"""(head fit, recipe) -> fitted strand points: switching back to a style is instant."""


def _head(avatar: Avatar) -> tuple[Mesh, np.ndarray | None]:
    if avatar.mesh is None or len(avatar.mesh.vertices) == 0:
        raise EngineError("The avatar has no head mesh: make the avatar from a portrait first, then add hair.")
    return avatar.mesh, avatar.scalp


def fit_style(avatar: Avatar, style: str, color="dark brown", seed: int = 0) -> Strands:
    """Generate a style (cached) and fit it to the avatar's head."""
    from engines.hair.color import parse_color, strand_colors
    from engines.hair.generate import generate
    from engines.hair.head import fit_strands, head_fit

    r = get_recipe(style)
    mesh, scalp = _head(avatar)
    if r.is_bald:
        return Strands(np.zeros((0, r.points, 3), np.float32), np.zeros((0, 3), np.uint8), name="hair")
    hf = head_fit(mesh, scalp, avatar.camera)
    from engines.hair.generate import recipe_key

    key = (hf.key, recipe_key(r))
    with _lock:
        pts = _fitted.get(key)
    if pts is None:
        pts, keep = fit_strands(generate(r), hf, standoff=r.standoff)
        pts = pts[keep]
        pts.setflags(write=False)
        with _lock:
            _fitted[key] = pts
            while len(_fitted) > 24:
                _fitted.popitem(last=False)
    cols = strand_colors(parse_color(color), len(pts), seed=seed + r.seed)
    return Strands(pts, cols, name="hair")


def is_cached(avatar: Avatar, style: str) -> bool:
    """True when ``apply_hair(avatar, style, ...)`` will not need to fit (a quick switch)."""
    from engines.hair.generate import recipe_key
    from engines.hair.head import cached_head_key

    s = (style or "none").strip().lower()
    if s in NO_HAIR:
        return True
    if s == "auto":
        return False
    r = get_recipe(s)
    if r.is_bald:
        return True
    hk = cached_head_key(avatar.mesh, avatar.scalp, avatar.camera)
    with _lock:
        return hk is not None and (hk, recipe_key(r)) in _fitted


def match_hair(avatar: Avatar, photo_rgb: np.ndarray):
    """Segment the hair in the photo and rank the library styles by silhouette IoU."""
    from engines.hair.match import match_photo

    return match_photo(avatar, photo_rgb)


def _photo_color(avatar: Avatar, photo_rgb: np.ndarray | None, style: str, params: dict) -> tuple[str, str]:
    """``hair_color=auto`` with a named style: the median colour of the hair segmented in the
    portrait, or :data:`DEFAULT_COLOR` (a typical dark brown) when there is no photo, the
    style is bald, or too few hair pixels were found to measure. Returns (colour, source)."""
    photo = photo_rgb if photo_rgb is not None else avatar.photo
    if style in NO_HAIR or photo is None or get_recipe(style).is_bald:
        return DEFAULT_COLOR, "default"
    from engines.hair.photo import segment_hair

    photo = np.asarray(photo)
    if photo.ndim != 3 or photo.shape[2] < 3 or photo.dtype != np.uint8:
        return DEFAULT_COLOR, "default"
    try:
        seg = segment_hair(np.ascontiguousarray(photo[..., :3]), face_index=int(avatar.params.get("face_index", 0)))
    except EngineError:
        return DEFAULT_COLOR, "default"
    params["hair_photo"] = seg.measurements
    c = measured_color(seg.measurements)
    return (DEFAULT_COLOR, "default") if c is None else (c, "photo")


def apply_hair(avatar: Avatar, style: str, color="dark brown", photo_rgb: np.ndarray | None = None) -> Avatar:
    """A copy of ``avatar`` wearing ``style`` in ``color``, its scalp darkened under the hair."""
    from engines.hair.color import darken_scalp, parse_color, to_hex

    style = (style or "none").strip().lower()
    params = dict(avatar.params)
    mesh = avatar.mesh
    base_tex, base_vc = getattr(mesh, "_hair_base", (mesh.texture, mesh.vertex_colors))
    if style == "auto":
        photo = photo_rgb if photo_rgb is not None else avatar.photo
        if photo is None:
            raise EngineError("hairstyle=auto needs the portrait: pass the photo, or choose a style by name.")
        m = match_hair(avatar, photo)
        style = m.best
        params["hair_match"] = [{"style": s, "iou": round(float(i), 4)} for s, i in m.top(3)]
        params["hair_photo"] = m.measurements
        if isinstance(color, str) and color.strip().lower() in ("auto", ""):
            c = measured_color(m.measurements)
            color = DEFAULT_COLOR if c is None else c
            params["hair_color_source"] = "default" if c is None else "photo"
    elif isinstance(color, str) and color.strip().lower() in ("auto", ""):
        color, params["hair_color_source"] = _photo_color(avatar, photo_rgb, style, params)
    rgb = parse_color(color)
    new_mesh = dataclasses.replace(mesh, texture=base_tex, vertex_colors=base_vc)
    new_mesh._hair_base = (base_tex, base_vc)
    if style in NO_HAIR or get_recipe(style).is_bald:
        strands = None
        style = "bald" if style == "bald" else "none"
    else:
        style = get_recipe(style).name
        strands = fit_style(avatar, style, rgb)
        if avatar.scalp is not None and len(avatar.scalp):
            from engines.hair.head import head_fit

            src = dataclasses.replace(mesh, texture=base_tex, vertex_colors=base_vc)
            tex, vc = darken_scalp(
                src, avatar.scalp, rgb, cache=head_fit(mesh, avatar.scalp, avatar.camera).alpha_cache
            )
            new_mesh.texture = tex if tex is not None else base_tex
            new_mesh.vertex_colors = vc if vc is not None else base_vc
    params["hairstyle"] = style
    params["hair_color"] = to_hex(rgb)
    params["hair_strands"] = 0 if strands is None else int(len(strands.points))
    return dataclasses.replace(avatar, mesh=new_mesh, hair=strands, params=params)
