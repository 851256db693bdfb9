"""The size guard of ``reactmlip label``: structures above a number of atoms are refused unless ``--yes``.

A pw.x scf costs roughly the cube of the number of atoms in time and its square in memory (plane waves,
dense diagonalisation), times the number of k-points. The estimate scales one reference run measured on this
project's machines (a 13-atom Cu(111) slab + H, 30/240 Ry, Γ only, 2 MPI ranks: 38 s wall, 260 MB) by atoms,
k-points, cutoff and ranks. It is an order of magnitude, said as such, not a prediction.
"""

from __future__ import annotations

import math
import os

#: Default largest structure (atoms) labelled without ``--yes``; ``$REACTMLIP_MAX_ATOMS`` changes it.
DEFAULT_MAX_ATOMS = 200
MAX_ATOMS_ENV = "REACTMLIP_MAX_ATOMS"
#: The reference pw.x run: atoms, wall seconds, memory MB, ecutwfc Ry, MPI ranks (Γ only).
REFERENCE = {"atoms": 13, "seconds": 38.0, "memory_mb": 260.0, "ecutwfc": 30.0, "ranks": 2}


def default_max_atoms() -> int:
    """``$REACTMLIP_MAX_ATOMS`` when set to an integer, else :data:`DEFAULT_MAX_ATOMS`."""
    try:
        return int(os.environ.get(MAX_ATOMS_ENV, DEFAULT_MAX_ATOMS))
    except ValueError:
        return DEFAULT_MAX_ATOMS


def estimate_pw_cost(atoms: int, kpoints: int = 1, ecutwfc: float = 30.0, ranks: int = 1) -> dict:
    """Rough wall time (s) and memory (MB) of one pw.x scf: the reference scaled by atoms³ (time), atoms²
    (memory), k-points, (ecutwfc/30 Ry)^1.5 (plane waves) and 1/ranks (time)."""
    size = atoms / REFERENCE["atoms"]
    waves = (ecutwfc / REFERENCE["ecutwfc"]) ** 1.5
    seconds = REFERENCE["seconds"] * size**3 * max(kpoints, 1) * waves * REFERENCE["ranks"] / max(ranks, 1)
    memory = REFERENCE["memory_mb"] * size**2 * waves * max(1.0, math.sqrt(max(kpoints, 1)))
    return {"seconds": seconds, "memory_mb": memory}


def human_seconds(seconds: float) -> str:
    """``42 s``, ``13 min``, ``5.2 h``, ``3.1 days``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def size_refusal(sizes: dict[str, dict], max_atoms: int) -> str | None:
    """The message refusing a labelling whose largest structure has more than ``max_atoms`` atoms, else None.

    :param sizes: name -> {"atoms": int, "kpoints": int, "ecutwfc": Ry, "ranks": int} per structure.
    :param max_atoms: the limit; 0 or less disables the guard.
    """
    if max_atoms <= 0 or not sizes:
        return None
    large = {name: size for name, size in sizes.items() if size["atoms"] > max_atoms}
    if not large:
        return None
    name, size = max(large.items(), key=lambda item: item[1]["atoms"])
    cost = estimate_pw_cost(
        size["atoms"], size.get("kpoints", 1), size.get("ecutwfc", 30.0), size.get("ranks", 1)
    )
    total = sum(
        estimate_pw_cost(s["atoms"], s.get("kpoints", 1), s.get("ecutwfc", 30.0), s.get("ranks", 1))[
            "seconds"
        ]
        for s in sizes.values()
    )
    return (
        f"{len(large)} structure(s) have more than {max_atoms} atoms; the largest, {name}, has "
        f"{size['atoms']} "
        f"atoms ({size.get('kpoints', 1)} k-point(s), ecutwfc {size.get('ecutwfc', 30.0):g} Ry, "
        f"{size.get('ranks', 1)} MPI rank(s)): roughly {human_seconds(cost['seconds'])} and "
        f"{cost['memory_mb'] / 1024:.1f} GB per pw.x scf, {human_seconds(total)} for all {len(sizes)} "
        "(an order-of-magnitude estimate, see docs/labelling.md). Pass --yes to label them anyway, raise the "
        f"limit with --max-atoms N (or ${MAX_ATOMS_ENV}), or label fewer/smaller structures."
    )
