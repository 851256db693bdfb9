"""Pure choices of pw.x inputs for a configuration: dimensionality, cutoffs, k-points, occupations.

Nothing here imports AiiDA: ASE ``Atoms`` and plain dicts in, plain dicts out. The ``reactmlip.label``
WorkChain turns the result into aiida-quantumespresso protocol overrides.
"""

from __future__ import annotations

import functools
import importlib.resources
import typing as t

import numpy as np
import yaml

#: Vacuum (Å) above which a cell direction counts as non-periodic for the physics (slab, molecule).
MIN_VACUUM = 5.0


@functools.cache
def _protocol_file() -> dict:
    text = importlib.resources.files("aiida_reactmlip.protocols").joinpath("label.yaml").read_text()
    return yaml.safe_load(text)


def available_protocols() -> list[str]:
    """Names of the labelling protocols (``fast``, ``moderate``, ``precise``)."""
    return list(_protocol_file()["protocols"])


def load_protocol(name: str | None = None) -> dict:
    """Return a copy of the labelling protocol ``name`` (default: the file's ``default_protocol``)."""
    data = _protocol_file()
    name = name or data["default_protocol"]
    if name not in data["protocols"]:
        raise ValueError(f"unknown protocol {name!r}; available: {', '.join(available_protocols())}")
    return {"name": name, **data["protocols"][name]}


def vacuum_thickness(atoms) -> np.ndarray:
    """Return the largest empty gap (Å) along each cell vector, measured perpendicular to the other two.

    For a zero cell vector the gap is infinite.
    """
    cell = np.asarray(atoms.cell)
    gaps = np.full(3, np.inf)
    if len(atoms) == 0:
        return gaps
    volume = abs(np.linalg.det(cell)) if atoms.cell.rank == 3 else 0.0
    if volume == 0.0:
        return gaps
    scaled = atoms.get_scaled_positions(wrap=True)
    for axis in range(3):
        other = [k for k in range(3) if k != axis]
        plane_area = np.linalg.norm(np.cross(cell[other[0]], cell[other[1]]))
        height = volume / plane_area
        frac = np.sort(scaled[:, axis] % 1.0)
        cyclic_gaps = np.diff(np.concatenate([frac, [frac[0] + 1.0]]))
        gaps[axis] = cyclic_gaps.max() * height
    return gaps


def dimensionality(atoms, min_vacuum: float = MIN_VACUUM) -> int:
    """Return 0 (isolated molecule), 2 (slab: vacuum along c only), 3 (bulk) or 1 (wire).

    A direction counts as non-periodic when ``atoms.pbc`` is False there or when its vacuum gap
    exceeds ``min_vacuum`` Å.
    """
    gaps = vacuum_thickness(atoms)
    periodic = [bool(atoms.pbc[k]) and gaps[k] < min_vacuum for k in range(3)]
    return int(sum(periodic))


def kpoints_mesh(atoms, distance: float, periodic: t.Sequence[bool]) -> list[int]:
    """Monkhorst-Pack mesh with spacing ``distance`` (1/Å, 2π included) along periodic directions, 1 elsewhere."""
    reciprocal = 2.0 * np.pi * np.linalg.inv(np.asarray(atoms.cell)).T
    mesh = []
    for axis in range(3):
        if not periodic[axis]:
            mesh.append(1)
            continue
        mesh.append(max(1, int(np.ceil(np.linalg.norm(reciprocal[axis]) / distance))))
    return mesh


