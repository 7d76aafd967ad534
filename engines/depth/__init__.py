"""Depth from a focal stack fused with a relative-depth prior (the HybridDepth pipeline); see engine.py."""
