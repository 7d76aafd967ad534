"""Multi-view reconstruction: photos or an orbit video to cameras, points, a mesh or voxels (see engine.py)."""
