"""Data types that flow into and out of engines.

Plain dataclasses holding numpy arrays, so that engines stay free of any viewer or
geometry library. Conversions to trimesh / open3d / pyvista live at the edges:
:mod:`engines.io` for files, ``app.viewport`` for display.

Conventions
-----------
* Images are ``uint8`` or ``uint16`` arrays, H x W x C in RGB(A) order (never BGR),
  or H x W for greyscale.
* Distances are metres. Cameras are :class:`Camera`: a 3x3 pixel matrix ``K`` and a pose
  ``x_cam = R @ X + t`` in OpenCV's convention (x right, y down, z forward); pixel
  coordinates are pixel-centre based (integer = the centre of a pixel).
* Meshes use counter-clockwise triangles seen from outside (outward normals).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

import numpy as np


def _f32(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


# ----------------------------------------------------------------------------- camera
Z_MIN = 1e-6
"""Depth (camera z) below which a point counts as behind the camera when projecting."""


@dataclass(eq=False)
class Camera(Mapping):
    """A pinhole camera: intrinsics ``K`` (3x3, pixels), pose ``R`` (3x3), ``t`` (3,) with
    ``x_cam = R @ X + t`` (OpenCV: x right, y down, z forward), and the image size.

    One type for every engine, the viewport and the exports: the avatar's photo camera, the
    multiview and splat cameras, the hair renderer's views. It also reads as the mapping
    ``{"K", "R", "t", "image_size"}`` that files and older code use (``cam["K"]``,
    :meth:`to_dict`, :meth:`from_dict`)."""

    K: np.ndarray
    R: np.ndarray = field(default_factory=lambda: np.eye(3))
    t: np.ndarray = field(default_factory=lambda: np.zeros(3))
    width: int = 0
    height: int = 0
    name: str = ""
    """The photo the camera took (a file name), when it is one."""
    held_out: bool = False
    """Kept out of training (a splat's evaluation photos)."""

    def __post_init__(self):
        self.K = np.asarray(self.K, np.float64).reshape(3, 3)
        self.R = np.asarray(self.R, np.float64).reshape(3, 3)
        self.t = np.asarray(self.t, np.float64).reshape(3)
        self.width, self.height = int(self.width), int(self.height)
        self.name, self.held_out = str(self.name), bool(self.held_out)

    # -- the mapping view (files, older code) ------------------------------------------
    _KEYS = ("K", "R", "t", "image_size")
    _ATTRS = ("K", "R", "t", "width", "height", "name", "held_out")
    """Also readable as keys: the splat's camera dicts of older projects had these."""

    def __getitem__(self, key):
        if key == "image_size":
            return (self.width, self.height)
        if key in self._ATTRS:
            return getattr(self, key)
        raise KeyError(key)

    def __iter__(self):
        return iter(self._KEYS)

    def __len__(self) -> int:
        return len(self._KEYS)

    def to_dict(self) -> dict:
        return {"K": self.K.copy(), "R": self.R.copy(), "t": self.t.copy(), "image_size": (self.width, self.height)}

    @classmethod
    def from_dict(cls, d) -> "Camera":
        """From ``{"K", "R", "t", "image_size"}`` (lists or arrays), or the splat's older
        ``{"name", "K", "R", "t", "width", "height", "held_out"}``, or a Camera (returned)."""
        if isinstance(d, Camera):
            return d
        w, h = d["image_size"] if "image_size" in d else (d.get("width", 0), d.get("height", 0))
        return cls(
            K=d["K"],
            R=d.get("R", np.eye(3)),
            t=d.get("t", np.zeros(3)),
            width=w,
            height=h,
            name=d.get("name", ""),
            held_out=d.get("held_out", False),
        )

    @classmethod
    def look_at(
        cls,
        eye,
        target,
        up=(0.0, 1.0, 0.0),
        focal_px: float = 1000.0,
        width: int = 1000,
        height: int = 1000,
        name: str = "",
    ) -> "Camera":
        """A camera at ``eye`` looking at ``target`` with ``up`` (world, y up) pointing up in
        the image; the principal point at the image centre."""
        eye, target = np.asarray(eye, np.float64), np.asarray(target, np.float64)
        fwd = target - eye
        fwd /= max(np.linalg.norm(fwd), 1e-12)
        right = np.cross(fwd, np.asarray(up, np.float64))
        if np.linalg.norm(right) < 1e-9:  # looking along up: any right will do
            right = np.cross(fwd, [1.0, 0.0, 0.0] if abs(fwd[0]) < 0.9 else [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        down = np.cross(fwd, right)
        R = np.stack([right, down, fwd])
        K = np.array([[focal_px, 0, (width - 1) / 2.0], [0, focal_px, (height - 1) / 2.0], [0, 0, 1.0]])
        return cls(K=K, R=R, t=-R @ eye, width=width, height=height, name=name)

    # -- geometry ------------------------------------------------------------------------
    @property
    def centre(self) -> np.ndarray:
        """The camera's position in the world."""
        return -self.R.T @ self.t

    @property
    def forward(self) -> np.ndarray:
        """The viewing direction (world)."""
        return self.R[2].copy()

    @property
    def up(self) -> np.ndarray:
        """The image's up direction (world): minus the camera's y axis."""
        return -self.R[1]

    @property
    def image_size(self) -> tuple[int, int]:
        return (self.width, self.height)

    def to_camera(self, X: np.ndarray) -> np.ndarray:
        """World points (N x 3) in camera coordinates."""
        return np.asarray(X, np.float64).reshape(-1, 3) @ self.R.T + self.t

    def project(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(pixel xy N x 2, camera depth N) of world points. Points at depth <= Z_MIN (behind
        the camera) get NaN pixel positions; their depth is returned as it is, so callers can
        tell them apart."""
        c = self.to_camera(X)
        z = c[:, 2]
        front = z > Z_MIN
        zs = np.where(front, z, 1.0)
        xy = c[:, :2] / zs[:, None] @ self.K[:2, :2].T + self.K[:2, 2]
        xy[~front] = np.nan
        return xy, z

    def unproject(self, xy: np.ndarray, depth) -> np.ndarray:
        """World points at pixel positions ``xy`` (N x 2) and camera depths ``depth`` (N or
        scalar): the inverse of :meth:`project`."""
        xy = np.asarray(xy, np.float64).reshape(-1, 2)
        d = np.broadcast_to(np.asarray(depth, np.float64), (len(xy),))
        rays = np.column_stack([xy, np.ones(len(xy))]) @ np.linalg.inv(self.K).T
        return (rays * d[:, None] - self.t) @ self.R

    def scaled(self, s: float) -> "Camera":
        """The same camera for the image resized by ``s`` (pixel-centre convention)."""
        K = self.K.copy()
        K[:2, :2] *= s
        K[:2, 2] = (K[:2, 2] + 0.5) * s - 0.5
        return Camera(
            K=K,
            R=self.R.copy(),
            t=self.t.copy(),
            width=max(1, round(self.width * s)),
            height=max(1, round(self.height * s)),
            name=self.name,
            held_out=self.held_out,
        )

    def posed(self, R, t) -> "Camera":
        """The same intrinsics and image at another pose."""
        return replace(self, K=self.K.copy(), R=R, t=t)


DISPLAY_FROM_CAMERA = np.diag([1.0, -1.0, -1.0])
"""Camera axes (x right, y down, z forward) to the display frame's (x right, y up, z towards
the viewer) and back: its own inverse."""


# ----------------------------------------------------------------------------- inputs
@dataclass
class Image:
    """One photo. ``pixels`` is H x W x 3 (RGB), H x W x 4 (RGBA) or H x W (grey)."""

    pixels: np.ndarray
    path: Path | None = None
    exif: dict = field(default_factory=dict)
    """Selected EXIF tags by name (FocalLength, FocalLengthIn35mmFilm, SubjectDistance...)."""
    notes: list[str] = field(default_factory=list)
    """Things the reader did that the user should know (e.g. downscaled)."""

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.pixels.shape[1]), int(self.pixels.shape[0])

    def rgb8(self) -> np.ndarray:
        """The pixels as H x W x 3 uint8 RGB, whatever the stored depth or channels."""
        p = self.pixels
        if p.dtype == np.uint16:
            p = (p >> 8).astype(np.uint8)
        elif p.dtype != np.uint8:
            p = np.clip(p * (255.0 if p.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        if p.ndim == 2:
            p = np.repeat(p[:, :, None], 3, axis=2)
        elif p.shape[2] == 4:
            a = p[:, :, 3:4].astype(np.float32) / 255.0
            p = (p[:, :, :3].astype(np.float32) * a + 255.0 * (1 - a)).astype(np.uint8)
        elif p.shape[2] == 1:
            p = np.repeat(p, 3, axis=2)
        return np.ascontiguousarray(p)


@dataclass
class FocalStack:
    """Photos of one scene focused at different distances.

    ``frames[i]`` was focused at ``focus_distances[i]`` metres. Frames are sorted
    nearest focus first by the reader.
    """

    frames: list[np.ndarray]
    focus_distances: np.ndarray
    intrinsics: np.ndarray | None = None
    paths: list[Path] = field(default_factory=list)
    exif: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.focus_distances = np.asarray(self.focus_distances, dtype=np.float64)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def size(self) -> tuple[int, int]:
        return int(self.frames[0].shape[1]), int(self.frames[0].shape[0])


@dataclass
class VideoClip:
    """A video file; frames are decoded lazily (RGB uint8) by :meth:`frames`."""

    path: Path
    frame_count: int
    fps: float
    width: int
    height: int

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        from engines.io.video import iter_frames

        return iter_frames(self.path, start, stop)

    def frame(self, index: int) -> np.ndarray:
        from engines.io.video import read_frame

        return read_frame(self.path, index)


@dataclass
class ImageSet:
    """Photos of one scene from many viewpoints (multi-view reconstruction)."""

    paths: list[Path]
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int) -> Image:
        from engines.io.images import read_image

        return read_image(self.paths[index])


# ----------------------------------------------------------------------------- results
@dataclass
class Mesh:
    """A triangle mesh.

    ``morph_targets`` maps a name (e.g. ``"happiness"``) to per-vertex offsets
    (N x 3, metres) that are added, weighted, to ``vertices``.
    """

    vertices: np.ndarray
    faces: np.ndarray
    normals: np.ndarray | None = None
    uv: np.ndarray | None = None
    texture: np.ndarray | None = None
    vertex_colors: np.ndarray | None = None
    morph_targets: dict[str, np.ndarray] = field(default_factory=dict)
    name: str = "mesh"
    face_groups: dict[str, np.ndarray] = field(default_factory=dict)
    """Optional named parts (e.g. ``head``, ``eyes``, ``teeth``): name -> face indices. GLB
    writes each as its own named mesh/node (with the morph targets), OBJ as ``g`` groups."""
    joints: np.ndarray | None = None
    """N x 4 joint indices into a :class:`Skeleton` (skinning), with ``weights``."""
    weights: np.ndarray | None = None
    """N x 4 skin weights (rows sum to 1)."""
    cameras: list[Camera] = field(default_factory=list)
    """The photo cameras the mesh stands for, when it draws them (multi-view camera frusta):
    the viewport's "View from camera" lists them."""

    def __post_init__(self):
        self.vertices = _f32(self.vertices).reshape(-1, 3)
        self.cameras = [Camera.from_dict(c) for c in self.cameras]
        if self.joints is not None:
            self.joints = np.ascontiguousarray(self.joints, dtype=np.uint16).reshape(-1, 4)
        if self.weights is not None:
            self.weights = _f32(self.weights).reshape(-1, 4)
        self.face_groups = {k: np.ascontiguousarray(v, dtype=np.int64).ravel() for k, v in self.face_groups.items()}
        self.faces = np.ascontiguousarray(self.faces, dtype=np.int64).reshape(-1, 3)
        if self.normals is not None:
            self.normals = _f32(self.normals).reshape(-1, 3)
        if self.uv is not None:
            self.uv = _f32(self.uv).reshape(-1, 2)
        self.morph_targets = {k: _f32(v).reshape(-1, 3) for k, v in self.morph_targets.items()}

    def compute_normals(self) -> np.ndarray:
        """Area-weighted vertex normals (unit length), stored and returned."""
        self.normals = vertex_normals(self.vertices, self.faces)
        return self.normals

    def deformed(self, weights: dict[str, float]) -> np.ndarray:
        """Vertices with the named morph targets applied at the given weights."""
        v = self.vertices.copy()
        for name, w in weights.items():
            if w:
                v += np.float32(w) * self.morph_targets[name]
        return v

    @property
    def bounds(self) -> np.ndarray:
        return np.stack([self.vertices.min(0), self.vertices.max(0)])


@dataclass
class PointCloud:
    points: np.ndarray
    colors: np.ndarray | None = None
    """N x 3 uint8 RGB."""
    normals: np.ndarray | None = None
    name: str = "points"

    def __post_init__(self):
        self.points = _f32(self.points).reshape(-1, 3)
        if self.colors is not None:
            self.colors = np.ascontiguousarray(self.colors, dtype=np.uint8).reshape(-1, 3)
        if self.normals is not None:
            self.normals = _f32(self.normals).reshape(-1, 3)


@dataclass
class DepthMap:
    """Metric depth (metres, float32, NaN = unknown) in a reference image's pixel grid."""

    depth: np.ndarray
    confidence: np.ndarray | None = None
    """0..1 per pixel."""
    intrinsics: np.ndarray | None = None
    """3x3 K of the photo (pixels); the same as ``camera.K`` when a camera is given."""
    image: np.ndarray | None = None
    """Reference (e.g. all-in-focus) RGB image, same H x W."""
    name: str = "depth"
    camera: Camera | None = None
    """The photo's :class:`Camera` (identity pose: depth is along its z). Made from
    ``intrinsics`` when only they are given, and gives them when only it is."""

    def __post_init__(self):
        self.depth = _f32(self.depth)
        if self.confidence is not None:
            self.confidence = _f32(self.confidence)
        h, w = self.depth.shape[:2]
        if self.camera is not None:
            self.camera = Camera.from_dict(self.camera)
            if self.intrinsics is None:
                self.intrinsics = self.camera.K.copy()
        elif self.intrinsics is not None:
            self.camera = Camera(K=self.intrinsics, width=w, height=h, name=self.name)

    def photo_camera(self, fov_deg: float = 60.0) -> Camera:
        """:attr:`camera`, or one with :meth:`default_intrinsics` when none is known."""
        if self.camera is not None and self.intrinsics is not None and np.array_equal(self.camera.K, self.intrinsics):
            return self.camera
        K = self.intrinsics if self.intrinsics is not None else self.default_intrinsics(fov_deg)
        h, w = self.depth.shape[:2]
        return Camera(K=K, width=w, height=h, name=self.name)

    def display_camera(self) -> Camera:
        """The photo's camera for the points of :meth:`to_points` (display frame: y up, z
        towards the viewer), which is what the viewport views the depth map from."""
        return self.photo_camera().posed(DISPLAY_FROM_CAMERA, np.zeros(3))

    def default_intrinsics(self, fov_deg: float = 60.0) -> np.ndarray:
        """Pinhole K for a horizontal field of view, when none is known."""
        h, w = self.depth.shape
        f = 0.5 * w / np.tan(np.radians(fov_deg) / 2)
        return np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]], np.float64)

    def to_points(self, stride: int = 1) -> PointCloud:
        """Back-project valid pixels to a coloured point cloud (camera frame, +z forward)."""
        d = self.depth[::stride, ::stride]
        ys, xs = np.mgrid[0 : self.depth.shape[0] : stride, 0 : self.depth.shape[1] : stride]
        ok = np.isfinite(d) & (d > 0)
        # camera frame x right, y down, z forward -> display frame y up, z towards the viewer
        pts = self.display_camera().unproject(np.column_stack([xs[ok], ys[ok]]), d[ok])
        cols = None
        if self.image is not None:
            img = self.image[::stride, ::stride]
            if img.ndim == 2:
                img = np.repeat(img[:, :, None], 3, 2)
            cols = img[ok][:, :3]
            if cols.dtype != np.uint8:
                cols = (cols >> 8).astype(np.uint8) if cols.dtype == np.uint16 else cols.astype(np.uint8)
        return PointCloud(pts, cols, name=self.name + " points")


