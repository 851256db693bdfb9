"""Labelled configurations of varying size as concatenated arrays (pure: numpy + ASE, no AiiDA).

Units: positions and cells in Angstrom, energies in eV, forces in eV/Angstrom, stress in
eV/Angstrom^3 (ASE Voigt order xx, yy, zz, yz, xz, xy). A missing label is NaN.

:func:`read_extxyz` and :func:`write_extxyz` read and write them as extended XYZ, exactly
(the text itself is :mod:`aiida_reactmlip.extxyz`); :func:`write_frames_npz` and :func:`read_frames_npz` as a
numpy archive, also exactly and about a hundred times faster (the runner's input frames);
:func:`read_frames` reads either, by the file's suffix.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import chemical_symbols

from aiida_reactmlip.extxyz import (
    ExtxyzFormatError,
    file_name,
    python_scalar,
    read_extxyz_images,
    write_extxyz,
)

__all__ = (
    'ExtxyzFormatError',
    'Frames',
    'INFO_KEY_PATTERN',
    'RESERVED_INFO_KEYS',
    'read_extxyz',
    'read_frames',
    'read_frames_npz',
    'write_extxyz',
    'write_frames_npz',
)

#: Allowed ``info`` keys: an identifier (letters, digits, ``_``, ``-``), no dots or spaces.
INFO_KEY_PATTERN = re.compile(r'^[A-Za-z_][A-Za-z0-9_\-]*$')

#: ``info`` keys that extxyz or ASE give a special meaning (labels, cell, calculator results).
RESERVED_INFO_KEYS = frozenset(
    {
        'Lattice',
        'Properties',
        'pbc',
        'energy',
        'forces',
        'stress',
        'virial',
        'free_energy',
        'dipole',
        'magmom',
        'polarization',
        'dielectric_tensor',
        'energies',
        'stresses',
        'charges',
        'magmoms',
        'born_effective_charges',
    }
)

_LABEL_KEYS = ('energy', 'forces', 'stress')


def _as_array(name: str, value: Any, dtype: Any) -> np.ndarray:
    try:
        array = np.asarray(value)
    except Exception as exc:  # ragged input and the like
        raise ValueError(f'Frames.{name}: cannot convert to an array: {exc}') from exc
    if dtype is int:
        if array.size and not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
            if not np.issubdtype(array.dtype, np.floating) or not np.all(np.mod(array, 1) == 0):
                raise ValueError(f'Frames.{name}: expected integers, got dtype {array.dtype}')
        return array.astype(np.int64, copy=False)
    if dtype is bool:
        if array.size and array.dtype != bool:
            if not np.all(np.isin(array, (0, 1))):
                raise ValueError(f'Frames.{name}: expected booleans, got dtype {array.dtype}')
        return array.astype(bool, copy=False)
    try:
        return array.astype(np.float64, copy=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f'Frames.{name}: expected floats, got dtype {array.dtype}') from exc


def _voigt(stress: Any) -> np.ndarray:
    stress = np.asarray(stress, dtype=float)
    if stress.shape == (3, 3):
        return np.array([stress[0, 0], stress[1, 1], stress[2, 2], stress[1, 2], stress[0, 2], stress[0, 1]])
    if stress.shape == (6,):
        return stress
    raise ValueError(f'stress must have shape (6,) or (3, 3), got {stress.shape}')


@dataclass(eq=False)
class Frames:
    """A set of labelled configurations of varying size, stored as concatenated arrays.

    ``F`` frames with ``N_total = n_atoms.sum()`` atoms in all:

    - ``numbers`` (N_total,) atomic numbers; ``positions`` (N_total, 3) Angstrom
    - ``cells`` (F, 3, 3) Angstrom, rows are cell vectors; ``pbc`` (F, 3) bool; ``n_atoms`` (F,)
    - ``energies`` (F,) eV; ``forces`` (N_total, 3) eV/Angstrom; ``stress`` (F, 6) eV/Angstrom^3 in
      Voigt order xx, yy, zz, yz, xz, xy. Missing labels are NaN (``None`` fills all with NaN).
    - ``info`` list of F dicts of str/int/float/bool (e.g. ``source_uuid``, ``system``, ``role``).

    Arrays are coerced to int64/float64/bool and the whole is validated on construction.
    """

    numbers: np.ndarray
    positions: np.ndarray
    cells: np.ndarray
    pbc: np.ndarray
    n_atoms: np.ndarray
    energies: np.ndarray | None = None
    forces: np.ndarray | None = None
    stress: np.ndarray | None = None
    info: list[dict[str, Any]] | None = field(default=None)

    def __post_init__(self) -> None:
        self.numbers = _as_array('numbers', self.numbers, int)
        self.positions = _as_array('positions', self.positions, float)
        self.cells = _as_array('cells', self.cells, float)
        self.pbc = _as_array('pbc', self.pbc, bool)
        self.n_atoms = _as_array('n_atoms', self.n_atoms, int)
        n_frames = len(self.n_atoms) if self.n_atoms.ndim == 1 else 0
        n_total = len(self.numbers) if self.numbers.ndim == 1 else 0
        if self.energies is None:
            self.energies = np.full(n_frames, np.nan)
        if self.forces is None:
            self.forces = np.full((n_total, 3), np.nan)
        if self.stress is None:
            self.stress = np.full((n_frames, 6), np.nan)
        if self.info is None:
            self.info = [{} for _ in range(n_frames)]
        self.energies = _as_array('energies', self.energies, float)
        self.forces = _as_array('forces', self.forces, float)
        self.stress = _as_array('stress', self.stress, float)
        self.info = list(self.info)
        self.validate()

    # ------------------------------------------------------------------ structure
    def __len__(self) -> int:
        return len(self.n_atoms)

    def __repr__(self) -> str:
        return (
            f'Frames(n_frames={len(self)}, n_atoms_total={len(self.numbers)}, '
            f'elements={self.symbols_set()}, with_energy={int(self.has_energy.sum())}, '
            f'with_forces={int(self.has_forces.sum())}, with_stress={int(self.has_stress.sum())})'
        )

    @property
    def offsets(self) -> np.ndarray:
        """Start index of each frame in the per-atom arrays, shape (F,)."""
        if not len(self):
            return np.zeros(0, np.int64)
        return np.concatenate(([0], np.cumsum(self.n_atoms)[:-1])).astype(np.int64)

    def atoms_slice(self, i: int) -> slice:
        """Slice of frame ``i`` (negative allowed) in the per-atom arrays (numbers, positions, forces)."""
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f'frame index {i} out of range for {n} frames')
        i %= n
        start = int(self.offsets[i])
        return slice(start, start + int(self.n_atoms[i]))

    def _frame_any_finite(self, per_atom: np.ndarray) -> np.ndarray:
        finite = ~np.isnan(per_atom).all(axis=1)
        if not len(self):
            return np.zeros(0, bool)
        return np.add.reduceat(finite.astype(np.int64), self.offsets) > 0

    @property
    def has_energy(self) -> np.ndarray:
        """Boolean mask (F,): frame has an energy (not NaN)."""
        return ~np.isnan(self.energies)

    @property
    def has_forces(self) -> np.ndarray:
        """Boolean mask (F,): frame has forces (at least one non-NaN component)."""
        return self._frame_any_finite(self.forces)

    @property
    def has_stress(self) -> np.ndarray:
        """Boolean mask (F,): frame has a stress (at least one non-NaN component)."""
        return ~np.isnan(self.stress).all(axis=1) if len(self) else np.zeros(0, bool)

    def symbols_set(self) -> list[str]:
        """Sorted (alphabetically) unique element symbols present in any frame."""
        return sorted({chemical_symbols[z] for z in np.unique(self.numbers).tolist()})

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Check shapes, dtypes and values; raise ``ValueError`` naming the first inconsistency."""
        if self.n_atoms.ndim != 1:
            raise ValueError(f'Frames.n_atoms must be 1-D (F,), got shape {self.n_atoms.shape}')
        n_frames = len(self.n_atoms)
        if self.numbers.ndim != 1:
            raise ValueError(f'Frames.numbers must be 1-D (N_total,), got shape {self.numbers.shape}')
        n_total = len(self.numbers)
        if n_frames and self.n_atoms.min() < 1:
            bad = int(np.argmin(self.n_atoms))
            raise ValueError(
                f'Frames.n_atoms: frame {bad} has {int(self.n_atoms[bad])} atoms, need at least 1'
            )
        if int(self.n_atoms.sum()) != n_total:
            raise ValueError(
                f'Frames: n_atoms sums to {int(self.n_atoms.sum())} but numbers has {n_total} entries'
            )
        expected = {
            'positions': (self.positions, (n_total, 3)),
            'forces': (self.forces, (n_total, 3)),
            'cells': (self.cells, (n_frames, 3, 3)),
            'pbc': (self.pbc, (n_frames, 3)),
            'energies': (self.energies, (n_frames,)),
            'stress': (self.stress, (n_frames, 6)),
        }
        for name, (array, shape) in expected.items():
            if array.shape != shape:
                raise ValueError(f'Frames.{name} must have shape {shape}, got {array.shape}')
        if n_total and (self.numbers.min() < 1 or self.numbers.max() >= len(chemical_symbols)):
            bad = int(np.flatnonzero((self.numbers < 1) | (self.numbers >= len(chemical_symbols)))[0])
            raise ValueError(f'Frames.numbers: atom {bad} has invalid atomic number {int(self.numbers[bad])}')
        for name in ('positions', 'cells'):
            array = getattr(self, name)
            if not np.isfinite(array).all():
                raise ValueError(f'Frames.{name} contains NaN or inf')
        for i in range(n_frames):
            for axis in range(3):
                if self.pbc[i, axis] and not np.any(self.cells[i, axis]):
                    raise ValueError(
                        f'Frames: frame {i} is periodic along axis {axis} but cell vector {axis} is zero'
                    )
        if len(self.info) != n_frames:
            raise ValueError(f'Frames.info must have one dict per frame ({n_frames}), got {len(self.info)}')
        for i, info in enumerate(self.info):
            if not isinstance(info, dict):
                raise ValueError(f'Frames.info[{i}] must be a dict, got {type(info).__name__}')
            for key, value in info.items():
                if not isinstance(key, str) or not INFO_KEY_PATTERN.match(key):
                    raise ValueError(
                        f'Frames.info[{i}]: key {key!r} is not an identifier ({INFO_KEY_PATTERN.pattern})'
                    )
                if key in RESERVED_INFO_KEYS:
                    raise ValueError(f'Frames.info[{i}]: key {key!r} is reserved (labels/extxyz syntax)')
                if not isinstance(value, (str, int, float, bool)) or isinstance(value, np.generic):
                    raise ValueError(
                        f'Frames.info[{i}][{key!r}] must be a python str/int/float/bool, '
                        f'got {type(value).__name__}'
                    )
                if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
                    raise ValueError(f'Frames.info[{i}][{key!r}] = {value} does not fit in a 64-bit integer')
                if key.lower() == 'uid' and not isinstance(value, str):
                    raise ValueError(
                        f'Frames.info[{i}][{key!r}] must be a str (extxyz keeps {key!r} unparsed)'
                    )
                if isinstance(value, float) and not math.isfinite(value):
                    raise ValueError(f'Frames.info[{i}][{key!r}] is {value}; only finite floats are allowed')
                if isinstance(value, str) and ('\n' in value or '\r' in value):
                    raise ValueError(f'Frames.info[{i}][{key!r}] contains a line break')

    def check_no_overlapping_atoms(self, min_distance: float = 0.5) -> None:
        """Raise ``ValueError`` if two atoms of a frame (minimum image) are closer than ``min_distance`` (Å).

        The message names the frame index, the two atom indices (within the frame) and the distance.
        """
        from ase.neighborlist import neighbor_list

        for i in range(len(self)):
            sl = self.atoms_slice(i)
            if sl.stop - sl.start < 2 and not self.pbc[i].any():
                continue
            atoms = Atoms(
                numbers=self.numbers[sl], positions=self.positions[sl], cell=self.cells[i], pbc=self.pbc[i]
            )
            first, second, dist = neighbor_list('ijd', atoms, float(min_distance), self_interaction=False)
            if len(dist):
                k = int(np.argmin(dist))
                a, b = sorted((int(first[k]), int(second[k])))
                name = self.info[i].get('name')
                label = f' ({name})' if name is not None else ''
                sym = [chemical_symbols[z] for z in self.numbers[sl].tolist()]
                if a != b:
                    pair = f'atoms {a} ({sym[a]}) and {b} ({sym[b]})'
                else:
                    pair = f'atom {a} ({sym[a]}) and its periodic image'
                raise ValueError(
                    f'frame {i}{label}: {pair} are {float(dist[k]):.4f} Angstrom apart, '
                    f'closer than min_distance={min_distance} Angstrom'
                )

    # ------------------------------------------------------------------ selection
    def subset(self, indices: Sequence[int] | np.ndarray) -> Frames:
        """New Frames with the frames at ``indices`` (ints, negative allowed, or a boolean mask (F,))."""
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise ValueError(f'boolean mask must have length {len(self)}, got shape {idx.shape}')
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64).reshape(-1)
        n = len(self)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f'frame indices out of range for {n} frames: {idx.tolist()}')
        idx = idx % n if n else idx
        offsets = self.offsets
        atom_idx = (
            np.concatenate([np.arange(offsets[i], offsets[i] + self.n_atoms[i]) for i in idx])
            if idx.size
            else np.zeros(0, np.int64)
        )
        return Frames(
            numbers=self.numbers[atom_idx],
            positions=self.positions[atom_idx],
            cells=self.cells[idx],
            pbc=self.pbc[idx],
            n_atoms=self.n_atoms[idx],
            energies=self.energies[idx],
            forces=self.forces[atom_idx],
            stress=self.stress[idx],
            info=[copy.deepcopy(self.info[i]) for i in idx],
        )

    @classmethod
    def concatenate(cls, items: Iterable[Frames]) -> Frames:
        """Join several Frames, in order, into one."""
        items = list(items)
        if not items:
            return cls.from_atoms([])
        return cls(
            numbers=np.concatenate([f.numbers for f in items]),
            positions=np.concatenate([f.positions for f in items]),
            cells=np.concatenate([f.cells for f in items]),
            pbc=np.concatenate([f.pbc for f in items]),
            n_atoms=np.concatenate([f.n_atoms for f in items]),
            energies=np.concatenate([f.energies for f in items]),
            forces=np.concatenate([f.forces for f in items]),
            stress=np.concatenate([f.stress for f in items]),
            info=[copy.deepcopy(d) for f in items for d in f.info],
        )

    def identical(self, other: Frames) -> bool:
        """True if every array is bitwise-equal in value (NaN equal to NaN) and the info dicts are equal."""
        names = ('numbers', 'positions', 'cells', 'pbc', 'n_atoms', 'energies', 'forces', 'stress')
        for name in names:
            a, b = getattr(self, name), getattr(other, name)
            nan_ok = a.dtype.kind == 'f'
            if a.shape != b.shape or not np.array_equal(a, b, equal_nan=nan_ok):
                return False
        return self.info == other.info

    # ------------------------------------------------------------------ ASE conversion
    @classmethod
    def from_atoms(cls, images: Iterable[Atoms]) -> Frames:
        """Build from ASE Atoms.

        Labels come from ``atoms.calc.results`` (``energy``, ``forces``, ``stress``) when a calculator is
        attached, else from ``atoms.info['energy']``, ``atoms.arrays['forces']``, ``atoms.info['stress']``;
        absent labels are NaN. Other scalar ``atoms.info`` entries go into ``info`` (non-scalars and
        reserved keys such as ``free_energy`` are dropped).
        """
        images = list(images)
        numbers, positions, forces, cells, pbc, n_atoms = [], [], [], [], [], []
        energies, stress, infos = [], [], []
        for k, atoms in enumerate(images):
            if not isinstance(atoms, Atoms):
                raise TypeError(f'image {k} is a {type(atoms).__name__}, not ase.Atoms')
            n = len(atoms)
            results = dict(atoms.calc.results) if atoms.calc is not None else {}
            energy = results.get('energy', atoms.info.get('energy'))
            frc = results.get('forces', atoms.arrays.get('forces'))
            sts = results.get('stress', atoms.info.get('stress'))
            numbers.append(atoms.numbers)
            positions.append(atoms.positions)
            cells.append(np.asarray(atoms.cell[:], dtype=float))
            pbc.append(np.asarray(atoms.pbc, dtype=bool))
            n_atoms.append(n)
            energies.append(np.nan if energy is None else float(np.asarray(energy, dtype=float).reshape(())))
            if frc is None:
                forces.append(np.full((n, 3), np.nan))
            else:
                frc = np.asarray(frc, dtype=float)
                if frc.shape != (n, 3):
                    raise ValueError(f'image {k}: forces have shape {frc.shape}, expected ({n}, 3)')
                forces.append(frc)
            try:
                stress.append(np.full(6, np.nan) if sts is None else _voigt(sts))
            except ValueError as exc:
                raise ValueError(f'image {k}: {exc}') from exc
            info = {}
            for key, value in atoms.info.items():
                if key in RESERVED_INFO_KEYS:
                    continue
                value = python_scalar(value)
                if value is not None:
                    info[key] = value
            infos.append(info)
        return cls(
            numbers=np.concatenate(numbers) if numbers else np.zeros(0, np.int64),
            positions=np.concatenate(positions) if positions else np.zeros((0, 3)),
            cells=np.array(cells).reshape(-1, 3, 3),
            pbc=np.array(pbc, dtype=bool).reshape(-1, 3),
            n_atoms=np.array(n_atoms, dtype=np.int64),
            energies=np.array(energies, dtype=float),
            forces=np.concatenate(forces) if forces else np.zeros((0, 3)),
            stress=np.array(stress, dtype=float).reshape(-1, 6),
            info=infos,
        )

    def to_atoms(self) -> list[Atoms]:
        """ASE Atoms per frame, with a SinglePointCalculator holding the labels that exist; info copied."""
        images = []
        has_e, has_f, has_s = self.has_energy, self.has_forces, self.has_stress
        for i in range(len(self)):
            sl = self.atoms_slice(i)
            atoms = Atoms(
                numbers=self.numbers[sl].copy(),
                positions=self.positions[sl].copy(),
                cell=self.cells[i].copy(),
                pbc=self.pbc[i].copy(),
            )
            atoms.info.update(copy.deepcopy(self.info[i]))
            results = {}
            if has_e[i]:
                results['energy'] = float(self.energies[i])
            if has_f[i]:
                results['forces'] = self.forces[sl].copy()
            if has_s[i]:
                results['stress'] = self.stress[i].copy()
            if results:
                atoms.calc = SinglePointCalculator(atoms, **results)
            images.append(atoms)
        return images


