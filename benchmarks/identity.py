"""Identity distance for the benchmarks: dlib's ResNet face descriptor (128-D).

An independent face-recognition model (not used anywhere in the product): dlib's
``dlib_face_recognition_resnet_model_v1`` (99.38 % on LFW); two faces whose descriptors are
less than 0.6 apart (Euclidean) are taken for the same person. Faces are found with dlib's
HOG frontal detector (upsampled once for small faces), falling back to its CNN (MMOD)
detector, aligned with the 68-point shape predictor; the largest face is used.

Benchmark-only dependencies, installed outside the project's venv::

    .venv/bin/python -m pip install --no-deps --target .bench-deps \\
        dlib-bin==20.0.1.post1 face_recognition_models==0.3.0
"""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEPS = ROOT / ".bench-deps"
INSTALL = (
    f"{sys.executable} -m pip install --no-deps --target {DEPS} dlib-bin==20.0.1.post1 face_recognition_models==0.3.0"
)
SAME_PERSON = 0.6  # dlib's threshold


class MissingDeps(ImportError):
    pass


def _models_dir() -> Path:
    # face_recognition_models/__init__ imports pkg_resources (absent here): find its files by path
    for p in [DEPS, *map(Path, sys.path)]:
        d = p / "face_recognition_models" / "models"
        if (d / "dlib_face_recognition_resnet_model_v1.dat").is_file():
            return d
    raise MissingDeps(f"face_recognition_models is not installed; install the benchmark deps with:\n  {INSTALL}")


@lru_cache(maxsize=1)
def _dlib():
    if DEPS.is_dir() and str(DEPS) not in sys.path:
        sys.path.append(str(DEPS))
    try:
        import dlib
    except ImportError as e:
        raise MissingDeps(f"dlib is not installed ({e}); install the benchmark deps with:\n  {INSTALL}") from e
    d = _models_dir()
    return (
        dlib,
        dlib.get_frontal_face_detector(),
        dlib.shape_predictor(str(d / "shape_predictor_68_face_landmarks.dat")),
        dlib.face_recognition_model_v1(str(d / "dlib_face_recognition_resnet_model_v1.dat")),
        d,
    )


@lru_cache(maxsize=1)
def _cnn():
    dlib, *_, d = _dlib()
    return dlib.cnn_face_detection_model_v1(str(d / "mmod_human_face_detector.dat"))


def available() -> str | None:
    """None when the descriptor can run, else why not (with the install command)."""
    try:
        _dlib()
    except MissingDeps as e:
        return str(e)
    return None


def detect(rgb: np.ndarray, box=None):
    """The largest face's dlib rectangle (HOG, then HOG upsampled once, then CNN), or None;
    with ``box`` (x0, y0, x1, y1 in pixels) the face overlapping it most instead."""
    dlib, hog, *_ = _dlib()
    img = np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)
    rects = list(hog(img, 0)) or list(hog(img, 1))
    if not rects:
        rects = [d.rect for d in _cnn()(img, 1 if max(img.shape[:2]) > 400 else 2)]
    if not rects:
        return None
    if box is not None:
        x0, y0, x1, y1 = box

        def overlap(r):
            w = min(x1, r.right()) - max(x0, r.left())
            h = min(y1, r.bottom()) - max(y0, r.top())
            return max(w, 0) * max(h, 0)

        best = max(rects, key=overlap)
        if overlap(best) > 0:
            return best
    return max(rects, key=lambda r: r.width() * r.height())


import os  # noqa: E402

SINGLE = os.environ.get("IDENTITY_SINGLE_BOX") == "1"
"""``IDENTITY_SINGLE_BOX=1``: the earlier measurement (one detector box, no jitter), for
comparison with figures taken before the averaged descriptor."""
JITTERS = 1 if SINGLE else 10
"""dlib's ``num_jitters``: the descriptor averaged over this many jittered crops (dlib's own
advice for a more accurate descriptor)."""


def _candidates(img, chosen):
    """The boxes of the chosen face from each of the three detectors (HOG, HOG upsampled,
    CNN) that sees it (overlap > 30 % of the smaller box)."""
    dlib, hog, *_ = _dlib()
    found = list(hog(img, 0)) + list(hog(img, 1)) + [d.rect for d in _cnn()(img, 1 if max(img.shape[:2]) > 400 else 2)]

    def overlap(a, b):
        w = min(a.right(), b.right()) - max(a.left(), b.left())
        h = min(a.bottom(), b.bottom()) - max(a.top(), b.top())
        small = min(a.width() * a.height(), b.width() * b.height())
        return max(w, 0) * max(h, 0) / max(small, 1)

    return [r for r in found if overlap(r, chosen) > 0.3] or [chosen]


def descriptor(rgb: np.ndarray, box=None) -> np.ndarray | None:
    """128-D dlib face descriptor of the largest face in an RGB uint8 image (or the one
    overlapping ``box`` most, see :func:`detect`), or None if no face is found.

    The 68-point alignment depends on the detector's box, and the HOG detector's box of one
    face can jump by 20 % in size between two renders that differ by a fraction of a grey
    level (its image pyramid is coarse at large faces): measured on one avatar render, 0.41
    vs 0.59 from the same photo. So the descriptor is the mean over the boxes that all three
    detectors give for the face (:func:`_candidates`), each with JITTERS jittered crops, for
    the photo and the renders alike."""
    dlib, _, sp, rec, _ = _dlib()
    img = np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)
    r = detect(img, box)
    if r is None:
        return None
    ds = [
        np.asarray(rec.compute_face_descriptor(img, sp(img, c), num_jitters=JITTERS), np.float64)
        for c in ([r] if SINGLE else _candidates(img, r))
    ]
    return np.mean(ds, 0)


def distance(a: np.ndarray | None, b: np.ndarray | None) -> float | None:
    """Euclidean distance of two descriptors (< 0.6: same person); None if either is missing."""
    if a is None or b is None:
        return None
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)))


if __name__ == "__main__":  # self-check on the test portraits
    from PIL import Image

    data = ROOT / "tests" / "data"
    why = available()
    if why:
        sys.exit(why)
    ast = np.asarray(Image.open(data / "astronaut.png").convert("RGB"))
    gh = np.asarray(Image.open(data / "grace_hopper.jpg").convert("RGB"))
    small = np.asarray(Image.fromarray(ast).resize((ast.shape[1] * 3 // 4, ast.shape[0] * 3 // 4), Image.BICUBIC))
    da, dg, ds, df = descriptor(ast), descriptor(gh), descriptor(small), descriptor(ast[:, ::-1])
    print(f"astronaut vs grace_hopper: {distance(da, dg):.3f} (want > 0.6)")
    print(f"astronaut vs 75 % resized: {distance(da, ds):.3f} (want < 0.3)")
    print(f"astronaut vs mirrored:     {distance(da, df):.3f} (want < 0.3)")
