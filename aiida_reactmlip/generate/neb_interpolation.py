"""NEB images between two end states: linear or IDPP interpolation through ``ase.mep`` (pure ASE/numpy).

IDPP (image-dependent pair potential; Smidstrup et al., J. Chem. Phys. 140, 214106 (2014)) first
interpolates linearly, then relaxes every image towards interatomic distances interpolated between
the end states, which keeps atoms from passing through each other. Deterministic: no random numbers.
Lengths in Å.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
from ase import Atoms
from ase.mep.neb import NEB, idpp_interpolate

from .scans import _fresh_copy, frame_prefix

__all__ = ["neb_images", "path_length"]

_METHODS = ("idpp", "linear")


def _check_end_states(initial: Atoms, final: Atoms) -> None:
    if len(initial) != len(final):
        raise ValueError(f"end states differ in size: {len(initial)} and {len(final)} atoms")
    if not np.array_equal(initial.numbers, final.numbers):
        k = int(np.flatnonzero(initial.numbers != final.numbers)[0])
        raise ValueError(
            f"end states must list the same atoms in the same order; atom {k} is "
            f"{initial.get_chemical_symbols()[k]} in the initial and {final.get_chemical_symbols()[k]} in the final state"
        )
    if not np.allclose(initial.cell, final.cell, atol=1e-6) or not np.array_equal(initial.pbc, final.pbc):
        raise ValueError("end states must share the cell and pbc")


def neb_images(
    initial: Atoms,
    final: Atoms,
    n_images: int = 5,
    method: str = "idpp",
    mic: bool | None = None,
    name: str | None = None,
    fmax: float = 0.1,
    steps: int = 200,
) -> list[Atoms]:
    """The ``n_images`` intermediate images of a path from ``initial`` to ``final`` (end states not included).

    ``method``: ``"idpp"`` (default) or ``"linear"``. ``mic``: interpolate displacements with the minimum
    image convention (default: when any direction is periodic). IDPP stops at ``fmax`` (eV/Å on the IDPP
    objective) or after ``steps`` MDMin steps. Constraints of ``initial`` (e.g. ``FixAtoms`` of the bottom
    slab layers) are kept: fixed atoms must sit at the same place in both end states. Images carry
    ``info`` ``role="image"``, ``image_index`` (1..n), ``n_images``, ``path_fraction`` k/(n+1),
    ``interpolation`` and ``name`` ``"<prefix>-image-<k>"`` (prefix from ``frame_prefix(initial, name)``);
    other ``info`` entries of ``initial`` that are not about an end state are copied.
    """
    if int(n_images) != n_images or n_images < 1:
        raise ValueError(f"n_images must be a positive integer, got {n_images!r}")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    _check_end_states(initial, final)
    mic = bool(np.any(initial.pbc)) if mic is None else bool(mic)
    fixed = set()
    for c in initial.constraints:
        fixed.update(int(i) for i in np.atleast_1d(c.get_indices()) if hasattr(c, "get_indices"))
    if fixed:
        idx = sorted(fixed)
        delta = final.positions[idx] - initial.positions[idx]
        if np.abs(delta).max() > 1e-6:
            raise ValueError(
                f"constrained atoms move between the end states (by up to {np.abs(delta).max():.3g} Å)"
            )
    ends = [_fresh_copy(initial), _fresh_copy(final)]
    images = [ends[0]] + [_fresh_copy(initial) for _ in range(int(n_images))] + [ends[1]]
    neb = NEB(images, method="improvedtangent")
    neb.interpolate("linear", mic=mic, apply_constraint=False)
    if method == "idpp":
        idpp_interpolate(neb, traj=None, log=None, fmax=float(fmax), steps=int(steps), mic=mic)
    prefix = frame_prefix(initial, name)
    out = []
    n = int(n_images)
    for k, image in enumerate(images[1:-1], start=1):
        image.calc = None
        for key in ("name", "role", "site", "state", "height"):
            image.info.pop(key, None)
        image.info.update(
            role="image",
            image_index=k,
            n_images=n,
            path_fraction=k / (n + 1),
            interpolation=method,
            name=f"{prefix}-image-{k}",
        )
        out.append(image)
    return out


def path_length(images: list[Atoms], mic: bool = True) -> np.ndarray:
    """Cumulative path length (Å, all atoms, minimum image when ``mic``) along ``images``, starting at 0."""
    from ase.geometry import find_mic

    lengths = [0.0]
    for a, b in pairwise(images):
        d = b.positions - a.positions
        if mic and np.any(a.pbc):
            d, _ = find_mic(d, a.cell, a.pbc)
        lengths.append(lengths[-1] + float(np.linalg.norm(d)))
    return np.array(lengths)
