"""Depth from a focal stack, fused with a single-image prior: the HybridDepth pipeline.

Ganj, Su and Guo, "Toward Robust Depth Fusion for Mobile AR With Depth from Focus and
Single-Image Priors" (HybridDepth): (1) depth from focus gives metric depth where the
stack has texture; a relative-depth prior gives well-shaped, scale-free depth for the
whole frame; (2) a global least-squares scale and shift maps the prior to metres;
(3) a local scale refinement corrects what two numbers cannot.

Stages: alignment (:mod:`.align`), depth from focus (:mod:`.focus`), prior
(:mod:`.prior`: the weights-free edge-aware prior by default, or a user's ONNX model),
fusion (:mod:`.fusion`), back-projection to a point cloud and a mesh.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from engines.api import CancelToken, Engine, EngineError, Progress, Result
from engines.types import Camera, DepthMap, FocalStack, Mesh, PointCloud

LOW_CONFIDENCE_FRACTION = 0.02
"""Below this fraction of confident pixels the stack is reported as textureless."""


def confidence_note(fraction: float, threshold: float) -> str:
    """The sentence that tells the user how much of the depth was measured."""
    return (
        f"{fraction * 100:.0f} % of the pixels are confident (confidence of at least {threshold:g}): "
        "their depth was measured from focus; the rest is the prior's estimate between them. "
        "The 3D view hides the pixels below its confidence slider."
    )


def _without_edge_on(mesh: Mesh, max_slope_deg: float) -> Mesh:
    """The mesh without the triangles seen edge-on from its camera (they bridge depth
    jumps; :mod:`engines.depth.surface`) and without the vertices left unused."""
    from engines.depth.surface import edge_on

    keep = ~edge_on(mesh.vertices, mesh.faces, max_slope_deg)
    if keep.all() or not keep.any():
        return mesh
    faces = mesh.faces[keep]
    used = np.zeros(len(mesh.vertices), bool)
    used[faces.ravel()] = True
    remap = np.cumsum(used) - 1
    out = Mesh(
        mesh.vertices[used],
        remap[faces],
        uv=mesh.uv[used] if mesh.uv is not None else None,
        texture=mesh.texture,
        vertex_colors=mesh.vertex_colors[used] if mesh.vertex_colors is not None else None,
        name=mesh.name,
    )
    out.compute_normals()
    return out


class DepthFromFocusEngine(Engine):
    """Metric depth, confidence, all-in-focus image and a 3D point cloud from a focal stack."""

    name = "depth-from-focus"
    title = "Depth from focal stack"
    description = (
        "Metric depth from a focal stack (depth from focus) fused with a relative-depth prior, "
        "as in HybridDepth: depth map in metres, confidence, all-in-focus image, point cloud and mesh."
    )
    accepts = (FocalStack,)
    produces = (DepthMap, PointCloud, Mesh)

    class Params(BaseModel):
        operator: Literal["modified-laplacian", "sum-modified-laplacian", "tenengrad", "graylevel-variance"] = Field(
            "tenengrad",
            description="Focus measure (Pertuz et al. 2013); the default scored best on benchmarks/depth.py",
        )
        window: int = Field(7, ge=3, le=31, description="Focus-measure window in pixels")
        edge_aware_window: bool = Field(
            True, description="Average the focus measure within image edges (guided filter) rather than a plain box"
        )
        scale_consensus: bool = Field(
            True,
            description="Distrust pixels whose sharpest frame differs between the window and a 3x3 window "
            "(focus lent by a strong edge next to them)",
        )
        occlusion_asymmetry: bool = Field(
            True,
            description="Distrust a pixel's focus peak only for a second peak at a farther frame "
            "(a nearer one is what a sharp occluding edge lends to the background beside it)",
        )
        exposure: bool = Field(
            True,
            description="Equalise the frames' exposure before measuring focus (a brighter frame "
            "looks sharper); for stacks shot with auto exposure or flickering light",
        )
        interpolation: Literal["none", "parabolic", "gaussian", "lorentzian"] = Field(
            "lorentzian",
            description="Sub-frame refinement of the best focus (fit through the peak and its neighbours; "
            "Lorentzian fits the focus curve of natural textures best)",
        )
        prior: Literal["edge-aware", "onnx"] = Field(
            "edge-aware",
            description="Relative-depth prior: the weights-free edge-aware prior, or your ONNX depth model",
        )
        onnx_model: str = Field(
            "", description="ONNX monocular depth model file (Depth Anything V2, MiDaS) for prior=onnx"
        )
        onnx_output: Literal["inverse-depth", "depth"] = Field(
            "inverse-depth", description="What the ONNX model outputs (Depth Anything and MiDaS: inverse depth)"
        )
        onnx_input_size: int = Field(
            518, ge=32, le=2048, description="Long side fed to an ONNX model with dynamic input size"
        )
        robust_fit: Literal["none", "huber", "ransac"] = Field(
            "huber", description="Global scale-and-shift fit: plain least squares, or robust to outliers"
        )
        local_refinement: bool = Field(True, description="Refine the scale per pixel after the global fit")
        min_confidence: float = Field(
            0.5, ge=0.0, le=1.0, description="Confidence a pixel needs to take part in the fit"
        )
        smoothness: float = Field(
            200.0,
            ge=1.0,
            le=100000.0,
            description="Reach of the edge-aware propagation (fast global smoother lambda at 500 px)",
        )
        refine_smoothness: float = Field(
            50.0,
            ge=0.1,
            le=100000.0,
            description="Reach of the local scale refinement's smoothing (smaller keeps more detail)",
        )
        edge_sensitivity: float = Field(
            8.0, ge=1.0, le=100.0, description="Colour difference (0-255) at which propagation stops at an edge"
        )
        depth_guidance: float = Field(
            16.0,
            ge=0.0,
            le=64.0,
            description="Guide the smoothing by the measured depth as well as by colour: grey levels per frame "
            "spacing (0 = colour only); keeps edges between surfaces of similar colour",
        )
        reference_frame: int = Field(
            0, ge=0, le=999, description="Frame whose pixel grid the results use (0 = nearest focus)"
        )
        align: bool = Field(True, description="Align the frames to the reference (focus breathing, hand-held shake)")
        fov_deg: float = Field(
            60.0,
            gt=1.0,
            lt=179.0,
            description="Horizontal field of view used when the stack has no intrinsics or EXIF focal length",
        )
        max_depth_jump: float = Field(
            0.05, gt=0.0, le=1.0, description="Mesh: drop triangles whose depths differ by more than this fraction"
        )
        max_slope_deg: float = Field(
            84.0,
            ge=45.0,
            le=90.0,
            description="Mesh: drop triangles seen from the camera more nearly edge-on than this (degrees): "
            "they bridge depth jumps (90 = keep them)",
        )
        make_mesh: bool = Field(True, description="Also build a mesh from the depth grid")
        max_megapixels: float = Field(
            2.0,
            ge=0.01,
            le=200.0,
            description="Working size: larger stacks are measured and fused downscaled to this many megapixels, "
            "then the depth is upsampled to full size (the all-in-focus image stays full size)",
        )

    def run(self, inputs, params: "DepthFromFocusEngine.Params", progress: Progress, cancel: CancelToken) -> Result:
        from engines.depth.align import align_stack
        from engines.depth.focus import depth_from_focus
        from engines.depth.fusion import fit_scale_shift, local_scale_refinement, measurement_weights, to_depth
        from engines.depth.prior import (
            EdgeAwareSmoother,
            check_model_path,
            edge_aware_prior,
            joint_smoother,
            onnx_prior,
            smoothing_lambda,
        )

        self.check_inputs(inputs)
        stack: FocalStack = inputs[0]
        result = Result()
        frames, dist, names = self._checked_stack(stack, result.notes)
        n = len(frames)
        ref = params.reference_frame
        if ref >= n:
            raise EngineError(f"reference_frame is {ref} but the stack has only {n} frames (0 to {n - 1}).")
        if n == 2:
            # No sub-frame fit with two frames: each pixel is "near" or "far" (motorcycle
            # scene: AbsRel 0.18 with 2 frames, 0.045 with 3, 0.024 with 10).
            result.notes.append(
                "Only 2 frames: depth from focus can only tell the nearer focus distance from the "
                "farther one, and the depth in between is the prior's shape. Take 5 or more photos "
                "focused at different distances for metric depth."
            )
        if params.prior == "onnx":
            check_model_path(params.onnx_model)  # before the slow stages, not after them
        cancel.raise_if_set()
        full_h, full_w = frames[0].shape[:2]
        scale = min(1.0, float(np.sqrt(params.max_megapixels * 1e6 / (full_h * full_w))))
        work = frames
        if scale < 1.0:
            with result.stage("downscale"):
                work = self._downscaled(frames, scale)
            result.notes.append(
                f"Measured at {work[0].shape[1]}x{work[0].shape[0]} (max_megapixels "
                f"{params.max_megapixels:g}); the depth was upsampled to {full_w}x{full_h}."
            )

        progress(0.05, "Aligning frames")
        al = full_al = None
        with result.stage("align"):
            if params.align:
                al = align_stack(work, ref, names=names)
                result.notes += al.notes
                full_al = al.rescaled(full_w / work[0].shape[1])
                if not al.skipped:
                    result.notes.append(
                        f"Frames aligned to frame {ref + 1} ({dist[ref]:.3g} m): largest correction "
                        f"{full_al.max_correction_px:.1f} px, residual misalignment "
                        f"{full_al.residual_px:.2f} px."
                    )
                result.metrics.update(
                    align_residual_px=full_al.residual_px,
                    align_correction_px=full_al.max_correction_px,
                    align_min_correlation=float(min(al.correlation)),
                )
        cancel.raise_if_set()

        progress(0.2, "Measuring focus")
        with result.stage("focus"):
            warp = al.warp if al is not None else None
            dff = depth_from_focus(
                self._cancellable(work, cancel),
                dist,
                params.operator,
                params.window,
                params.interpolation,
                warp=warp,
                edge_aware=params.edge_aware_window,
                consensus=params.scale_consensus,
                occlusion_asymmetry=params.occlusion_asymmetry,
                exposure=params.exposure,
            )
        conf = dff.confidence
        if dff.exposure_gains:
            spread = max(abs(1.0 / g - 1.0) for g in dff.exposure_gains)
            result.metrics["exposure_spread"] = float(spread)
            if spread > 0.02:
                result.notes.append(
                    f"The frames' exposure differed by up to {100 * spread:.0f} % from the first "
                    "frame's; it was equalised before measuring focus."
                )
        confident = conf >= params.min_confidence
        frac = float(confident.mean())
        low = frac < LOW_CONFIDENCE_FRACTION
        if low:
            result.notes.append(
                f"Low confidence: only {frac * 100:.1f} % of the pixels show enough texture to measure focus "
                "(a textureless or blurred stack). The depth is mostly the prior's shape and should not be trusted as metric."  # noqa: E501
            )
        else:
            result.notes.append(confidence_note(frac, params.min_confidence))
        weights = measurement_weights(conf)
        cancel.raise_if_set()

        progress(0.5, "Relative-depth prior")
        dmin, dmax = float(dist.min()), float(dist.max())
        with result.stage("prior"):
            lam = smoothing_lambda(conf.shape, params.smoothness)
            # Guided by colour and by the confident depth from focus (joint guidance).
            smoother, guide = joint_smoother(
                dff.all_in_focus,
                dff.dioptre,
                weights,
                confident,
                1.0 / dist,
                lam,
                params.edge_sensitivity,
                params.depth_guidance,
            )
            if params.prior == "edge-aware":
                prior = edge_aware_prior(smoother, dff.dioptre, weights)
                result.notes.append(
                    "Prior: the weights-free edge-aware prior (confident depth from focus propagated "
                    "along the all-in-focus image's edges); no learned model was used."
                )
            else:
                prior = onnx_prior(dff.all_in_focus, params.onnx_model, params.onnx_output, params.onnx_input_size)
                result.notes.append(f"Prior: {prior.name}.")
        cancel.raise_if_set()

        progress(0.65, "Global scale and shift")
        with result.stage("global fit"):
            target = dff.dioptre if prior.kind == "inverse-depth" else dff.depth
            fit_w = conf * confident if confident.sum() >= 2 else np.maximum(conf, 1e-6)
            s, t = fit_scale_shift(prior.values, target, fit_w, params.robust_fit)
            global_depth = to_depth(s * prior.values + t, prior.kind, dmin / 1.5, dmax * 1.5)
        result.metrics.update(fit_scale=s, fit_shift=t)
        cancel.raise_if_set()

        progress(0.75, "Local scale refinement")
        with result.stage("local refinement"):
            if params.local_refinement and not low:
                fine = EdgeAwareSmoother(
                    guide, smoothing_lambda(conf.shape, params.refine_smoothness), params.edge_sensitivity
                )
                depth, _ = local_scale_refinement(global_depth, dff.depth, weights, fine)
            else:
                depth = global_depth
        cancel.raise_if_set()

        image = dff.all_in_focus
        if scale < 1.0:
            progress(0.8, "Upsampling to full size")
            with result.stage("upsample"):
                depth, conf, image = self._upsampled(depth, conf, dff.index, frames, full_al, (full_w, full_h))
        progress(0.85, "Point cloud and mesh")
        K = self._intrinsics(stack, depth.shape, params.fov_deg, result.notes)
        h, w = depth.shape[:2]
        photo = Camera(K, width=w, height=h, name=stack.paths[0].name if stack.paths else "")
        dm = DepthMap(depth, conf, image=image, name="depth from focus", camera=photo)
        with result.stage("point cloud"):
            cloud = self._points(dm, params.max_depth_jump)
        result.items = [dm, cloud]
        if params.make_mesh:
            with result.stage("mesh"):
                mesh = self._mesh(dm, params.max_depth_jump, result.notes, params.max_slope_deg)
            if mesh is not None:
                result.items.append(mesh)
                result.by_extension.update({".glb": mesh, ".obj": mesh})
        # .ply gives the filtered cloud the user sees, not every pixel of the depth grid
        result.by_extension[".ply"] = cloud
        result.metrics.update(
            frames=n,
            width=int(depth.shape[1]),
            height=int(depth.shape[0]),
            confident_fraction=frac,
            low_confidence=low,
            noise_sigma=dff.noise_sigma,
            depth_min_m=float(np.nanmin(depth)),
            depth_median_m=float(np.nanmedian(depth)),
            depth_max_m=float(np.nanmax(depth)),
            points=int(len(cloud.points)),
            prior=prior.name,
        )
        progress(1.0, "Done")
        return result

    # ------------------------------------------------------------------------------------------
    @staticmethod
    def _cancellable(frames, cancel: CancelToken):
        for f in frames:
            cancel.raise_if_set()
            yield f

    @staticmethod
    def _downscaled(frames, scale: float) -> list[np.ndarray]:
        import cv2

        h, w = frames[0].shape[:2]
        size = (max(8, int(round(w * scale))), max(8, int(round(h * scale))))
        return [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]

    @staticmethod
    def _upsampled(depth, conf, index, frames, full_al, size):
        """Depth and confidence resized (bilinear) to the full frame size, and the all-in-focus
        image composed from the full-size frames with the working-size sharpest-frame map."""
        import cv2

        w, h = size
        depth = cv2.resize(depth, size, interpolation=cv2.INTER_LINEAR)
        conf = np.clip(cv2.resize(conf, size, interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
        index = cv2.resize(index.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
        image = np.empty_like(frames[0])
        for k, frame in enumerate(frames):
            sel = index == k
            if not sel.any():
                continue
            warped = full_al.warp(frame, k) if full_al is not None else frame
            np.copyto(image, warped, where=sel[..., None] if image.ndim == 3 else sel)
        return depth, conf, image

    @staticmethod
    def _checked_stack(stack: FocalStack, notes: list[str]):
        """Frames, focus distances (nearest first) and names, or an EngineError saying what is wrong."""
        n = len(stack.frames)
        what = stack.paths[0].parent.name if stack.paths else "the focal stack"
        if n < 2:
            raise EngineError(
                f"{what} has {n} frame(s); depth from focus needs at least 2 photos focused at different distances."
            )
        names = [p.name for p in stack.paths] if len(stack.paths) == n else [f"frame {i + 1}" for i in range(n)]
        dist = np.asarray(stack.focus_distances, np.float64).ravel()
        if dist.size != n:
            raise EngineError(
                f"{what} has {n} frames but {dist.size} focus distances: give one focus distance (metres) per frame."
            )
        bad = [names[i] for i in range(n) if not (np.isfinite(dist[i]) and dist[i] > 0)]
        if bad:
            raise EngineError(f"Focus distance missing or not positive for {', '.join(bad[:4])}: enter it in metres.")
        shape = stack.frames[0].shape
        for i, f in enumerate(stack.frames):
            if f.shape[:2] != shape[:2]:
                raise EngineError(
                    f"{names[i]} is {f.shape[1]}x{f.shape[0]} but {names[0]} is {shape[1]}x{shape[0]}: "
                    "all frames of a focal stack must have the same size; remove or resize it."
                )
        if dist.max() > 100.0:
            notes.append(
                f"The focus distances reach {dist.max():g} m: if they are in millimetres or "
                "centimetres, enter them in metres (the depth comes out in the distances' unit)."
            )
        order = np.argsort(dist, kind="stable")
        if np.any(np.diff(dist[order]) <= 0):
            i = order[int(np.argmax(np.diff(dist[order]) <= 0))]
            raise EngineError(
                f"Two frames share the focus distance {dist[i]:g} m (one is {names[i]}): "
                "remove the duplicate or correct its distance."
            )
        if np.any(order != np.arange(n)):
            notes.append("Frames were sorted by focus distance, nearest first.")
        frames = [stack.frames[i] for i in order]
        if len({(f.ndim, f.dtype.str) for f in frames}) > 1 or any(f.ndim == 3 and f.shape[2] != 3 for f in frames):
            from engines.types import Image

            frames = [Image(f).rgb8() for f in frames]
        return frames, dist[order], [names[i] for i in order]

    @staticmethod
    def _intrinsics(stack: FocalStack, shape, fov_deg: float, notes: list[str]) -> np.ndarray:
        h, w = shape
        if stack.intrinsics is not None:
            return np.asarray(stack.intrinsics, np.float64)
        if stack.exif:
            from engines.io.focalstack import intrinsics_from_exif

            K = intrinsics_from_exif(stack.exif, (w, h))
            if K is not None:
                notes.append("Intrinsics from the EXIF focal length.")
                return K
        notes.append(f"No focal length known: the point cloud assumes a {fov_deg:g} degree horizontal field of view.")
        f = 0.5 * w / np.tan(np.radians(fov_deg) / 2)
        return np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]], np.float64)

    @staticmethod
    def _points(dm: DepthMap, max_jump: float) -> PointCloud:
        """Coloured points, without the "flying pixels" on depth discontinuities: a pixel
        whose 3 x 3 neighbourhood spans more than ``max_jump`` of its depth lies between
        a foreground and a background and belongs to neither."""
        import cv2

        d = dm.depth
        kernel = np.ones((3, 3), np.uint8)
        spread = cv2.dilate(d, kernel) - cv2.erode(d, kernel)
        clean = DepthMap(
            np.where(spread > max_jump * d, np.nan, d), dm.confidence, dm.intrinsics, dm.image, dm.name, dm.camera
        )
        stride = max(1, int(np.ceil(np.sqrt(d.size / 1.0e6))))
        return clean.to_points(stride)

    @staticmethod
    def _mesh(dm: DepthMap, max_jump: float, notes: list[str], max_slope_deg: float = 90.0):
        try:
            from engines.io.depth import depth_to_mesh
        except ImportError:
            notes.append("No mesh: the depth-to-mesh writer is not available in this build.")
            return None
        stride = max(1, int(np.ceil(np.sqrt(dm.depth.size / 0.5e6))))
        mesh = depth_to_mesh(dm, max_depth_jump=max_jump, stride=stride)
        if max_slope_deg < 90.0:
            mesh = _without_edge_on(mesh, max_slope_deg)
        return mesh
