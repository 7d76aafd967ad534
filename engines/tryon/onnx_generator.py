"""A learned try-on generator from an ONNX file the user supplies.

Hu (2023) renders the final frame with a U-Net trained on VVT (as CP-VTON's try-on
module does): it takes the person frame and the warped garment and predicts the
dressed person plus a composition mask. No such weights ship with this app; a user who
has an exported model can plug it in with the ``generator_model`` parameter, and this
class adapts it to the :class:`~engines.tryon.composite.GarmentGenerator` protocol.

Model contract (NCHW, float32, values 0..1; height and width fixed in the model or
dynamic, in which case the garment box is used at its own size rounded up to 16):

* inputs  ``frame`` (1, 3, H, W), ``warped_garment`` (1, 3, H, W),
  ``warped_mask`` (1, 1, H, W), ``person_mask`` (1, 1, H, W);
* outputs, in this order: ``rgb`` (1, 3, H, W), the try-on result, and ``mask``
  (1, 1, H, W), where that result replaces the source frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engines.api import EngineError
from engines.tryon.composite import GarmentLayer

INPUTS = ("frame", "warped_garment", "warped_mask", "person_mask")


class OnnxGenerator:
    """:class:`GarmentGenerator` backed by an ONNX model (onnxruntime, CPU)."""

    def __init__(self, path: str | Path):
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.exists():
            raise EngineError(f"Generator model {self.path}: no such file. Choose the .onnx file again.")
        try:
            self.session = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises several kinds for a bad file
            raise EngineError(f"{self.path.name} is not a usable ONNX model ({e}). Export it again.") from None
        names = {i.name: i for i in self.session.get_inputs()}
        missing = [n for n in INPUTS if n not in names]
        outputs = self.session.get_outputs()
        if missing or len(outputs) < 2:
            raise EngineError(
                f"{self.path.name} does not fit the try-on generator contract: it needs inputs "
                f"{', '.join(INPUTS)} and outputs rgb, mask (got inputs {', '.join(names) or 'none'}, "
                f"{len(outputs)} output(s))."
            )
        shape = names["frame"].shape
        self.fixed = (shape[2], shape[3]) if all(isinstance(s, int) for s in shape[2:4]) else None
        self.outputs = [o.name for o in outputs[:2]]

    def render(self, frame, person, warped_rgb, warped_mask) -> GarmentLayer:
        import cv2

        h, w = frame.shape[:2]
        mh, mw = self.fixed or (-(-h // 16) * 16, -(-w // 16) * 16)

        def nchw(a: np.ndarray) -> np.ndarray:
            a = cv2.resize(a.astype(np.float32), (mw, mh), interpolation=cv2.INTER_LINEAR)
            a = a[:, :, None] if a.ndim == 2 else a
            return np.ascontiguousarray(a.transpose(2, 0, 1)[None])

        feeds = {
            "frame": nchw(frame / 255.0),
            "warped_garment": nchw(warped_rgb / 255.0),
            "warped_mask": nchw(warped_mask),
            "person_mask": nchw(person.mask),
        }
        rgb, mask = self.session.run(self.outputs, feeds)
        rgb = cv2.resize(np.asarray(rgb, np.float32)[0].transpose(1, 2, 0), (w, h), interpolation=cv2.INTER_LINEAR)
        mask = cv2.resize(np.asarray(mask, np.float32)[0, 0], (w, h), interpolation=cv2.INTER_LINEAR)
        return GarmentLayer(np.clip(rgb * 255.0, 0, 255), np.clip(mask, 0, 1), warped_mask * (person.mask > 0.5))
