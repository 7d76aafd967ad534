"""Which view shows which object: a type-to-view table, in the manner of napari's
``layer_to_visual``. Inputs go to the 2D view (photos, the middle frame of a focal
stack, the first photo of a set) or the video player; results go to the 3D viewport
(meshes, points, strands, depth as points, avatars), the 2D view (depth with its colour
bar, images) and the video player (VideoResult, beside its source video).
"""
from __future__ import annotations

TAB_3D, TAB_2D, TAB_VIDEO = 0, 1, 2


def input_picture(obj):
    """The picture the 2D view shows for an input (an Image), or None."""
    from engines.types import FocalStack, Image, ImageSet

    if isinstance(obj, Image):
        return obj
    if isinstance(obj, FocalStack):
        return Image(obj.frames[len(obj) // 2])
    if isinstance(obj, ImageSet):
        return obj.load(0)
    return None


def show_input(window, obj) -> int | None:
    """Show an input in the window's views; returns the tab to bring forward."""
    from engines.types import VideoClip

    if isinstance(obj, VideoClip) and window.video_view is not None:
        window.video_view.show_video(obj, None)
        return TAB_VIDEO
    picture = input_picture(obj)
    if picture is not None and window.image_view is not None:
        window.image_view.show_image(picture.rgb8())
        return TAB_2D
    return None


def geometry_to_draw(items: list) -> list[tuple[int, object]]:
    """(index, item) of the result items to draw in 3D.

    A mesh says more than its points, and points more than the raw depth they came
    from: only the most finished geometry is drawn (everything stays in the result
    for export). Strands and avatars are always drawn.
    """
    from engines.types import Avatar, DepthMap, Mesh, PointCloud, Strands

    has_surface = any(isinstance(i, (Mesh, Avatar)) for i in items)
    has_points = any(isinstance(i, PointCloud) for i in items)
    skip = (PointCloud, DepthMap) if has_surface else (DepthMap,) if has_points else ()
    return [(n, i) for n, i in enumerate(items)
            if isinstance(i, (Mesh, PointCloud, Strands, DepthMap, Avatar)) and not isinstance(i, skip)]


def show_result(window, result, prefix: str) -> int | None:
    """Show a Result in the window's views; viewport keys are ``f"{prefix}/{index}"``.
    Returns the tab to bring forward (the main item's view)."""
    from engines.types import Avatar, DepthMap, Image, VideoResult

    tab = None
    vp = window.viewport
    if vp is not None:
        vp.clear()
        for n, item in geometry_to_draw(result.items):
            vp.show(item, f"{prefix}/{n}")
            tab = TAB_3D if tab is None else tab
    for n, item in enumerate(result.items):
        if isinstance(item, DepthMap) and window.image_view is not None:
            window.image_view.show_depth(item)
            tab = TAB_2D if item is result.main or tab is None else tab
        elif isinstance(item, Image) and window.image_view is not None:
            window.image_view.show_image(item.rgb8())
            tab = TAB_2D if tab is None else tab
        elif isinstance(item, VideoResult) and window.video_view is not None:
            window.video_view.show_video(item, item.source)
            tab = TAB_VIDEO if item is result.main or tab is None else tab
        if isinstance(item, Avatar):
            window.show_avatar(item, f"{prefix}/{n}")
    if vp is not None and tab == TAB_3D:
        vp.reset_camera()
    return tab
