"""Retargeting: ARKit weights and head/eye rotations drive any avatar.

The weights are expression semantics (ARKit's 52 names), not geometry, so they drive any
head with ARKit-named morph targets, the way Live Link Face and Ready Player Me rigs are
driven: :class:`Retargeter` maps names (exact, then case-insensitive, then an explicit
``mapping``), applies per-shape gains and builds, per frame, the avatar's morph weights
and its vertices (blendshapes, then linear blend skinning of the head and eye joints).

Neutral calibration removes the performer's resting offset. In the weight domain (for the
raw Face Landmarker scores): the median of each weight over the resting frames is taken
off and the rest of the range stretched back to 0..1, ``w' = clip((w - w0) / (1 - w0))``;
the head's resting orientation (the chordal mean over those frames) becomes the zero
rotation. The solver does the same in the landmark domain
(:meth:`engines.puppet.solve.ExpressionSolver.adapt_neutral`).

Eyes: gaze from the eyeLook weights, each eye turned by :func:`engines.avatar.arkit.
eye_look_rotation` (the angles the avatar's eyeLook shapes and eye joints share).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engines.avatar.arkit import ARKIT_NAMES, eye_look_rotation
from engines.puppet.rotation import mean_rotation


@dataclass
class Neutral:
    """The performer at rest: weight offsets (52, ARKIT_NAMES order) and head rotation."""

    offsets: np.ndarray
    rotation: np.ndarray
    """3x3 model -> camera rotation of the resting head."""
    frames: tuple[int, int] = (0, 0)
    """The frame range [start, stop) it was measured on."""


def estimate_neutral(
    weights: np.ndarray, rotations: np.ndarray, frames: tuple[int, int] | None = None, tracked: np.ndarray | None = None
) -> Neutral:
    """Neutral from a frame range of raw weights (T x 52) and head rotations (T x 3 x 3)."""
    weights = np.asarray(weights, np.float64)
    T = len(weights)
    a, b = frames if frames is not None else (0, T)
    a, b = max(0, int(a)), min(T, int(b))
    idx = np.arange(a, b)
    if tracked is not None:
        idx = idx[np.asarray(tracked, bool)[idx]]
    if not len(idx):
        return Neutral(np.zeros(weights.shape[1]), np.diag([1.0, -1.0, -1.0]), (a, b))
    return Neutral(np.median(weights[idx], 0), mean_rotation(np.asarray(rotations)[idx]), (a, b))


def apply_neutral(weights: np.ndarray, offsets: np.ndarray | None) -> np.ndarray:
    """``clip((w - w0) / (1 - w0), 0, 1)`` per weight (rows or one vector)."""
    w = np.asarray(weights, np.float64)
    if offsets is None:
        return np.clip(w, 0.0, 1.0)
    w0 = np.clip(np.asarray(offsets, np.float64), 0.0, 0.95)
    return np.clip((w - w0) / (1.0 - w0), 0.0, 1.0)


_LOOK = {
    side: {d: ARKIT_NAMES.index(f"eyeLook{d}{side}") for d in ("Up", "Down", "In", "Out")} for side in ("Left", "Right")
}


def eye_rotations(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) 3x3 eye rotations from one frame's 52 weights: horizontal (In/Out) after
    vertical (Up/Down), each the net of the two opposite shapes."""
    out = []
    for side in ("Left", "Right"):
        k = _LOOK[side]
        w = np.asarray(weights, np.float64)
        up, down = w[k["Up"]], w[k["Down"]]
        inn, outt = w[k["In"]], w[k["Out"]]
        V = eye_look_rotation(side, "Up", up) @ eye_look_rotation(side, "Down", down)
        H = eye_look_rotation(side, "In", inn) @ eye_look_rotation(side, "Out", outt)
        out.append(H @ V)
    return out[0], out[1]


