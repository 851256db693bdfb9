"""Physics-aware checks of an interatomic potential, beside its errors against DFT (pure ASE/numpy).

Every check takes an ASE calculator and returns plain dicts of numbers and numpy arrays; nothing
here imports aiida or a model package, so the checks run on any ASE calculator (EMT, Lennard-Jones
and Morse in the tests, CHGNet / SevenNet / MACE in the runner).

- :mod:`.diatomic`: energy and force of an isolated pair along 0.5-6 Å and the curve's metrics
  (minimum, well depth, smoothness, short-range repulsion, force-energy consistency).
- :mod:`.dynamics`: NVE energy conservation (drift per atom per ps, spread, bond changes) and a
  heating ramp to the temperature at which a structure falls apart or atoms overlap.
- :mod:`.reaction`: the energy change between a library reaction's end states and its sign
  against DFT.
- :mod:`.bonds`: covalent-radius bonds, bond changes, fragments, closest contacts.
- :mod:`.protocol`: the default structures and settings for a study's elements.
- :mod:`.suite`: every check of one model in one call (what the ``physics`` runner task runs).
"""

from .bonds import (
    BOND_FACTOR,
    BREAK_FACTOR,
    bond_changes,
    bonded_pairs,
    min_distance,
    n_fragments,
    pair_label,
)
from .diatomic import (
    DEFAULT_BOX,
    DEFAULT_DISTANCES,
    DEFAULT_FD_STEP,
    curve_metrics,
    diatomic_curve,
    diatomic_pairs,
    isolated_atom_energy,
    sign_changes,
)
from .dynamics import OVERLAP_DISTANCE, energy_drift, nve_run, relax, temperature_ramp
from .protocol import NVE_PLAN, RAMP_PLAN, REACTIONS, default_plan
from .reaction import DEFAULT_REACTIONS, energy_sign, library_end_states, reaction_energy
from .suite import run_checks, summarize

__all__ = [
    "BOND_FACTOR",
    "BREAK_FACTOR",
    "DEFAULT_BOX",
    "DEFAULT_DISTANCES",
    "DEFAULT_FD_STEP",
    "DEFAULT_REACTIONS",
    "NVE_PLAN",
    "OVERLAP_DISTANCE",
    "RAMP_PLAN",
    "REACTIONS",
    "bond_changes",
    "bonded_pairs",
    "curve_metrics",
    "default_plan",
    "diatomic_curve",
    "diatomic_pairs",
    "energy_drift",
    "energy_sign",
    "isolated_atom_energy",
    "library_end_states",
    "min_distance",
    "n_fragments",
    "nve_run",
    "pair_label",
    "reaction_energy",
    "relax",
    "run_checks",
    "sign_changes",
    "summarize",
    "temperature_ramp",
]
