"""The main window's views and which view shows which object: creating the 3D, 2D and
video views after the window is shown, and a type-to-view table, in the manner of napari's
``layer_to_visual``. Inputs go to the 2D view (photos, the middle frame of a focal
stack, the first photo of a set) or the video player; results go to the 3D viewport
(meshes, points, strands, depth as points, avatars), the 2D view (depth with its colour
bar, images) and the video player (VideoResult, beside its source video).

A result reaches the views in one pass of the UI thread with one render: the numpy work
of drawing it (display arrays, level-of-detail stand-ins, its thumbnail) was done by
:func:`prepare_result` in the worker thread that made it, so the UI thread only wraps
finished arrays (issue 15: 0.5-2.6 s stalls when results were converted on the UI thread).
"""

from __future__ import annotations

import logging

TAB_3D, TAB_2D, TAB_VIDEO = 0, 1, 2
log = logging.getLogger("app.display")


def create_views(window) -> None:
    """Put the 2D, video and 3D views (imports pyvista) into the window's tabs."""
    from PySide6.QtGui import QGuiApplication

    window.image_view = _make_view(window, TAB_2D, "app.image_view", "ImageView")
    window.video_view = _make_view(window, TAB_VIDEO, "app.video_view", "VideoView")
    if QGuiApplication.platformName() in ("offscreen", "minimal"):
        _set_tab(window, TAB_3D, window._notice("The 3D view needs a display (this session runs without one)."))
    else:
        window.viewport = _make_view(window, TAB_3D, "app.viewport", "Viewport")
        runner = getattr(window, "runner", None)
        if window.viewport is not None and runner is not None and hasattr(runner, "prepare_result"):
            runner.prepare_result = prepare_result
        timer = getattr(getattr(window.viewport, "plotter", None), "render_timer", None)
        if timer is not None:
            # pyvistaqt re-renders 5 times a second by default; the Viewport renders
            # after every change itself, and each idle re-render blocks the UI thread
            # (100-200 ms with software GL: benchmarks/ui_block.py).
            timer.stop()
    _warm_colour_maps()
    _freeze_startup_objects()


def _warm_colour_maps() -> None:
    """The 2D view's depth colour maps come from OpenCV: importing it holds the GIL for a
    quarter of a second, so it happens here, while the views load, and not when the first
    depth result arrives (engines run in another process, so nothing else imports it)."""
    try:
        from app.image_view import COLORMAPS, colormap_lut

        for name in COLORMAPS:
            colormap_lut(name)
    except Exception:  # the 2D view reports its own problems when used
        log.debug("colour maps not warmed", exc_info=True)


def prepare_result(result) -> None:
    """Called in the worker thread with each engine result: the thumbnail and the display
    arrays of what will be drawn, made now instead of on the UI thread."""
    from app import renderers
    from app.inputs_panel import thumbnail_of

    thumbnail_of(result.main)  # cached for the Results list
    for _n, item in geometry_to_draw(result.items):
        renderers.prepare(item)
        avatar = getattr(item, "avatar", item)  # a Take drives its avatar
        if type(avatar).__name__ == "Avatar":
            deformer_for(avatar)


def deformer_for(avatar):
    """The avatar's slider deformer (:class:`engines.avatar.engine.Deformer`: its blendshape
    matrix takes a good part of a second to stack), made once per avatar, ahead of time
    by :func:`prepare_result` in the worker thread."""
    from app.renderers import _cached
    from engines.avatar.engine import Deformer

    return _cached(avatar, "deformer", lambda: Deformer(avatar))


def _freeze_startup_objects() -> None:
    """Move the objects made at start-up (Qt, VTK and pyvista modules: hundreds of
    thousands) out of the garbage collector's view, so a full collection during a job
    scans only new objects: tens of milliseconds less UI stall (``gc.freeze``, 3.7+)."""
    import gc

    gc.collect()
    gc.freeze()


def _make_view(window, index: int, module: str, cls: str):
    import importlib

    try:
        view = getattr(importlib.import_module(module), cls)()
    except Exception as e:  # a missing or broken view must not take the window down
        log.warning("%s.%s unavailable: %s", module, cls, e)
        _set_tab(window, index, window._notice(f"This view is not available: {e}"))
        return None
    _set_tab(window, index, view)
    return view


def _set_tab(window, index: int, widget) -> None:
    tabs = window.tabs
    current = tabs.currentIndex()
    title = tabs.tabText(index)
    old = tabs.widget(index)
    tabs.removeTab(index)
    tabs.insertTab(index, widget, title)
    if old is not None:
        old.deleteLater()
    tabs.setCurrentIndex(current)


def panel_class(obj):
    """The result panel class an engine declares for ``obj``'s type (``Engine.panels``,
    matched along the type's bases), or None (:mod:`app.contributions`)."""
    from app.contributions import declared_for

    return declared_for("panels", obj)


