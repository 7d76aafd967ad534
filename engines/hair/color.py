"""Hair colour: parsing, presets, per-strand variation and the darkened scalp.

Real hair is never one colour: each strand gets a small random change of lightness and
warmth (in the spirit of the melanin-based variation of d'Eon et al., "An Energy-Conserving
Hair Reflectance Model", EGSR 2011, reduced here to an RGB jitter). Under thin hair the
skin would shine through, so the head's texture (or vertex colours) on the scalp is
blended towards a darker version of the hair colour, feathered at the hairline.
"""

from __future__ import annotations

import numpy as np

from engines.api import EngineError

PRESETS: dict[str, str] = {
    "black": "#1c1714",
    "dark brown": "#3b2619",
    "brown": "#6a4328",
    "auburn": "#7e3519",
    "ginger": "#b5572a",
    "blonde": "#c9a469",
    "platinum": "#e2d6bb",
    "grey": "#9b9792",
    "white": "#ebe8e2",
}


def parse_color(color: str | tuple | list | np.ndarray) -> np.ndarray:
    """``#rrggbb``, ``rrggbb``, a preset name or an RGB triple -> uint8 RGB."""
    if isinstance(color, (tuple, list, np.ndarray)):
        c = np.asarray(color, float)
        if c.shape != (3,):
            raise EngineError(f"Hair colour {color!r} must have three values (R, G, B).")
        return np.clip(c * (255 if c.max() <= 1.0 else 1), 0, 255).astype(np.uint8)
    s = str(color).strip().lower()
    if s in PRESETS:
        s = PRESETS[s]
    s = s.lstrip("#")
    if len(s) == 6:
        try:
            return np.array([int(s[i : i + 2], 16) for i in (0, 2, 4)], np.uint8)
        except ValueError:
            pass
    raise EngineError(
        f"Hair colour '{color}' is not understood: use #rrggbb (e.g. #3b2619) or one of {', '.join(PRESETS)}."
    )


def to_hex(rgb) -> str:
    r, g, b = (int(x) for x in np.asarray(rgb).reshape(3))
    return f"#{r:02x}{g:02x}{b:02x}"


def strand_colors(base: np.ndarray, n: int, seed: int = 0, variation: float = 0.12) -> np.ndarray:
    """n strand colours around ``base``: lightness and warmth jitter, a few lighter strands."""
    rng = np.random.default_rng(seed)
    b = base.astype(float)
    light = 1 + variation * rng.normal(size=(n, 1))
    light = np.where(rng.uniform(size=(n, 1)) < 0.04, light * 1.25, light)  # sun-lightened strands
    warm = variation * 0.4 * rng.normal(size=(n, 1)) * np.array([[1.0, 0.2, -0.8]])
    lift = 12 * np.abs(rng.normal(size=(n, 1)))  # dark hair still shows some sheen
    c = b * light + warm * np.maximum(b.mean(), 40) + lift * (b.mean() < 60)
    return np.clip(c, 0, 255).astype(np.uint8)


def scalp_weights(n_vertices: int, faces: np.ndarray, scalp: np.ndarray, rounds: int = 2) -> np.ndarray:
    """1 on the scalp, fading to 0 over a few rings of neighbours (a feathered hairline)."""
    w = np.zeros(n_vertices)
    w[scalp] = 1.0
    for _ in range(rounds):
        acc = np.zeros(n_vertices)
        cnt = np.zeros(n_vertices)
        for k in range(3):
            fw = w[faces].mean(1)
            np.add.at(acc, faces[:, k], fw)
            np.add.at(cnt, faces[:, k], 1)
        w = np.maximum(w * (w >= 1.0), acc / np.maximum(cnt, 1))
    return np.clip(w, 0, 1)