@dataclass
class Strands:
    """Hair as polylines: ``points`` is S x P x 3 (metres), ``colors`` S x 3 uint8."""

    points: np.ndarray
    colors: np.ndarray | None = None
    name: str = "hair"

    def __post_init__(self):
        self.points = _f32(self.points)
        if self.colors is not None:
            self.colors = np.ascontiguousarray(self.colors, dtype=np.uint8).reshape(-1, 3)


@dataclass
class Skeleton:
    """Joints for skinning: a tree with rest positions in the mesh's frame (metres).

    At rest every joint's rotation is the identity (its axes are the mesh axes), so a joint's
    inverse bind matrix is a translation by ``-positions[j]``.
    """

    names: list[str]
    parents: np.ndarray
    """J parent indices (-1 for the root); parents come before their children."""
    positions: np.ndarray
    """J x 3 world rest positions."""

    def __post_init__(self):
        self.parents = np.asarray(self.parents, dtype=np.int64).ravel()
        self.positions = np.ascontiguousarray(self.positions, dtype=np.float64).reshape(-1, 3)


@dataclass
class Avatar:
    """A head with an expression basis: ``mesh.morph_targets`` holds the basis shapes
    and one target per emotion; ``emotions`` holds the current slider values (0..1)."""

    mesh: Mesh
    emotions: dict[str, float] = field(default_factory=dict)
    camera: Camera | dict = field(default_factory=dict)
    """The photo's :class:`Camera` (a mapping given here, e.g. read from a file, becomes one);
    empty when the avatar has no photo camera."""
    hair: Strands | None = None
    extra_meshes: list[Mesh] = field(default_factory=list)
    """Eyes, teeth, hair cards: parts that are drawn and exported with the head."""
    scalp: np.ndarray | None = None
    """Indices of the head vertices where hair may grow."""
    photo: np.ndarray | None = None
    params: dict = field(default_factory=dict)
    name: str = "avatar"
    skeleton: Skeleton | None = None
    """Neck, head, jaw and eye joints; ``mesh.joints`` / ``mesh.weights`` skin the head to it."""
    presets: dict[str, dict[str, float]] = field(default_factory=dict)
    """Named blendshape weight sets, e.g. ``"As photographed"``: the photo's own expression."""
    expression: dict[str, float] = field(default_factory=dict)
    """Current blendshape weights set directly (ARKit names), added to what the emotions give."""

    def __post_init__(self):
        if self.camera and not isinstance(self.camera, Camera) and "K" in self.camera:
            self.camera = Camera.from_dict(self.camera)


