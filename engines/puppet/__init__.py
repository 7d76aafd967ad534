"""Performance capture: a webcam or a video drives an avatar's face and head.

Public API (Qt-free; a GUI calls it frame by frame)::

    from engines.puppet import LiveSession, TrackOptions

    session = LiveSession(avatar, TrackOptions(vertices=True))  # avatar: engines.types.Avatar
    pose = session.push(frame_rgb, t_ms)     # FramePose: weights (52, ARKit order), weight_dict,
                                             #   head_rotation (3x3), eye_rotations, landmarks,
                                             #   vertices (with vertices=True), timings (ms), tracked
    session.calibrate(seconds=1.0)           # "neutral": the last second is the performer at rest
    session.record(); ...; take = session.stop()   # engines.types.Take
    session.missed                           # frames without a face (the pose was held)

    PuppetEngine  (engine "puppet": VideoClip + Avatar/portrait Image -> Take, Avatar)
    write_take_glb / write_take_mp4 / write_take_json   (engines.io.export picks by extension)
    Retargeter(avatar).morph_weights(w) / .vertices(w, head_R)   drive any ARKit-named avatar

    Camera(index) / list_cameras()          (engines.puppet.camera: a webcam as the frame source)

Modules: :mod:`.landmarks` (Face Landmarker per frame), :mod:`.camera` (webcam), :mod:`.solve` (expression + pose for a
fixed identity), :mod:`.filter` (One Euro filter), :mod:`.track` (the session), :mod:`.retarget`
(names, neutral calibration, gaze, skinning), :mod:`.rotation`, :mod:`.render` (numpy
renders), :mod:`.export` (GLB / MP4 / JSON), :mod:`.synth` (known-truth clips for tests and the
benchmark), :mod:`.engine`. MediaPipe is imported only when a landmarker is made.
"""

from engines.puppet.retarget import Retargeter  # noqa: F401
from engines.puppet.track import FilterOptions, FramePose, LiveSession, TrackOptions  # noqa: F401

__all__ = ["FilterOptions", "FramePose", "LiveSession", "Retargeter", "TrackOptions"]
