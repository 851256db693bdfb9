"""Covalent-radius bonds, bond changes between two frames, fragments and close contacts (pure ASE).

A pair ``i, j`` is *bonded* when its distance is below ``bond_factor * (R_i + R_j)``, with ``R`` the
covalent radii of ``ase.data.covalent_radii`` (Å). Bond changes use a hysteresis so thermal
vibration does not count: a bond of the first frame is *broken* only when the pair is farther
apart than ``break_factor * (R_i + R_j)`` in the second frame, and a bond is *formed* only when
the pair was farther apart than that in the first frame and is bonded in the second. Periodic
images are followed where ``atoms.pbc`` says so. Lengths in Å.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.data import covalent_radii
from ase.neighborlist import neighbor_list

__all__ = [
    "BOND_FACTOR",
    "BREAK_FACTOR",
    "bond_changes",
    "bonded_pairs",
    "min_distance",
    "n_fragments",
    "pair_label",
]

#: bonded below 1.3 x the sum of covalent radii (H-H 0.81 Å, C-O 1.85 Å, Cu-H 2.12 Å, Cu-Cu 3.43 Å)
BOND_FACTOR = 1.3
#: a bond counts as broken beyond 1.6 x the sum of covalent radii (H-H 0.99 Å, Cu-H 2.61 Å, Cu-Cu 4.22 Å)
BREAK_FACTOR = 1.6


def pair_label(a: str, b: str) -> str:
    """``"A-B"`` with the two symbols in atomic-number order (``pair_label("O", "C") == "C-O"``)."""
    from ase.data import atomic_numbers

    first, second = sorted((a, b), key=lambda s: (atomic_numbers.get(s, 1000), s))
    return f"{first}-{second}"


def _pairs_within(atoms: Atoms, factor: float) -> set[tuple[int, int]]:
    """Pairs ``(i, j)``, ``i < j``, closer than ``factor * (R_i + R_j)`` (any periodic image)."""
    if len(atoms) < 2:
        return set()
    radii = factor * covalent_radii[atoms.numbers]
    work = atoms.copy()
    work.calc = None
    if not np.any(work.pbc) and abs(np.linalg.det(np.asarray(work.cell))) < 1e-12:
        work.set_cell(np.eye(3))  # neighbor_list needs a cell object; unused without pbc
    i, j = neighbor_list("ij", work, radii, self_interaction=False)
    return {(int(a), int(b)) for a, b in zip(i, j) if a < b}


def bonded_pairs(atoms: Atoms, bond_factor: float = BOND_FACTOR) -> set[tuple[int, int]]:
    """Pairs ``(i, j)`` (``i < j``) bonded in ``atoms``: distance < ``bond_factor * (R_i + R_j)``."""
    return _pairs_within(atoms, bond_factor)


def bond_changes(
    start: Atoms,
    end: Atoms,
    bond_factor: float = BOND_FACTOR,
    break_factor: float = BREAK_FACTOR,
) -> dict:
    """Bonds broken and formed between two frames of the same atoms (hysteresis, see the module).

    Returns ``broken`` and ``formed`` (sorted lists of ``[i, j]``), ``n_broken``, ``n_formed``,
    ``n_bonds_start``, ``n_bonds_end``, and ``broken_by_pair`` / ``formed_by_pair`` (counts keyed
    by ``"A-B"``).
    """
    if len(start) != len(end) or not np.array_equal(start.numbers, end.numbers):
        raise ValueError("bond_changes needs two frames of the same atoms in the same order")
    if break_factor < bond_factor:
        raise ValueError(f"break_factor ({break_factor}) must be >= bond_factor ({bond_factor})")
    bonded_start = _pairs_within(start, bond_factor)
    near_start = _pairs_within(start, break_factor)
    bonded_end = _pairs_within(end, bond_factor)
    near_end = _pairs_within(end, break_factor)
    broken = sorted(bonded_start - near_end)
    formed = sorted(bonded_end - near_start)
    symbols = start.get_chemical_symbols()

    def by_pair(pairs):
        counts: dict[str, int] = {}
        for i, j in pairs:
            key = pair_label(symbols[i], symbols[j])
            counts[key] = counts.get(key, 0) + 1
        return dict(sorted(counts.items()))

    return {
        "broken": [list(p) for p in broken],
        "formed": [list(p) for p in formed],
        "n_broken": len(broken),
        "n_formed": len(formed),
        "n_bonds_start": len(bonded_start),
        "n_bonds_end": len(bonded_end),
        "broken_by_pair": by_pair(broken),
        "formed_by_pair": by_pair(formed),
    }


def n_fragments(atoms: Atoms, factor: float = BREAK_FACTOR) -> int:
    """Connected components of the graph joining atoms closer than ``factor * (R_i + R_j)``.

    With the default (the break factor) a lone atom or a molecule that has left the rest counts
    as its own fragment only once it is clearly out of bonding range.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(atoms)
    if n == 0:
        return 0
    pairs = _pairs_within(atoms, factor)
    rows = [p[0] for p in pairs]
    cols = [p[1] for p in pairs]
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    count, _ = connected_components(graph, directed=False)
    return int(count)


def min_distance(atoms: Atoms) -> float:
    """Shortest interatomic distance (Å), minimum image where periodic; ``inf`` for fewer than 2 atoms."""
    if len(atoms) < 2:
        return float("inf")
    mic = bool(np.any(atoms.pbc))
    distances = atoms.get_all_distances(mic=mic)
    upper = distances[np.triu_indices(len(atoms), k=1)]
    return float(upper.min())