def panel_dock(window, panel_cls):
    """The panel's dock (made on first use: a tab beside the Engine dock, scrolled so that its
    controls never force the window taller than a laptop screen), shown and raised; the
    panel, or None when it could not be made."""
    title = getattr(panel_cls, "dock_title", panel_cls.__name__)
    panel = window.result_panels.get(title)
    if panel is None:
        from PySide6.QtCore import Qt
        from PySide6.QtWidgets import QFrame, QScrollArea

        try:
            panel = panel_cls(window)
        except Exception as e:  # a plug-in's panel that fails to build leaves the window as it is
            log.warning("The %s panel could not be made", title, exc_info=True)
            window.status(f"The {title} controls are not available: {e}")
            return None
        window.result_panels[title] = panel
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.NoFrame)
        scroll.setWidget(panel)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(panel.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width())
        window.docks[title] = window._dock(title, scroll, Qt.RightDockWidgetArea)
        # A tab beside the Engine dock, taller than the Jobs dock below it.
        window.tabifyDockWidget(window.docks["Engine"], window.docks[title])
        window.resizeDocks(
            [window.docks[title], window.docks["Jobs"]], [max(window.height() - 260, 300), 160], Qt.Vertical
        )
    window.docks[title].show()
    window.docks[title].raise_()
    return panel


def show_panel(window, panel_cls, item, key: str) -> None:
    """The panel's dock (:func:`panel_dock`) raised, showing ``item`` (drawn under ``key``)."""
    panel = panel_dock(window, panel_cls)
    if panel is not None:
        panel.show_item(item, key)


def wanted_panels(items: list, drawn: list[tuple[int, object]]) -> dict:
    """Panel class -> index of the item it shows: each panel class once, for the first item
    that has it, drawn items first (the controls drive what the viewport shows)."""
    wanted: dict = {}
    drawn_idx = [n for n, _ in drawn]
    order = drawn_idx + [n for n in range(len(items)) if n not in drawn_idx]
    for n in order:
        cls = panel_class(items[n])
        if cls is not None and cls not in wanted and getattr(cls, "wants", lambda _i: True)(items[n]):
            wanted[cls] = n
    return wanted


def panel_docks(window, wanted: dict) -> dict:
    """The docks of the ``wanted`` panels (:func:`wanted_panels`) shown and raised, the other
    result panels' docks gone; panel class -> panel, for those that could be made."""
    titles = {getattr(c, "dock_title", c.__name__) for c in wanted}
    hide_result_panels(window, keep=titles)
    made = {cls: panel_dock(window, cls) for cls in wanted}
    return {cls: p for cls, p in made.items() if p is not None}


def show_panels(window, result, prefix: str, drawn: list[tuple[int, object]]) -> None:
    """The panels the result's items ask for (:func:`wanted_panels`) showing their items; the
    other panels' docks go."""
    wanted = wanted_panels(result.items, drawn)
    for cls, panel in panel_docks(window, wanted).items():
        panel.show_item(result.items[wanted[cls]], f"{prefix}/{wanted[cls]}")


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
    for export). Strands and avatars are always drawn. When the main item (the first)
    is a point cloud, that cloud is what the engine made: it is drawn together with
    any meshes beside it (e.g. multi-view camera frusta), other clouds (e.g. the
    sparse points under the dense ones) are left out.
    """
    from engines.types import Avatar, DepthMap, Mesh, PointCloud, Splat, Strands, Take

    drawable = (Mesh, PointCloud, Strands, DepthMap, Avatar, Splat) + _declared_drawable(items)
    if items and isinstance(items[0], DepthMap):
        # Depth is drawn as itself, a surface that knows each pixel's confidence (the
        # viewport hides the unconfident ones); its mesh and points are for export.
        return [(0, items[0])] + [(n, i) for n, i in enumerate(items) if n and isinstance(i, (Strands, Avatar))]
    if not any(isinstance(i, Avatar) for i in items):
        # A take alone is drawn as its avatar; beside the avatar itself it is not drawn twice.
        drawable += (Take,)
    if items and isinstance(items[0], PointCloud):
        return [
            (n, i)
            for n, i in enumerate(items)
            if isinstance(i, drawable) and not isinstance(i, DepthMap) and (n == 0 or not isinstance(i, PointCloud))
        ]
    has_surface = any(isinstance(i, (Mesh, Avatar)) or (isinstance(i, Take) and i.avatar is not None) for i in items)
    has_points = any(isinstance(i, PointCloud) for i in items)
    skip = (PointCloud, DepthMap) if has_surface else (DepthMap,) if has_points else ()
    return [(n, i) for n, i in enumerate(items) if isinstance(i, drawable) and not isinstance(i, skip)]


def _declared_drawable(items: list) -> tuple[type, ...]:
    """Item types (other than Take, which is drawn only without its avatar beside it) that an
    engine declares a viewport renderer for (``Engine.renderers``): a plug-in's own types."""
    from app.contributions import declared_ref

    return tuple(
        {type(i) for i in items if any(c.__name__ != "Take" and declared_ref("renderers", c) for c in type(i).__mro__)}
    )