def read_extxyz(path_or_fileobj: str | os.PathLike | TextIO) -> Frames:
    """Read an extended XYZ file into Frames.

    The layout is checked first; a malformed file raises :class:`ExtxyzFormatError` naming the file
    and the 1-based line number. Parsing is then done by ``ase.io.read``; labels come from its
    calculator results (frames without energy keep NaN), scalar ``info`` entries are kept.
    """
    images = read_extxyz_images(path_or_fileobj)
    try:
        return Frames.from_atoms(images)
    except ValueError as exc:
        raise ExtxyzFormatError(f'{file_name(path_or_fileobj)}: inconsistent content: {exc}') from exc


#: The arrays of a frames archive (:func:`write_frames_npz`), beside ``info`` (one JSON string) and ``format``.
NPZ_ARRAYS = ('numbers', 'positions', 'cells', 'pbc', 'n_atoms', 'energies', 'forces', 'stress')
#: The ``format`` entry of a frames archive.
NPZ_FORMAT = 'reactmlip-frames-1'


def write_frames_npz(frames: Frames, path_or_fileobj: str | os.PathLike | Any) -> None:
    """Write ``frames`` as an uncompressed numpy archive: its eight arrays (float64, bit for bit), ``info`` as
    one JSON string and ``format`` = :data:`NPZ_FORMAT`. A path is written as given (no ``.npz`` added)."""
    arrays = {name: getattr(frames, name) for name in NPZ_ARRAYS}
    info = np.array(json.dumps(frames.info, allow_nan=True))
    if isinstance(path_or_fileobj, (str, os.PathLike)):
        with open(path_or_fileobj, 'wb') as handle:
            np.savez(handle, **arrays, info=info, format=np.array(NPZ_FORMAT))
    else:
        np.savez(path_or_fileobj, **arrays, info=info, format=np.array(NPZ_FORMAT))


