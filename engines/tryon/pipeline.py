"""One video frame through the try-on: person -> warp -> garment layer -> temporal -> composite.

The pipeline keeps the state that links frames: the tracked person (:mod:`.person`),
the previous grey frame, garment layer and warp. With the temporal module on, two things
follow the source video's optical flow (:mod:`.temporal`):

* the warp itself: the control grid and the sleeves of frame t-1, moved by the flow, are
  blended with the ones fitted to frame t's landmarks, so the pattern travels with the
  body instead of being re-placed from slightly noisy landmarks each frame;
* the garment's texture coordinates (:mod:`.uvmap`): the previous frame's UV maps,
  moved by the dense flow, are blended with this frame's (eq. 5 on coordinates), so the
  pattern moves with the body as one sharp piece;
* the rendered layer: eq. 5 of Hu (2023), previous layer warped by the flow and blended
  (this mostly steadies the outline and the shading).

Distances that judge motion and disagreement (the One Euro speed scale of the control
points, how far the carried warp may part from the fitted one, the blend's jitter band)
are in units of the body's size, ``info["body_size"]`` of :func:`.tps.body_targets`: the
shoulder width, or for a person seen side-on (shoulders overlapping in the image) the
width their torso length implies, so a walker in profile is not judged by a few pixels.

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
from engines.tryon.person import OneEuroFilter, PersonTracker
from engines.tryon.temporal import TemporalBlender, edge_jitter, region_motion, warping_error
from engines.tryon.uvmap import MapCarrier, fitted_maps, map_shape, prefiltered, render_maps, upsample


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


class TryOnPipeline:
    """Stateful per-frame try-on; ``process(frame)`` returns (output frame, report)."""

    def __init__(
        self,
        garment: Garment,
        generator,
        fps: float,
        source_size: tuple[int, int],
        working_size: int = 640,
        grid: int = 5,
        regularisation: float = 1.0,
        temporal_weight: float = 0.6,
        segmenter: str = "pose",
        smoothing: float = 1.0,
        timer=None,
        control_cutoff: float = 0.5,
    ):
        self.garment, self.generator = garment, generator
        self.W, self.H = source_size
        self.scale = min(1.0, working_size / max(self.W, self.H))
        self.work_size = (max(2, round(self.W * self.scale)), max(2, round(self.H * self.scale)))
        self.grid, self.regularisation, self.weight = grid, regularisation, temporal_weight
        self.tracker = PersonTracker(fps, segmenter, min_cutoff=smoothing)
        # DIS "medium": the texture coordinates follow this flow, so it is worth its ~4 ms.
        self.blender = TemporalBlender(temporal_weight, "medium")
        # Garment texture coordinates follow the flow (tolerance: 6 % of the garment's width).
        width = float(np.ptp(np.array(list(garment.landmarks.values()))[:, 0]))
        self.carrier = MapCarrier(temporal_weight, 0.06 * width)
        self.timer = timer
        self.control_filter = OneEuroFilter(control_cutoff, beta=2.0)
        self._textures: dict[float, np.ndarray] = {}  # the garment prefiltered for its drawn size
        self.reset()

    def reset(self) -> None:
        self._carry = True
        self.blender.reset()
        self.carrier.reset()
        self.control_filter.reset()
        self.prev_grey = self.prev_box = self.prev_dst = self.prev_sleeves = None

    def close(self) -> None:
        self.tracker.close()

    def _stage(self, name):
        from contextlib import nullcontext

        return self.timer(name) if self.timer else nullcontext()

    # ---------------------------------------------------------------------------------
    def _smooth_controls(self, warp, sleeves, body: float):
        """One Euro filter (Casiez et al. 2012) on the control points themselves: the grid
        targets and three points of each sleeve (its affine is rebuilt from them)."""
        import cv2

        lm = self.garment.landmarks
        anchors = [np.array([lm[f"shoulder_{s}"], lm[f"armpit_{s}"], lm[f"sleeve_{s}"]]) for s in ("left", "right")]
        pts = np.vstack([warp.dst] + [a @ A[:, :2].T + A[:, 2] for a, A in zip(anchors, sleeves)])
        out = self.control_filter(pts, self.tracker.dt, scale=max(body, 4.0))
        n = len(warp.dst)
        sleeves = [
            cv2.getAffineTransform(a.astype(np.float32), out[n + 3 * k : n + 3 * k + 3].astype(np.float32)).astype(
                np.float64
            )
            for k, a in enumerate(anchors)
        ]
        return T.GarmentWarp(warp.src, out[:n], warp.grid), sleeves

    def _follow_flow(self, warp, sleeves, fwd, valid, box, body: float):
        """Blend the fitted warp with the previous one moved by the garment's flow motion."""
        prev = self.blender.previous(box)
        if prev is None:
            return warp, sleeves
        x0, y0 = box[0], box[1]
        M = region_motion(fwd, prev[1] * (0.2 + 0.8 * valid))
        if M is None:
            return warp, sleeves
        # The motion was fitted in box pixels; move it to frame pixels.
        M = M.copy()
        M[:, 2] += [x0, y0] - M[:, :2] @ [x0, y0]
        moved = self.prev_dst @ M[:, :2].T + M[:, 2]
        # Where the carried warp and the fitted one part by more than landmark jitter
        # (0.15 body sizes: the shoulder width, or the torso-implied one for a person
        # seen side-on, tps.body_targets), the motion estimate has failed: trust the pose.
        apart = float(np.linalg.norm(moved - warp.dst, axis=1).mean()) / max(body, 1.0)
        w = self.weight * float(np.clip((0.4 - apart) / 0.25, 0.0, 1.0))
        self._carry = w > 0.0  # nothing carried over is trustworthy: no eq. 5 blend either
        warp = T.GarmentWarp(warp.src, w * moved + (1 - w) * warp.dst, warp.grid)
        out = []
        for A, A_prev in zip(sleeves, self.prev_sleeves):
            carried = np.hstack([M[:, :2] @ A_prev[:, :2], (M[:, :2] @ A_prev[:, 2] + M[:, 2])[:, None]])
            out.append(w * carried + (1 - w) * A)
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
            if self.weight > 0:
                warp, sleeves = self._smooth_controls(warp, sleeves, info["body_size"])
            box = T.garment_box(g, warp, sleeves, (wh, ww))
        if box is None:  # the garment would land outside the frame
            self.reset()
            return frame, FrameReport(False)
        pb = self.prev_box
        if pb is not None and (box[0] >= pb[2] or pb[0] >= box[2] or box[1] >= pb[3] or pb[1] >= box[3]):
            self.reset()  # the garment jumped: another person, or a cut
        box = _union(box, self.prev_box)
        box = (box[0] - box[0] % 2, box[1] - box[1] % 2, box[2], box[3])  # even origin: half-size maps align
        x0, y0, x1, y1 = box
        back = valid = None
        self._carry = True
        if self.prev_grey is not None:
            with self._stage("temporal"):
                # Flow is matched on the box with half its size again around it: a walker
                # moves ~10 px a frame at 10 fps, and DIS needs that context to follow
                # (end-point error against DeepFlow fell from 3.1 to 0.7 px on vtest).
                mx, my = (x1 - x0) // 2, (y1 - y0) // 2
                cx0, cy0, cx1, cy1 = max(0, x0 - mx), max(0, y0 - my), min(ww, x1 + mx), min(wh, y1 + my)
                back, valid = self.blender.flow(self.prev_grey[cy0:cy1, cx0:cx1], grey[cy0:cy1, cx0:cx1])
                inner = (slice(y0 - cy0, y1 - cy0), slice(x0 - cx0, x1 - cx0))
                back, valid = back[inner], valid[inner]
                if self.weight > 0:
                    warp, sleeves = self._follow_flow(
                        warp, sleeves, self.blender.flow.forward[inner], valid, box, info["body_size"]
                    )
        report = FrameReport(True)
        report.grid_distance, report.grid_slope = T.grid_regularisation_loss(
            warp.dst / info["shoulder_width"], warp.grid
        )
        with self._stage("warp"):
            crop = work[y0:y1, x0:x1]
            # The maps are smooth: on a big crop they are fitted and carried at half size.
            step = 2 if max(crop.shape[:2]) >= 200 else 1
            maps = fitted_maps(
                g, warp.shifted(-x0, -y0), [T.shift_affine(A, -x0, -y0) for A in sleeves], crop.shape[:2], step=step
            )
        with self._stage("temporal"):
            if self.weight > 0:
                mh, mw = map_shape(crop.shape[:2], step)
                mbox = (x0 // step, y0 // step, x0 // step + mw, y0 // step + mh)
                carried = (back[::step, ::step] / step if back is not None else None) if self._carry else None
                maps = self.carrier(maps, carried, None if valid is None else valid[::step, ::step], mbox)
        with self._stage("warp"):
            gl, gr = g.landmarks["shoulder_left"], g.landmarks["shoulder_right"]
            scale = info["shoulder_width"] / max(float(np.linalg.norm(gr - gl)), 1.0)
            key = round(0.5 / max(scale, 1e-3), 1)
            if key not in self._textures:
                self._textures = {key: prefiltered(g.rgb, scale)}
            warped_rgb, warped_mask = render_maps(g, upsample(maps, step, crop.shape[:2]), self._textures[key])
        with self._stage("render"):
            layer = self.generator.render(crop, person.cropped(x0, y0, x1, y1), warped_rgb, warped_mask)
        with self._stage("temporal"):
            prev = self.blender.previous(box)
            rgb, alpha = self.blender(
                layer.rgb, layer.alpha, back if self._carry else None, valid, box, info["body_size"]
            )
            if back is not None and prev is not None:
                region = np.maximum(alpha, prev[1]) > 0.5
                report.warping_error = warping_error(prev[0], rgb * alpha[:, :, None], back, valid, region)
                report.edge_jitter = edge_jitter(prev[1], alpha, back, valid)
        # The next frame's box grows from where this garment is, not from this whole box.
        own = T.garment_box(g, warp, sleeves, (wh, ww))
        self.prev_grey, self.prev_box, self.prev_dst, self.prev_sleeves = grey, own or box, warp.dst, sleeves
        with self._stage("composite"):
            out = frame.copy()
            if self.scale < 1.0:
                s = self.scale
                sx0, sy0 = int(x0 / s), int(y0 / s)
                sx1, sy1 = min(self.W, int(np.ceil(x1 / s))), min(self.H, int(np.ceil(y1 / s)))
                rgb = cv2.resize(
                    np.clip(rgb + 0.5, 0, 255).astype(np.uint8), (sx1 - sx0, sy1 - sy0), interpolation=cv2.INTER_LINEAR
                )
                alpha = cv2.resize(alpha, (sx1 - sx0, sy1 - sy0), interpolation=cv2.INTER_LINEAR)
            else:
                sx0, sy0, sx1, sy1 = x0, y0, x1, y1
            out[sy0:sy1, sx0:sx1] = C.composite(frame[sy0:sy1, sx0:sx1], C.GarmentLayer(rgb, alpha))
        return out, report
