"""3D Gaussian splatting trained on the CPU (Kerbl et al. 2023): photos or an orbit video to
a radiance field of Gaussians (see engine.py; the rasteriser is in raster.py)."""
