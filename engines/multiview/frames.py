"""Input views for multi-view reconstruction: photos from a folder, or frames picked
from an orbit video.

Photos are decoded with their EXIF orientation applied, resized so that the long side is
at most ``max_size`` pixels (which also evens out mixed resolutions from one camera) and
checked for near-duplicates. A focal length prior is taken from EXIF only when it can be
trusted for the pixels we actually have: ``FocalLengthIn35mmFilm`` scales with any
resize, while ``FocalPlaneXResolution`` refers to the sensor's own pixel grid and is
wrong after a resize (the Sagrada Familia sample photos carry the 5184 px original's
value on 718 px images, a 7x too long focal length that stops COLMAP registering them).

Video frames are picked the way keyframe selectors in SLAM/SfM front ends do it
(e.g. ORB-SLAM's keyframe culling, COLMAP's video tutorial advice): cumulative image
motion from dense optical flow (Farneback 2003) gives the baseline along the orbit; the
orbit is cut into equal-motion segments and the sharpest frame of each segment
(variance of the Laplacian, Pech-Pacheco et al. 2000) is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engines.api import CancelToken, EngineError

MIN_VIEWS = 3


@dataclass
class View:
    """One working image: RGB uint8 at the working size, plus where it came from."""

    name: str
    rgb: np.ndarray
    source: str
    original_size: tuple[int, int]
    focal_px: float | None = None
    """Focal length prior in working pixels from trustworthy EXIF, else None."""
    notes: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        return int(self.rgb.shape[1]), int(self.rgb.shape[0])


def fixed_intrinsics(views: list[View], focal_px: float, cx: float = 0.0, cy: float = 0.0):
    """The pinhole ``(f, cx, cy)`` at the working size for SfM to hold fixed, from a focal
    length (and optionally a principal point) the user gave in pixels of the original photos
    (OpenCV's convention, pixel 0 centred at 0; COLMAP's, returned here, adds 0.5), or None
    when ``focal_px`` is 0 (estimated per photo). The photos must all have one size."""
    if focal_px <= 0:
        return None
    if len({v.original_size for v in views}) > 1:
        raise EngineError(
            "Known intrinsics (focal_px) need photos that all have the same size; "
            "these differ. Leave focal_px at 0 to estimate intrinsics per photo."
        )
    w0, h0 = views[0].original_size
    s = views[0].size[0] / w0
    return (
        focal_px * s,
        (cx + 0.5) * s if cx > 0 else w0 / 2.0 * s,
        (cy + 0.5) * s if cy > 0 else h0 / 2.0 * s,
    )


def sharpness(gray: np.ndarray) -> float:
    """Variance of the Laplacian: high for sharp images, low for blurred ones."""
    import cv2

    return float(cv2.Laplacian(gray, cv2.CV_32F).var())


def resize_long_side(rgb: np.ndarray, max_size: int) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    s = max_size / max(h, w)
    if s >= 1.0:
        return np.ascontiguousarray(rgb)
    return cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)


def exif_focal_px(exif: dict, width: int, height: int, original: tuple[int, int]) -> tuple[float | None, str]:
    """Focal length in pixels of a ``width`` x ``height`` working image, from EXIF tags
    (by name), or (None, reason) when EXIF has nothing we can trust."""
    f35 = exif.get("FocalLengthIn35mmFilm")
    if f35:
        return float(f35) / 36.0 * max(width, height), "EXIF 35 mm equivalent focal length"
    f_mm, res, unit = (
        exif.get("FocalLength"),
        exif.get("FocalPlaneXResolution"),
        exif.get("FocalPlaneResolutionUnit", 2),
    )
    if not (f_mm and res):
        return None, "no EXIF focal length"
    mm_per_unit = {2: 25.4, 3: 10.0, 4: 1.0}.get(int(unit), 25.4)
    sensor_px = exif.get("PixelXDimension") or original[0]
    sensor_mm = float(original[0]) / float(res) * mm_per_unit
    # A resized photo keeps the original's focal-plane resolution: the implied sensor
    # comes out tiny, or the recorded pixel width no longer matches the file.
    if int(sensor_px) != int(original[0]) or sensor_mm < 4.0:
        return None, "EXIF focal length ignored: the photo was resized after it was taken"
    f_px = float(f_mm) * float(res) / mm_per_unit * (max(width, height) / max(original))
    return f_px, "EXIF focal length and focal-plane resolution"


def _read_photo(path: Path, max_size: int) -> tuple[np.ndarray, dict, tuple[int, int]]:
    from PIL import Image as PILImage, ImageOps
    from PIL.ExifTags import TAGS

    try:
        with PILImage.open(path) as im:
            raw = im.getexif()
            tags = {TAGS.get(k, k): v for k, v in raw.items()}
            tags.update({TAGS.get(k, k): v for k, v in raw.get_ifd(0x8769).items()})
            w, h = im.size
            im.draft("RGB", (max_size, max_size))  # JPEG: decode at 1/2, 1/4 or 1/8 scale when enough
            im = ImageOps.exif_transpose(im)
            rgb = np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as e:
        raise EngineError(f"{path.name}: cannot read this image ({e}); re-save it as JPEG or PNG.") from None
    if tags.get("Orientation", 1) in (5, 6, 7, 8):  # EXIF sizes are before rotation
        tags["PixelXDimension"], tags["PixelYDimension"] = tags.get("PixelYDimension"), tags.get("PixelXDimension")
        w, h = h, w
    return rgb, tags, (w, h)


def load_photos(paths: list[Path], max_size: int, cancel: CancelToken | None = None) -> tuple[list[View], list[str]]:
    """Read and resize photos; returns views and notes for the user."""
    views, notes = [], []
    for p in paths:
        if cancel is not None:
            cancel.raise_if_set()
        p = Path(p)
        rgb, exif, orig = _read_photo(p, max_size)
        small = resize_long_side(rgb, max_size)
        f, why = exif_focal_px(exif, small.shape[1], small.shape[0], orig)
        v = View(p.name, small, str(p), orig, f)
        v.notes.append(why)
        views.append(v)
    sizes = sorted({v.original_size for v in views})
    if len(sizes) > 1:
        ratios = {round(max(s) / min(s), 2) for s in sizes}
        notes.append(
            f"The photos have {len(sizes)} different resolutions; all were scaled to "
            f"{max_size} px on the long side"
            + ("." if len(ratios) == 1 else " and each gets its own camera intrinsics (different aspect ratios).")
        )
    return views, notes


def _thumb(rgb: np.ndarray, size: int = 96) -> np.ndarray:
    import cv2

    g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    h, w = g.shape
    s = size / max(h, w)
    return cv2.resize(g, (max(8, round(w * s)), max(8, round(h * s))), interpolation=cv2.INTER_AREA)


def drop_duplicates(views: list[View], threshold: float = 1.5) -> tuple[list[View], list[str]]:
    """Remove views that are (nearly) pixel-identical to an earlier one: a zero baseline
    gives no depth and confuses two-view initialisation. ``threshold`` is the mean
    absolute grey difference (0-255) on 96 px thumbnails."""
    keep, dropped = [], []
    thumbs: list[np.ndarray] = []
    for v in views:
        t = _thumb(v.rgb).astype(np.float32)
        dup = next((k for k, u in zip(keep, thumbs) if u.shape == t.shape and np.abs(u - t).mean() < threshold), None)
        if dup is None:
            keep.append(v)
            thumbs.append(t)
        else:
            dropped.append(f"{v.name} (same as {dup.name})")
    notes = [f"Skipped {len(dropped)} duplicated image(s): {', '.join(dropped)}."] if dropped else []
    return keep, notes


def _video_frames(path: Path, step: int):
    import cv2

    from engines.io.video import open_capture

    cap = open_capture(path)
    i = 0
    try:
        while True:
            ok = cap.grab()
            if not ok:
                break
            if i % step == 0:
                ok, bgr = cap.retrieve()
                if ok:
                    yield i, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            i += 1
    finally:
        cap.release()


def pick_video_frames(
    clip,
    max_size: int,
    min_frames: int = 20,
    max_frames: int = 80,
    max_candidates: int = 400,
    cancel: CancelToken | None = None,
) -> tuple[list[View], list[str]]:
    """Pick sharp, well-spread frames from an orbit video (see the module docstring)."""
    import cv2

    step = max(1, int(np.ceil(max(clip.frame_count, 1) / max_candidates)))
    idx, sharp, motion, frames = [], [], [0.0], []
    prev = None
    for i, rgb in _video_frames(Path(clip.path), step):
        if cancel is not None:
            cancel.raise_if_set()
        small = resize_long_side(rgb, max_size)
        t = _thumb(rgb, 160)
        idx.append(i)
        sharp.append(sharpness(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)))
        frames.append(small)
        if prev is not None:
            flow = cv2.calcOpticalFlowFarneback(prev, t, None, 0.5, 3, 15, 3, 5, 1.2, 0)
            mag = np.linalg.norm(flow, axis=2)
            # flow is only measurable where there is texture; a plain backdrop reads as still
            gx, gy = cv2.Sobel(prev, cv2.CV_32F, 1, 0), cv2.Sobel(prev, cv2.CV_32F, 0, 1)
            textured = np.hypot(gx, gy) > 20
            m = float(mag[textured].mean()) if textured.sum() > 30 else float(np.median(mag))
            motion.append(m / t.shape[1])
        prev = t
    if len(frames) < MIN_VIEWS:
        raise EngineError(
            f"{Path(clip.path).name}: only {len(frames)} frame(s) could be read; "
            f"multi-view reconstruction needs a video of at least {MIN_VIEWS} frames."
        )
    cum = np.cumsum(motion)
    total = float(cum[-1])
    # Below ~15 % of the frame width of motion in all there is no baseline to triangulate.
    if total < 0.15:
        raise EngineError(
            f"{Path(clip.path).name}: the camera hardly moves ({total * 100:.0f} % of the frame width "
            "over the whole video). Walk around the object while filming (an orbit)."
        )
    # About one frame per 4 % of the frame width of motion, within min..max frames.
    n = int(np.clip(round(total / 0.04), min_frames, max_frames))
    n = min(n, len(frames))
    edges = np.linspace(0.0, total, n + 1)
    seg = np.clip(np.searchsorted(edges, cum, side="right") - 1, 0, n - 1)
    chosen = []
    for s in range(n):
        members = np.flatnonzero(seg == s)
        if members.size:
            chosen.append(int(members[np.argmax(np.asarray(sharp)[members])]))
    views = [
        View(
            f"frame_{idx[c]:06d}.png",
            frames[c],
            f"{Path(clip.path).name} frame {idx[c]}",
            (int(clip.width), int(clip.height)),
        )
        for c in chosen
    ]
    med = float(np.median(sharp))
    notes = [
        f"Picked {len(views)} of {len(frames)} candidate frames (every {step}th of "
        f"{clip.frame_count}) by motion and sharpness; median sharpness {med:.0f}."
    ]
    return views, notes
