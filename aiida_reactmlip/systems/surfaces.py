"""fcc metal slabs, their adsorption sites and adsorbates placed on them (pure ASE/numpy). Lengths in Å.

Sites are found geometrically, not looked up: every candidate point (top-layer atoms, midpoints of
top-layer pairs, centroids of nearest-neighbour triangles) is classified by how many top-layer atoms
are nearest to it in the surface plane (1: ``top``, 2: ``bridge``, 3: three-fold hollow, 4: ``hollow``
of a square) and, for three-fold hollows, by the atom below: a second-layer atom right below makes it
``hcp``, none makes it ``fcc`` (a third-layer atom lies below). pymatgen's ``AdsorbateSiteFinder`` was
checked and not used: on fcc(100) it labels the four-fold hollow "bridge", and on fcc(111) it does
not tell fcc from hcp.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.build import fcc100, fcc111
from ase.constraints import FixAtoms
from ase.data import atomic_numbers, covalent_radii, reference_states

__all__ = [
    "ADSORBATES",
    "FACETS",
    "LATTICE_CONSTANTS_PBE",
    "METALS",
    "Site",
    "adsorbate",
    "classify_site",
    "fcc_slab",
    "find_sites",
    "lattice_constant",
    "layers",
    "place_adsorbate",
    "site_height",
    "surface_z",
]

#: PBE lattice constants of fcc metals (Å), rounded to 0.01 Å (Haas, Tran & Blaha, PRB 79, 085104
#: (2009) and the Materials Project agree within 0.02 Å). PBE overestimates experiment by 1-2 %.
LATTICE_CONSTANTS_PBE = {
    "Cu": 3.63,
    "Ni": 3.52,
    "Pt": 3.97,
    "Rh": 3.83,
    "Pd": 3.94,
    "Ag": 4.15,
    "Au": 4.16,
    "Al": 4.04,
}
#: Metals of the shipped adsorption systems.
METALS = ("Cu", "Ni", "Pt", "Rh")
FACETS = ("111", "100")
#: Initial magnetic moment (Bohr magnetons per atom) of ferromagnetic metals; the DFT layer should
#: run these spin-polarised.
MAGNETIC_MOMENTS = {"Ni": 0.6, "Fe": 2.2, "Co": 1.6}

#: Adsorbates: symbols with the binding atom first, internal geometry as offsets (Å) from the binding
#: atom (the molecule stands upright along +z).
ADSORBATES: dict[str, tuple[str, tuple[tuple[float, float, float], ...]]] = {
    "H": ("H", ((0.0, 0.0, 0.0),)),
    "O": ("O", ((0.0, 0.0, 0.0),)),
    "N": ("N", ((0.0, 0.0, 0.0),)),
    "C": ("C", ((0.0, 0.0, 0.0),)),
    "OH": ("OH", ((0.0, 0.0, 0.0), (0.0, 0.0, 0.97))),
    "CO": ("CO", ((0.0, 0.0, 0.0), (0.0, 0.0, 1.15))),
}

# Fewest-neighbour count of each site kind: 1 top, 2 bridge, 3 fcc/hcp, 4 hollow (square).
_KIND_BY_COUNT = {2: "bridge", 4: "hollow"}
_SITE_ORDER = ("top", "bridge", "fcc", "hcp", "hollow")


def lattice_constant(metal: str, source: str = "pbe") -> float:
    """Cubic lattice constant (Å) of an fcc ``metal``: ``source`` "pbe" (table above) or "experiment" (ASE)."""
    if source == "pbe":
        if metal not in LATTICE_CONSTANTS_PBE:
            raise KeyError(
                f"no PBE lattice constant for {metal!r}; known: {sorted(LATTICE_CONSTANTS_PBE)}; pass a="
            )
        return LATTICE_CONSTANTS_PBE[metal]
    if source == "experiment":
        state = reference_states[atomic_numbers[metal]]
        if not state or state.get("symmetry") != "fcc":
            raise ValueError(f"{metal} is not fcc in ASE's reference data")
        return float(state["a"])
    raise ValueError(f"source must be 'pbe' or 'experiment', got {source!r}")


def fcc_slab(
    metal: str,
    facet: str = "111",
    size: tuple[int, int, int] = (2, 2, 3),
    vacuum: float = 6.0,
    a: float | None = None,
    fixed_layers: int | None = None,
) -> Atoms:
    """An fcc(111) or fcc(100) slab of ``metal`` with ``vacuum`` Å on each side (gap 2 x ``vacuum``), pbc all True.

    ``size``: (n1, n2, layers); ``a``: cubic lattice constant in Å (default: PBE table). The bottom
    ``fixed_layers`` layers (default ``layers // 2``) are held by ``FixAtoms`` (bulk-like side). Atoms are
    tagged by layer (1 = top, as ASE does). Ferromagnets (Ni) get initial magnetic moments and
    ``info["spin_polarised"] = True``. ``info``: ``kind="slab"``, ``metal``, ``facet``, ``lattice_constant``.
    """
    if facet not in FACETS:
        raise ValueError(f"facet must be one of {FACETS}, got {facet!r}")
    size = tuple(int(n) for n in size)
    if len(size) != 3 or min(size) < 1:
        raise ValueError(f"size must be three positive integers (n1, n2, layers), got {size!r}")
    if size[2] < 2:
        raise ValueError("a slab needs at least 2 layers (fcc and hcp hollows differ by the second layer)")
    a = lattice_constant(metal) if a is None else float(a)
    if not vacuum > 0:
        raise ValueError(f"vacuum must be a positive length in Å, got {vacuum!r}")
    if facet == "111":
        slab = fcc111(metal, size=size, a=a, vacuum=float(vacuum), orthogonal=False)
    else:
        slab = fcc100(metal, size=size, a=a, vacuum=float(vacuum))
    slab.info.pop("adsorbate_info", None)
    slab.pbc = True  # pw.x is periodic in 3-D: the vacuum, not pbc, separates the slab from its images
    nfix = size[2] // 2 if fixed_layers is None else int(fixed_layers)
    if not 0 <= nfix < size[2]:
        raise ValueError(f"fixed_layers must be between 0 and {size[2] - 1}, got {fixed_layers!r}")
    if nfix:
        # ASE tags layers 1 (top) ... layers (bottom)
        slab.set_constraint(FixAtoms(mask=slab.get_tags() > size[2] - nfix))
    if metal in MAGNETIC_MOMENTS:
        slab.set_initial_magnetic_moments([MAGNETIC_MOMENTS[metal]] * len(slab))
        slab.info["spin_polarised"] = True
    slab.info.update(kind="slab", metal=metal, facet=facet, lattice_constant=a, fixed_layers=nfix)
    return slab


def layers(slab: Atoms, tol: float = 0.3) -> list[np.ndarray]:
    """Indices of the slab atoms grouped into layers by z (within ``tol`` Å), top layer first."""
    z = slab.positions[:, 2]
    order = np.argsort(-z)
    groups: list[list[int]] = []
    for i in order:
        if groups and z[groups[-1][0]] - z[i] < tol:
            groups[-1].append(int(i))
        else:
            groups.append([int(i)])
    return [np.array(sorted(g)) for g in groups]


def surface_z(slab: Atoms) -> float:
    """Mean z (Å) of the top layer: the surface plane from which adsorbate heights are measured."""
    return float(slab.positions[layers(slab)[0], 2].mean())


def _inplane_distances(slab: Atoms, point_xy, idx) -> np.ndarray:
    """In-plane distances (Å) from ``point_xy`` to atoms ``idx`` and their periodic images (a1, a2):
    the minimum image and its 8 neighbours, so that small cells (1x1) count every neighbour."""
    cell2 = np.asarray(slab.cell)[:2, :2]
    d = slab.positions[idx, :2] - np.asarray(point_xy)[None, :2]
    frac = np.linalg.solve(cell2.T, d.T).T
    frac -= np.round(frac)
    shifts = np.array([(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)], dtype=float)
    images = frac[:, None, :] + shifts[None, :, :]
    return np.linalg.norm(images.reshape(-1, 2) @ cell2, axis=1)


@dataclass(frozen=True)
class Site:
    """An adsorption site: ``kind`` (top, bridge, fcc, hcp, hollow), in-plane ``position`` (x, y, Å),
    ``multiplicity`` (equivalent sites in the cell), ``coordination`` (top-layer atoms nearest to it) and
    ``distance`` (Å, in-plane, to those atoms)."""

    kind: str
    position: tuple[float, float]
    multiplicity: int
    coordination: int
    distance: float


def classify_site(slab: Atoms, xy, tol: float = 0.15) -> tuple[str, int, float]:
    """Kind of the surface point ``xy`` (Å): (kind, coordination, in-plane distance to the nearest atoms).

    Coordination = number of top-layer atoms within ``tol`` Å of the nearest one. Three-fold points are
    ``hcp`` when a second-layer atom lies within 0.3 Å (in-plane) below, else ``fcc``. Points of no
    high-symmetry kind give ``"other"``.
    """
    lay = layers(slab)
    d = _inplane_distances(slab, xy, lay[0])
    dmin = float(d.min())
    count = int(np.sum(d < dmin + tol))
    if dmin < tol:
        return "top", 1, dmin
    if count == 3:
        if len(lay) > 1 and _inplane_distances(slab, xy, lay[1]).min() < 0.3:
            return "hcp", 3, dmin
        return "fcc", 3, dmin
    return _KIND_BY_COUNT.get(count, "other"), count, dmin


def find_sites(slab: Atoms) -> dict[str, Site]:
    """All distinct high-symmetry adsorption sites of a clean slab, one representative per kind.

    fcc(111) gives top, bridge, fcc, hcp; fcc(100) gives top, bridge, hollow. On these surfaces all
    sites of one kind are symmetry-equivalent; ``multiplicity`` counts them in the cell.
    """
    top = layers(slab)[0]
    cell2 = np.asarray(slab.cell)[:2, :2]
    pos = slab.positions[top, :2]
    # nearest-neighbour vectors between top atoms (minimum image)
    diff = pos[None, :, :] - pos[:, None, :]
    frac = np.einsum("ijk,kl->ijl", diff, np.linalg.inv(cell2))
    frac -= np.round(frac)
    vec = frac @ cell2
    dist = np.linalg.norm(vec, axis=2)
    np.fill_diagonal(dist, np.inf)
    nn = dist.min() if len(top) > 1 else np.linalg.norm(cell2, axis=1).min()
    # with one top atom per cell, neighbours are the in-plane lattice vectors
    shifts = [np.array([i, j]) @ cell2 for i in (-1, 0, 1) for j in (-1, 0, 1) if (i, j) != (0, 0)]
    candidates = []
    for p in pos:
        neigh = [p + s for s in shifts] + [q + s for q in pos for s in [np.zeros(2)] + shifts]
        neigh = [q for q in neigh if 0.1 < np.linalg.norm(q - p) < 1.5 * nn]
        candidates.append(p)
        for q in neigh:
            candidates.append((p + q) / 2)
            for r in neigh:
                if np.linalg.norm(r - q) < 1.1 * nn and np.linalg.norm(r - q) > 0.1:
                    candidates.append((p + q + r) / 3)
    found: dict[str, list[np.ndarray]] = {}
    inv = np.linalg.inv(cell2)
    for c in candidates:
        f = np.asarray(c) @ inv
        c = (f - np.floor(f + 1e-6)) @ cell2  # wrap into the cell
        c[np.abs(c) < 1e-9] = 0.0
        kind, _, _ = classify_site(slab, c)
        if kind == "other":
            continue
        known = found.setdefault(kind, [])
        if all(_inplane_distances_points(cell2, c, k) > 0.05 for k in known):
            known.append(c)
    sites = {}
    for kind in _SITE_ORDER:
        if kind not in found:
            continue
        rep = min(found[kind], key=lambda c: tuple(np.round(c @ inv, 3)[::-1]))
        _, coord, dmin = classify_site(slab, rep)
        sites[kind] = Site(kind, (float(rep[0]), float(rep[1])), len(found[kind]), coord, dmin)
    return sites


def _inplane_distances_points(cell2, a, b) -> float:
    frac = np.linalg.solve(cell2.T, np.asarray(a) - np.asarray(b))
    frac -= np.round(frac)
    return float(np.linalg.norm(frac @ cell2))


#: Adsorbate-side radius (Å) where ASE's covalent radius gives metal-adsorbate bonds too short: H's 0.31 Å
#: would put H 0.68 Å above Cu(111) fcc hollows; 0.45 Å gives 0.97 Å (PBE: about 0.95 Å).
_ADSORBATE_RADII = {"H": 0.45}


def _bond_length(metal: str, symbol: str) -> float:
    """Metal-adsorbate bond length (Å) used to set heights: sum of ASE covalent radii (H: 0.45 Å)."""
    return float(
        covalent_radii[atomic_numbers[metal]]
        + _ADSORBATE_RADII.get(symbol, covalent_radii[atomic_numbers[symbol]])
    )


def site_height(metal: str, binding: str, inplane: float, minimum: float = 0.6) -> float:
    """Height (Å) of a ``binding`` atom above the surface plane so that its distance to the nearest metal
    atoms (``inplane`` Å away in the plane) equals the covalent-radii bond length; at least ``minimum``
    (deep four-fold hollows, where the atom sinks into the surface)."""
    d = _bond_length(metal, binding)
    return float(max(np.sqrt(max(d * d - inplane * inplane, 0.0)), minimum))


def adsorbate(name: str) -> Atoms:
    """The adsorbate ``name`` (H, O, N, C, OH, CO) upright, binding atom at the origin."""
    if name not in ADSORBATES:
        raise KeyError(f"unknown adsorbate {name!r}; known: {sorted(ADSORBATES)}")
    symbols, offsets = ADSORBATES[name]
    return Atoms(symbols, positions=offsets)


def place_adsorbate(slab: Atoms, name: str, site: Site, height: float | None = None) -> Atoms:
    """A copy of ``slab`` with adsorbate ``name`` on ``site``, binding atom ``height`` Å above the surface
    plane (default ``site_height``). Adds ``info`` ``adsorbate``, ``site``, ``height`` (Å)."""
    metal = slab.info.get("metal") or slab.get_chemical_symbols()[layers(slab)[0][0]]
    ads = adsorbate(name)
    h = site_height(metal, ads.get_chemical_symbols()[0], site.distance) if height is None else float(height)
    ads.positions += np.array([site.position[0], site.position[1], surface_z(slab) + h])
    new = slab.copy()
    new.info = dict(slab.info)
    if slab.has("initial_magmoms"):
        ads.set_initial_magnetic_moments([0.0] * len(ads))
    new += ads
    new.info.update(adsorbate=name, site=site.kind, height=h)
    return new
