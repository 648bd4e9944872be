"""speech2face: learn to draw a person's face from their voice (Oh et al., CVPR 2019)."""

__version__ = "0.1.0"
