"""One labelled frame -> OPTIMADE ``structures`` attributes (pure: numpy only, no AiiDA, no server).

This is the single mapping used by the live OPTIMADE server (:mod:`aiida_reactmlip.optimade.app`)
and by the static OPTIMADE JSONL export, so both serve identical documents.

Conventions
-----------
- Entry ``id`` (and ``immutable_id``): ``f"{dataset_uuid}:{frame_index}"`` (see :func:`structure_id`);
  the frame index is 0-based in the dataset's order, and datasets are immutable nodes, so an id
  always names the same configuration.
- Attribute names are the OPTIMADE (API-facing) names: provider fields carry the prefix
  ``_reactmlip_`` (:data:`PREFIX`). A server backed by a MongoDB-like store that declares
  :data:`PROVIDER_FIELDS` stores them without the prefix; use :func:`strip_provider_prefix`.
- Units: positions and lattice vectors in Angstrom, ``_reactmlip_energy`` in eV,
  ``_reactmlip_forces`` in eV/Angstrom (one [fx, fy, fz] per site, in site order),
  ``_reactmlip_stress`` in eV/Angstrom^3 as ASE Voigt [xx, yy, zz, yz, xz, xy] (sign convention of
  ASE: the derivative of the energy by the strain per volume). A missing label is ``None``
  (never NaN: JSON has no NaN).
- A lattice vector of an aperiodic direction whose stored cell row is all zeros (a molecule without
  a box) is served as ``[null, null, null]`` as the OPTIMADE specification allows; an importer maps
  it back to a zero row.
- ``dft`` settings (code, version, functional, pseudopotentials, cutoffs in Ry, k-points) come from
  the pw.x calculation named by the frame's ``source_uuid`` (:mod:`aiida_reactmlip.optimade.provenance`);
  they are absent (``None``) for imported datasets.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import reduce
from typing import Any

import numpy as np

__all__ = (
    'PREFIX',
    'PROVIDER_FIELDS',
    'DFT_KEYS',
    'frame_to_structure_attributes',
    'structure_id',
    'split_structure_id',
    'strip_provider_prefix',
)

#: OPTIMADE provider prefix of this plugin: provider fields are named ``_reactmlip_<name>``.
PREFIX = 'reactmlip'

#: Keys of the ``dft`` mapping accepted by :func:`frame_to_structure_attributes` (all optional).
DFT_KEYS = (
    'dft_code',
    'dft_code_version',
    'functional',
    'pseudopotentials',
    'pseudo_family',
    'ecutwfc',
    'ecutrho',
    'kpoints',
    'kpoints_offset',
    'calculation_uuid',
)

#: Provider fields of ``structures`` (names without the prefix) as ``ServerConfig.provider_fields`` wants them.
PROVIDER_FIELDS: list[dict[str, Any]] = [
    {'name': 'energy', 'type': 'float', 'unit': 'eV', 'description': 'DFT total energy of the configuration.'},
    {'name': 'forces', 'type': 'list', 'unit': 'eV/Angstrom', 'sortable': False,
     'description': 'DFT forces, one [fx, fy, fz] per site in site order.'},
    {'name': 'stress', 'type': 'list', 'unit': 'eV/Angstrom^3', 'sortable': False,
     'description': 'DFT stress, ASE Voigt order [xx, yy, zz, yz, xz, xy] (ASE sign convention).'},
    {'name': 'dataset_uuid', 'type': 'string', 'description': 'UUID of the LabelledDatasetData node holding this frame.'},
    {'name': 'frame_index', 'type': 'integer', 'description': '0-based index of the frame in its dataset.'},
    {'name': 'source_uuid', 'type': 'string',
     'description': 'UUID of the node that produced the label (the pw.x CalcJob), if any.'},
    {'name': 'system', 'type': 'string', 'description': 'Reactive system the frame belongs to, if recorded.'},
    {'name': 'role', 'type': 'string', 'description': 'Role of the frame (initial, final, scan, image, md, ...).'},
    {'name': 'name', 'type': 'string', 'description': 'Name of the frame inside its dataset, if recorded.'},
    {'name': 'dft_code', 'type': 'string', 'description': 'DFT code that produced the label (e.g. "Quantum ESPRESSO pw.x").'},
    {'name': 'dft_code_version', 'type': 'string', 'description': 'Version of the DFT code.'},
    {'name': 'functional', 'type': 'string', 'description': 'Exchange-correlation functional (e.g. "PBE").'},
    {'name': 'pseudopotentials', 'type': 'dictionary', 'sortable': False,
     'description': 'Pseudopotential file name per element symbol.'},
    {'name': 'pseudo_family', 'type': 'string', 'description': 'Label of the pseudopotential family, if one was used.'},
    {'name': 'ecutwfc', 'type': 'float', 'unit': 'Ry', 'description': 'Plane-wave cutoff of the wavefunctions.'},
    {'name': 'ecutrho', 'type': 'float', 'unit': 'Ry', 'description': 'Plane-wave cutoff of the charge density.'},
    {'name': 'kpoints', 'type': 'list', 'sortable': False, 'description': 'Monkhorst-Pack k-point mesh [n1, n2, n3].'},
    {'name': 'kpoints_offset', 'type': 'list', 'sortable': False, 'description': 'Offset of the k-point mesh (fractions).'},
]


def structure_id(dataset_uuid: str, index: int) -> str:
    """The OPTIMADE ``id`` of frame ``index`` (0-based) of dataset ``dataset_uuid``."""
    return f'{dataset_uuid}:{int(index)}'


def split_structure_id(entry_id: str) -> tuple[str, int]:
    """Inverse of :func:`structure_id`; raises ``ValueError`` naming the id when it is malformed."""
    uuid, sep, index = str(entry_id).rpartition(':')
    if not sep or not uuid or not index.isdigit():
        raise ValueError(f'not a reactmlip structure id (expected "<dataset uuid>:<frame index>"): {entry_id!r}')
    return uuid, int(index)


def strip_provider_prefix(attributes: Mapping[str, Any], prefix: str = PREFIX) -> dict[str, Any]:
    """The same attributes with ``_<prefix>_`` removed from provider field names (MongoDB-style storage)."""
    head = f'_{prefix}_'
    return {(k[len(head):] if k.startswith(head) else k): v for k, v in attributes.items()}


def _finite_or_none(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _formula(symbols: list[str], counts: list[int]) -> str:
    return ''.join(f'{s}{n if n != 1 else ""}' for s, n in zip(symbols, counts))


def _anonymous_labels(n: int) -> list[str]:
    from optimade.models.utils import ANONYMOUS_ELEMENTS

    return list(ANONYMOUS_ELEMENTS[:n])


def _lattice_vectors(cell: np.ndarray, pbc: np.ndarray) -> list[list[float | None]]:
    vectors: list[list[float | None]] = []
    for row, periodic in zip(cell.tolist(), pbc.tolist()):
        if not periodic and all(x == 0.0 for x in row):
            vectors.append([None, None, None])
        else:
            vectors.append([float(x) for x in row])
    return vectors


def frame_to_structure_attributes(
    frames: Any,
    index: int,
    dataset_info: Mapping[str, Any],
    dft: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """OPTIMADE ``structures`` attributes of frame ``index`` of ``frames`` (a :class:`~aiida_reactmlip.frames.Frames`).

    ``dataset_info``: ``uuid`` (str, required: the dataset's UUID) and ``last_modified`` (datetime or ISO
    string, optional: put as is into ``last_modified``). ``dft``: optional mapping with the keys of
    :data:`DFT_KEYS` (``ecutwfc``/``ecutrho`` in Ry, ``kpoints`` a 3-list, ``pseudopotentials`` element ->
    file name); missing keys give ``None``.

    Returns a plain dict (JSON-serialisable apart from a datetime ``last_modified``) that validates as
    ``optimade.models.StructureResourceAttributes``: the OPTIMADE fields (elements, nelements,
    elements_ratios, chemical formulas, dimension_types, lattice_vectors, cartesian_site_positions,
    nsites, species, species_at_sites, structure_features, immutable_id, last_modified) and the
    ``_reactmlip_`` provider fields of :data:`PROVIDER_FIELDS` (energy eV, forces eV/Angstrom, stress
    eV/Angstrom^3, ...). Raises ``IndexError`` for an index outside the frames, ``KeyError`` without ``uuid``.
    """
    from ase.data import chemical_symbols

    n_frames = len(frames.n_atoms)
    if not 0 <= int(index) < n_frames:
        raise IndexError(f'frame index {index} out of range for {n_frames} frames')
    index = int(index)
    uuid = str(dataset_info['uuid'])
    start = int(np.sum(frames.n_atoms[:index]))
    stop = start + int(frames.n_atoms[index])
    numbers = frames.numbers[start:stop]
    symbols = [chemical_symbols[int(z)] for z in numbers.tolist()]
    nsites = len(symbols)

    elements = sorted(set(symbols))
    counts = [symbols.count(e) for e in elements]
    divisor = reduce(math.gcd, counts) if counts else 1
    reduced = [c // divisor for c in counts]
    hill_order = elements
    if 'C' in elements:
        hill_order = ['C'] + (['H'] if 'H' in elements else []) + [e for e in elements if e not in ('C', 'H')]
    anonymous_counts = sorted(reduced, reverse=True)

    pbc = np.asarray(frames.pbc[index], dtype=bool)
    dimension_types = [int(p) for p in pbc.tolist()]
    energy = _finite_or_none(frames.energies[index])
    forces_block = np.asarray(frames.forces[start:stop], dtype=float)
    forces = forces_block.tolist() if forces_block.size and np.all(np.isfinite(forces_block)) else None
    stress_row = np.asarray(frames.stress[index], dtype=float)
    stress = stress_row.tolist() if np.all(np.isfinite(stress_row)) else None
    info = dict(frames.info[index]) if frames.info is not None else {}
    dft = dict(dft or {})

    def _str_or_none(value: Any) -> str | None:
        return None if value is None else str(value)

    attributes: dict[str, Any] = {
        'immutable_id': structure_id(uuid, index),
        'last_modified': dataset_info.get('last_modified'),
        'elements': elements,
        'nelements': len(elements),
        'elements_ratios': [c / nsites for c in counts] if nsites else [],
        'chemical_formula_descriptive': _formula(hill_order, [counts[elements.index(e)] for e in hill_order]),
        'chemical_formula_reduced': _formula(elements, reduced),
        'chemical_formula_hill': _formula(hill_order, [counts[elements.index(e)] for e in hill_order]),
        'chemical_formula_anonymous': _formula(_anonymous_labels(len(elements)), anonymous_counts),
        'dimension_types': dimension_types,
        'nperiodic_dimensions': int(sum(dimension_types)),
        'lattice_vectors': _lattice_vectors(np.asarray(frames.cells[index], dtype=float), pbc),
        'cartesian_site_positions': np.asarray(frames.positions[start:stop], dtype=float).tolist(),
        'nsites': nsites,
        'species': [{'name': e, 'chemical_symbols': [e], 'concentration': [1.0]} for e in elements],
        'species_at_sites': symbols,
        'structure_features': [],
        f'_{PREFIX}_energy': energy,
        f'_{PREFIX}_forces': forces,
        f'_{PREFIX}_stress': stress,
        f'_{PREFIX}_dataset_uuid': uuid,
        f'_{PREFIX}_frame_index': index,
        f'_{PREFIX}_source_uuid': _str_or_none(info.get('source_uuid')),
        f'_{PREFIX}_system': _str_or_none(info.get('system')),
        f'_{PREFIX}_role': _str_or_none(info.get('role')),
        f'_{PREFIX}_name': _str_or_none(info.get('name')),
        f'_{PREFIX}_dft_code': _str_or_none(dft.get('dft_code')),
        f'_{PREFIX}_dft_code_version': _str_or_none(dft.get('dft_code_version')),
        f'_{PREFIX}_functional': _str_or_none(dft.get('functional')),
        f'_{PREFIX}_pseudopotentials': dict(dft['pseudopotentials']) if dft.get('pseudopotentials') else None,
        f'_{PREFIX}_pseudo_family': _str_or_none(dft.get('pseudo_family')),
        f'_{PREFIX}_ecutwfc': None if dft.get('ecutwfc') is None else float(dft['ecutwfc']),
        f'_{PREFIX}_ecutrho': None if dft.get('ecutrho') is None else float(dft['ecutrho']),
        f'_{PREFIX}_kpoints': None if dft.get('kpoints') is None else [int(k) for k in dft['kpoints']],
        f'_{PREFIX}_kpoints_offset': None if dft.get('kpoints_offset') is None else [float(k) for k in dft['kpoints_offset']],
    }
    return attributes
