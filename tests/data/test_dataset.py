"""Tests of LabelledDatasetData (AiiDA, temporary SQLite profile)."""

import numpy as np
import pytest
from aiida import orm
from aiida.common.exceptions import ModificationNotAllowed, ValidationError
from aiida.plugins import DataFactory
from ase.build import bulk, molecule
from ase.calculators.singlepoint import SinglePointCalculator

from aiida_reactmlip.data import LabelledDatasetData
from aiida_reactmlip.frames import ExtxyzFormatError, Frames, read_extxyz

ARRAYS = ('numbers', 'positions', 'cells', 'pbc', 'n_atoms', 'energies', 'forces', 'stress')


def make_frames():
    rng = np.random.default_rng(1)
    slab = bulk('Cu', 'fcc', a=3.61, cubic=True) * (1, 1, 2)
    slab.rattle(0.05, rng=rng)
    slab.calc = SinglePointCalculator(
        slab,
        energy=-29.123456789012345,
        forces=rng.normal(size=(len(slab), 3)),
        stress=rng.normal(size=6) * 1e-3,
    )
    slab.info.update(source_uuid='0b8f1d8e-5f6a-4e1b-9c3d-2a7e6f5d4c3b', system='Cu', role='initial', step=2)
    water = molecule('H2O')
    water.calc = SinglePointCalculator(water, energy=-14.2, forces=rng.normal(size=(3, 3)))
    water.info.update(name='water', weight=0.5, selected=True)
    unlabelled = molecule('CO')
    return Frames.from_atoms([slab, water, unlabelled])


def test_entry_point():
    assert DataFactory('reactmlip.dataset') is LabelledDatasetData


def test_store_reload_exact(aiida_profile):
    frames = make_frames()
    node = LabelledDatasetData(frames=frames).store()
    loaded = orm.load_node(node.pk)
    assert isinstance(loaded, LabelledDatasetData)
    for name in ARRAYS:
        stored = loaded.get_array(name)
        assert stored.dtype == getattr(frames, name).dtype, name
        assert np.array_equal(stored, getattr(frames, name), equal_nan=stored.dtype.kind == 'f'), name
    assert loaded.frames.identical(frames)
    assert loaded.frame_info == frames.info
    assert type(loaded.frame_info[0]['step']) is int and loaded.frame_info[1]['selected'] is True
    attrs = loaded.base.attributes
    assert attrs.get('n_frames') == 3 and len(loaded) == 3
    assert attrs.get('n_atoms_total') == 8 + 3 + 2
    assert attrs.get('elements') == ['C', 'Cu', 'H', 'O']
    assert attrs.get('units') == {
        'energy': 'eV',
        'forces': 'eV/Angstrom',
        'stress': 'eV/Angstrom^3',
        'positions': 'Angstrom',
    }
    assert attrs.get('has_stress') == 1 and attrs.get('has_energy') == 2 and attrs.get('has_forces') == 2
    assert loaded.source_uuids == ['0b8f1d8e-5f6a-4e1b-9c3d-2a7e6f5d4c3b', None, None]
    images = loaded.to_atoms()
    assert images[0].get_potential_energy() == -29.123456789012345
    assert images[2].calc is None
    with pytest.raises(ModificationNotAllowed):  # immutable once stored
        loaded.set_array('energies', np.zeros(3))


def test_from_atoms_and_extxyz(aiida_profile, tmp_path):
    frames = make_frames()
    node = LabelledDatasetData.from_atoms(frames.to_atoms())
    assert node.frames.identical(frames)
    path = tmp_path / 'dataset.extxyz'
    node.store().export_extxyz(path)
    assert read_extxyz(path).identical(frames)
    again = LabelledDatasetData.from_extxyz(path, label='from file').store()
    assert again.label == 'from file'
    assert orm.load_node(again.pk).frames.identical(frames)


def test_invalid_input_sets_nothing(aiida_profile, tmp_path):
    before = orm.QueryBuilder().append(LabelledDatasetData).count()
    frames = make_frames()
    frames.info[0]['energy'] = 1.0  # reserved key, invalid after construction
    with pytest.raises(ValueError, match='reserved'):
        LabelledDatasetData(frames=frames)
    with pytest.raises(TypeError):
        LabelledDatasetData()
    with pytest.raises(TypeError):
        LabelledDatasetData(frames=[1, 2])
    bad = tmp_path / 'bad.xyz'
    bad.write_text('1\nProperties=species:S:1:pos:R:3\nH 0 0\n')
    with pytest.raises(ExtxyzFormatError, match='line 3'):
        LabelledDatasetData.from_extxyz(bad)
    assert orm.QueryBuilder().append(LabelledDatasetData).count() == before


def test_store_time_validation(aiida_profile):
    node = LabelledDatasetData(frames=make_frames())
    node.set_array('energies', np.zeros(2))  # tampering before store
    with pytest.raises(ValidationError, match='energies must have shape'):
        node.store()
    assert not node.is_stored