class Skinner:
    """Linear blend skinning for a Skeleton whose rest rotations are the identity, as
    :func:`engines.avatar.rig.pose_vertices` (the reference), with the per-vertex joint
    weights gathered once into an N x J matrix so a frame costs J small matrix products."""

    def __init__(self, skeleton, joints: np.ndarray, weights: np.ndarray):
        self.skeleton = skeleton
        J = len(skeleton.names)
        n = len(joints)
        W = np.zeros((n, J), np.float32)
        for k in range(joints.shape[1]):
            np.add.at(W, (np.arange(n), joints[:, k].astype(np.int64)), weights[:, k])
        self.W = W
        self.used = [j for j in range(J) if W[:, j].any()]

    def matrices(self, rotations: dict[str, np.ndarray]) -> np.ndarray:
        from engines.avatar.rig import skinning_matrices

        return skinning_matrices(self.skeleton, rotations)

    def __call__(self, V: np.ndarray, rotations: dict[str, np.ndarray]) -> np.ndarray:
        if not rotations:
            return np.asarray(V, np.float32)
        M = self.matrices(rotations).astype(np.float32)
        V = np.asarray(V, np.float32)
        out = np.zeros_like(V)
        for j in self.used:
            w = self.W[:, j : j + 1]
            out += w * (V @ M[j, :3, :3].T + M[j, :3, 3])
        return out


class Retargeter:
    """Take weights (ARKIT_NAMES order) and rotations -> one avatar's morph weights and vertices.

    ``mapping``: avatar target name by ARKit name, for rigs that spell them differently;
    ``gains``: per ARKit name multipliers (e.g. exaggerate a smile), applied before clipping.
    """

    def __init__(self, avatar, mapping: dict[str, str] | None = None, gains: dict[str, float] | None = None):
        self.avatar = avatar
        m = avatar.mesh
        lower = {k.lower(): k for k in m.morph_targets}
        self.targets: list[tuple[int, str]] = []
        for i, n in enumerate(ARKIT_NAMES):
            name = (mapping or {}).get(n) or (n if n in m.morph_targets else lower.get(n.lower()))
            if name is not None and name in m.morph_targets:
                self.targets.append((i, name))
        self.gains = np.ones(len(ARKIT_NAMES))
        for k, g in (gains or {}).items():
            if k in ARKIT_NAMES:
                self.gains[ARKIT_NAMES.index(k)] = float(g)
        self._src = np.array([i for i, _ in self.targets], np.int64)
        self._basis = None
        self._skinner = None
        sk = avatar.skeleton
        self.joint_names = set(sk.names) if sk is not None else set()

    @property
    def missing(self) -> list[str]:
        """ARKit names the avatar has no morph target for (their motion is dropped)."""
        have = set(int(i) for i in self._src)
        return [n for i, n in enumerate(ARKIT_NAMES) if i not in have]

    def morph_weights(self, weights: np.ndarray) -> dict[str, float]:
        """The avatar's morph weights by target name for one frame."""
        w = np.clip(np.asarray(weights, np.float64) * self.gains, 0.0, 1.0)
        return {name: float(w[i]) for i, name in self.targets}

    def morph_rows(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """Curves by avatar target name for T x 52 weights (for the GLB's weight track)."""
        w = np.clip(np.asarray(weights, np.float64) * self.gains, 0.0, 1.0)
        return {name: w[:, i].astype(np.float32) for i, name in self.targets}

    def vertices(
        self, weights: np.ndarray, head: np.ndarray | None = None, eyes: tuple[np.ndarray, np.ndarray] | None = None
    ) -> np.ndarray:
        """The avatar's head mesh vertices for one frame (blendshapes, then the head and eye
        joints turned by ``head`` / ``eyes`` 3x3 rotations)."""
        m = self.avatar.mesh
        if self._basis is None:
            self._basis = (
                np.stack([m.morph_targets[n].ravel() for _, n in self.targets]).astype(np.float32)
                if self.targets
                else np.zeros((0, m.vertices.size), np.float32)
            )
            self._rest = m.vertices.astype(np.float32).ravel()
        w = np.clip(np.asarray(weights, np.float64) * self.gains, 0.0, 1.0)[self._src].astype(np.float32)
        on = np.flatnonzero(w > 1e-4)
        V = (self._rest + w[on] @ self._basis[on]) if len(on) else self._rest.copy()
        V = V.reshape(-1, 3)
        rots = {}
        if head is not None and "Head" in self.joint_names:
            rots["Head"] = np.asarray(head)
        if eyes is not None:
            for name, R in zip(("LeftEye", "RightEye"), eyes):
                if name in self.joint_names:
                    rots[name] = np.asarray(R)
        if rots and m.joints is not None and m.weights is not None:
            if self._skinner is None:
                self._skinner = Skinner(self.avatar.skeleton, m.joints, m.weights)
            V = self._skinner(V, rots)
        elif "Head" in rots:  # no skin: turn the whole head about its centre
            c = V.mean(0)
            V = (V - c) @ rots["Head"].T.astype(np.float32) + c
        return V