def pw_choices(atoms, protocol: dict, suggested_cutoffs_ry: tuple[float, float]) -> dict:
    """Return the pw.x choices for one configuration under ``protocol``.

    :param suggested_cutoffs_ry: (wavefunction, density) cutoffs in Ry recommended by the pseudopotentials.
    :returns: dict with ``ecutwfc``, ``ecutrho`` (Ry), ``kpoints_mesh``, ``dimensionality``, ``occupations``
        ('fixed' for isolated molecules, 'smearing' otherwise), ``smearing``/``degauss`` (Ry) where smeared,
        ``tstress`` (only for bulk, where stress is meaningful), ``assume_isolated`` (None or '2D').
    """
    wfc, rho = suggested_cutoffs_ry
    scale = float(protocol["cutoff_scale"])
    ecutwfc = round(wfc * scale, 1)
    ecutrho = round(max(rho * scale, ecutwfc * float(protocol.get("dual", 4.0))), 1)
    gaps = vacuum_thickness(atoms)
    periodic = [bool(atoms.pbc[k]) and gaps[k] < MIN_VACUUM for k in range(3)]
    dim = int(sum(periodic))
    choices: dict[str, t.Any] = {
        "ecutwfc": ecutwfc,
        "ecutrho": ecutrho,
        "dimensionality": dim,
        "kpoints_mesh": kpoints_mesh(atoms, float(protocol["kpoints_distance"]), periodic),
        "tstress": dim == 3,
        "assume_isolated": None,
        "conv_thr": float(protocol["conv_thr_per_atom"]) * max(len(atoms), 1),
    }
    if dim == 0:
        choices["occupations"] = "fixed"
    else:
        choices["occupations"] = "smearing"
        choices.update(protocol["smearing"])
    return choices


def spin_settings(multiplicity: int | None, n_electrons: float | None = None,
                  kinds: t.Sequence[str] = ()) -> dict:
    """Return pw.x ``SYSTEM`` entries for a spin state given as multiplicity 2S+1.

    ``multiplicity`` None or 1 gives ``{}`` (closed shell, ``nspin`` 1). Otherwise collinear spin
    polarisation with the total magnetisation fixed: ``nspin`` 2, ``tot_magnetization`` = multiplicity - 1
    (Bohr magnetons), which also works with fixed occupations (molecules), and a ``starting_magnetization``
    of 0.5 for every kind name in ``kinds``. With ``n_electrons`` (valence electrons in the cell) the parity
    is checked: N electrons and 2S unpaired ones must be both even or both odd.

    :raises ValueError: multiplicity not a positive integer, or inconsistent with ``n_electrons``.
    """
    if multiplicity is None:
        return {}
    if isinstance(multiplicity, bool) or not float(multiplicity).is_integer() or int(multiplicity) < 1:
        raise ValueError(f"multiplicity must be a positive integer 2S+1, got {multiplicity!r}")
    multiplicity = int(multiplicity)
    unpaired = multiplicity - 1
    if n_electrons is not None:
        n = round(float(n_electrons))
        if abs(n - float(n_electrons)) > 1e-6:
            raise ValueError(f"non-integer number of valence electrons {n_electrons!r}")
        if unpaired > n:
            raise ValueError(f"multiplicity {multiplicity} needs {unpaired} unpaired electrons but there are only {n}")
        if (n - unpaired) % 2:
            raise ValueError(
                f"multiplicity {multiplicity} ({unpaired} unpaired electrons) is impossible with {n} valence "
                f"electrons: {'an odd' if n % 2 else 'an even'} count needs an {'even' if n % 2 else 'odd'} multiplicity"
            )
    if multiplicity == 1:
        return {}
    return {
        "nspin": 2,
        "tot_magnetization": float(unpaired),
        "starting_magnetization": {kind: 0.5 for kind in kinds},
    }


#: Elements given a starting magnetisation when a periodic system is labelled spin-polarised without a
#: fixed multiplicity (3d ferromagnets and magnetic oxides' cations).
MAGNETIC_ELEMENTS = ("Cr", "Mn", "Fe", "Co", "Ni")


def free_spin_settings(kinds: t.Sequence[tuple[str, str]], starting_magnetization: float = 0.5) -> dict:
    """pw.x ``SYSTEM`` entries for a spin-polarised periodic system whose total magnetisation is left free.

    ``kinds``: (kind name, element symbol) pairs. ``nspin`` 2 with a ``starting_magnetization`` (fraction of
    the valence charge, -1..1) of ``starting_magnetization`` on kinds of :data:`MAGNETIC_ELEMENTS` and 0 on
    the others; when no kind is magnetic (O2 on Cu, say) every kind starts at ``starting_magnetization``
    and pw.x finds the moment, zero included. Needs smeared occupations, which the protocol sets for
    periodic systems.
    """
    magnetic = {name for name, symbol in kinds if symbol in MAGNETIC_ELEMENTS}
    return {
        "nspin": 2,
        "starting_magnetization": {
            name: (starting_magnetization if (name in magnetic or not magnetic) else 0.0) for name, _ in kinds
        },
    }


