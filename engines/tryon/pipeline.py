"""One video frame through the try-on: person -> warp -> garment layer -> temporal -> composite.

The pipeline keeps the state that links frames: the tracked person (:mod:`.person`),
the previous grey frame, garment layer and warp. With the temporal module on, two things
follow the source video's optical flow (:mod:`.temporal`):

* the warp itself: the control grid and the sleeves of frame t-1, moved by the flow, are
  blended with the ones fitted to frame t's landmarks, so the pattern travels with the
  body instead of being re-placed from slightly noisy landmarks each frame;
* the rendered layer: eq. 5 of Hu (2023), previous layer warped by the flow and blended.

Work happens on a box around the garment at the working resolution; only that box is
scaled back and composited into the full-resolution frame, so every other pixel is the
source pixel.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engines.tryon import composite as C
from engines.tryon import tps as T
from engines.tryon.garment import Garment
from engines.tryon.person import PersonTracker
from engines.tryon.temporal import TemporalBlender, edge_jitter, propagate_points, warping_error


@dataclass
class FrameReport:
    person: bool
    warping_error: float = float("nan")
    edge_jitter: float = float("nan")
    grid_distance: float = float("nan")
    grid_slope: float = float("nan")


def _union(a, b):
    if a is None or b is None:
        return a or b
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def _fit_affine(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    X = np.hstack([src, np.ones((len(src), 1))])
    A, *_ = np.linalg.lstsq(X, dst, rcond=None)
    return A.T


class TryOnPipeline:
    """Stateful per-frame try-on; ``process(frame)`` returns (output frame, report)."""

    def __init__(self, garment: Garment, generator, fps: float, source_size: tuple[int, int],
                 working_size: int = 640, grid: int = 5, regularisation: float = 1.0,
                 temporal_weight: float = 0.6, segmenter: str = "pose", smoothing: float = 1.0,
                 timer=None):
        self.garment, self.generator = garment, generator
        self.W, self.H = source_size
        self.scale = min(1.0, working_size / max(self.W, self.H))
        self.work_size = (max(2, round(self.W * self.scale)), max(2, round(self.H * self.scale)))
        self.grid, self.regularisation, self.weight = grid, regularisation, temporal_weight
        self.tracker = PersonTracker(fps, segmenter, min_cutoff=smoothing)
        self.blender = TemporalBlender(temporal_weight)
        self.timer = timer
        self._sleeve_corners = {}
        for side in ("left", "right"):
            part = garment.parts.get(f"sleeve_{side}")
            if part is not None and part.any():
                ys, xs = np.nonzero(part > 0.5)
                self._sleeve_corners[side] = np.array(
                    [[xs.min(), ys.min()], [xs.max(), ys.min()], [xs.min(), ys.max()], [xs.max(), ys.max()]], float)
        self.reset()

    def reset(self) -> None:
        self.blender.reset()
        self.prev_grey = self.prev_box = self.prev_dst = self.prev_sleeves = None

    def close(self) -> None:
        self.tracker.close()

    def _stage(self, name):
        from contextlib import nullcontext

        return self.timer(name) if self.timer else nullcontext()

    # ---------------------------------------------------------------------------------
    def _follow_flow(self, warp, sleeves, fwd, box):
        """Blend the fitted warp with the previous one carried by the forward flow."""
        x0, y0 = box[0], box[1]
        w = self.weight
        cell = float(np.ptp(warp.dst[:, 0])) / max(self.grid - 1, 1)
        pred = propagate_points(self.prev_dst - [x0, y0], fwd, 0.5 * cell)
        if pred is not None:
            warp = T.GarmentWarp(warp.src, w * (pred + [x0, y0]) + (1 - w) * warp.dst, warp.grid)
        out = []
        for side, A, A_prev in zip(("left", "right"), sleeves, self.prev_sleeves):
            c = self._sleeve_corners.get(side)
            moved = None if c is None else propagate_points(c @ A_prev[:, :2].T + A_prev[:, 2] - [x0, y0], fwd, 0.5 * cell)
            out.append(A if moved is None else w * _fit_affine(c, moved + [x0, y0]) + (1 - w) * A)
        return warp, out

    def process(self, frame: np.ndarray) -> tuple[np.ndarray, FrameReport]:
        import cv2

        ww, wh = self.work_size
        work = frame if self.scale == 1.0 else cv2.resize(frame, (ww, wh), interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(work, cv2.COLOR_RGB2GRAY)
        with self._stage("person"):
            person = self.tracker(work)
        if person is None:
            self.reset()
            return frame, FrameReport(False)
        g = self.garment
        with self._stage("warp"):
            g_pts, b_pts, wts, info = T.body_targets(g.landmarks, person)
            warp = T.fit_warp(g_pts, b_pts, g.parts["torso"], self.grid, self.regularisation, wts)
            sleeves = [T.sleeve_affine(g.landmarks, side, warp, person, info) for side in ("left", "right")]
            box = T.garment_box(g, warp, sleeves, (wh, ww))
        if box is None:  # the garment would land outside the frame
            self.reset()
            return frame, FrameReport(False)
        box = _union(box, self.prev_box)
        x0, y0, x1, y1 = box
        back = valid = None
        if self.prev_grey is not None:
            with self._stage("temporal"):
                back, valid = self.blender.flow(self.prev_grey[y0:y1, x0:x1], grey[y0:y1, x0:x1])
                if self.weight > 0:
                    warp, sleeves = self._follow_flow(warp, sleeves, self.blender.flow.forward, box)
        report = FrameReport(True)
        report.grid_distance, report.grid_slope = T.grid_regularisation_loss(
            warp.dst / info["shoulder_width"], warp.grid)
        with self._stage("warp"):
            crop = work[y0:y1, x0:x1]
            warped_rgb, warped_mask = C.warp_garment(
                g, warp.shifted(-x0, -y0), crop.shape[:2], [T.shift_affine(A, -x0, -y0) for A in sleeves])
        with self._stage("render"):
            layer = self.generator.render(crop, person.cropped(x0, y0, x1, y1), warped_rgb, warped_mask)
        with self._stage("temporal"):
            prev = self.blender.previous(box)
            rgb, alpha = self.blender(layer.rgb, layer.alpha, back, valid, box)
            if back is not None:
                region = np.maximum(alpha, prev[1]) > 0.5
                report.warping_error = warping_error(prev[0], rgb * alpha[:, :, None], back, valid, region)
                report.edge_jitter = edge_jitter(prev[1], alpha, back, valid)
        self.prev_grey, self.prev_box, self.prev_dst, self.prev_sleeves = grey, box, warp.dst, sleeves
        with self._stage("composite"):
            out = frame.copy()
            if self.scale < 1.0:
                s = self.scale
                sx0, sy0 = int(x0 / s), int(y0 / s)
                sx1, sy1 = min(self.W, int(np.ceil(x1 / s))), min(self.H, int(np.ceil(y1 / s)))
                rgb = cv2.resize(rgb, (sx1 - sx0, sy1 - sy0), interpolation=cv2.INTER_LINEAR)
                alpha = cv2.resize(alpha, (sx1 - sx0, sy1 - sy0), interpolation=cv2.INTER_LINEAR)
            else:
                sx0, sy0, sx1, sy1 = x0, y0, x1, y1
            out[sy0:sy1, sx0:sx1] = C.composite(frame[sy0:sy1, sx0:sx1], C.GarmentLayer(rgb, alpha))
        return out, report
