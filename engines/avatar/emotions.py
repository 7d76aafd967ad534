"""Emotion -> expression: six emotion intensities to blendshape weights.

The thesis maps emotions to FLAME expression parameters with a learned regressor. Here the
same job is done by a small torch module whose weights are not learned but written down
from the EMFACS prototypes (Friesen & Ekman, "EMFACS-7: Emotional Facial Action Coding
System", 1983; the action-unit combinations of Ekman, Friesen & Hager, FACS Investigator's
Guide, 2002, table 12-1), one column per emotion, one row per blendshape:

=========  =====================================  ===========================================
emotion    EMFACS action units                    ARKit blendshape weights at 100 %
=========  =====================================  ===========================================
happiness  AU6 cheek raiser + AU12 lip corner     cheekSquintLeft/Right 0.8, mouthSmileLeft/
           puller                                 Right 1.0, eyeSquintLeft/Right 0.3
sadness    AU1 inner brow raiser + AU4 brow       browInnerUp 1.0, browDownLeft/Right 0.4,
           lowerer + AU15 lip corner depressor    mouthFrownLeft/Right 1.0, mouthShrugLower 0.3
           (+ AU17 chin raiser)
surprise   AU1 + AU2 outer brow raiser + AU5B     browInnerUp 1.0, browOuterUpLeft/Right 1.0,
           upper lid raiser + AU26 jaw drop       eyeWideLeft/Right 0.7, jawOpen 0.5
fear       AU1 + AU2 + AU4 + AU5 + AU7 lid        browInnerUp 1.0, browOuterUpLeft/Right 0.6,
           tightener + AU20 lip stretcher + AU26  browDownLeft/Right 0.35, eyeWideLeft/Right 1.0,
                                                  eyeSquintLeft/Right 0.2, mouthStretchLeft/
                                                  Right 0.8, jawOpen 0.25
anger      AU4 + AU5 + AU7 + AU23 lip tightener   browDownLeft/Right 1.0, eyeWideLeft/Right 0.3,
           + AU24 lip presser                     eyeSquintLeft/Right 0.6, mouthPressLeft/Right
                                                  0.8, mouthRollLower/Upper 0.3
contempt   R12A + R14A: one-sided lip corner      mouthSmileRight 0.5, mouthDimpleRight 1.0
           puller and dimpler
=========  =====================================  ===========================================

The weights act from the avatar's *neutral* rest face (identity only), so an emotion reads
as itself whatever expression the photo had.

Emotions combine additively (several sliders at once) and each blendshape weight is
clamped to [0, 1], so mixing never over-drives a muscle.
"""

from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np

from engines.avatar.arkit import ARKIT_NAMES as SHAPE_NAMES

EMOTIONS = ("happiness", "anger", "sadness", "fear", "contempt", "surprise")