def read_frames_npz(path_or_fileobj: str | os.PathLike | Any) -> Frames:
    """Read a frames archive written by :func:`write_frames_npz`; ValueError naming the file when it is not one
    (not a numpy archive, an entry missing, another format) or its content is inconsistent."""
    name = str(path_or_fileobj) if isinstance(path_or_fileobj, (str, os.PathLike)) else 'frames archive'
    try:
        with np.load(path_or_fileobj, allow_pickle=False) as data:
            missing = [key for key in (*NPZ_ARRAYS, 'info', 'format') if key not in data.files]
            if missing:
                raise ValueError(f'entries {", ".join(missing)} missing')
            if str(data['format']) != NPZ_FORMAT:
                raise ValueError(f'format {str(data["format"])!r}, expected {NPZ_FORMAT!r}')
            arrays = {key: data[key] for key in NPZ_ARRAYS}
            info = json.loads(str(data['info']))
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f'{name}: not a frames archive: {exc}') from exc
    try:
        return Frames(**arrays, info=info)
    except ValueError as exc:
        raise ValueError(f'{name}: inconsistent content: {exc}') from exc


def read_frames(path: str | os.PathLike) -> Frames:
    """Read frames from ``path``: a frames archive when it ends in ``.npz``, extended XYZ otherwise."""
    if str(path).endswith('.npz'):
        return read_frames_npz(path)
    return read_extxyz(path)