def show_result(window, result, prefix: str) -> int | None:
    """Show a Result in the window's views; viewport keys are ``f"{prefix}/{index}"``.
    Returns the tab to bring forward (the main item's view)."""
    from engines.types import DepthMap, Image, VideoResult

    tab = None
    vp = window.viewport
    to_draw = geometry_to_draw(result.items) if vp is not None else []
    wanted = wanted_panels(result.items, to_draw)
    if vp is not None:
        vp.clear(render=False)
    # First what changes the window's layout: a panel's dock showing resizes the 3D view,
    # and a QOpenGLWidget paints (renders) when resized, there and then. With the old scene
    # cleared that paint costs a blank frame; the result's one render comes at the next
    # paint, an event of its own, not in this one (issue 15: the avatar's first render inside
    # this event made a 120-160 ms stall).
    panels = panel_docks(window, wanted)
    if vp is not None:
        from PySide6.QtCore import QCoreApplication, QEvent

        for _ in range(3):  # the layouts settle now (nested ones ask their parents in turn)
            QCoreApplication.sendPostedEvents(None, QEvent.LayoutRequest)
    drawn = False
    if vp is not None:
        for n, item in to_draw:
            key = vp.show(item, f"{prefix}/{n}", render=False)
            if key is not None and not drawn:
                vp.frame_key = key  # framed by its main part, not by camera frusta beside it
            drawn = drawn or key is not None
            tab = TAB_3D if tab is None else tab
    for item in result.items:
        if isinstance(item, DepthMap) and window.image_view is not None:
            window.image_view.show_depth(item)
            tab = TAB_2D if item is result.main or tab is None else tab
        elif isinstance(item, Image) and window.image_view is not None:
            window.image_view.show_image(item.rgb8())
            tab = TAB_2D if tab is None else tab
        elif isinstance(item, VideoResult) and window.video_view is not None:
            window.video_view.show_video(item, item.source)
            if window.video_view.side_by_side.isEnabled():
                # A result made from a video is shown beside it (the user can untick it).
                window.video_view.side_by_side.setChecked(True)
            tab = TAB_VIDEO if item is result.main or tab is None else tab
    if vp is not None:
        vp.reset_camera(render=False)  # the photo camera for depth, else the framed front view
    for cls, panel in panels.items():
        panel.show_item(result.items[wanted[cls]], f"{prefix}/{wanted[cls]}")
    if vp is not None:
        if vp.plotter.isVisible():
            # the one render of this result, at a paint after the event loop's next turn:
            # a paint in this same pass (asked for here, or Qt's own after the layout
            # changes) would add the render to this event's stall
            vp.plotter.defer_render()
        else:
            vp.plotter.render()
    return tab


def view_thumbnail(window, size: int = 192):
    """A small RGB picture of what the 3D view shows now (for results, such as meshes
    and point clouds, that carry no picture of their own), or None."""
    vp = window.viewport
    if vp is None:
        return None
    try:
        from app.inputs_panel import _shrink

        rgb = vp.last_frame()  # the frame just drawn: no second render
    except Exception:  # a thumbnail is a nicety
        log.debug("no 3D view thumbnail", exc_info=True)
        return None
    h, w = rgb.shape[:2]
    side = min(h, w)  # the centre square: the view is framed on the result
    y, x = (h - side) // 2, (w - side) // 2
    return _shrink(rgb[y : y + side, x : x + side], size)


def hide_result_panels(window, keep: set[str] = frozenset()) -> None:
    """Result panels belong to the result shown: once another result replaces it in the
    views, their controls would drive something no longer drawn, so their docks go (each
    panel's ``release()`` first: the avatar's stops live tracking and hides Perform) and the
    Engine dock comes forward."""
    docks = getattr(window, "docks", {})
    hid = False
    for title, panel in list(getattr(window, "result_panels", {}).items()):
        if title in keep or title not in docks or docks[title].isHidden():
            continue
        release = getattr(panel, "release", None)
        if release is not None:
            try:
                release()
            except Exception:  # a plug-in's panel must not stop the others going
                log.warning("%s panel release failed", title, exc_info=True)
        docks[title].hide()
        hid = True
    if hid and "Engine" in docks:
        docks["Engine"].show()
        docks["Engine"].raise_()


def hide_avatar_controls(window) -> None:
    """Every result panel goes (the avatar's among them): nothing is drawn for them now; so
    does the Perform dock, which drives the avatar too."""
    hide_result_panels(window)
    docks = getattr(window, "docks", {})
    if "Perform" in docks and not docks["Perform"].isHidden():
        docks["Perform"].hide()