@dataclass
class VideoResult:
    """A video produced by an engine: an MP4 on disk (``path``) or frames in memory."""

    fps: float
    path: Path | None = None
    frames: list[np.ndarray] | None = None
    source: Path | None = None
    """The input video, for side-by-side playback."""
    name: str = "video"

    @property
    def frame_count(self) -> int:
        if self.frames is not None:
            return len(self.frames)
        from engines.io.video import probe

        return probe(self.path)["frame_count"]


@dataclass
class Take:
    """A recorded performance: per-frame ARKit blendshape weights and head and eye rotations,
    the animation the puppet engine records and exports as an animated GLB.

    Rotations are unit quaternions ``(x, y, z, w)`` (glTF's order) in the avatar's head frame
    (+X the subject's left, +Y up, +Z where the face looks): ``head_rotation`` turns the
    ``Head`` joint, ``eye_rotation[:, 0]`` / ``[:, 1]`` the ``LeftEye`` / ``RightEye`` joints
    (relative to the head). Frames where no face was found hold the previous pose and have
    ``tracked`` False.
    """

    fps: float
    times: np.ndarray
    """T frame times in seconds from the first frame (strictly increasing)."""
    names: tuple[str, ...]
    """The weight columns' blendshape names (the 52 ARKit names, in the avatar's order)."""
    weights: np.ndarray
    """T x len(names) weights 0..1: filtered, with the performer's neutral removed."""
    head_rotation: np.ndarray
    """T x 4 quaternions (x, y, z, w) of the head relative to its rest pose."""
    eye_rotation: np.ndarray
    """T x 2 x 4 quaternions of the left and right eye (gaze from the eyeLook weights)."""
    tracked: np.ndarray
    """T booleans: False where the frame was missed (the pose was held)."""
    head_translation: np.ndarray | None = None
    """Optional T x 3 head translation from its rest position, metres (avatar frame)."""
    raw_weights: np.ndarray | None = None
    """Optional T x len(names) weights before smoothing and neutral calibration."""
    neutral: np.ndarray | None = None
    """The resting offsets that were removed (len(names)), or None when none was."""
    timings: dict[str, np.ndarray] = field(default_factory=dict)
    """Per-frame milliseconds by stage (``track``, ``solve``, ``filter``, ``mesh``, ``total``)."""
    source: Path | None = None
    """The video the take was tracked from (None for a live camera)."""
    name: str = "take"
    avatar: Avatar | None = None
    """The avatar the take drives (what GLB and MP4 exports draw)."""
    meta: dict = field(default_factory=dict)
    """Export options and provenance (``render``: size / side by side; ``solver``; ``calibration``)."""

    def __post_init__(self):
        self.times = np.asarray(self.times, np.float64).ravel()
        self.names = tuple(self.names)
        self.weights = _f32(self.weights).reshape(len(self.times), len(self.names))
        self.head_rotation = _f32(self.head_rotation).reshape(len(self.times), 4)
        self.eye_rotation = _f32(self.eye_rotation).reshape(len(self.times), 2, 4)
        self.tracked = np.asarray(self.tracked, bool).ravel()
        if self.head_translation is not None:
            self.head_translation = _f32(self.head_translation).reshape(len(self.times), 3)
        if self.raw_weights is not None:
            self.raw_weights = _f32(self.raw_weights).reshape(len(self.times), len(self.names))

    def __len__(self) -> int:
        return len(self.times)

    @property
    def duration(self) -> float:
        """Seconds from the first to the last frame."""
        return float(self.times[-1] - self.times[0]) if len(self.times) else 0.0

    @property
    def missed(self) -> int:
        """Frames in which no face was found."""
        return int((~self.tracked).sum())

    def weight(self, name: str) -> np.ndarray:
        """One blendshape's curve (T,)."""
        return self.weights[:, self.names.index(name)]


