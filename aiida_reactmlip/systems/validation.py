"""Checks of configurations before anything is submitted (pure ASE/numpy). Lengths in Å.

- overlapping atoms: two atoms (minimum image) closer than ``min_distance`` (default 0.5 Å, far below
  any bond: H2 is 0.74 Å), the pair named (``Frames.check_no_overlapping_atoms``);
- a slab without vacuum: a configuration marked as a slab (``info["kind"] == "slab"`` or a ``facet``)
  whose largest empty gap along c is below ``min_vacuum`` (default ``qe_settings.MIN_VACUUM`` = 5 Å),
  which would make it a bulk crystal for pw.x.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from ase import Atoms

from ..frames import Frames
from ..qe_settings import MIN_VACUUM, vacuum_thickness

__all__ = [
    "MIN_DISTANCE",
    "MIN_VACUUM",
    "check_no_overlap",
    "check_slab_vacuum",
    "is_slab",
    "validate_configuration",
    "validate_configurations",
]

#: Default shortest allowed interatomic distance (Å).
MIN_DISTANCE = 0.5


def _label(atoms: Atoms) -> str:
    name = atoms.info.get("name")
    return f"configuration {name!r}" if name else f"configuration {atoms.get_chemical_formula()}"


def check_no_overlap(atoms: Atoms, min_distance: float = MIN_DISTANCE) -> None:
    """ValueError naming the two atoms (indices, symbols) and their distance when any pair (minimum image)
    is closer than ``min_distance`` Å."""
    if not min_distance > 0:
        raise ValueError(f"min_distance must be a positive length in Å, got {min_distance!r}")
    frame = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    frame.info["name"] = atoms.info.get("name") or atoms.get_chemical_formula()
    try:
        Frames.from_atoms([frame]).check_no_overlapping_atoms(min_distance)
    except ValueError as exc:
        raise ValueError(f"overlapping atoms in {_label(atoms)}: {str(exc).split(': ', 1)[-1]}") from None


def is_slab(atoms: Atoms) -> bool:
    """True when the configuration says it is a slab: ``info["kind"] == "slab"`` or an ``info["facet"]``."""
    return atoms.info.get("kind") == "slab" or "facet" in atoms.info


def check_slab_vacuum(atoms: Atoms, min_vacuum: float = MIN_VACUUM) -> float:
    """The vacuum gap (Å) along c of a slab; ValueError saying "slab without vacuum" when it is thinner than
    ``min_vacuum`` Å (a periodic image of the slab would touch it: pw.x would compute a bulk crystal)."""
    if atoms.cell.rank < 3:
        raise ValueError(
            f"{_label(atoms)}: a slab needs a 3-D cell (vacuum along c), got rank {atoms.cell.rank}"
        )
    gap = float(vacuum_thickness(atoms)[2])
    if not gap >= min_vacuum:
        raise ValueError(
            f"slab without vacuum: {_label(atoms)} has a largest empty gap of {gap:.2f} Å along c, "
            f"less than {min_vacuum:g} Å; add vacuum along c, e.g. atoms.center(vacuum=6.0, axis=2)"
        )
    return gap


def validate_configuration(
    atoms: Atoms, min_distance: float = MIN_DISTANCE, min_vacuum: float = MIN_VACUUM, slab: bool | None = None
) -> None:
    """All checks of one configuration: finite positions, no overlap, and vacuum when it is a slab
    (``slab`` None: decided by ``is_slab``)."""
    if not np.all(np.isfinite(atoms.positions)):
        raise ValueError(f"{_label(atoms)} has non-finite positions")
    check_no_overlap(atoms, min_distance)
    if slab if slab is not None else is_slab(atoms):
        check_slab_vacuum(atoms, min_vacuum)


def validate_configurations(
    configurations: Iterable[Atoms], min_distance: float = MIN_DISTANCE, min_vacuum: float = MIN_VACUUM
) -> None:
    """``validate_configuration`` on each configuration (e.g. ``system.configurations``); first failure raised."""
    for atoms in configurations:
        validate_configuration(atoms, min_distance=min_distance, min_vacuum=min_vacuum)
