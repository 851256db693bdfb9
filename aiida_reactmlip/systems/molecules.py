"""Small molecules in a box, ready for a periodic DFT code (pure ASE/numpy). Lengths in Å."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms

__all__ = ["DIATOMICS", "GAS_MOLECULES", "Diatomic", "diatomic", "gas_molecule"]


@dataclass(frozen=True)
class Diatomic:
    """A diatomic molecule: ``symbols`` (e.g. "CO"), equilibrium ``bond_length`` (Å, experiment),
    ground-state ``multiplicity`` (2S+1) and the default ``scan`` distances (Å)."""

    symbols: str
    bond_length: float
    multiplicity: int
    scan: tuple[float, ...]


def _scan_around(r0: float) -> tuple[float, ...]:
    # Compression is steep, so fewer points below r0; one stretched point towards dissociation.
    return tuple(round(r0 + d, 4) for d in (-0.16, -0.08, -0.04, 0.0, 0.04, 0.12, 0.30))


DIATOMICS: dict[str, Diatomic] = {
    "H2": Diatomic("H2", 0.74, 1, (0.55, 0.65, 0.70, 0.75, 0.80, 0.90, 1.10)),
    "O2": Diatomic("O2", 1.21, 3, _scan_around(1.21)),
    "N2": Diatomic("N2", 1.10, 1, _scan_around(1.10)),
    "CO": Diatomic("CO", 1.13, 1, _scan_around(1.13)),
}


def diatomic(symbols: str, bond_length: float | None = None, box: float = 8.0) -> Atoms:
    """A diatomic molecule along z, centred in a cubic ``box`` (Å) cell with ``pbc=True``.

    pw.x is periodic anyway; ``box`` sets the vacuum between images. ``bond_length`` defaults
    to the table value. Triplet molecules (O2) get initial magnetic moments of 1 per atom and
    ``info["multiplicity"]`` so the DFT layer can run them spin-polarised.
    """
    if symbols not in DIATOMICS:
        raise KeyError(f"unknown diatomic {symbols!r}; known: {sorted(DIATOMICS)}")
    spec = DIATOMICS[symbols]
    d = spec.bond_length if bond_length is None else float(bond_length)
    if not np.isfinite(box) or box <= 2 * d:
        raise ValueError(f"box must be a length in Å well above the bond length {d}, got {box!r}")
    atoms = Atoms(symbols, positions=[[0.0, 0.0, -d / 2], [0.0, 0.0, d / 2]], cell=[box] * 3, pbc=True)
    atoms.center()
    if spec.multiplicity > 1:
        atoms.set_initial_magnetic_moments([(spec.multiplicity - 1) / 2.0] * 2)
    atoms.info["multiplicity"] = spec.multiplicity
    return atoms


#: Gas-phase molecules used as references and reactants: ASE's G2 geometries (experiment) and the
#: ground-state multiplicity 2S+1.
GAS_MOLECULES: dict[str, int] = {"H2": 1, "O2": 3, "N2": 1, "CO": 1, "H2O": 1, "CH4": 1, "NH3": 1}


def gas_molecule(formula: str, box: float = 10.0) -> Atoms:
    """A gas-phase molecule (``GAS_MOLECULES``) centred in a cubic ``box`` (Å) cell with ``pbc=True``.

    Geometry from ASE's G2 set; ``info["multiplicity"]`` set; triplet O2 gets initial moments of
    1 Bohr magneton per atom. ``info["kind"] = "molecule"``.
    """
    from ase.build import molecule as g2

    if formula not in GAS_MOLECULES:
        raise KeyError(f"unknown gas molecule {formula!r}; known: {sorted(GAS_MOLECULES)}")
    atoms = g2(formula)
    extent = np.ptp(atoms.positions, axis=0).max() if len(atoms) > 1 else 0.0
    if not np.isfinite(box) or box < extent + 4.0:
        raise ValueError(f"box must be at least {extent + 4.0:.1f} Å for {formula}, got {box!r}")
    atoms.cell = [box] * 3
    atoms.pbc = True
    atoms.center()
    mult = GAS_MOLECULES[formula]
    if mult > 1:
        atoms.set_initial_magnetic_moments([(mult - 1) / len(atoms)] * len(atoms))
    atoms.info["multiplicity"] = mult
    atoms.info["kind"] = "molecule"
    return atoms
