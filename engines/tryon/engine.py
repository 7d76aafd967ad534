"""Video virtual try-on: a garment photo on the person in a video, steady over time.

Follows Hu Ankang, "Video virtual try-on based on optical flow improvement" (2023):
per frame, body landmarks (MediaPipe Pose, :mod:`.person`) drive a regularised
thin-plate-spline warp of the garment (:mod:`.tps`, eq. 1-2), the warped garment is
composited over the torso (:mod:`.composite`) and blended with the previous frame's
garment carried by optical flow (:mod:`.temporal`, eq. 5), both as texture coordinates
(:mod:`.uvmap`, so a pattern moves as one piece) and as a colour layer. The paper's learned U-Net
generator (trained on VVT) is not available offline; the classical generator in
:mod:`.composite` stands in for it behind the :class:`GarmentGenerator` protocol, and
``TryOnEngine(generator=...)`` plugs in another.

Big videos are processed at a working resolution (long side ``working_size``) and the
garment layer is scaled back up, so the output keeps the source resolution and every
pixel outside the garment is the source pixel.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from engines.api import EngineError, Engine, Result, Slot
from engines.types import Image, VideoClip, VideoResult


# The engine's MP4 is copied as it is on export, so it is written near-lossless: the
# pixels outside the garment must stay the source's pixels, up to the codec.
CRF = 12


_RUNS: list[Path] = []
_RUN_RE = re.compile(r"^run-(\d+)-")


def _remove_runs() -> None:
    """At exit: this process's run folders (a saved project or the autosave holds its own
    copy of each MP4, and an export has copied it already)."""
    while _RUNS:
        shutil.rmtree(_RUNS.pop(), ignore_errors=True)


def _cache_dir() -> Path:
    """A fresh folder for this run's MP4, after clearing the runs of processes that are gone
    and any run older than a day.

    The MP4 has to outlive the run (the app plays it, export copies it), so it cannot be
    removed on return; it is removed when the process exits (``atexit``), and a process that
    was killed has its folders swept by the next run.
    """
    from engines.io.files import pid_alive

    root = Path(tempfile.gettempdir()) / "capture-studio" / "tryon"
    root.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in root.glob("run-*"):
        try:
            m = _RUN_RE.match(old.name)
            gone = m is not None and int(m.group(1)) != os.getpid() and not pid_alive(int(m.group(1)))
            if gone or now - old.stat().st_mtime > 86400:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass
    d = Path(tempfile.mkdtemp(prefix=f"run-{os.getpid()}-", dir=root))
    if not _RUNS:
        atexit.register(_remove_runs)
    _RUNS.append(d)
    return d


def _nanmean(values: list[float]) -> float | None:
    v = [x for x in values if np.isfinite(x)]
    return float(np.mean(v)) if v else None


class TryOnEngine(Engine):
    """Put a garment photo on the person in a video, frame by frame, without jitter."""

    name = "tryon"
    title = "Video try-on"
    description = (
        "Dress the person in a video in a garment photo (a top on a plain or transparent "
        "background): pose-driven regularised TPS warp, shading from the original "
        "clothes, optical-flow temporal smoothing (Hu 2023). Classical method; no "
        "learned generator is used."
    )
    slots = (
        Slot("person_video", (VideoClip,), "a video of the person to dress"),
        Slot("garment_image", (Image,), "a photo of the garment, a top on a plain or transparent background"),
    )
    # accepts = (VideoClip, Image), min_inputs = max_inputs = 2: from the slots
    produces = (VideoResult,)

    class Params(BaseModel):
        temporal: Literal["on", "off"] = Field(
            "on",
            description="Carry the previous frame's garment (its texture coordinates and its layer) along "
            "the optical flow and blend it with this frame's (eq. 5); smooth the warp's control points.",
        )
        temporal_weight: float = Field(
            0.8,
            ge=0.0,
            le=0.95,
            description="Weight of the previous garment carried by the optical flow (w in eq. 5; also moves the warp).",
        )
        regularisation: float = Field(
            1.0,
            ge=0.0,
            le=50.0,
            description="Strength of the control-grid regularisation (eq. 1-2); 0 = plain landmark TPS.",
        )
        grid: int = Field(5, ge=5, le=10, description="Control grid size (grid x grid points).")
        shading: float = Field(
            0.7, ge=0.0, le=1.0, description="How much of the original clothing's shading (folds, light) to keep."
        )
        feather: float = Field(1.2, ge=0.0, le=8.0, description="Softness of the garment edge, in pixels.")
        working_size: int = Field(
            640, ge=128, le=4096, description="Long side (px) the frames are processed at; output keeps source size."
        )
        segmenter: Literal["pose", "selfie"] = Field(
            "pose", description="Person mask from the pose model or from MediaPipe selfie segmentation."
        )
        smoothing: float = Field(
            1.0, ge=0.05, le=20.0, description="One Euro filter minimum cut-off (Hz); lower = steadier landmarks."
        )
        garment_mask_file: str = Field(
            "", description="Optional mask image for the garment (white garment on black), for busy backgrounds."
        )
        generator_model: str = Field(
            "",
            description="Optional learned try-on generator (.onnx, see engines/tryon/onnx_generator.py); "
            "empty = the classical generator.",
        )
        max_frames: int = Field(0, ge=0, description="Process only the first N frames (0 = all).")

    def __init__(self, generator=None):
        self.generator = generator

    # ---------------------------------------------------------------------------------
    def run(self, inputs, params, progress, cancel) -> Result:
        import cv2

        from engines.io.video import VideoWriter
        from engines.tryon import composite as C
        from engines.tryon.garment import prepare_garment
        from engines.tryon.pipeline import TryOnPipeline

        inputs = self.bind(inputs)
        clip, photo = inputs.person_video, inputs.garment_image
        vname = Path(clip.path).name
        gname = photo.path.name if photo.path else "the garment photo"
        result = Result()

        progress(0.0, "Reading the garment")
        with result.stage("garment"):
            user_mask = None
            if params.garment_mask_file:
                from engines.io.images import read_image

                mp = Path(params.garment_mask_file)
                if not mp.exists():
                    raise EngineError(f"Garment mask {mp}: no such file. Choose the mask image again.")
                user_mask = read_image(mp).pixels.astype(np.float32)
            garment = prepare_garment(photo.pixels, user_mask, gname)
        result.notes += garment.notes
        cancel.raise_if_set()

        if clip.frame_count <= 0:
            raise EngineError(f"{vname} has no frames: choose another video.")
        n_total = clip.frame_count if not params.max_frames else min(clip.frame_count, params.max_frames)
        W, H = clip.width, clip.height
        scale = min(1.0, params.working_size / max(W, H))  # as TryOnPipeline works it out
        ww, wh = max(2, round(W * scale)), max(2, round(H * scale))
        if scale < 1.0:
            result.notes.append(
                f"{vname} ({W}x{H}) was processed at {ww}x{wh} (working_size={params.working_size}); "
                f"the garment layer is scaled back and the video keeps its {W}x{H} size."
            )

        generator = self.generator
        if generator is None and params.generator_model:
            from engines.tryon.onnx_generator import OnnxGenerator

            generator = OnnxGenerator(params.generator_model)
            result.notes.append(f"Garment rendered by the learned generator {generator.path.name}.")
        generator = generator or C.ClassicalGenerator(params.shading, params.feather)
        out_dir = _cache_dir()
        out_path = out_dir / f"{Path(clip.path).stem}_tryon.mp4"
        reports = []
        t0 = time.perf_counter()
        try:
            pipeline = TryOnPipeline(
                garment,
                generator,
                clip.fps,
                (W, H),
                params.working_size,
                params.grid,
                params.regularisation,
                params.temporal_weight if params.temporal == "on" else 0.0,
                params.segmenter,
                params.smoothing,
                timer=result.stage,
            )
            try:
                with VideoWriter(out_path, clip.fps, (W, H), crf=CRF) as writer:
                    for i, frame in enumerate(clip.frames(0, n_total)):
                        cancel.raise_if_set()
                        if frame.shape[:2] != (H, W):
                            frame = cv2.resize(frame, (W, H), interpolation=cv2.INTER_AREA)
                        out, report = pipeline.process(frame)
                        reports.append(report)
                        with result.stage("write"):
                            writer.write(out)
                        progress(
                            (i + 1) / n_total, f"Frame {i + 1} of {n_total}" + ("" if report.person else ": no person")
                        )
                    if not reports:
                        raise EngineError(
                            f"{vname}: no frame could be decoded. Check that the video plays, "
                            "or convert it to MP4 (H.264) and import it again."
                        )
                    if not any(r.person for r in reports):
                        raise EngineError(
                            f"No person found in any of the {len(reports)} frames of {vname}: use a video "
                            "where a person faces the camera with both shoulders in view."
                        )
            finally:
                pipeline.close()
        except BaseException:
            shutil.rmtree(out_dir, ignore_errors=True)
            raise
        elapsed = time.perf_counter() - t0
        crops = pipeline.tracker.used_crops
        count = len(reports)
        no_person = [i for i, r in enumerate(reports) if not r.person]

        if no_person:
            result.notes.append(
                f"{len(no_person)} of {count} frames had no person and were left unchanged "
                f"(first: frame {no_person[0]})."
            )
        new_tracks = pipeline.tracker.new_tracks
        if new_tracks:
            result.notes.append(
                f"The person was found away from where the tracked one was last seen {new_tracks} time(s) "
                "(somebody else, or a cut); each such frame was left unchanged until the next frame "
                "confirmed the new person."
            )
        if crops:
            result.notes.append(
                f"The person was small in {crops} frames and was found with a people detector and a crop."
            )
        result.items.append(
            VideoResult(fps=clip.fps, path=out_path, source=Path(clip.path), name=f"{Path(clip.path).stem} try-on")
        )
        result.metrics.update(
            {
                "frames": count,
                "frames_with_person": count - len(no_person),
                "frames_without_person": len(no_person),
                "new_person_tracks": new_tracks,
                "fps": count / elapsed if elapsed > 0 else None,
                "working_size": [ww, wh],
                "source_size": [W, H],
                "temporal": params.temporal,
                "temporal_warping_error": _nanmean([r.warping_error for r in reports]),
                "edge_jitter_px": _nanmean([r.edge_jitter for r in reports]),
                "grid_distance_loss": _nanmean([r.grid_distance for r in reports]),
                "grid_slope_loss": _nanmean([r.grid_slope for r in reports]),
                "garment_mask_uncertain": garment.uncertain,
            }
        )
        progress(1.0, "Done")
        return result