def darken_scalp(mesh, scalp: np.ndarray, hair_rgb: np.ndarray, strength: float = 0.85, cache: dict | None = None):
    """Texture and vertex colours with the scalp blended towards a darker hair colour.

    Returns (texture or None, vertex_colors or None); inputs are not modified, so calling
    it again with another colour never darkens twice. ``cache`` (a dict kept per head)
    stores the feathered scalp mask in texture space, which only depends on the head.
    """
    target = hair_rgb.astype(np.int32) * 7 // 10
    cache = {} if cache is None else cache
    if "w" not in cache:
        cache["w"] = scalp_weights(len(mesh.vertices), mesh.faces, np.asarray(scalp)) * strength
    w = cache["w"]
    done = cache.setdefault("done", {})
    ck = (id(mesh.texture), id(mesh.vertex_colors), tuple(int(x) for x in target))
    if ck in done and done[ck][0] is mesh.texture and done[ck][1] is mesh.vertex_colors:
        # Same head colours, same hair colour: the very same arrays (style switches), so the
        # viewport can tell that the skin did not change and redraw only the hair.
        return done[ck][2], done[ck][3]
    vc = None
    if mesh.vertex_colors is not None:
        base = mesh.vertex_colors[:, :3].astype(float)
        vc = mesh.vertex_colors.copy()
        vc[:, :3] = np.clip(base * (1 - w[:, None]) + target * w[:, None], 0, 255).astype(np.uint8)
    tex = None
    if mesh.texture is not None and mesh.uv is not None and len(mesh.uv) == len(mesh.vertices):
        t = mesh.texture
        key = ("tex", t.shape)
        if key not in cache:
            cache[key] = _texture_alpha(mesh, w, t.shape[:2])
        idx, a = cache[key]
        flat = t.reshape(-1, t.shape[2] if t.ndim == 3 else 1)
        out = t.copy()
        oflat = out.reshape(flat.shape)
        top = 65535 if t.dtype == np.uint16 else 255
        tgt = target * (257 if top == 65535 else 1)
        sub = flat[idx, :3].astype(np.int64)
        oflat[idx, :3] = ((sub * (255 - a) + tgt * a + 127) // 255).astype(t.dtype)
        tex = out
    while len(done) >= 3:
        done.pop(next(iter(done)))
    done[ck] = (mesh.texture, mesh.vertex_colors, tex, vc)
    return tex, vc


def _texture_alpha(mesh, w: np.ndarray, shape: tuple[int, int]):
    """Flat indices and 0..255 weights of the texels under the (feathered) scalp."""
    import cv2

    h, wd = shape
    alpha = np.zeros((h, wd), np.float32)
    cover = np.zeros((h, wd), np.float32)
    uv = mesh.uv.astype(float)
    px = np.stack([uv[:, 0] * (wd - 1), (1 - uv[:, 1]) * (h - 1)], 1)
    fw = w[mesh.faces].mean(1)
    sel = np.nonzero(fw > 0.01)[0]
    tri = np.round(px[mesh.faces[sel]] * 4).astype(np.int32)
    for i, f in enumerate(sel):
        cv2.fillConvexPoly(alpha, tri[i], float(fw[f]), cv2.LINE_8, 2)
        cv2.fillConvexPoly(cover, tri[i], 1.0, cv2.LINE_8, 2)
    # a normalised blur (the texels outside the triangles do not count): where the scalp meets
    # a UV seam (the face tile's top edge against the back of the head) the mask keeps its
    # value up to the island's border and a few texels beyond it, instead of fading out there
    # and leaving a line of skin between the two sides of the seam
    k = max(3, int(round(min(h, wd) / 128)) * 2 + 1)
    den = cv2.GaussianBlur(cover, (k, k), 0)
    alpha = np.where(den > 0.02, cv2.GaussianBlur(alpha, (k, k), 0) / np.maximum(den, 1e-6), 0.0).reshape(-1)
    idx = np.nonzero(alpha > 0.004)[0]
    return idx, np.round(alpha[idx] * 255).astype(np.int64)[:, None]
