"""Shared, cached inputs of the puppet tests (one avatar per portrait, one known-truth clip per
test session), so the test modules do not each rebuild them.

* :func:`avatar` makes an avatar from a portrait in tests/data (1024 px texture).
* :func:`known_truth` renders the astronaut avatar performing :func:`engines.puppet.synth.
  truth_curves` (60 frames, 320 x 320) and writes it as an H.264 MP4, returning the frames,
  the truth and the clip.
"""

from __future__ import annotations

import tempfile
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).parent / "data"
KNOWN_TRUTH_FRAMES = 60
KNOWN_TRUTH_SIZE = (320, 320)
NEUTRAL_FRAMES = 8


@lru_cache(maxsize=None)
def avatar(portrait: str):
    from engines.api import CancelToken, no_progress
    from engines.avatar.engine import AvatarEngine
    from engines.io.images import read_image

    params = AvatarEngine.Params(texture_size=1024)
    return AvatarEngine().run([read_image(DATA / portrait)], params, no_progress, CancelToken()).main


@lru_cache(maxsize=None)
def _folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="puppet-tests-"))


@lru_cache(maxsize=None)
def known_truth():
    """(frames, truth, VideoClip of the frames as MP4, the avatar that performed)."""
    from engines.io.video import VideoWriter, open_video
    from engines.puppet.synth import render_clip

    av = avatar("astronaut.png")
    frames, truth = render_clip(av, KNOWN_TRUTH_FRAMES, KNOWN_TRUTH_SIZE, NEUTRAL_FRAMES)
    path = _folder() / "known_truth.mp4"
    with VideoWriter(path, 30.0, KNOWN_TRUTH_SIZE, crf=12) as w:
        for f in frames:
            w.write(f)
    return frames, truth, open_video(path), av