#: Width (fraction of the cell along the field) of the region where the dipole sawtooth potential decreases.
DIPOLE_EOPREG = 0.1


def dipole_settings(atoms, eopreg: float = DIPOLE_EOPREG) -> dict:
    """Return pw.x ``CONTROL``/``SYSTEM`` entries of a dipole correction for a slab (vacuum along c).

    The sawtooth potential (``tefield``/``dipfield``, ``edir`` 3, zero external field ``eamp``) decreases
    between ``emaxpos`` and ``emaxpos + eopreg`` (fractions of c); that region is centred in the vacuum gap.

    :returns: ``{"CONTROL": {...}, "SYSTEM": {...}}``.
    :raises ValueError: not a slab (no vacuum gap of ``MIN_VACUUM`` Å along c) or a gap too thin for ``eopreg``.
    """
    gaps = vacuum_thickness(atoms)
    if not (gaps[2] >= MIN_VACUUM and np.isfinite(gaps[2])):
        raise ValueError(
            f"a dipole correction needs a slab with at least {MIN_VACUUM} Å of vacuum along c; "
            f"the largest gap along c is {gaps[2]:.2f} Å"
        )
    cell_c = np.asarray(atoms.cell)
    height = abs(np.linalg.det(cell_c)) / np.linalg.norm(np.cross(cell_c[0], cell_c[1]))
    frac = np.sort(atoms.get_scaled_positions(wrap=True)[:, 2] % 1.0)
    cyclic = np.diff(np.concatenate([frac, [frac[0] + 1.0]]))
    start = frac[int(np.argmax(cyclic))]
    width = float(cyclic.max())
    if eopreg >= 0.8 * width:
        raise ValueError(f"vacuum gap {width * height:.2f} Å too thin for a sawtooth region of {eopreg * height:.2f} Å")
    centre = start + width / 2.0
    emaxpos = (centre - eopreg / 2.0) % 1.0
    return {
        "CONTROL": {"tefield": True, "dipfield": True},
        "SYSTEM": {"edir": 3, "emaxpos": round(float(emaxpos), 6), "eopreg": float(eopreg), "eamp": 0.0},
    }


@functools.cache
def _neb_protocol_file() -> dict:
    text = importlib.resources.files("aiida_reactmlip.protocols").joinpath("neb.yaml").read_text()
    return yaml.safe_load(text)


def load_neb_protocol(name: str | None = None) -> dict:
    """Return a copy of the neb.x protocol ``name``: ``{"name", "description", "path": {PATH namelist}}``."""
    import copy

    data = _neb_protocol_file()
    name = name or data["default_protocol"]
    if name not in data["protocols"]:
        raise ValueError(f"unknown protocol {name!r}; available: {', '.join(data['protocols'])}")
    return {"name": name, **copy.deepcopy(data["protocols"][name])}


def shortest_distance(atoms) -> tuple[float, int, int]:
    """Return (distance in Å, i, j) of the closest pair of atoms (minimum image where periodic)."""
    from ase.geometry import get_distances

    if len(atoms) < 2:
        return float("inf"), -1, -1
    _, distances = get_distances(atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    np.fill_diagonal(distances, np.inf)
    i, j = np.unravel_index(int(np.argmin(distances)), distances.shape)
    return float(distances[i, j]), int(min(i, j)), int(max(i, j))


#: Atoms closer than this (Å) count as overlapping: refused before any DFT job is submitted.
MIN_INTERATOMIC_DISTANCE = 0.5


def overlap_error(atoms, name: str, min_distance: float = MIN_INTERATOMIC_DISTANCE) -> str | None:
    """A message naming the closest pair if two atoms of ``atoms`` are closer than ``min_distance`` Å, else None."""
    distance, i, j = shortest_distance(atoms)
    if distance < min_distance:
        symbols = atoms.get_chemical_symbols()
        return (
            f"{name}: atoms {i} ({symbols[i]}) and {j} ({symbols[j]}) are {distance:.3f} Å apart, closer than "
            f"{min_distance} Å (overlapping atoms)"
        )
    return None
