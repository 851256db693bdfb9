"""Molecular dissociation: C-H bond scan of CH4 and dissociative adsorption (pure ASE/numpy). Lengths in Å.

Dissociative adsorption ``<molecule>-on-<metal><facet>`` (H2 on Cu(111), O2 on Pt(111)):
initial state: the molecule lying flat (axis parallel to the surface) ``molecule_height`` Å above the
top-layer plane, centred above the midpoint of the two hollows of the final state; final state: the
two atoms in neighbouring fcc hollows, one surface lattice vector apart (nearest-neighbour distance:
2.57 Å on Cu, 2.81 Å on Pt; 0.5 monolayer in the default 2x2 cell); ``n_images`` IDPP images between
them (role ``image``), the clean slab and the gas molecule (role ``reference``). The barrier and the
dissociative adsorption energy E(final) - E(slab) - E(molecule) follow from their DFT energies.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from ..generate import bond_scan
from .library import (
    ReactiveSystem,
    clean_slab,
    neb_path,
    register_system,
    scan_system,
    slab_parameters,
    tag,
    variant,
)
from .molecules import GAS_MOLECULES, gas_molecule
from .surfaces import fcc_slab, find_sites, site_height, surface_z

__all__ = ["CH4_SCAN", "ch4_scan", "dissociative_adsorption", "h_h2_exchange", "nh3_inversion"]

#: C-H distances (Å) of the CH4 scan: equilibrium 1.09 Å, compressed to 0.93 Å, stretched to 2.0 Å.
CH4_SCAN = (0.93, 1.01, 1.05, 1.09, 1.13, 1.21, 1.39, 1.70, 2.00)


def ch4_scan(distances=CH4_SCAN, box: float = 10.0) -> ReactiveSystem:
    """C-H bond scan of methane: one H moves along its bond, C and the other three H stay."""
    name = "ch4-dissociation"
    distances = [float(d) for d in distances]
    ch4 = gas_molecule("CH4", box=box)
    ch4.info["system"] = name
    frames = bond_scan(ch4, 0, 1, distances, fix="i", name="ch4-ch")
    return scan_system(name, frames, distances, box, (
        f"C-H bond scan of CH4 ({len(distances)} distances from {min(distances):g} to {max(distances):g} Å, "
        f"equilibrium 1.09 Å) in a {box:g} Å box: the first step of methane activation (CH4 -> CH3 + H)"
    ))


register_system(
    "ch4-dissociation",
    category="dissociation",
    description="CH4 C-H bond scan: the first step of methane activation (CH4 -> CH3 + H)",
)(ch4_scan)


def h_h2_exchange(r_bond: float = 0.75, r_far: float = 2.13, n_images: int = 3, box=(6.0, 6.0, 9.0)) -> ReactiveSystem:
    """Collinear H + H2 -> H2 + H exchange: H_A-H_B-H_C along z, H_B at the box centre.

    Initial state: H_A-H_B bonded (``r_bond`` Å) with H_C ``r_far`` Å away; final state: the mirror image;
    ``n_images`` images between them on Pauling's bond-order path n_AB + n_BC = 1 (r = r_bond - 0.26 Å ln n),
    which passes through the symmetric saddle region (the exact barrier is 0.42 eV; PBE gives less). Three
    electrons: a doublet, spin-polarised by the labelling's ``auto`` spin.
    """
    name = "h-h2-exchange"
    centre = np.asarray(box, dtype=float) / 2

    def h3(r_ab: float, r_bc: float, label: str, role: str) -> Atoms:
        atoms = Atoms("H3", positions=centre + [[0, 0, -r_ab], [0, 0, 0], [0, 0, r_bc]], cell=box, pbc=True)
        return tag(atoms, name, label, role, multiplicity=2)

    n_far = float(np.exp((r_bond - r_far) / 0.26))  # bond order of the far pair at r_far
    orders = np.linspace(n_far, 1 - n_far, n_images + 2)[1:-1]
    # Names sort in path order (start structures are taken in key order).
    frames = [h3(r_bond, r_far, f"{name}-00-initial", "initial")]
    frames += [h3(r_bond - 0.26 * np.log(1 - n), r_bond - 0.26 * np.log(n), f"{name}-{i + 1:02d}-image", "image")
               for i, n in enumerate(orders)]
    frames.append(h3(r_far, r_bond, f"{name}-{n_images + 1:02d}-final", "final"))
    return ReactiveSystem(name=name, category="dissociation", configurations=frames, parameters={
        "r_bond": float(r_bond), "r_far": float(r_far), "n_images": int(n_images), "box": [float(b) for b in box]},
        description=("collinear H + H2 -> H2 + H exchange (symmetric, exact barrier 0.42 eV): end states and "
                     f"{n_images} bond-order images"))


register_system(
    "h-h2-exchange",
    category="dissociation",
    description="H + H2 -> H2 + H collinear exchange: the smallest reaction with a barrier (3 atoms, doublet)",
)(h_h2_exchange)


def nh3_inversion(n_images: int = 3, box: float = 8.0) -> ReactiveSystem:
    """Umbrella inversion of ammonia: the pyramidal molecule (N 0.39 Å above the H3 plane, ASE's g2 geometry) ->
    its mirror image through the H3 plane, with ``n_images`` images linearly between them (the middle one the
    planar D3h saddle). The N-H bond lengths of the images are kept at the end states' 1.02 Å by moving the H
    atoms radially. A closed shell; the barrier is ~0.25 eV (experiment), the smallest one a model must get for
    nitrogen chemistry."""
    from ase.build import molecule

    name = "nh3-inversion"
    start = molecule("NH3")
    start.positions -= start.positions[1:].mean(axis=0)  # the H3 plane at z = 0, its centre at the origin
    height = float(start.positions[0, 2])
    bond = float(np.linalg.norm(start.positions[1] - start.positions[0]))
    frames = []
    for i, fraction in enumerate(np.linspace(0.0, 1.0, n_images + 2)):
        z = height * (1 - 2 * fraction)
        radius = np.sqrt(max(bond**2 - z**2, 0.0))
        atoms = start.copy()
        atoms.positions[0] = [0.0, 0.0, z]
        for k in (1, 2, 3):
            xy = start.positions[k, :2]
            atoms.positions[k, :2] = xy / np.linalg.norm(xy) * radius
        atoms.cell = [box, box, box]
        atoms.pbc = True
        atoms.center()
        role = "initial" if i == 0 else "final" if i == n_images + 1 else "image"
        frames.append(tag(atoms, name, f"{name}-{i:02d}-{role}", role, multiplicity=1))
    return ReactiveSystem(name=name, category="dissociation", configurations=frames,
                          parameters={"n_images": int(n_images), "box": float(box)},
                          description=f"NH3 umbrella inversion: the two pyramids and {n_images} images through the planar saddle")


register_system(
    "nh3-inversion",
    category="dissociation",
    description="NH3 umbrella inversion: a small barrier (~0.25 eV) through the planar saddle (4 atoms)",
)(nh3_inversion)


def dissociative_adsorption(
    molecule: str,
    metal: str, facet: str = "111", size=(2, 2, 3), vacuum: float = 6.0, a: float | None = None,  # fcc_slab's
    molecule_height: float = 2.5,
    n_images: int = 5,
    box: float = 10.0,
) -> ReactiveSystem:
    """Homonuclear ``molecule`` (H2, O2, N2) dissociating on ``metal``(``facet``); see the module docstring."""
    if molecule not in ("H2", "O2", "N2"):
        raise ValueError(f"dissociative adsorption is built for H2, O2, N2, got {molecule!r}")
    element = molecule[0]
    name = f"{molecule.lower()}-on-{metal.lower()}{facet}"
    slab = fcc_slab(metal, facet, size=size, vacuum=vacuum, a=a)
    sites = find_sites(slab)
    hollow = sites["fcc"] if "fcc" in sites else sites["hollow"]
    a1 = np.asarray(slab.cell[0]) / int(size[0])  # surface nearest-neighbour vector
    z0 = surface_z(slab)
    h = site_height(metal, element, hollow.distance)
    p1 = np.array([hollow.position[0], hollow.position[1], z0 + h])
    p2 = p1 + a1
    gas = gas_molecule(molecule, box=box)
    bond = gas.get_distance(0, 1)
    centre = (p1 + p2) / 2
    centre[2] = z0 + float(molecule_height)
    u = a1 / np.linalg.norm(a1)
    spin = GAS_MOLECULES[molecule] > 1 or bool(slab.info.get("spin_polarised"))

    def with_atoms(positions, magmom):
        atoms = slab.copy()
        atoms.info = dict(slab.info)
        atoms += Atoms(molecule, positions=positions)
        if spin:
            m = atoms.get_initial_magnetic_moments()
            m[-2:] = magmom
            atoms.set_initial_magnetic_moments(m)
            atoms.info["spin_polarised"] = True
        atoms.info["dipole_correction_recommended"] = True
        return atoms

    mol_moment = (GAS_MOLECULES[molecule] - 1) / 2.0
    initial = tag(with_atoms([centre - u * bond / 2, centre + u * bond / 2], mol_moment), name,
                  f"{name}-initial", "initial", state="molecular", height=float(molecule_height))
    final = tag(with_atoms([p1, p2], 0.0), name, f"{name}-final", "final", state="dissociated", site="fcc+fcc",
                height=float(h))
    images = neb_path(initial, final, n_images, name)
    tag(gas, name, f"{molecule.lower()}-gas", "reference")
    if spin:
        gas.info["spin_polarised"] = True
    n1, n2, nl = (int(n) for n in size)
    return ReactiveSystem(
        name=name,
        category="dissociation",
        description=(
            f"{molecule} -> 2 {element} on {metal}({facet}), {n1}x{n2} cell, {nl} layers: molecule flat at "
            f"{molecule_height:g} Å, atoms in neighbouring fcc hollows ({np.linalg.norm(a1):.2f} Å apart), "
            f"{n_images} IDPP images. E_diss = E(final) - E(slab) - E({molecule})"
        ),
        configurations=[clean_slab(slab, name), gas, initial, *images, final],
        parameters={
            "molecule": molecule,
            **slab_parameters(slab, size, vacuum),
            "molecule_height": float(molecule_height),
            "n_images": int(n_images),
            "box": float(box),
        },
    )


for _molecule, _metal, _about in (
    ("H2", "Cu", "the benchmark of activated dissociative chemisorption (barrier ~0.5-0.6 eV)"),
    ("O2", "Pt", "the step of the oxygen reduction reaction; triplet O2 spin-polarised"),
):
    register_system(
        f"{_molecule.lower()}-on-{_metal.lower()}111",
        category="dissociation",
        description=f"{_molecule} dissociating on {_metal}(111): {_about}",
    )(variant(dissociative_adsorption, _molecule, _metal, "111", drop=("box",),
              doc=f"{_molecule} on {_metal}(111): flat molecule -> two {_molecule[0]} in neighbouring fcc hollows, "
                  "IDPP images between."))
