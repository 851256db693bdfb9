"""Reactive-system library (pure ASE/numpy, no AiiDA): named builders of tagged configurations.

Categories: adsorption (H, O, N, C, OH, CO on Cu/Ni/Pt/Rh (111) and (100)), dissociation (gas-phase
bond scans, H2 on Cu(111), O2 on Pt(111)), crystal growth (adatoms, hops, dimers, trimers, Si(001)),
user files. ``list_systems()``, ``describe_system(name)``, ``get_system(name, **params)``. Lengths in Å,
energies in eV.
"""

from .adsorption import REFERENCE_SCHEMES, AdsorptionEnergy, adsorption_energy, adsorption_system, definition
from .dissociation import ch4_scan, dissociative_adsorption
from .general import GENERAL_SET_NAME, general_reference_set  # noqa: F401  (registers general-reference-set)
from .growth import adatom_hop, cluster_growth, si_adatom
from .library import (
    CATEGORIES,
    ROLES,
    ReactiveSystem,
    describe_system,
    get_system,
    list_systems,
    load_structure_file,
    register_system,
    system_from_file,
)
from .molecules import DIATOMICS, GAS_MOLECULES, diatomic, gas_molecule
from .surfaces import (
    ADSORBATES,
    FACETS,
    LATTICE_CONSTANTS_PBE,
    METALS,
    Site,
    classify_site,
    fcc_slab,
    find_sites,
)
from .validation import (
    check_no_overlap,
    check_slab_vacuum,
    is_slab,
    validate_configuration,
    validate_configurations,
)

__all__ = [
    "ADSORBATES",
    "CATEGORIES",
    "DIATOMICS",
    "FACETS",
    "GAS_MOLECULES",
    "LATTICE_CONSTANTS_PBE",
    "METALS",
    "REFERENCE_SCHEMES",
    "ROLES",
    "AdsorptionEnergy",
    "ReactiveSystem",
    "Site",
    "adatom_hop",
    "adsorption_energy",
    "adsorption_system",
    "ch4_scan",
    "check_no_overlap",
    "check_slab_vacuum",
    "classify_site",
    "cluster_growth",
    "definition",
    "describe_system",
    "diatomic",
    "dissociative_adsorption",
    "fcc_slab",
    "find_sites",
    "gas_molecule",
    "get_system",
    "is_slab",
    "list_systems",
    "load_structure_file",
    "register_system",
    "si_adatom",
    "system_from_file",
    "validate_configuration",
    "validate_configurations",
]
