"""General reference set: bulk metals, gas molecules and a clean surface (pure ASE/numpy). Lengths in Å.

``general-reference-set`` is not a reaction: it is the "forgetting" check of a fine-tuning study. A
model fine-tuned on one reactive system is also evaluated on these everyday configurations, so that
the report shows what the specialisation cost away from the target system. It holds:

- bulk Cu and Pt, fcc primitive cells (1 atom) at the PBE lattice constant (role ``reference``), each
  with isotropically strained copies (role ``strain``; a rattle of a one-atom cell would only translate
  it), which give energy-volume and stress labels;
- gas molecules H2, N2, CO, H2O (ASE's G2 geometries) in a cubic box, each with rattled copies
  (role ``rattle``, Gaussian displacements of every atom);
- a clean Cu(111) slab (2x2 cell, 2 layers by default) with rattled copies.

Every configuration carries ``info["group"]``: its base configuration (``cu-bulk``, ``h2o-gas``,
``cu111-slab``, ...). A group holds one composition, so energies can be compared within a group, and
group-aware splits never separate a configuration from its rattled or strained copies.
"""

from __future__ import annotations

from ase import Atoms
from ase.build import bulk

from ..generate import rattle, strain_series
from .library import CATEGORIES, ReactiveSystem, register_system
from .molecules import GAS_MOLECULES, gas_molecule
from .surfaces import LATTICE_CONSTANTS_PBE, MAGNETIC_MOMENTS, fcc_slab

__all__ = ["GENERAL_SET_NAME", "general_reference_set"]

GENERAL_SET_NAME = "general-reference-set"

#: The library's category for reference sets: "reference" once the library has it, else "user".
CATEGORY = "reference" if "reference" in CATEGORIES else "user"


def _tag(atoms: Atoms, group: str, **info) -> Atoms:
    atoms.info.update(system=GENERAL_SET_NAME, group=group, **info)
    return atoms


def _bulk_frames(metal: str, strains) -> list[Atoms]:
    if metal not in LATTICE_CONSTANTS_PBE:
        raise ValueError(f"no PBE lattice constant for bulk {metal!r}; known: {sorted(LATTICE_CONSTANTS_PBE)}")
    if metal in MAGNETIC_MOMENTS:
        raise ValueError(f"bulk {metal} is magnetic; the general set holds non-magnetic metals only")
    a = LATTICE_CONSTANTS_PBE[metal]
    group = f"{metal.lower()}-bulk"
    ref = bulk(metal, "fcc", a=a)
    ref.info.update(name=group, role="reference", kind="bulk", lattice_constant=a)
    frames = [ref]
    if strains:
        frames += strain_series(ref, [float(s) for s in strains], name=group)
    for atoms in frames:
        atoms.info.pop("strain", None)  # the 3x3 tensor: volumetric_strain says it for isotropic strains
        _tag(atoms, group)
    return frames


def _rattled(base: Atoms, group: str, n_rattle: int, stdev: float, seed: int) -> list[Atoms]:
    frames = [_tag(base, group)]
    if n_rattle:
        frames += [_tag(atoms, group) for atoms in rattle(base, n_rattle, stdev=stdev, seed=seed, name=group)]
    return frames


@register_system(
    GENERAL_SET_NAME,
    category=CATEGORY,
    description=(
        "Bulk Cu and Pt, gas H2, N2, CO, H2O and a clean Cu(111) slab with strained/rattled copies: "
        "the general set on which a fine-tuned model's forgetting is measured"
    ),
)
def general_reference_set(
    metals=("Cu", "Pt"),
    molecules=("H2", "N2", "CO", "H2O"),
    slab_metal: str = "Cu",
    slab_size=(2, 2, 2),
    slab_vacuum: float = 5.0,
    molecule_box: float = 8.0,
    strains=(-0.02, 0.02),
    n_rattle: int = 2,
    rattle_stdev: float = 0.05,
    seed: int = 0,
) -> ReactiveSystem:
    """Bulk ``metals`` (fcc primitive cells and ``strains`` copies), gas ``molecules`` in a ``molecule_box`` Å
    cube and a ``slab_metal``(111) slab of ``slab_size`` (n1, n2, layers) with ``slab_vacuum`` Å on each side;
    ``n_rattle`` copies of each molecule and of the slab, displaced by ``rattle_stdev`` Å (seeded by ``seed``).
    """
    if int(n_rattle) != n_rattle or n_rattle < 0:
        raise ValueError(f"n_rattle must be a whole number >= 0, got {n_rattle!r}")
    unknown = sorted(set(molecules) - set(GAS_MOLECULES))
    if unknown:
        raise ValueError(f"unknown gas molecule(s) {unknown}; known: {sorted(GAS_MOLECULES)}")
    n_rattle = int(n_rattle)
    frames: list[Atoms] = []
    for metal in metals:
        frames += _bulk_frames(metal, strains)
    for k, formula in enumerate(molecules):
        group = f"{formula.lower()}-gas"
        gas = gas_molecule(formula, box=molecule_box)
        gas.info.update(name=group, role="reference")
        frames += _rattled(gas, group, n_rattle, rattle_stdev, seed + k)
    if slab_metal:
        group = f"{slab_metal.lower()}111-slab"
        slab = fcc_slab(slab_metal, "111", size=tuple(slab_size), vacuum=slab_vacuum)
        slab.set_constraint()  # a labelling set: every atom may move in the rattled copies
        slab.info.update(name=group, role="reference")
        frames += _rattled(slab, group, n_rattle, rattle_stdev, seed + len(molecules))
    groups = sorted({atoms.info["group"] for atoms in frames})
    return ReactiveSystem(
        name=GENERAL_SET_NAME,
        category=CATEGORY,
        description=(
            f"general reference set: {len(frames)} configurations in {len(groups)} groups ({', '.join(groups)}); "
            f"bulk strained by {list(strains)}, molecules and slab rattled ({n_rattle} copies, {rattle_stdev:g} Å)"
        ),
        configurations=frames,
        parameters={
            "metals": list(metals),
            "molecules": list(molecules),
            "slab_metal": slab_metal,
            "slab_size": [int(n) for n in slab_size],
            "slab_vacuum": float(slab_vacuum),
            "molecule_box": float(molecule_box),
            "strains": [float(s) for s in strains],
            "n_rattle": n_rattle,
            "rattle_stdev": float(rattle_stdev),
            "seed": int(seed),
        },
    )
