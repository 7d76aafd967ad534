"""Video virtual try-on: a garment photo on the person in a video.

After Hu Ankang, "Video virtual try-on based on optical flow improvement" (2023), built
without its learned parts (no VVT-trained networks are available offline):

* :mod:`.garment`  - garment mask (alpha / plain background / GrabCut) and landmarks;
* :mod:`.person`   - MediaPipe Pose + segmentation per frame, One Euro smoothing;
* :mod:`.tps`      - regularised thin-plate-spline warp (eq. 1-2), sleeves along the arms;
* :mod:`.composite`- the classical generator (torso region, occluders, shading, feather)
  and the :class:`~.composite.GarmentGenerator` protocol a learned generator implements;
* :mod:`.onnx_generator` - a learned generator from a user's ONNX file (``generator_model``);
* :mod:`.temporal` - DIS optical flow, forward-backward check, eq. 5 blending, metrics;
* :mod:`.pipeline` - one frame through all of the above, with the state between frames;
* :mod:`.engine`   - :class:`~.engine.TryOnEngine`, the ``tryon`` engine (I/O, params,
  notes, metrics).

Plugging in a learned generator::

    class MyGenerator:
        def render(self, frame, person, warped_rgb, warped_mask) -> GarmentLayer: ...

    TryOnEngine(generator=MyGenerator()).run([clip, garment], params, progress, cancel)
"""
