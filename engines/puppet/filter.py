"""The One Euro filter (Casiez, Roussel and Vogel, "1 Euro Filter: A Simple Speed-based
Low-pass Filter for Noisy Input in Interactive Systems", CHI 2012), vectorised over channels.

An exponential low-pass whose cutoff rises with the signal's speed: ``fc = min_cutoff +
beta * |dx/dt|`` (the derivative itself low-passed at ``d_cutoff``). Still, the cutoff is low
and jitter is removed; moving fast, it is high and the filter barely lags. Per channel, so the
eyelids (a blink closes in about 100 ms) get a high ``beta`` and stay crisp while the brows,
which move slowly and jitter the most, get a low ``min_cutoff``. Timestamps may be irregular
(a live camera): the smoothing factor follows the actual time step.
"""

from __future__ import annotations

import numpy as np


def _alpha(cutoff: np.ndarray, dt: float) -> np.ndarray:
    tau = 1.0 / (2.0 * np.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Filter a vector signal sample by sample: ``y = f(x, t_seconds)``.

    ``min_cutoff`` (Hz), ``beta`` (1 / signal unit) and ``d_cutoff`` (Hz) are scalars or one
    value per channel.
    """

    def __init__(self, min_cutoff=1.0, beta=0.0, d_cutoff: float = 1.0):
        self.min_cutoff = np.asarray(min_cutoff, np.float64)
        self.beta = np.asarray(beta, np.float64)
        self.d_cutoff = np.asarray(d_cutoff, np.float64)
        self.reset()

    def reset(self) -> None:
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def __call__(self, x, t: float) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self._x is None or self._t is None or t <= self._t:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), float(t)
            return x.copy()
        dt = float(t) - self._t
        dx = (x - self._x) / dt
        self._dx = self._dx + _alpha(self.d_cutoff, dt) * (dx - self._dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx)
        self._x = self._x + _alpha(cutoff, dt) * (x - self._x)
        self._t = float(t)
        return self._x.copy()
