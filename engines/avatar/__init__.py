"""Avatar engine: one portrait photo -> the ICT head model fitted to the person, textured,
with ARKit blendshapes, emotion sliders and a rig.

Modules: ``ict`` (the ICT Face Model, MIT, shipped in ``data/ict``, and its atlas layout),
``correspondence`` (MediaPipe landmarks on the ICT topology), ``arkit`` (the 52 ARKit
blendshapes), ``fit`` (pose, focal, identity and expression from the landmarks), ``bake``
and ``skin`` (the photo into the UV atlas, skin mask), ``emotions`` (EMFACS emotion map),
``rig`` (neck/head/jaw/eye joints and skin weights), ``raster`` and ``quality`` (renders
and figures), ``export`` (GLB, OBJ, bundle) and ``engine``
(:class:`~engines.avatar.engine.AvatarEngine`). Landmarks come from :mod:`engines.face`.
"""