@dataclass
class Splat:
    """A radiance field as 3D Gaussians (Kerbl et al., "3D Gaussian Splatting", SIGGRAPH 2023),
    stored as the standard 3DGS PLY stores it.

    Per Gaussian: ``positions`` (N x 3), ``log_scales`` (N x 3, natural log of the standard
    deviations along its axes), ``rotations`` (N x 4 unit quaternions, w x y z), ``opacity_logits``
    (N; opacity = sigmoid) and ``sh`` (N x K x 3 spherical-harmonic colour coefficients,
    K = (degree + 1)^2; ``sh[:, 0]`` is the DC term, colour = SH(direction) + 0.5).
    ``cameras`` are the photos' :class:`Camera` objects in the splat's frame, with ``name``
    and ``held_out`` (not used for training); dicts with ``name``, ``K``, ``R``, ``t``,
    ``width``, ``height``, ``held_out`` (older projects) become cameras."""

    positions: np.ndarray
    log_scales: np.ndarray
    rotations: np.ndarray
    opacity_logits: np.ndarray
    sh: np.ndarray
    cameras: list[Camera] = field(default_factory=list)
    name: str = "splat"

    def __post_init__(self):
        self.cameras = [Camera.from_dict(c) for c in self.cameras]
        self.positions = _f32(self.positions).reshape(-1, 3)
        n = len(self.positions)
        self.log_scales = _f32(self.log_scales).reshape(n, 3)
        self.rotations = _f32(self.rotations).reshape(n, 4)
        self.opacity_logits = _f32(self.opacity_logits).reshape(n)
        self.sh = _f32(self.sh).reshape(n, -1, 3)

    def __len__(self) -> int:
        return len(self.positions)

    @property
    def sh_degree(self) -> int:
        return int(round(np.sqrt(self.sh.shape[1]))) - 1

    @property
    def opacities(self) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.opacity_logits))

    @property
    def scales(self) -> np.ndarray:
        return np.exp(self.log_scales)

    def base_colors(self) -> np.ndarray:
        """N x 3 uint8: the view-independent (DC) colour."""
        return np.clip((self.sh[:, 0] * 0.28209479177387814 + 0.5) * 255.0 + 0.5, 0, 255).astype(np.uint8)


