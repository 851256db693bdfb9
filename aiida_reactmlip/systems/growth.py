"""Initial stages of crystal growth: adatoms, their hops, dimers and trimers (pure ASE/numpy). Lengths in Å.

Homoepitaxial adatoms sit where the next crystal layer would put them: a/sqrt(3) above the top layer
in fcc(111) hollows (a/2 in fcc(100) four-fold hollows), so their bonds to the surface have the bulk
nearest-neighbour length; hcp hollows, a stacking fault, use the same height.

- ``<m>-adatom-<m>111``: adatom in the fcc (initial) and hcp (final) hollow and the IDPP images of the
  hop between these neighbouring hollows (across the bridge), clean slab and bulk as references.
- ``<m>-adatom-<m>100``: adatom hop between neighbouring four-fold hollows (across the bridge).
- ``<m>-cluster-<m><facet>``: monomer (reference), dimer and compact trimer (final) on a 3x3 cell, so
  that clusters stay two lattice spacings from their periodic images. Formation energies:
  E_dimer - 2 E_monomer + E_slab (eV) and E_trimer - 3 E_monomer + 2 E_slab.
- ``si-adatom-si001``: Si adatom on bulk-terminated (unreconstructed, 1x1) Si(001): the epitaxial site
  (where the next diamond layer would put it, bonded to two surface atoms) and the hop to the
  neighbouring epitaxial site. The 2x1 dimer reconstruction is not built; the bottom two layers are fixed
  and not hydrogen-passivated.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import bulk, diamond100
from ase.constraints import FixAtoms

from .library import ReactiveSystem, clean_slab, neb_path, register_system, slab_parameters, tag, variant
from .surfaces import FACETS, MAGNETIC_MOMENTS, METALS, fcc_slab, find_sites, layers, surface_z

__all__ = ["SI_LATTICE_CONSTANT_PBE", "adatom_hop", "cluster_growth", "si_adatom"]

#: PBE lattice constant of diamond-structure Si (Å); experiment 5.431 Å.
SI_LATTICE_CONSTANT_PBE = 5.47


def _adatom_height(slab: Atoms) -> float:
    a = slab.info["lattice_constant"]
    return a / np.sqrt(3.0) if slab.info["facet"] == "111" else a / 2.0


def _with_adatoms(slab: Atoms, symbol: str, xy: list, height: float) -> Atoms:
    atoms = slab.copy()
    atoms.info = dict(slab.info)
    z = surface_z(slab) + height
    atoms += Atoms(symbol * len(xy), positions=[[p[0], p[1], z] for p in xy])
    if slab.has("initial_magmoms"):
        m = atoms.get_initial_magnetic_moments()
        m[len(slab) :] = MAGNETIC_MOMENTS.get(symbol, 0.0)
        atoms.set_initial_magnetic_moments(m)
    atoms.info.update(dipole_correction_recommended=True, height=float(height), n_adatoms=len(xy))
    return atoms


def _bulk_reference(metal: str, a: float, system: str) -> Atoms:
    ref = bulk(metal, "fcc", a=a)
    if metal in MAGNETIC_MOMENTS:
        ref.set_initial_magnetic_moments([MAGNETIC_MOMENTS[metal]])
        ref.info["spin_polarised"] = True
    return tag(ref, system, f"{metal.lower()}-bulk", "reference", kind="bulk", lattice_constant=a)


def adatom_hop(
    metal: str,
    facet: str = "111",
    size=(2, 2, 3),
    vacuum: float = 6.0,
    a: float | None = None,
    n_images: int = 3,
) -> ReactiveSystem:
    """A ``metal`` adatom on ``metal``(``facet``): the hollow sites and the hop between neighbouring ones."""
    name = f"{metal.lower()}-adatom-{metal.lower()}{facet}"
    slab = fcc_slab(metal, facet, size=size, vacuum=vacuum, a=a)
    sites = find_sites(slab)
    h = _adatom_height(slab)
    start = np.array(sites["fcc" if facet == "111" else "hollow"].position)
    if facet == "111":
        # the hcp hollow nearest to the fcc one, across a bridge: nn/sqrt(3) away
        hcp = np.array(sites["hcp"].position)
        cell2 = np.asarray(slab.cell)[:2, :2] / np.array(size[:2])[:, None]
        options = [hcp + np.array([i, j]) @ cell2 for i in (-1, 0, 1) for j in (-1, 0, 1)]
        end = min(options, key=lambda p: np.linalg.norm(p - start))
        kinds = ("fcc", "hcp")
    else:
        end = start + np.asarray(slab.cell[0])[:2] / int(size[0])
        kinds = ("hollow", "hollow")
    initial = tag(_with_adatoms(slab, metal, [start], h), name, f"{name}-{kinds[0]}", "initial", site=kinds[0])
    final = tag(_with_adatoms(slab, metal, [end], h), name,
                f"{name}-{kinds[1]}" + ("-next" if facet == "100" else ""), "final", site=kinds[1])
    images = neb_path(initial, final, n_images, name)
    n1, n2, nl = (int(n) for n in size)
    return ReactiveSystem(
        name=name,
        category="crystal_growth",
        description=(
            f"{metal} adatom on {metal}({facet}), {n1}x{n2} cell, {nl} layers: {kinds[0]} -> {kinds[1]} hollow hop "
            f"({np.linalg.norm(end - start):.2f} Å, {n_images} IDPP images), the elementary step of surface diffusion"
        ),
        configurations=[
            clean_slab(slab, name),
            _bulk_reference(metal, slab.info["lattice_constant"], name),
            initial,
            *images,
            final,
        ],
        parameters={**slab_parameters(slab, size, vacuum), "n_images": int(n_images)},
    )


def cluster_growth(
    metal: str, facet: str = "111", size=(3, 3, 3), vacuum: float = 6.0, a: float | None = None
) -> ReactiveSystem:
    """Monomer, dimer and compact trimer of ``metal`` adatoms in neighbouring hollows of ``metal``(``facet``)."""
    name = f"{metal.lower()}-cluster-{metal.lower()}{facet}"
    if min(int(size[0]), int(size[1])) < 3:
        raise ValueError(
            f"a trimer needs at least a 3x3 cell to stay apart from its images, got size={size!r}"
        )
    slab = fcc_slab(metal, facet, size=size, vacuum=vacuum, a=a)
    sites = find_sites(slab)
    h = _adatom_height(slab)
    kind = "fcc" if facet == "111" else "hollow"
    p = np.array(sites[kind].position)
    b1 = np.asarray(slab.cell[0])[:2] / int(size[0])
    b2 = np.asarray(slab.cell[1])[:2] / int(size[1])
    shape = "triangle" if facet == "111" else "L-shape"
    configs = [clean_slab(slab, name), _bulk_reference(metal, slab.info["lattice_constant"], name)]
    for n, label, role, xy in (
        (1, "monomer", "reference", [p]),
        (2, "dimer", "final", [p, p + b1]),
        (3, "trimer", "final", [p, p + b1, p + b2]),
    ):
        atoms = tag(_with_adatoms(slab, metal, xy, h), name, f"{name}-{label}", role, site=kind, stage=label)
        if n == 3:
            atoms.info["shape"] = shape
        configs.append(atoms)
    n1, n2, nl = (int(n) for n in size)
    return ReactiveSystem(
        name=name,
        category="crystal_growth",
        description=(
            f"{metal} monomer, dimer and {shape} trimer in {kind} hollows on {metal}({facet}), {n1}x{n2} cell, "
            f"{nl} layers: nucleation of the next layer. E_form(dimer) = E_dimer - 2 E_monomer + E_slab"
        ),
        configurations=configs,
        parameters=slab_parameters(slab, size, vacuum),
    )


for _metal in METALS:
    for _facet in FACETS:
        register_system(
            f"{_metal.lower()}-adatom-{_metal.lower()}{_facet}",
            category="crystal_growth",
            description=f"{_metal} adatom hop between neighbouring hollows of {_metal}({_facet}): surface diffusion",
        )(variant(adatom_hop, _metal, _facet, doc=f"{_metal} adatom hop on {_metal}({_facet}); see ``adatom_hop``."))
        register_system(
            f"{_metal.lower()}-cluster-{_metal.lower()}{_facet}",
            category="crystal_growth",
            description=f"{_metal} monomer, dimer, trimer on {_metal}({_facet}): nucleation of the next layer",
        )(variant(cluster_growth, _metal, _facet,
                  doc=f"{_metal} monomer, dimer, trimer on {_metal}({_facet}); see ``cluster_growth``."))


@register_system(
    "si-adatom-si001",
    category="crystal_growth",
    description="Si adatom on bulk-terminated Si(001) (no 2x1 reconstruction): epitaxial site and its hop",
)
def si_adatom(
    size=(2, 2, 4), vacuum: float = 6.0, a: float = SI_LATTICE_CONSTANT_PBE, n_images: int = 3
) -> ReactiveSystem:
    """Si adatom on Si(001) 1x1 (bulk-terminated): epitaxial site -> neighbouring epitaxial site, IDPP images."""
    name = "si-adatom-si001"
    size = tuple(int(n) for n in size)
    if size[2] < 4:
        raise ValueError("Si(001) needs at least 4 layers (one diamond period along [001])")
    slab = diamond100("Si", size=size, a=float(a), vacuum=float(vacuum))
    slab.pbc = True
    lay = layers(slab)
    slab.set_constraint(FixAtoms(indices=np.concatenate(lay[-2:])))
    slab.info.update(kind="slab", metal="Si", facet="001", lattice_constant=float(a), fixed_layers=2)
    # next-layer (epitaxial) sites repeat the xy of the layer four below the new one
    sites = slab.positions[lay[3], :2]
    start = sites[np.argmin(np.linalg.norm(sites, axis=1))]
    step = np.asarray(slab.cell[0])[:2] / size[0]
    h = float(a) / 4.0
    initial = tag(_with_adatoms(slab, "Si", [start], h), name, f"{name}-epitaxial", "initial", site="epitaxial")
    final = tag(_with_adatoms(slab, "Si", [start + step], h), name, f"{name}-epitaxial-next", "final",
                site="epitaxial")
    images = neb_path(initial, final, n_images, name)
    ref = tag(bulk("Si", "diamond", a=float(a)), name, "si-bulk", "reference", kind="bulk", lattice_constant=float(a))
    clean = clean_slab(slab, name)
    return ReactiveSystem(
        name=name,
        category="crystal_growth",
        description=(
            f"Si adatom on bulk-terminated Si(001) 1x1, {size[0]}x{size[1]} cell, {size[2]} layers (bottom 2 fixed, "
            f"not passivated): epitaxial site (two Si-Si bonds of {np.sqrt(3) * a / 4:.2f} Å) -> next epitaxial site "
            f"{np.linalg.norm(step):.2f} Å away, {n_images} IDPP images; the 2x1 reconstruction is not built"
        ),
        configurations=[clean, ref, initial, *images, final],
        parameters={"size": list(size), "vacuum": float(vacuum), "a": float(a), "n_images": int(n_images)},
    )
