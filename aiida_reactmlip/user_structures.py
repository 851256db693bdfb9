"""A user's own structures -> the frame info the systems library writes and the metrics read (pure; ASE in).

A user describes each frame of an extended-XYZ file (or a list of ASE ``Atoms``) in its ``info``:

``role``
    ``slab`` (clean slab: adsorption reference), ``gas`` (gas molecule: adsorption reference),
    ``minimum`` (a minimum, e.g. the adsorbate on a site: adsorption energy and site order against the
    slab and gas references; relaxed by every model for structural stability), ``initial`` and ``final``
    (end states of a reaction path, and of a DFT NEB), ``image`` (a path image between them, in file order
    or by ``image_index``), ``scan`` (a bond or distance scan: relative energies along it).
``group``
    frames compared by relative energies (same composition); for paths and scans it also separates
    several paths/scans of one file.
``fixed_atoms``
    atoms (0-based) kept fixed when a model or neb.x relaxes the frame: a list, a JSON list or a
    comma-separated string; else the file's ``FixAtoms`` constraint (extxyz ``move_mask``); else, for a
    slab whose atoms carry ASE's layer tags (1 = top ... n = bottom, 0 = adsorbate), the bottom
    ``n // 2`` layers, as the library's slabs.
``adsorbate``, ``site``
    optional for minima: by default the atoms beyond the slab's and the site kind under them (top,
    bridge, fcc, hcp, hollow).
``name``, ``system``, ``multiplicity``, ``spin_polarised``
    as for the library (``system`` defaults to the file's stem).

:func:`normalise_frames` returns copies whose ``info`` carries the library's vocabulary (``kind`` slab or
molecule, ``role`` reference, ``adsorbate``, ``site``, ``minimum``, ``fixed_atoms`` as a JSON list,
``adsorption_scheme``), layer tags cleared once read, and notes on what cannot be computed.
Frames without a user role pass unchanged (apart from ``fixed_atoms`` lists made JSON).
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np

#: Roles a user gives a frame.
USER_ROLES = ("slab", "gas", "minimum", "initial", "final", "image", "scan")
#: Roles the systems library writes (accepted as they are).
LIBRARY_ROLES = ("reference", "initial", "final", "image", "scan", "strain", "rattle", "md", "explore")


class UserStructureError(ValueError):
    """A frame description that cannot be used; the message names the frame and what to change."""


def _label(index: int, info: dict) -> str:
    return f"frame {index}" + (f" ({info['name']})" if info.get("name") else "")


def parse_atom_list(value, n_atoms: int, where: str) -> list[int]:
    """0-based atom indices from a list/array, a JSON list or a comma/space separated string."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = json.loads(text) if text.startswith("[") else [int(v) for v in text.replace(",", " ").split()]
        except (ValueError, json.JSONDecodeError) as exc:
            raise UserStructureError(f"{where}: fixed_atoms {value!r} is not a list of atom indices") from exc
    values = np.asarray(value).ravel().tolist()
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        raise UserStructureError(f"{where}: fixed_atoms must be atom indices (integers), got {value!r}")
    bad = sorted(int(v) for v in values if not 0 <= int(v) < n_atoms)
    if bad:
        raise UserStructureError(f"{where}: fixed_atoms {bad} out of range for {n_atoms} atoms (indices start at 0)")
    return sorted({int(v) for v in values})


def fixed_atoms_of(atoms, where: str = "frame") -> list[int]:
    """Atoms to keep fixed: ``info["fixed_atoms"]``, else ``FixAtoms`` constraints, else the bottom half of the
    layers a slab's ASE tags number (1 top ... n bottom; tag 0 = adsorbate, never fixed); else none."""
    from ase.constraints import FixAtoms

    if atoms.info.get("fixed_atoms") is not None:
        return parse_atom_list(atoms.info["fixed_atoms"], len(atoms), where)
    constrained = sorted({int(i) for c in atoms.constraints if isinstance(c, FixAtoms) for i in c.get_indices()})
    if constrained:
        return constrained
    tags = atoms.get_tags()
    n_layers = int(tags.max()) if len(tags) else 0
    if n_layers >= 2 and (tags > 0).sum() >= n_layers:
        return [int(i) for i in np.flatnonzero(tags > n_layers - n_layers // 2)]
    return []


def _dimensionality(atoms) -> int:
    from aiida_reactmlip.qe_settings import dimensionality

    return dimensionality(atoms)


def _formula(symbols) -> str:
    from ase.formula import Formula

    return Formula.from_list(list(symbols)).format("hill")


def _adsorbate_name(symbols: list[str]) -> str:
    """The library's name of an adsorbate (``OH``, ``CO``, ``H``) when its composition is known, else Hill's."""
    from aiida_reactmlip.systems.adsorption import REFERENCE_SCHEMES

    counts = Counter(symbols)
    for name in REFERENCE_SCHEMES:
        from ase import Atoms

        if Counter(Atoms(name).get_chemical_symbols()) == counts:
            return name
    return _formula(symbols)


def adsorption_scheme(adsorbate: str, gases: list[str]) -> dict | None:
    """The gas references of ``adsorbate``'s adsorption energy among the gas formulas ``gases`` (Hill): the
    library's default (``systems.adsorption.REFERENCE_SCHEMES``) when its molecules are there, else 1/n X_n
    for a one-element adsorbate X whose molecule X_n is there (O: 1/2 O2); None when neither is."""
    from ase import Atoms

    from aiida_reactmlip.systems.adsorption import REFERENCE_SCHEMES

    default = REFERENCE_SCHEMES.get(adsorbate)
    if default is not None and all(m in gases for m in default):
        return dict(default)
    symbols = Atoms(adsorbate).get_chemical_symbols()
    if len(set(symbols)) == 1:
        for gas in gases:
            gas_symbols = Atoms(gas).get_chemical_symbols()
            if set(gas_symbols) == set(symbols):
                return {gas: len(symbols) / len(gas_symbols)}
    return None


def _site(slab, frame, extra: list[int]) -> str:
    """The site kind under the adsorbate's lowest atom (the one binding to the surface)."""
    from aiida_reactmlip.systems.surfaces import classify_site

    lowest = min(extra, key=lambda i: frame.positions[i, 2])
    try:
        kind, _, _ = classify_site(slab, frame.positions[lowest, :2])
    except Exception:  # noqa: BLE001  (an unusual surface: the site keeps the frame's name)
        return ""
    return kind if kind != "other" else ""


def geometry_error(atoms) -> str | None:
    """What makes ``atoms`` unusable as a configuration, else None: no atoms, positions that are not finite,
    a periodic direction without a cell vector (no cell), or periodic cell vectors spanning no volume (area)."""
    if len(atoms) == 0:
        return "has no atoms"
    if not np.isfinite(atoms.positions).all():
        return "has positions that are not finite numbers (NaN or inf)"
    periodic = [k for k in range(3) if atoms.pbc[k]]
    if not periodic:
        return None
    cell = np.asarray(atoms.cell.array, dtype=float)
    if not np.isfinite(cell).all():
        return "has a cell that is not finite numbers (NaN or inf)"
    empty = ["abc"[k] for k in periodic if np.linalg.norm(cell[k]) < 1e-6]
    if empty:
        return (f"is periodic along {', '.join(empty)} but has no cell vector there (no cell): give its cell (extxyz "
                "Lattice=\"...\", or CIF/POSCAR) or, for a molecule, pbc=\"F F F\" and a box")
    vectors = cell[periodic]
    size = np.sqrt(abs(np.linalg.det(vectors @ vectors.T)))  # volume, area or length of the periodic cell
    if size < 1e-6 * np.prod(np.linalg.norm(vectors, axis=1)):
        return (f"has a cell of zero volume: its periodic cell vectors {vectors.round(4).tolist()} are linearly "
                "dependent (Å); fix the cell (extxyz Lattice=\"...\")")
    return None


def dft_cell_error(atoms) -> str | None:
    """What keeps ``atoms`` from a plane-wave DFT run (pw.x), else None: :func:`geometry_error`, or no 3-D cell
    (a molecule needs a box of vacuum around it)."""
    problem = geometry_error(atoms)
    if problem:
        return problem
    cell = np.asarray(atoms.cell.array, dtype=float)
    if abs(np.linalg.det(cell)) < 1e-6 * max(float(np.prod(np.linalg.norm(cell, axis=1))), 1e-12):
        return ("has no 3-D cell (a cell of zero volume): pw.x needs a box; give the cell (extxyz Lattice=\"...\"), "
                "e.g. 10 Å of vacuum around a molecule (ASE: atoms.center(vacuum=5.0))")
    return None


def normalise_frames(images, source: str = "user") -> tuple[list, list[str]]:
    """(frames, notes): copies of ``images`` with the library's info (see the module docstring), and one line
    per thing that cannot be computed from them (an adsorption energy without its gas references, ...).

    :param source: default ``system`` (the file's stem).
    :raises UserStructureError: no atoms, no cell or a cell of zero volume where periodic, an unknown role,
        names that repeat, a slab or gas frame that is not one, a minimum that does not contain the slab's atoms
        first, a group of several compositions, a path whose end states differ in their atoms.
    """
    frames = [atoms.copy() for atoms in images]
    for atoms, original in zip(frames, images):  # numpy scalars (extxyz) as Python ones: extras keep them
        atoms.info = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in original.info.items()}
    notes: list[str] = []
    for index, atoms in enumerate(frames):
        problem = geometry_error(atoms)
        if problem:
            raise UserStructureError(f"{_label(index, atoms.info)} {problem}")
        role = atoms.info.get("role")
        if role is not None and role not in USER_ROLES + LIBRARY_ROLES:
            raise UserStructureError(f"{_label(index, atoms.info)}: unknown role {role!r}; give one of "
                                     f"{', '.join(USER_ROLES)}")
        if "fixed_atoms" in atoms.info and not isinstance(atoms.info["fixed_atoms"], str):
            atoms.info["fixed_atoms"] = json.dumps(
                parse_atom_list(atoms.info["fixed_atoms"], len(atoms), _label(index, atoms.info)))
    if not any(a.info.get("role") in ("slab", "gas", "minimum") for a in frames) and not any(
            a.info.get("role") in USER_ROLES and "system" not in a.info for a in frames):
        return frames, notes

    names = [str(a.info.get("name") or f"{source}-{i:03d}") for i, a in enumerate(frames)]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise UserStructureError(f"frame names repeat: {', '.join(repeated)}; give every frame its own `name`")
    handled = [i for i, a in enumerate(frames) if a.info.get("role") in USER_ROLES]
    for i in handled:
        atoms = frames[i]
        atoms.info["name"] = names[i]
        atoms.info.setdefault("system", source)
        fixed = fixed_atoms_of(atoms, _label(i, atoms.info)) if _dimensionality(atoms) == 2 else []
        if fixed:
            atoms.info["fixed_atoms"] = json.dumps(fixed)
        atoms.set_constraint()
    by_system: dict[str, list[int]] = {}
    for i in handled:
        by_system.setdefault(str(frames[i].info["system"]), []).append(i)
    for system, indices in by_system.items():
        _normalise_system(frames, system, indices, notes)
    for i in handled:
        frames[i].set_tags(0)  # read above; StructureData would make one kind per tag
    _check_groups(frames)
    return frames, notes


def _normalise_system(frames, system: str, indices: list[int], notes: list[str]) -> None:
    roles = {i: frames[i].info["role"] for i in indices}
    slabs = [i for i in indices if roles[i] == "slab"]
    gases = [i for i in indices if roles[i] == "gas"]
    minima = [i for i in indices if roles[i] == "minimum"]
    for i in slabs:
        if _dimensionality(frames[i]) != 2:
            raise UserStructureError(f"{_label(i, frames[i].info)}: role slab, but it is not a slab (periodic in "
                                     "two directions with vacuum along the third)")
        frames[i].info.update(kind="slab", role="reference")
    for i in gases:
        if _dimensionality(frames[i]) != 0:
            raise UserStructureError(f"{_label(i, frames[i].info)}: role gas, but it is not an isolated molecule "
                                     "(it needs at least 5 Å of vacuum in every direction)")
        frames[i].info.update(kind="molecule", role="reference")
    gas_formulas = [_formula(frames[i].get_chemical_symbols()) for i in gases]
    if len(slabs) > 1 and minima:
        raise UserStructureError(f"system {system!r} has {len(slabs)} slabs; adsorption energies need one: give "
                                 "the others their own `system`")
    seen_sites: Counter = Counter()
    for i in minima:
        info = frames[i].info
        info["minimum"] = True
        if not slabs:
            continue
        slab = frames[slabs[0]]
        n = len(slab)
        symbols = frames[i].get_chemical_symbols()
        if len(frames[i]) <= n or symbols[:n] != slab.get_chemical_symbols():
            if info.get("adsorbate"):
                raise UserStructureError(f"{_label(i, info)}: a minimum with an adsorbate must list the slab's "
                                         f"{n} atoms first, in the slab's order, then the adsorbate")
            continue
        extra = list(range(n, len(frames[i])))
        adsorbate = str(info.get("adsorbate") or _adsorbate_name(symbols[n:]))
        info["adsorbate"] = adsorbate
        site = str(info.get("site") or _site(slab, frames[i], extra) or info["name"])
        seen_sites[site] += 1
        info["site"] = site if seen_sites[site] == 1 else f"{site}-{seen_sites[site]}"
        scheme = adsorption_scheme(adsorbate, gas_formulas)
        if scheme is None:
            notes.append(f"{system}: no adsorption energy of {adsorbate}: no gas reference for it (give e.g. "
                         f"{' and '.join(_default_gases(adsorbate)) or 'its molecule'} with role=gas)")
        else:
            info["adsorption_scheme"] = json.dumps(scheme, sort_keys=True)
    path = [i for i in indices if roles[i] in ("initial", "final", "image")]
    scans = [i for i in indices if roles[i] == "scan"]
    adsorption = bool(slabs and minima)
    for i in path:  # one system per path: by_system computes adsorption or a path for a system, not both
        group = frames[i].info.get("group")
        if adsorption or group:
            frames[i].info["system"] = f"{system}-{group or 'path'}"
    _check_paths(frames, path)
    image_counter: Counter = Counter()
    for i in path:
        if roles[i] == "image" and "image_index" not in frames[i].info:
            image_counter[frames[i].info["system"]] += 1
            frames[i].info["image_index"] = image_counter[frames[i].info["system"]]
    for i in scans:
        frames[i].info["system"] = f"{system}-{frames[i].info.get('group') or 'scan'}"


def _default_gases(adsorbate: str) -> list[str]:
    from aiida_reactmlip.systems.adsorption import REFERENCE_SCHEMES

    return list(REFERENCE_SCHEMES.get(adsorbate, {}))


def _check_paths(frames, path: list[int]) -> None:
    by_system: dict[str, list[int]] = {}
    for i in path:
        by_system.setdefault(frames[i].info["system"], []).append(i)
    for system, indices in by_system.items():
        ends = {role: [i for i in indices if frames[i].info["role"] == role] for role in ("initial", "final")}
        if len(ends["initial"]) != 1 or len(ends["final"]) != 1:
            raise UserStructureError(
                f"path {system!r} has {len(ends['initial'])} initial and {len(ends['final'])} final frame(s); a "
                "path needs one of each: give each path its own `group`")
        reference = frames[ends["initial"][0]]
        for i in indices:
            if frames[i].get_chemical_symbols() != reference.get_chemical_symbols():
                raise UserStructureError(f"{_label(i, frames[i].info)}: the frames of path {system!r} must have the "
                                         "same atoms in the same order as its initial state")


def _check_groups(frames) -> None:
    compositions: dict[str, set] = {}
    for atoms in frames:
        if atoms.info.get("group") is not None:
            compositions.setdefault(str(atoms.info["group"]), set()).add(_formula(atoms.get_chemical_symbols()))
    for group, formulas in compositions.items():
        if len(formulas) > 1:
            raise UserStructureError(f"group {group!r} mixes compositions {', '.join(sorted(formulas))}: relative "
                                     "energies compare frames of one composition; split it into groups")
