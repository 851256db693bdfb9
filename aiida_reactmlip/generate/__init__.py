"""Configuration generators (pure ASE/numpy): bond scans, strain series, rattles, NEB images (IDPP).

Each generator copies its input, is deterministic (for a given seed where random), and tags
every frame's ``info`` with ``role`` and ``name``. Lengths in Å.
"""

from .neb_interpolation import neb_images, path_length
from .rattle import rattle
from .scans import bond_scan, frame_prefix, strain_series

__all__ = ["bond_scan", "frame_prefix", "neb_images", "path_length", "rattle", "strain_series"]
