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


@functools.lru_cache(maxsize=None)
def _protocol_file() -> dict:
    text = importlib.resources.files("aiida_reactmlip.workflows.protocols").joinpath("label.yaml").read_text()
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
