"""Error metrics of MLIP predictions against DFT labels (pure numpy/ASE, no AiiDA).

Absolute total energies of a universal MLIP and of our pw.x set-up are not comparable, so
energies are compared as differences within a group (same frame shifts both) or after a
per-element reference fit; each result names its reference in ``energy_reference``.
Units: eV, eV/atom, eV/Å, eV/Å^3 (and GPa).

Modules: ``errors`` (energy, force, stress errors), ``references`` (energy references), ``reactive``
(barriers, adsorption, structural stability), ``by_system`` (frame groups, metrics per system of a whole
dataset), ``learning_curves`` (fine-tuning studies), ``loop`` (active-learning stopping and comparison).
"""

from .errors import (
    COSINE_MIN_FORCE,
    ENERGY_REFERENCES,
    NoEnergyComparison,
    compare,
    energy_metrics,
    force_metrics,
    stress_metrics,
)
from .references import (
    apply_elemental_references,
    composition_matrix,
    fit_elemental_references,
    paired_relative_energies,
    reference_indices,
    relative_energies,
)

__all__ = [
    "COSINE_MIN_FORCE",
    "ENERGY_REFERENCES",
    "NoEnergyComparison",
    "apply_elemental_references",
    "compare",
    "composition_matrix",
    "energy_metrics",
    "fit_elemental_references",
    "force_metrics",
    "paired_relative_energies",
    "reference_indices",
    "relative_energies",
    "stress_metrics",
]
from .reactive import (
    LEFT_SITE_LATERAL_A,
    adsorption_energy_errors,
    barrier_error,
    reaction_energy_error,
    site_preference,
    structural_stability,
)

__all__ += [
    "LEFT_SITE_LATERAL_A",
    "adsorption_energy_errors",
    "barrier_error",
    "reaction_energy_error",
    "site_preference",
    "structural_stability",
]