EMFACS: dict[str, dict[str, float]] = {
    "happiness": {
        "cheekSquintLeft": 0.8,
        "cheekSquintRight": 0.8,
        "mouthSmileLeft": 1.0,
        "mouthSmileRight": 1.0,
        "eyeSquintLeft": 0.3,
        "eyeSquintRight": 0.3,
    },
    "sadness": {
        "browInnerUp": 1.0,
        "browDownLeft": 0.4,
        "browDownRight": 0.4,
        "mouthFrownLeft": 1.0,
        "mouthFrownRight": 1.0,
        "mouthShrugLower": 0.3,
    },
    "surprise": {
        "browInnerUp": 1.0,
        "browOuterUpLeft": 1.0,
        "browOuterUpRight": 1.0,
        "eyeWideLeft": 0.7,
        "eyeWideRight": 0.7,
        "jawOpen": 0.5,
    },
    "fear": {
        "browInnerUp": 1.0,
        "browOuterUpLeft": 0.6,
        "browOuterUpRight": 0.6,
        "browDownLeft": 0.35,
        "browDownRight": 0.35,
        "eyeWideLeft": 1.0,
        "eyeWideRight": 1.0,
        "eyeSquintLeft": 0.2,
        "eyeSquintRight": 0.2,
        "mouthStretchLeft": 0.8,
        "mouthStretchRight": 0.8,
        "jawOpen": 0.25,
    },
    "anger": {
        "browDownLeft": 1.0,
        "browDownRight": 1.0,
        "eyeWideLeft": 0.3,
        "eyeWideRight": 0.3,
        "eyeSquintLeft": 0.6,
        "eyeSquintRight": 0.6,
        "mouthPressLeft": 0.8,
        "mouthPressRight": 0.8,
        "mouthRollLower": 0.3,
        "mouthRollUpper": 0.3,
    },
    "contempt": {"mouthSmileRight": 0.5, "mouthDimpleRight": 1.0},
}
PRESETS: dict[str, dict[str, float]] = {
    "Neutral": {},
    "Big smile": {"happiness": 1.0},
    "Smirk": {"contempt": 0.8, "happiness": 0.2},
    "Shocked": {"surprise": 1.0, "fear": 0.4},
    "Furious": {"anger": 1.0},
    "Worried": {"sadness": 0.6, "fear": 0.4},
}


def emfacs_matrix() -> np.ndarray:
    """len(SHAPE_NAMES) x 6 matrix: column e holds the blendshape weights of emotion e."""
    W = np.zeros((len(SHAPE_NAMES), len(EMOTIONS)), np.float32)
    for j, emo in enumerate(EMOTIONS):
        for shape, w in EMFACS[emo].items():
            W[SHAPE_NAMES.index(shape), j] = w
    return W


@lru_cache(maxsize=1)
def emotion_module():
    """The torch module (built once): emotions (..., 6) -> blendshape weights (..., K)."""
    import torch

    class EmotionToExpression(torch.nn.Module):
        """Linear map with EMFACS weights (no bias), then a clamp to [0, 1]."""

        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(len(EMOTIONS), len(SHAPE_NAMES), bias=False)
            with torch.no_grad():
                self.linear.weight.copy_(torch.from_numpy(emfacs_matrix()))
            self.linear.weight.requires_grad_(False)

        def forward(self, emotions: torch.Tensor) -> torch.Tensor:
            return self.linear(emotions).clamp(0.0, 1.0)

    return EmotionToExpression().eval()


_warm: list = []
_warm_lock = threading.Lock()


def warm_up_async() -> threading.Thread:
    """Import torch and build :func:`emotion_module` in a background thread (once).

    Importing torch costs about 1 s. The avatar panel starts this when an avatar is shown,
    so the first slider drag finds the module ready (Python's import lock makes a caller
    wait for an import still in progress rather than import twice). Making the avatar
    itself does not need torch (see :class:`engines.avatar.engine.AvatarEngine`).
    """
    with _warm_lock:
        if not _warm:

            def work():
                try:
                    emotion_module()
                except Exception:  # the caller's own emotion_module() call reports problems
                    pass

            t = threading.Thread(target=work, name="torch-warm-up", daemon=True)
            t.start()
            _warm.append(t)
        return _warm[0]


def emotion_to_expression(emotions: dict[str, float]) -> np.ndarray:
    """Blendshape weights (K,) for emotion intensities in 0..1 (missing names = 0).

    The same linear map and clamp as :func:`emotion_module`, in numpy: the app's sliders
    call this on every tick, and importing torch into the application's process holds the
    GIL for 1-3 s (a frozen window; issue 15). tests/test_app_freezes.py checks the two agree."""
    e = np.array([float(np.clip(emotions.get(k, 0.0), 0.0, 1.0)) for k in EMOTIONS], np.float32)
    return np.clip(_emfacs() @ e, 0.0, 1.0).astype(np.float32)


@lru_cache(maxsize=1)
def _emfacs() -> np.ndarray:
    return emfacs_matrix()
