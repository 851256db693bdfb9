"""Reactive metrics: adsorption, reaction and barrier energies, site order, structural stability.

Pure functions (numpy/ASE in, numbers out; no AiiDA). Every function returns a flat JSON-able dict
(``float``/``int``/``str``/``bool`` and lists of them) whose keys carry their unit: ``_eV``, ``_meV``,
``_A`` (Å). Errors are signed as *model - DFT*. Bad input (shape mismatch, missing site, NaN) raises
``ValueError`` naming the problem.

Only energy *differences* are compared: the model and DFT have different absolute zeros, so each
method's totals are combined with its own slab and gas references, or its own initial image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations

import numpy as np
from ase import Atoms
from ase.geometry import find_mic
from ase.neighborlist import NeighborList, natural_cutoffs
from scipy.stats import kendalltau

from ..systems.adsorption import _scheme, adsorption_energy
from ..systems.surfaces import ADSORBATES, classify_site, layers

__all__ = [
    "END_STATE_ROLES",
    "LEFT_SITE_LATERAL_A",
    "adsorption_energy_errors",
    "barrier_error",
    "neb_barrier_error",
    "reaction_energy_error",
    "select_minima",
    "site_preference",
    "stability_changed",
    "stability_summary",
    "structural_stability",
]

#: Lateral displacement (Å) of the adsorbate's binding atom, relative to the slab, above which it has
#: left its site whatever the nearest site is.
LEFT_SITE_LATERAL_A = 1.0

#: Elements counted as molecule atoms when no adsorbate is named: the non-metals that form molecules
#: (semiconductors such as Si and Ge count as substrate, like the metals).
_MOLECULAR = frozenset("H He B C N O F Ne P S Cl Ar Se Br Kr I Xe".split())


# ----------------------------------------------------------------------------------------- helpers
def _finite(value, what: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {value!r}") from None
    if not np.isfinite(x):
        raise ValueError(f"{what} is {x} (not finite)")
    return x


def _profile(values, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be a 1-d sequence of energies (eV), got shape {arr.shape}")
    if arr.size < 2:
        raise ValueError(f"{what} needs at least 2 images (initial and final), got {arr.size}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(f"{what} has a non-finite energy at image {int(bad[0])}: {arr[bad[0]]}")
    return arr


def _site_energies(values: Mapping, what: str) -> dict[str, float]:
    if not isinstance(values, Mapping):
        raise ValueError(f"{what} must be a mapping site -> energy (eV), got {type(values).__name__}")
    if not values:
        raise ValueError(f"{what} is empty")
    return {str(k): _finite(v, f"{what}[{k!r}]") for k, v in values.items()}


def _same_sites(dft: dict, model: dict, what: str) -> list[str]:
    missing = [s for s in dft if s not in model]
    extra = [s for s in model if s not in dft]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"model lacks site(s) {missing}")
        if extra:
            parts.append(f"DFT lacks site(s) {extra}")
        raise ValueError(f"{what}: {'; '.join(parts)}")
    return list(dft)


# ---------------------------------------------------------------------------- adsorption energies
def adsorption_energy_errors(
    dft_slab_adsorbate: Mapping,
    model_slab_adsorbate: Mapping,
    dft_slab: float,
    model_slab: float,
    dft_references: Mapping,
    model_references: Mapping,
    adsorbate: str,
    scheme: Mapping | None = None,
) -> dict:
    """Adsorption energy of ``adsorbate`` on every site by DFT and by the model, and the model's errors.

    ``*_slab_adsorbate``: {site: total energy (eV) of slab+adsorbate}; ``*_slab``: clean-slab total
    energy (eV); ``*_references``: {gas molecule: total energy (eV)}; ``scheme``: {molecule:
    coefficient} (default ``systems.adsorption.REFERENCE_SCHEMES``). Each method uses only its own
    totals (``systems.adsorption.adsorption_energy``).

    Returns ``adsorbate``, ``definition``, ``sites`` (DFT order), ``dft_adsorption_energies_eV``,
    ``model_adsorption_energies_eV``, ``adsorption_energy_errors_eV`` (model - DFT, per site, same
    order), ``adsorption_energy_mae_eV``, ``adsorption_energy_rmse_eV``,
    ``adsorption_energy_max_abs_error_eV``, ``n_sites``.
    """
    try:
        sch = _scheme(adsorbate, None if scheme is None else dict(scheme))
    except KeyError as exc:
        raise ValueError(str(exc.args[0])) from None
    dft = _site_energies(dft_slab_adsorbate, "dft_slab_adsorbate")
    model = _site_energies(model_slab_adsorbate, "model_slab_adsorbate")
    sites = _same_sites(dft, model, "adsorption energies")
    e_slab = {"dft": _finite(dft_slab, "dft_slab"), "model": _finite(model_slab, "model_slab")}
    refs = {}
    for who, given in (("dft", dft_references), ("model", model_references)):
        if not isinstance(given, Mapping):
            raise ValueError(f"{who}_references must be a mapping molecule -> energy (eV)")
        missing = [m for m in sch if m not in given]
        if missing:
            raise ValueError(
                f"{who}_references lacks gas molecule(s) {missing} needed for {adsorbate}; "
                f"given: {sorted(given)}"
            )
        refs[who] = {m: _finite(given[m], f"{who}_references[{m!r}]") for m in sch}
    e_dft, e_model, text = [], [], ""
    for s in sites:
        a = adsorption_energy(dft[s], e_slab["dft"], refs["dft"], adsorbate, sch)
        b = adsorption_energy(model[s], e_slab["model"], refs["model"], adsorbate, sch)
        e_dft.append(a.energy)
        e_model.append(b.energy)
        text = a.definition
    err = np.array(e_model) - np.array(e_dft)
    return {
        "adsorbate": str(adsorbate),
        "definition": text,
        "sites": sites,
        "dft_adsorption_energies_eV": [float(x) for x in e_dft],
        "model_adsorption_energies_eV": [float(x) for x in e_model],
        "adsorption_energy_errors_eV": [float(x) for x in err],
        "adsorption_energy_mae_eV": float(np.mean(np.abs(err))),
        "adsorption_energy_rmse_eV": float(np.sqrt(np.mean(err**2))),
        "adsorption_energy_max_abs_error_eV": float(np.max(np.abs(err))),
        "n_sites": len(sites),
    }


# ------------------------------------------------------------------------------ reaction energies
def reaction_energy_error(dft_initial, dft_final, model_initial, model_final) -> dict:
    """Reaction energy E(final) - E(initial) (eV) by DFT and by the model, and the model's error.

    Arguments are total energies (eV) of the same initial and final structures. Returns
    ``dft_reaction_energy_eV``, ``model_reaction_energy_eV``, ``reaction_energy_error_eV``
    (model - DFT), ``reaction_energy_abs_error_eV`` and ``sign_agrees`` (both exothermic, both
    endothermic, or both exactly zero).
    """
    di, df = _finite(dft_initial, "dft_initial"), _finite(dft_final, "dft_final")
    mi, mf = _finite(model_initial, "model_initial"), _finite(model_final, "model_final")
    d, m = df - di, mf - mi
    return {
        "dft_reaction_energy_eV": d,
        "model_reaction_energy_eV": m,
        "reaction_energy_error_eV": m - d,
        "reaction_energy_abs_error_eV": abs(m - d),
        "sign_agrees": bool(np.sign(d) == np.sign(m)),
    }


# -------------------------------------------------------------------------------------- barriers
def barrier_error(dft_profile: Sequence[float], model_profile: Sequence[float]) -> dict:
    """Forward and reverse barriers (eV) along a path by DFT and by the model, and the model's errors.

    ``*_profile``: total energies (eV) of the images, initial first, final last, same number of images.
    Use it for the model's own NEB against the DFT NEB (profiles of two bands) or for the model's
    energies evaluated on the DFT band's images (same geometries). Barrier = max - initial; reverse
    barrier = max - final (0 for a downhill path).

    Returns ``dft_barrier_eV``, ``model_barrier_eV``, ``barrier_error_eV`` (model - DFT),
    ``barrier_abs_error_eV``, the same for ``reverse_barrier``, ``dft_reaction_energy_eV``,
    ``model_reaction_energy_eV``, ``reaction_energy_error_eV``, ``dft_highest_image``,
    ``model_highest_image`` (0-based index), ``highest_image_agrees``, ``profile_mae_eV`` and
    ``profile_max_abs_error_eV`` (energies relative to each method's initial image), ``n_images``.
    """
    d = _profile(dft_profile, "dft_profile")
    m = _profile(model_profile, "model_profile")
    if d.shape != m.shape:
        raise ValueError(
            f"dft_profile has {d.size} images but model_profile has {m.size}; "
            "compare bands with the same number of images"
        )
    out = {}
    for who, e in (("dft", d), ("model", m)):
        out[f"{who}_barrier_eV"] = float(e.max() - e[0])
        out[f"{who}_reverse_barrier_eV"] = float(e.max() - e[-1])
        out[f"{who}_reaction_energy_eV"] = float(e[-1] - e[0])
        out[f"{who}_highest_image"] = int(np.argmax(e))
    for key in ("barrier", "reverse_barrier"):
        err = out[f"model_{key}_eV"] - out[f"dft_{key}_eV"]
        out[f"{key}_error_eV"] = float(err)
        out[f"{key}_abs_error_eV"] = float(abs(err))
    out["reaction_energy_error_eV"] = out["model_reaction_energy_eV"] - out["dft_reaction_energy_eV"]
    out["highest_image_agrees"] = out["dft_highest_image"] == out["model_highest_image"]
    rel = (m - m[0]) - (d - d[0])
    out["profile_mae_eV"] = float(np.mean(np.abs(rel[1:])))
    out["profile_max_abs_error_eV"] = float(np.max(np.abs(rel)))
    out["n_images"] = int(d.size)
    return out


# ------------------------------------------------------------------------------- site preference
def site_preference(
    dft_site_energies: Mapping, model_site_energies: Mapping, tie_meV: float = 0.0
) -> dict:
    """Does the model rank adsorption sites like DFT?

    ``*_site_energies``: {site: energy (eV)} of the same adsorbate on each site (totals or adsorption
    energies: only differences within one method are used). At least two sites.

    Returns ``sites_by_dft`` and ``sites_by_model`` (most stable first), ``most_stable_dft``,
    ``most_stable_model``, ``most_stable_agrees``, ``kendall_tau`` (1: same order, -1: reversed; left
    out when one method gives every site the same energy), ``dft_relative_energies_meV`` and
    ``model_relative_energies_meV`` (in ``sites_by_dft`` order, relative to the DFT-preferred site,
    each method its own energies), ``relative_energy_mae_meV``, ``misordered_pairs``: ``[more stable
    by DFT, less stable by DFT, DFT gap meV]`` for each pair the model puts the other way round (pairs
    within ``tie_meV`` by DFT are not counted; ``most_stable_agrees`` also holds when the model's favourite
    lies within ``tie_meV`` of DFT's by DFT), ``n_misordered_pairs``, ``n_pairs``.
    """
    dft = _site_energies(dft_site_energies, "dft_site_energies")
    model = _site_energies(model_site_energies, "model_site_energies")
    sites = _same_sites(dft, model, "site energies")
    if len(sites) < 2:
        raise ValueError(f"site preference needs at least 2 sites, got {sites}")
    tie = _finite(tie_meV, "tie_meV")
    by_dft = sorted(sites, key=lambda s: dft[s])
    by_model = sorted(sites, key=lambda s: model[s])
    best = by_dft[0]
    d_rel = np.array([dft[s] - dft[best] for s in by_dft]) * 1000.0
    m_rel = np.array([model[s] - model[best] for s in by_dft]) * 1000.0
    wrong, n_pairs = [], 0
    for a, b in combinations(by_dft, 2):  # a is at least as stable as b by DFT
        gap = (dft[b] - dft[a]) * 1000.0
        if gap <= tie:
            continue
        n_pairs += 1
        if model[a] > model[b]:
            wrong.append([a, b, float(gap)])
    out = {
        "sites_by_dft": by_dft,
        "sites_by_model": by_model,
        "most_stable_dft": best,
        "most_stable_model": by_model[0],
        # a model favourite within tie_meV of the DFT favourite (by DFT) is no disagreement
        "most_stable_agrees": best == by_model[0] or (dft[by_model[0]] - dft[best]) * 1000.0 <= tie,
    }
    dv, mv = [dft[s] for s in sites], [model[s] for s in sites]
    if np.ptp(dv) > 0 and np.ptp(mv) > 0:
        out["kendall_tau"] = float(kendalltau(dv, mv)[0])
    out.update(
        {
            "dft_relative_energies_meV": [float(x) for x in d_rel],
            "model_relative_energies_meV": [float(x) for x in m_rel],
            "relative_energy_mae_meV": float(np.mean(np.abs(m_rel - d_rel)[1:])),
            "misordered_pairs": wrong,
            "n_misordered_pairs": len(wrong),
            "n_pairs": n_pairs,
        }
    )
    return out


# ------------------------------------------------------------------------- structural stability
def _pair_key(i: int, j: int, offset) -> tuple:
    off = tuple(int(x) for x in offset)
    neg = tuple(-x for x in off)
    if i > j or (i == j and neg > off):
        return (j, i, neg)
    return (i, j, off)


def _bonds(atoms: Atoms, cutoffs) -> set:
    nl = NeighborList(cutoffs, skin=0.0, self_interaction=False, bothways=False)
    nl.update(atoms)
    keys = set()
    for i in range(len(atoms)):
        idx, offsets = nl.get_neighbors(i)
        for j, off in zip(idx, offsets):
            keys.add(_pair_key(i, int(j), off))
    return keys


def _distance(pos: np.ndarray, cell: np.ndarray, key: tuple) -> float:
    i, j, off = key
    return float(np.linalg.norm(pos[j] + np.asarray(off) @ cell - pos[i]))


def _default_adsorbate(atoms: Atoms) -> list[int]:
    name = atoms.info.get("adsorbate")
    if isinstance(name, str) and name in ADSORBATES:
        n = len(ADSORBATES[name][1])
        return list(range(len(atoms) - n, len(atoms)))
    symbols = atoms.get_chemical_symbols()
    nonmetal = [k for k, s in enumerate(symbols) if s in _MOLECULAR]
    if nonmetal and len(nonmetal) < len(atoms):
        return nonmetal
    return []


def _surface_sites(slab: Atoms) -> list[tuple[str, np.ndarray]]:
    """Every high-symmetry site (kind, xy in Å) of the top layer of ``slab`` (periodic in a1, a2)."""
    top = layers(slab)[0]
    cell2 = np.asarray(slab.cell)[:2, :2]
    inv = np.linalg.inv(cell2)
    pos = slab.positions[top, :2]
    shifts = [np.array([i, j]) @ cell2 for i in (-1, 0, 1) for j in (-1, 0, 1)]
    images = np.array([q + s for q in pos for s in shifts])
    d = np.linalg.norm(images[:, None, :] - pos[None, :, :], axis=2)
    d[d < 0.1] = np.inf
    nn = float(d.min())
    cands = []
    for p in pos:
        r = np.linalg.norm(images - p, axis=1)
        near = images[(r > 0.1) & (r < 1.2 * nn)]
        diag = images[(r > 1.3 * nn) & (r < 1.5 * nn)]  # square diagonal: fcc(100) hollow
        cands.append(p)
        cands.extend((p + q) / 2 for q in near)
        cands.extend((p + q) / 2 for q in diag)
        for a, b in combinations(near, 2):
            if np.linalg.norm(a - b) < 1.2 * nn:
                cands.append((p + a + b) / 3)
    sites: list[tuple[str, np.ndarray]] = []
    for c in cands:
        f = c @ inv
        c = (f - np.floor(f + 1e-6)) @ cell2
        kind = classify_site(slab, c)[0]
        if kind == "other":
            continue
        if all(_inplane_mic(cell2, c, s) > 0.05 for _, s in sites):
            sites.append((kind, c))
    return sites


def _inplane_mic(cell2: np.ndarray, a, b) -> float:
    frac = np.linalg.solve(cell2.T, np.asarray(a) - np.asarray(b))
    frac -= np.round(frac)
    return float(np.linalg.norm(frac @ cell2))


def _nearest_site(sites, cell2, xy) -> int:
    return int(np.argmin([_inplane_mic(cell2, xy, s) for _, s in sites]))


def structural_stability(
    reference_atoms: Atoms,
    relaxed_atoms: Atoms,
    bond_scale: float = 1.25,
    adsorbate_indices: Sequence[int] | None = None,
) -> dict:
    """How far the model's relaxation of a DFT minimum moved it, and whether bonds broke or formed.

    ``reference_atoms``: the DFT structure; ``relaxed_atoms``: the same atoms (same order, same cell)
    after relaxation with the model. Displacements use the periodic minimum image.

    - ``rmsd_A``: root-mean-square displacement (Å) over *all* atoms, fixed ones included, after
      removing the rigid translation (mean displacement); ``max_displacement_A`` the largest one, also
      after removing it; ``rigid_translation_A``: the length of that translation.
    - Bonds: a pair is bonded in the reference when closer than ``bond_scale`` x the sum of ASE natural
      cutoffs (covalent radii). A reference bond is *broken* when the relaxed distance exceeds both
      that cutoff and ``bond_scale`` x its reference length (H2 at 0.74 Å: broken beyond 0.925 Å at
      1.25); a pair is *formed* when it comes within the cutoff and below its reference length /
      ``bond_scale``. The hysteresis keeps pairs that sit near the cutoff from flickering.
      ``bonds_broken``/``bonds_formed``: ``[i, j, symbol_i, symbol_j, d_reference_A, d_relaxed_A]``.
    - ``dissociated``: a bond between two molecule atoms broke. Molecule atoms: ``adsorbate_indices``;
      else the adsorbate named in ``reference_atoms.info["adsorbate"]`` (the last atoms, as
      ``systems.surfaces.place_adsorbate`` builds it); else the molecule-forming atoms (H, B, C, N,
      O, F, P, S, Cl, Se, Br, I, noble gases) next to substrate atoms (metals, Si, Ge); else all
      atoms when all are molecule-forming (a gas-phase molecule); a bare substrate has none
      (``dissociated`` False; its broken bonds are still listed).
    - ``adsorbate_left_site`` (only with an adsorbate on a slab periodic in a1 and a2): the binding
      atom (the adsorbate atom lowest in z in the reference) moved more than ``LEFT_SITE_LATERAL_A``
      = 1 Å in the plane relative to the slab (its mean displacement removed), or its nearest
      high-symmetry site of the reference top layer (top, bridge, fcc, hcp, hollow) changed. With it:
      ``adsorbate_site_reference``, ``adsorbate_site_relaxed`` (site kinds),
      ``adsorbate_lateral_displacement_A``.
    """
    for name, at in (("reference_atoms", reference_atoms), ("relaxed_atoms", relaxed_atoms)):
        if not isinstance(at, Atoms):
            raise ValueError(f"{name} must be an ase.Atoms, got {type(at).__name__}")
        if not np.all(np.isfinite(at.positions)):
            raise ValueError(f"{name} has non-finite positions")
    scale = _finite(bond_scale, "bond_scale")
    if scale < 1.0:
        raise ValueError(f"bond_scale must be >= 1, got {scale}")
    n = len(reference_atoms)
    if len(relaxed_atoms) != n:
        raise ValueError(f"reference_atoms has {n} atoms but relaxed_atoms has {len(relaxed_atoms)}")
    if n == 0:
        raise ValueError("reference_atoms has no atoms")
    if not np.array_equal(reference_atoms.numbers, relaxed_atoms.numbers):
        k = int(np.flatnonzero(reference_atoms.numbers != relaxed_atoms.numbers)[0])
        raise ValueError(
            f"atom {k} is {reference_atoms[k].symbol} in reference_atoms but {relaxed_atoms[k].symbol} "
            "in relaxed_atoms: the atoms must be in the same order"
        )
    pbc = np.asarray(reference_atoms.pbc, dtype=bool)
    cell = np.asarray(reference_atoms.cell)
    if not np.array_equal(pbc, relaxed_atoms.pbc):
        raise ValueError(f"pbc differ: {pbc.tolist()} against {list(relaxed_atoms.pbc)}")
    if pbc.any() and not np.allclose(cell, np.asarray(relaxed_atoms.cell), atol=1e-6):
        raise ValueError("cells differ: structural_stability compares fixed-cell relaxations")
    if adsorbate_indices is None:
        ads = _default_adsorbate(reference_atoms)
    else:
        ads = sorted({int(i) for i in adsorbate_indices})
        if any(i < 0 or i >= n for i in ads):
            raise ValueError(f"adsorbate_indices {ads} out of range for {n} atoms")

    disp, _ = find_mic(relaxed_atoms.positions - reference_atoms.positions, cell, pbc)
    shift = disp.mean(axis=0)
    rel = disp - shift
    norms = np.linalg.norm(rel, axis=1)
    symbols = reference_atoms.get_chemical_symbols()
    out: dict = {
        "n_atoms": n,
        "rmsd_A": float(np.sqrt(np.mean(norms**2))),
        "max_displacement_A": float(norms.max()),
        "max_displacement_atom": int(np.argmax(norms)),
        "rigid_translation_A": float(np.linalg.norm(shift)),
    }

    # bonds: relaxed positions unwrapped onto the reference so that image offsets mean the same
    unwrapped = reference_atoms.copy()
    unwrapped.positions = reference_atoms.positions + disp
    cutoffs = natural_cutoffs(reference_atoms, mult=scale)
    ref_pos, new_pos = reference_atoms.positions, unwrapped.positions
    ref_bonds = _bonds(reference_atoms, cutoffs)
    new_bonds = _bonds(unwrapped, cutoffs)
    broken, formed = [], []
    for key in sorted(ref_bonds):
        d0, d1 = _distance(ref_pos, cell, key), _distance(new_pos, cell, key)
        limit = cutoffs[key[0]] + cutoffs[key[1]]
        if d1 > max(limit, scale * d0):
            broken.append([key[0], key[1], symbols[key[0]], symbols[key[1]], d0, d1])
    for key in sorted(new_bonds - ref_bonds):
        d0, d1 = _distance(ref_pos, cell, key), _distance(new_pos, cell, key)
        if d1 < d0 / scale:
            formed.append([key[0], key[1], symbols[key[0]], symbols[key[1]], d0, d1])
    if ads:
        molecule = set(ads)
    elif all(s in _MOLECULAR for s in symbols):
        molecule = set(range(n))  # a gas-phase molecule
    else:
        molecule = set()  # a bare substrate has no molecule to dissociate
    out.update(
        {
            "bond_scale": scale,
            "n_bonds_reference": len(ref_bonds),
            "n_bonds_broken": len(broken),
            "n_bonds_formed": len(formed),
            "bonds_broken": broken,
            "bonds_formed": formed,
            "dissociated": any(b[0] in molecule and b[1] in molecule for b in broken),
        }
    )

    slab_idx = [k for k in range(n) if k not in set(ads)]
    if ads and slab_idx and pbc[0] and pbc[1]:
        slab = reference_atoms[slab_idx]
        sites = _surface_sites(slab)
        cell2 = cell[:2, :2]
        bind = min(ads, key=lambda k: reference_atoms.positions[k, 2])
        lateral = disp[bind, :2] - disp[slab_idx, :2].mean(axis=0)
        xy0 = reference_atoms.positions[bind, :2]
        s0 = _nearest_site(sites, cell2, xy0)
        s1 = _nearest_site(sites, cell2, xy0 + lateral)
        dist = float(np.linalg.norm(lateral))
        out.update(
            {
                "adsorbate_indices": list(ads),
                "adsorbate_binding_atom": int(bind),
                "adsorbate_site_reference": sites[s0][0],
                "adsorbate_site_relaxed": sites[s1][0],
                "adsorbate_lateral_displacement_A": dist,
                "adsorbate_left_site": bool(s0 != s1 or dist > LEFT_SITE_LATERAL_A),
            }
        )
    return out


# ------------------------------------------------------------------- minima and their stability
#: Frame roles that mark an end state of a reaction (a minimum by construction of the system).
END_STATE_ROLES = ("initial", "final")


def select_minima(infos: Sequence[Mapping], energies: Sequence[float], groups: Sequence[str]) -> list[int]:
    """Indices of the frames that are DFT minima, to relax with a model (sorted).

    Per group of frames (same system and composition, as the energy metrics group them): the frames
    flagged ``info["minimum"]`` true, else the end states (``role`` initial or final), else the frame
    with the lowest DFT energy (eV) of the group (a bond scan's equilibrium, a reference slab or gas
    molecule). A frame flagged ``minimum`` false is never chosen. Frames without a finite energy are
    only chosen when flagged.
    """
    n = len(infos)
    if len(energies) != n or len(groups) != n:
        raise ValueError(f"infos ({n}), energies ({len(energies)}) and groups ({len(groups)}) must have one entry per frame")
    energies = np.asarray(energies, dtype=float)
    by_group: dict[str, list[int]] = {}
    for index, group in enumerate(groups):
        by_group.setdefault(str(group), []).append(index)
    chosen: list[int] = []
    for indices in by_group.values():
        allowed = [i for i in indices if infos[i].get("minimum", True) not in (False, "false", "False", 0)]
        flagged = [i for i in allowed if infos[i].get("minimum") in (True, "true", "True", 1)]
        if not flagged:
            flagged = [i for i in allowed if infos[i].get("role") in END_STATE_ROLES]
        if not flagged:
            finite = [i for i in allowed if np.isfinite(energies[i])]
            flagged = [min(finite, key=lambda i: energies[i])] if finite else []
        chosen.extend(flagged)
    return sorted(chosen)


def stability_changed(result: Mapping) -> bool:
    """Whether a :func:`structural_stability` result shows a chemical change: a bond broke or formed,
    a molecule dissociated or an adsorbate left its site."""
    return bool(result.get("n_bonds_broken") or result.get("n_bonds_formed") or result.get("dissociated")
                or result.get("adsorbate_left_site"))


def stability_summary(results: Sequence[Mapping]) -> dict:
    """Summary over the :func:`structural_stability` results of several minima (one model).

    ``n_minima``; ``rmsd_mean_A``/``rmsd_max_A`` (Å); ``max_displacement_A`` (largest over all);
    ``n_bonds_broken``/``n_bonds_formed`` (totals); ``n_dissociated``, ``n_left_site`` (minima where an
    adsorbate left its site), ``n_changed`` (minima with any of these, see :func:`stability_changed`);
    ``n_not_converged`` (results carrying ``converged`` false).
    """
    if not results:
        raise ValueError("no structural_stability results to summarise")
    rmsd = np.array([_finite(r["rmsd_A"], "rmsd_A") for r in results])
    return {
        "n_minima": len(results),
        "rmsd_mean_A": float(rmsd.mean()),
        "rmsd_max_A": float(rmsd.max()),
        "max_displacement_A": float(max(_finite(r["max_displacement_A"], "max_displacement_A") for r in results)),
        "n_bonds_broken": int(sum(int(r.get("n_bonds_broken", 0)) for r in results)),
        "n_bonds_formed": int(sum(int(r.get("n_bonds_formed", 0)) for r in results)),
        "n_dissociated": int(sum(bool(r.get("dissociated")) for r in results)),
        "n_left_site": int(sum(bool(r.get("adsorbate_left_site")) for r in results)),
        "n_changed": int(sum(stability_changed(r) for r in results)),
        "n_not_converged": int(sum(r.get("converged") is False for r in results)),
    }


def neb_barrier_error(dft_profile: Sequence[float], model_profile: Sequence[float]) -> dict:
    """Barrier of the model's own NEB band against the DFT NEB band (energies in eV, initial image first).

    Unlike :func:`barrier_error` the bands may have different numbers of images: each method's
    barrier comes from its own band (forward: highest image - initial, reverse: highest - final). The
    position of the highest image is compared as a fraction of the band (0 initial, 1 final);
    ``highest_image_agrees`` when the two fractions are within half an image spacing of the coarser
    band. Errors are model - DFT. With equal lengths the profile MAE of :func:`barrier_error` is added.
    """
    dft = _profile(dft_profile, "dft_profile")
    model = _profile(model_profile, "model_profile")
    out: dict = {}
    for name, e in (("dft", dft), ("model", model)):
        top = int(np.argmax(e))
        out[f"{name}_barrier_eV"] = float(e[top] - e[0])
        out[f"{name}_reverse_barrier_eV"] = float(e[top] - e[-1])
        out[f"{name}_reaction_energy_eV"] = float(e[-1] - e[0])
        out[f"{name}_highest_image"] = top
        out[f"{name}_highest_image_fraction"] = top / (len(e) - 1)
        out[f"{name}_n_images"] = len(e)
    out["barrier_error_eV"] = out["model_barrier_eV"] - out["dft_barrier_eV"]
    out["barrier_abs_error_eV"] = abs(out["barrier_error_eV"])
    out["reverse_barrier_error_eV"] = out["model_reverse_barrier_eV"] - out["dft_reverse_barrier_eV"]
    out["reaction_energy_error_eV"] = out["model_reaction_energy_eV"] - out["dft_reaction_energy_eV"]
    spacing = 1.0 / (min(len(dft), len(model)) - 1)
    out["highest_image_agrees"] = bool(
        abs(out["model_highest_image_fraction"] - out["dft_highest_image_fraction"]) < 0.5 * spacing + 1e-9
    )
    if len(dft) == len(model):  # as in barrier_error: relative to each method's initial image, initial excluded
        out["profile_mae_eV"] = float(np.mean(np.abs(((model - model[0]) - (dft - dft[0]))[1:])))
    return out
