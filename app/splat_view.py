"""Drawing a Gaussian splat (:class:`engines.types.Splat`) in the 3D viewport.

VTK's ``vtkPointGaussianMapper`` draws each point as a screen-space Gaussian; with
``Anisotropic`` on it builds each splat's 3D covariance from a scale (3) and a rotation
(quaternion w x y z) array and projects it as 3DGS does, and ``SetLowpassMatrix`` adds the
same 0.3 px^2 dilation as the training rasteriser (VTK takes it in normalised device
units, so it follows the window size). Colour is the DC (view-independent) term
and opacity the sigmoid of the logit. Blending ``over`` needs the splats back to front:
translucent geometry is drawn without depth writes and in array order, so the points are
re-sorted by depth along the view direction whenever the camera has moved before a render
(an argsort, ~10 ms for 100k splats). Splats fainter than 1/255 are left out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyvista as pv

from engines.types import Splat

if TYPE_CHECKING:
    from app.viewport import Viewport

MAX_SHOWN_SPLATS = 1_000_000


def splat_arrays(splat: Splat) -> dict[str, np.ndarray]:
    """Per-splat display arrays (faint ones dropped): points, scale, rotation, opacity, RGB."""
    op = splat.opacities
    keep = np.flatnonzero(op >= 1.0 / 255.0)
    if len(keep) > MAX_SHOWN_SPLATS:
        keep = keep[np.argsort(-op[keep])[:MAX_SHOWN_SPLATS]]
    q = splat.rotations[keep].astype(np.float32)
    q /= np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    return dict(
        points=splat.positions[keep].astype(np.float32),
        scale=splat.scales[keep].astype(np.float32),
        rotation=q,
        opacity=op[keep].astype(np.float32),
        RGB=splat.base_colors()[keep],
    )


def back_to_front(points: np.ndarray, camera_position, focal_point) -> np.ndarray:
    """Order of ``points`` from the farthest to the nearest along the view direction."""
    d = np.asarray(focal_point, np.float64) - np.asarray(camera_position, np.float64)
    d /= max(np.linalg.norm(d), 1e-12)
    return np.argsort(-(points @ d.astype(np.float32)), kind="stable")


def draw_splat(view: "Viewport", splat: Splat, key: str) -> list[str]:
    """Oriented, depth-sorted Gaussians (see the module docstring)."""
    # The two classes from their own modules: ``import vtk`` loads every VTK module, 0.9-2 s
    # on the UI thread the first time a splat is drawn (issue 15).
    from vtkmodules.vtkRenderingCore import vtkActor, vtkPointGaussianMapper

    from app.renderers import _Item

    arrays = splat_arrays(splat)
    if len(arrays["points"]) == 0:
        return []
    poly = pv.PolyData(arrays["points"].copy())
    for name in ("scale", "rotation", "opacity", "RGB"):
        poly.point_data[name] = arrays[name]
    mapper = vtkPointGaussianMapper()
    mapper.SetInputData(poly)
    mapper.SetAnisotropic(True)
    mapper.SetScaleArray("scale")
    mapper.SetRotationArray("rotation")
    mapper.SetOpacityArray("opacity")
    mapper.SetScaleFactor(1.0)
    mapper.SetEmissive(False)
    mapper.SetScalarModeToUsePointFieldData()
    mapper.SelectColorArray("RGB")
    mapper.SetColorModeToDirectScalars()
    mapper.ScalarVisibilityOn()
    actor = vtkActor()
    actor.SetMapper(mapper)
    actor.GetProperty().SetLighting(False)
    view.plotter.add_actor(actor, name=key, reset_camera=False, render=False)
    item = _Item(actor, poly)
    view._items[key] = item
    state = {"camera": None}
    ren = view.plotter.renderer

    def resort(*_):
        if view._items.get(key) is not item:  # removed or replaced: stop sorting
            ren.RemoveObserver(state["tag"])
            return
        size = tuple(view.plotter.render_window.GetSize())
        if size != state.get("size") and hasattr(mapper, "SetLowpassMatrix") and min(size) > 0:
            # the training rasteriser's 0.3 px^2 dilation, in VTK's normalised device units
            state["size"] = size
            mapper.SetLowpassMatrix(0.3 * (2.0 / size[0]) ** 2, 0.0, 0.3 * (2.0 / size[1]) ** 2)
        cam = ren.GetActiveCamera()
        pose = cam.GetPosition() + cam.GetFocalPoint()
        if pose == state["camera"]:
            return
        state["camera"] = pose
        order = back_to_front(arrays["points"], cam.GetPosition(), cam.GetFocalPoint())
        poly.points = arrays["points"][order]
        for name in ("scale", "rotation", "opacity", "RGB"):
            poly.point_data[name] = arrays[name][order]
        poly.Modified()

    state["tag"] = ren.AddObserver("StartEvent", resort)
    resort()
    return [key]
