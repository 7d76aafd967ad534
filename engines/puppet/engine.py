"""Puppet engine: a video (or a camera take) drives an avatar's face and head; the take is
exported as an animated GLB, an MP4 render (optionally beside the source) or JSON curves.

Stages: (1) landmarks and ARKit scores on every frame (:mod:`engines.puppet.landmarks`),
(2) neutral calibration on the rest frames (the first second, or a given frame range), (3)
per frame the expression and pose solve, the One Euro filters and gaze
(:class:`engines.puppet.track.LiveSession`, the code path the GUI's live mode uses), (4) the
Take. The inputs are two slots: ``performance_video`` (the video) and ``avatar``, a ``.glb`` /
``.zip`` avatar file or a portrait photo that the avatar engine (looked up in the registry, as
a plug-in would) turns into one first.
Cancel is checked between frames; progress is reported per frame.
"""

from __future__ import annotations

import time
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from engines.api import CancelToken, Engine, EngineError, Result, Slot
from engines.types import Avatar, Image, Take, VideoClip


class PuppetEngine(Engine):
    """A video of a face drives an avatar: ARKit blendshape weights, head and eye rotation per frame."""

    name = "puppet"
    title = "Performance capture (puppet)"
    description = (
        "A video of a face (or a webcam take) drives an avatar: 52 ARKit blendshape weights, head "
        "rotation and gaze per frame, tracked with the Face Landmarker and refined against the "
        "avatar's head model; exported as an animated GLB, an MP4 render or JSON curves."
    )
    slots = (
        Slot("performance_video", (VideoClip,), "a video of the performer's face: a file or a webcam take"),
        Slot(
            "avatar",
            (Avatar, Image),
            "the avatar to drive: a .glb/.zip avatar, or a portrait photo to make one from",
        ),
    )
    # accepts = (VideoClip, Avatar, Image), min_inputs = max_inputs = 2: from the slots
    produces = (Take, Avatar)
    writers = {
        ".glb": [("Take", "engines.puppet.export:write_take_glb")],
        ".mp4": [("Take", "engines.puppet.export:write_take_mp4")],
        ".json": [("Take", "engines.puppet.export:write_take_json")],
    }
    # the app's own modules, imported only by the app: a take is drawn as its avatar, and
    # the avatar's controls (with Perform) drive it
    renderers = {"Take": "app.renderers:draw_take"}
    panels = {"Take": "app.avatar_panel:AvatarPanel"}

    class Params(BaseModel):
        solver: Literal["auto", "avatar", "performer", "raw"] = Field(
            "auto",
            description="Expression solve: against the avatar's identity (auto when it is an ICT avatar), "
            "an identity fitted to the performer, or the Face Landmarker's raw scores",
        )
        smoothing: bool = Field(True, description="One Euro filter on the weights and the head rotation")
        calibration: str = Field(
            "auto",
            description="Neutral calibration: 'auto' (the least expressive third of the first second), "
            "'first_second', 'none', or a frame range 'a:b' (b excluded) where the performer rests",
        )
        gaze: Literal["morphs", "joints"] = Field(
            "morphs", description="Eyes turned by the eyeLook morph targets (lids follow) or by the eye joints"
        )
        landmarker: Literal["image", "video"] = Field(
            "image", description="Landmarks found afresh every frame, or the landmarker's smoothed VIDEO mode"
        )
        start: int = Field(0, ge=0, description="First frame of the video to use")
        max_frames: int = Field(0, ge=0, description="At most this many frames (0 = all)")
        render_size: int = Field(480, ge=64, le=2048, description="Height of the MP4 render in pixels")
        side_by_side: bool = Field(True, description="MP4 export: the source video beside the render")
        focal_px: float = Field(0.0, ge=0.0, description="Camera focal length in pixels (0 = estimated)")
        name: str = Field("", description="Take (animation clip) name; empty = the video's name")

    def run(self, inputs, params, progress, cancel: CancelToken) -> Result:
        from engines.puppet.track import LiveSession, TrackOptions

        inputs = self.bind(inputs)
        clip: VideoClip = inputs.performance_video
        res = Result()
        avatar = inputs.avatar
        if isinstance(avatar, Image):
            avatar = self._make_avatar(avatar, res, progress, cancel)
        n_total = clip.frame_count - params.start
        n = n_total if not params.max_frames else min(n_total, params.max_frames)
        if n < 2:
            raise EngineError(
                f"{clip.path.name} has {max(n, 0)} frame(s) from frame {params.start}; the take needs at least two."
            )
        fps = float(clip.fps) if clip.fps and clip.fps > 0 else 30.0
        calib = self._calibration_range(params.calibration, fps, n)
        opts = TrackOptions(
            solver=params.solver,
            smoothing=params.smoothing,
            gaze=params.gaze,
            landmarker=params.landmarker,
            focal_px=params.focal_px or None,
        )
        session = LiveSession(avatar, opts)
        p0 = 0.15 if res.timings.get("avatar") else 0.0
        try:
            # (1) landmarks of every frame (the tracking half of each frame's latency)
            lms, track_ms = [], []
            with res.stage("track"):
                for i, frame in enumerate(clip.frames(params.start, params.start + n)):
                    cancel.raise_if_set()
                    t0 = time.perf_counter()
                    lms.append(session.landmarker.track(frame, round(i * 1000.0 / fps) + 1))
                    track_ms.append((time.perf_counter() - t0) * 1000)
                    progress(p0 + (1 - p0) * 0.6 * (i + 1) / n, f"Tracking frame {i + 1} of {n}")
            n = len(lms)
            if not any(lm is not None for lm in lms):
                raise EngineError(
                    f"No face was found in {clip.path.name}: the face must face the camera and fill "
                    "a good part of the frame (webcam or talking-head framing)."
                )
            # (2) neutral calibration
            with res.stage("calibrate"):
                if calib is not None:
                    a, b = calib
                    rest = [lm for lm in lms[a:b] if lm is not None]
                    if params.calibration.strip().lower() == "auto" and len(rest) > 3:
                        rest = self._quietest(rest)
                    if rest:
                        session.calibrate(samples=rest)
                    else:
                        res.notes.append(f"No face in the calibration frames {a}-{b - 1}; the take is not calibrated.")
            # (3) per frame: solve, filter, gaze
            session.record()
            with res.stage("solve"):
                for i, lm in enumerate(lms):
                    cancel.raise_if_set()
                    session.push_landmarks(lm, i * 1000.0 / fps, track_ms=track_ms[i])
                    progress(p0 + (1 - p0) * (0.6 + 0.4 * (i + 1) / n), f"Solving frame {i + 1} of {n}")
            take = session.stop(name=params.name or clip.path.stem, source=clip.path)
        finally:
            session.close()
        take.fps = fps
        take.times = np.arange(len(take)) / fps
        take.meta["render"] = {"size": params.render_size, "side_by_side": params.side_by_side}
        take.meta["calibration"] = list(calib) if calib is not None else None
        take.meta["start_frame"] = params.start
        from engines.puppet.export import take_summary

        summary = take_summary(take)
        res.metrics.update(summary)
        res.metrics.update(
            solver=session.solver_kind,
            calibration_frames=list(calib) if calib else None,
            tracked_fraction=round(float(take.tracked.mean()), 4),
            per_frame_ms={k: np.round(v, 2).tolist() for k, v in take.timings.items()},
        )
        if take.missed:
            res.notes.append(f"No face in {take.missed} of {len(take)} frames; the pose was held there.")
        from engines.puppet.retarget import Retargeter

        missing = [m for m in Retargeter(avatar).missing if m != "tongueOut"]
        if missing:
            res.notes.append(
                f"The avatar has no morph target for {len(missing)} ARKit shape(s) "
                f"({', '.join(missing[:4])}{'...' if len(missing) > 4 else ''}); their motion is dropped."
            )
        progress(1.0, "Take ready")
        res.items = [take, avatar]
        return res

    @staticmethod
    def _quietest(lms: list, share: float = 1 / 3) -> list:
        """The least expressive frames (lowest total Face Landmarker score, the eyeLook gaze
        shapes left out): a talking performer's first second holds speech, but its quietest
        frames are the closest it has to the rest face."""
        from engines.face.common import SCORED_BLENDSHAPES

        names = [n for n in SCORED_BLENDSHAPES if not n.startswith("eyeLook")]
        act = np.array([sum((lm.blendshapes or {}).get(k, 0.0) for k in names) for lm in lms])
        keep = np.argsort(act, kind="stable")[: max(3, round(share * len(lms)))]
        return [lms[i] for i in sorted(keep)]

    @staticmethod
    def _calibration_range(spec: str, fps: float, n: int) -> tuple[int, int] | None:
        s = (spec or "").strip().lower()
        if s in ("none", "off", ""):
            return None
        if s in ("first_second", "auto"):
            return 0, max(1, min(n, round(fps)))
        try:
            a, b = (int(x) for x in s.split(":"))
        except ValueError:
            raise EngineError(
                f"calibration '{spec}' is not 'first_second', 'none' or a frame range like '0:30'."
            ) from None
        if not 0 <= a < b <= n:
            raise EngineError(f"calibration range {a}:{b} is outside the take's {n} frames.")
        return a, b

    @staticmethod
    def _make_avatar(img: Image, res: Result, progress, cancel) -> Avatar:
        from engines import registry

        try:
            avatar_engine = registry.get("avatar")
        except EngineError:
            raise EngineError(
                "A portrait was given but the avatar engine is not installed; give a .glb/.zip avatar instead."
            ) from None
        t0 = time.perf_counter()

        def sub(frac, msg=""):
            progress(0.15 * frac, f"Making the avatar: {msg}")

        out = avatar_engine().run([img], avatar_engine.Params(texture_size=1024), sub, cancel)
        res.timings["avatar"] = time.perf_counter() - t0
        res.notes += [f"Avatar: {n}" for n in out.notes]
        return out.main
