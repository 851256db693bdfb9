"""Scans of one coordinate: bond-length scans and strain series (pure ASE/numpy).

Every generator copies its input (never mutates it), drops any calculator, and tags each new
frame's ``info`` with ``role``, ``name`` and the scanned coordinate. Lengths in Å.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from ase import Atoms

__all__ = ["bond_scan", "frame_prefix", "strain_series"]

_FIX = {"center": 0.5, "i": 0.0, "j": 1.0}


def frame_prefix(atoms: Atoms, name: str | None = None) -> str:
    """Prefix for generated frame names: ``name``, else ``info['system']``, else the formula in lower case."""
    if name:
        return str(name)
    system = atoms.info.get("system")
    if system:
        return str(system)
    return atoms.get_chemical_formula(mode="hill").lower() or "empty"


def format_value(x: float, digits: int = 2) -> str:
    """``x`` with ``digits`` decimals, or more when that would round it (0.74 -> '0.74', 0.745 -> '0.745')."""
    s = f"{x:.{digits}f}"
    if abs(float(s) - x) > 1e-9:
        s = f"{x:.8f}".rstrip("0").rstrip(".")
    return s


def _fresh_copy(atoms: Atoms) -> Atoms:
    new = atoms.copy()  # copies arrays, cell, pbc, constraints and info; drops the calculator
    new.info = dict(atoms.info)
    return new


def bond_scan(
    atoms: Atoms,
    i: int,
    j: int,
    distances: Iterable[float],
    fix: str = "center",
    name: str | None = None,
) -> list[Atoms]:
    """One new frame per distance (Å) with the i-j distance set to it (``Atoms.set_distance``).

    Only atoms ``i`` and ``j`` move, along their bond vector (minimum image when any direction
    is periodic). ``fix``: ``"center"`` keeps the bond centre, ``"i"`` keeps atom i in place
    (``"j"``: atom j). Frames get ``info`` ``role="scan"``, ``scan_coordinate`` (Å),
    ``scan_atoms`` ``[i, j]`` and ``name`` ``"<prefix>-scan-<d>"`` (e.g. ``"h2-scan-0.74"``; prefix
    from ``frame_prefix``).
    """
    n = len(atoms)
    if not (-n <= i < n and -n <= j < n):
        raise ValueError(f"atom indices ({i}, {j}) out of range for {n} atoms")
    i, j = int(i) % n, int(j) % n
    if i == j:
        raise ValueError("bond_scan needs two different atoms")
    if fix not in _FIX:
        raise ValueError(f"fix must be one of {sorted(_FIX)}, got {fix!r}")
    values = [float(d) for d in distances]
    if not values:
        raise ValueError("distances is empty")
    bad = [d for d in values if not np.isfinite(d) or d <= 0]
    if bad:
        raise ValueError(f"distances must be positive finite lengths in Å, got {bad}")
    mic = bool(np.any(atoms.pbc))
    if atoms.get_distance(i, j, mic=mic) < 1e-8:
        raise ValueError(f"atoms {i} and {j} coincide: the bond direction is undefined")
    prefix = frame_prefix(atoms, name)
    frames = []
    for d in values:
        new = _fresh_copy(atoms)
        new.set_distance(i, j, d, fix=_FIX[fix], mic=mic)
        new.info.update(
            role="scan",
            scan_coordinate=d,
            scan_atoms=[i, j],
            name=f"{prefix}-scan-{format_value(d)}",
        )
        frames.append(new)
    return frames


def strain_series(atoms: Atoms, strains: Iterable, name: str | None = None) -> list[Atoms]:
    """Homogeneously strained copies of a bulk crystal (atoms scaled with the cell).

    Each strain is a scalar ``s`` (isotropic: every cell vector times ``1 + s``), three numbers
    (diagonal strain along x, y, z) or a symmetric 3x3 strain tensor ``eps``: the new cell is
    ``cell @ (I + eps)``. Needs ``pbc`` all True and a 3-D cell. Frames get ``role="strain"``,
    ``strain`` (the 3x3 tensor as nested lists), ``volumetric_strain`` (V/V0 - 1) and
    ``name`` ``"<prefix>-strain-<k>"`` (``k`` = position in ``strains``) or, for a scalar,
    ``"<prefix>-strain-+0.010"``.
    """
    if not np.all(atoms.pbc):
        raise ValueError(f"strain_series is for bulk crystals (pbc all True), got pbc={atoms.pbc.tolist()}")
    v0 = atoms.get_volume() if atoms.cell.rank == 3 else 0.0
    if v0 <= 0:
        raise ValueError("strain_series needs a 3-D cell with positive volume")
    prefix = frame_prefix(atoms, name)
    frames = []
    for k, s in enumerate(strains):
        arr = np.asarray(s, dtype=float)
        if arr.ndim == 0:
            eps = np.eye(3) * float(arr)
            label = f"{float(arr):+.3f}"
        elif arr.shape == (3,):
            eps = np.diag(arr)
            label = str(k)
        elif arr.shape == (3, 3):
            if not np.allclose(arr, arr.T):
                raise ValueError(f"strain {k} is not symmetric: {arr.tolist()}")
            eps = arr
            label = str(k)
        else:
            raise ValueError(f"strain {k} must be a scalar, 3 numbers or a 3x3 tensor, got shape {arr.shape}")
        if not np.all(np.isfinite(eps)):
            raise ValueError(f"strain {k} is not finite")
        new = _fresh_copy(atoms)
        new.set_cell(np.asarray(atoms.cell) @ (np.eye(3) + eps), scale_atoms=True)
        vol = new.get_volume()
        if vol <= 0:
            raise ValueError(f"strain {k} collapses the cell (volume {vol:.3g} Å^3)")
        new.info.update(
            role="strain",
            strain=eps.tolist(),
            volumetric_strain=float(vol / v0 - 1.0),
            name=f"{prefix}-strain-{label}",
        )
        frames.append(new)
    if not frames:
        raise ValueError("strains is empty")
    return frames