INPUT_TYPES = (Image, FocalStack, VideoClip, ImageSet)
RESULT_TYPES = (Mesh, PointCloud, DepthMap, Strands, Avatar, VideoResult, Image, Take, Splat)


# ----------------------------------------------------------------------------- normals
def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (float32): each vertex sums the unnormalised
    normals (twice the area times the unit normal) of the triangles around it. The one
    implementation every engine and the viewport use; :class:`VertexNormals` is the same
    sum prepared for redoing every frame."""
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64).reshape(-1, 3)
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    rep = np.repeat(fn, 3, axis=0)  # each face normal once per corner
    idx = f.ravel()
    vn = np.stack([np.bincount(idx, rep[:, c], minlength=len(v)) for c in range(3)], 1)
    n = np.linalg.norm(vn, axis=1, keepdims=True)
    return _f32(vn / np.maximum(n, 1e-12))


class VertexNormals:
    """:func:`vertex_normals` for fixed faces, fast enough to redo every frame (a slider
    moving morph targets): the vertex-face incidence is a sparse matrix built once, so each
    call is a cross product per face and one sparse product (about 2 ms for 60k faces)."""

    def __init__(self, faces: np.ndarray, n_vertices: int):
        from scipy import sparse

        f = np.asarray(faces, np.int64).reshape(-1, 3)
        self.f0, self.f1, self.f2 = (np.ascontiguousarray(f[:, k]) for k in range(3))
        nf = len(f)
        self.incidence = sparse.csr_matrix(
            (np.ones(3 * nf, np.float32), (f.ravel(), np.repeat(np.arange(nf), 3))), shape=(n_vertices, nf)
        )

    def __call__(self, vertices: np.ndarray) -> np.ndarray:
        v = np.asarray(vertices, np.float32)
        a = v[self.f0]
        fn = np.cross(v[self.f1] - a, v[self.f2] - a)
        n = np.asarray(self.incidence @ fn, np.float32)
        n /= np.maximum(np.sqrt(np.einsum("ij,ij->i", n, n))[:, None], 1e-20)
        return n
