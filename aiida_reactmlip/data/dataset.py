"""``LabelledDatasetData``: an immutable snapshot of labelled configurations (a :class:`Frames`)."""

from __future__ import annotations

import copy
import os
from typing import Any, TextIO

import numpy as np
from aiida.common.exceptions import ValidationError
from aiida.orm import ArrayData

from aiida_reactmlip.frames import Frames, read_extxyz, write_extxyz

__all__ = ('LabelledDatasetData',)

#: Units of the stored quantities.
UNITS = {'energy': 'eV', 'forces': 'eV/Angstrom', 'stress': 'eV/Angstrom^3', 'positions': 'Angstrom'}

#: Arrays stored in the repository, as in :class:`Frames`.
ARRAY_NAMES = ('numbers', 'positions', 'cells', 'pbc', 'n_atoms', 'energies', 'forces', 'stress')


def _derived_attributes(frames: Frames) -> dict[str, Any]:
    return {
        'n_frames': len(frames),
        'n_atoms_total': int(len(frames.numbers)),
        'elements': frames.symbols_set(),
        'units': dict(UNITS),
        'has_energy': int(frames.has_energy.sum()),
        'has_forces': int(frames.has_forces.sum()),
        'has_stress': int(frames.has_stress.sum()),
    }


def _check_labels_finite(frames: Frames) -> None:
    """ValueError naming the first frame whose energy, forces or stress hold an infinite value (a missing label
    is NaN: a number that overflowed is not a label)."""
    per_atom_frame = np.repeat(np.arange(len(frames)), frames.n_atoms)
    for name, word, unit in (('energies', 'energy', 'eV'), ('forces', 'force', 'eV/Angstrom'),
                             ('stress', 'stress', 'eV/Angstrom^3')):
        array = np.asarray(getattr(frames, name), dtype=float)
        rows = np.isinf(array).reshape(len(array), -1).any(axis=1) if array.size else np.zeros(0, bool)
        if rows.any():
            index = int(np.flatnonzero(rows)[0])
            frame = int(per_atom_frame[index]) if name == 'forces' else index
            raise ValueError(f'frame {frame} has an infinite {word} ({unit}): '
                             'not a DFT label; leave a missing label as NaN or drop the frame')


class LabelledDatasetData(ArrayData):
    """Labelled configurations: positions (Angstrom), cells (Angstrom), numbers, pbc, energies (eV),
    forces (eV/Angstrom), stress (eV/Angstrom^3, Voigt xx yy zz yz xz xy); NaN where a label is missing.

    Arrays (see :class:`~aiida_reactmlip.frames.Frames`): ``numbers, positions, cells, pbc, n_atoms,
    energies, forces, stress``. Attributes: ``frame_info`` (list of per-frame dicts, e.g.
    ``source_uuid``, ``system``, ``role``), ``n_frames``, ``n_atoms_total``, ``elements`` (sorted
    symbols), ``units``, and the counts of frames with a label ``has_energy``, ``has_forces``,
    ``has_stress``.
    """

    def __init__(self, frames: Frames | None = None, **kwargs: Any) -> None:
        """Store a snapshot of ``frames``; it is fully validated before anything is set."""
        if 'arrays' in kwargs:
            raise TypeError('LabelledDatasetData takes `frames`, not `arrays`')
        if frames is None:
            raise TypeError('LabelledDatasetData requires `frames` (a Frames instance)')
        if not isinstance(frames, Frames):
            raise TypeError(f'`frames` must be a Frames instance, got {type(frames).__name__}')
        frames.validate()
        _check_labels_finite(frames)
        attributes = _derived_attributes(frames)
        frame_info = copy.deepcopy(frames.info)
        arrays = {name: np.array(getattr(frames, name), copy=True) for name in ARRAY_NAMES}
        super().__init__(**kwargs)
        for name, array in arrays.items():
            self.set_array(name, array)
        self.base.attributes.set('frame_info', frame_info)
        for key, value in attributes.items():
            self.base.attributes.set(key, value)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_atoms(cls, images: list, **kwargs: Any) -> LabelledDatasetData:
        """From ASE Atoms (labels from their calculators or info/arrays, see ``Frames.from_atoms``)."""
        return cls(frames=Frames.from_atoms(images), **kwargs)

    @classmethod
    def from_extxyz(cls, path: str | os.PathLike | TextIO, **kwargs: Any) -> LabelledDatasetData:
        """From an extended XYZ file (raises ``ExtxyzFormatError`` with the line of a malformed file)."""
        return cls(frames=read_extxyz(path), **kwargs)

    # ------------------------------------------------------------------ accessors
    @property
    def frames(self) -> Frames:
        """A new :class:`Frames` rebuilt from the stored arrays and ``frame_info``."""
        return Frames(
            **{name: self.get_array(name) for name in ARRAY_NAMES},
            info=copy.deepcopy(self.base.attributes.get('frame_info')),
        )

    @property
    def n_frames(self) -> int:
        return self.base.attributes.get('n_frames')

    @property
    def n_atoms_total(self) -> int:
        return self.base.attributes.get('n_atoms_total')

    @property
    def elements(self) -> list[str]:
        """Sorted element symbols present in the dataset."""
        return list(self.base.attributes.get('elements'))

    @property
    def units(self) -> dict[str, str]:
        return dict(self.base.attributes.get('units'))

    @property
    def frame_info(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self.base.attributes.get('frame_info'))

    @property
    def source_uuids(self) -> list[str | None]:
        """Per frame, the ``source_uuid`` info entry (None where missing)."""
        return [info.get('source_uuid') for info in self.base.attributes.get('frame_info')]

    def __len__(self) -> int:
        return self.n_frames

    def to_atoms(self) -> list:
        """ASE Atoms with SinglePointCalculator labels, one per frame."""
        return self.frames.to_atoms()

    def export_extxyz(self, path: str | os.PathLike | TextIO) -> None:
        """Write the dataset as extended XYZ with exact floats (see ``write_extxyz``)."""
        write_extxyz(self.frames, path)

    # ------------------------------------------------------------------ store-time check
    def _validate(self) -> bool:
        super()._validate()
        try:
            frames = self.frames
        except (AttributeError, KeyError, ValueError, TypeError) as exc:
            raise ValidationError(f'LabelledDatasetData is inconsistent: {exc}') from exc
        for key, value in _derived_attributes(frames).items():
            if self.base.attributes.get(key, None) != value:
                raise ValidationError(
                    f'LabelledDatasetData attribute {key!r} does not match the stored arrays'
                )
        return True
