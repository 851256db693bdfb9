"""Reaction energy between the end states of a library reaction, and whether its sign is right (pure ASE).

The energy change ``E(final) - E(initial)`` (eV) of a model on the library's own end-state
geometries (single points, no relaxation: the same frames a DFT label of the reaction uses) is
compared with a DFT value when one is given: the error (eV) and whether the model keeps DFT's sign
(exothermic, endothermic or, within ``sign_tolerance``, thermoneutral).
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from .diatomic import potential_energy

__all__ = [
    "DEFAULT_REACTIONS",
    "energy_sign",
    "library_end_states",
    "reaction_energy",
]

#: library reactions checked by default: system name -> (initial frame, final frame); None means
#: the frames whose role is "initial" / "final"
DEFAULT_REACTIONS: dict[str, tuple[str | None, str | None]] = {
    "h2-on-cu111": (None, None),
    "ch4-dissociation": ("ch4-ch-scan-1.09", "ch4-ch-scan-2.00"),
}


def library_end_states(
    system: str, initial: str | None = None, final: str | None = None, **params
) -> tuple[Atoms, Atoms]:
    """Initial and final frames of the library system ``system`` (``get_system(system, **params)``).

    ``initial`` / ``final`` name configurations (``info["name"]``); left None, the single frame whose
    role is ``"initial"`` / ``"final"`` is used. Raises KeyError naming what exists when a frame is
    missing, ValueError when the two frames do not hold the same atoms.
    """
    from ..systems import get_system

    built = get_system(system, **params)

    def pick(name: str | None, role: str) -> Atoms:
        if name is not None:
            matches = [a for a in built.configurations if a.info.get("name") == name]
            if not matches:
                raise KeyError(f"system {system!r} has no configuration {name!r}; it has {built.names}")
            return matches[0]
        matches = built.by_role(role)
        if len(matches) != 1:
            raise KeyError(
                f"system {system!r} has {len(matches)} configurations of role {role!r}; "
                f"name the {role} frame among {built.names}"
            )
        return matches[0]

    first, last = pick(initial, "initial"), pick(final, "final")
    if sorted(first.numbers.tolist()) != sorted(last.numbers.tolist()):
        raise ValueError(
            f"{first.info.get('name')} ({first.get_chemical_formula()}) and {last.info.get('name')} "
            f"({last.get_chemical_formula()}) do not hold the same atoms"
        )
    return first.copy(), last.copy()


def energy_sign(value: float, tolerance: float = 0.0) -> int:
    """+1 (endothermic), -1 (exothermic) or 0 (``|value| <= tolerance`` eV: thermoneutral)."""
    if abs(value) <= tolerance:
        return 0
    return 1 if value > 0 else -1


def reaction_energy(
    calc,
    initial: Atoms,
    final: Atoms,
    *,
    dft_reaction_energy: float | None = None,
    sign_tolerance: float = 0.0,
) -> dict:
    """Model reaction energy ``E(final) - E(initial)`` (eV) and its agreement with DFT.

    Returns ``e_initial``, ``e_final``, ``reaction_energy`` (eV), ``sign`` (see :func:`energy_sign`,
    with ``sign_tolerance`` eV), and with ``dft_reaction_energy`` (eV) also ``dft_sign``,
    ``sign_agrees`` and ``error`` (model - DFT, eV); those are None without a DFT value.
    """
    e_initial = potential_energy(calc, initial)
    e_final = potential_energy(calc, final)
    delta = e_final - e_initial
    if not np.isfinite(delta):
        raise ValueError(f"the model returned a non-finite energy ({e_initial}, {e_final})")
    result = {
        "e_initial": e_initial,
        "e_final": e_final,
        "reaction_energy": delta,
        "sign": energy_sign(delta, sign_tolerance),
        "sign_tolerance": float(sign_tolerance),
        "dft_reaction_energy": None,
        "dft_sign": None,
        "sign_agrees": None,
        "error": None,
    }
    if dft_reaction_energy is not None:
        dft = float(dft_reaction_energy)
        result.update(
            dft_reaction_energy=dft,
            dft_sign=energy_sign(dft, sign_tolerance),
            sign_agrees=energy_sign(dft, sign_tolerance) == result["sign"],
            error=delta - dft,
        )
    return result
