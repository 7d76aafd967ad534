"""Avatar engine: one portrait photo -> a closed, textured 3D head with emotion sliders.

Modules: ``landmarks`` (MediaPipe), ``camera`` (PnP + focal), ``topology`` and ``head``
(geometry and UV atlas), ``texture`` (bake), ``blendshapes`` and ``emotions`` (FACS basis,
EMFACS emotion map), ``raster`` and ``quality`` (renders and figures), ``export`` (GLB,
OBJ, bundle) and ``engine`` (:class:`~engines.avatar.engine.AvatarEngine`).
"""
