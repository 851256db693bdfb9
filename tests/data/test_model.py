"""Tests of MlipModelData (AiiDA, temporary SQLite profile)."""

import hashlib
import io
import uuid

import pytest
from aiida import orm
from aiida.plugins import DataFactory
from ase.build import molecule

from aiida_reactmlip.data import LabelledDatasetData, MlipModelData
from aiida_reactmlip.frames import Frames

CONTENT = b'\x00fake model weights\x01' * 100


@pytest.fixture
def model_file(tmp_path):
    """A model file whose content is unique to the test (the session's profile is shared)."""
    path = tmp_path / 'chgnet-0.3.0.pt'
    path.write_bytes(CONTENT + uuid.uuid4().bytes)
    return path


def make(model_file, **kwargs):
    args = dict(
        family='chgnet', model_name='chgnet-0.3.0', version='0.3.0', elements=['O', 'Cu', 'H'], cutoff=5.0,
        source='chgnet wheel',
    )
    args.update(kwargs)
    return MlipModelData(file=model_file, **args)


def test_entry_point():
    assert DataFactory('reactmlip.model') is MlipModelData


def test_attributes_and_sha256(aiida_profile, model_file):
    node = make(model_file, dtype='float32').store()
    loaded = orm.load_node(node.pk)
    content = model_file.read_bytes()
    assert loaded.sha256 == hashlib.sha256(content).hexdigest()
    assert loaded.get_content(mode='rb') == content
    assert loaded.filename == 'chgnet-0.3.0.pt'
    assert loaded.family == 'chgnet' and loaded.model_name == 'chgnet-0.3.0' and loaded.version == '0.3.0'
    assert loaded.elements == ['Cu', 'H', 'O']
    assert loaded.cutoff == 5.0 and loaded.dtype == 'float32' and loaded.source == 'chgnet wheel'
    assert loaded.base_model_uuid is None and loaded.training_dataset_uuid is None


def test_from_stream_and_relative_path(aiida_profile, model_file, monkeypatch):
    content = model_file.read_bytes()
    node = make(io.BytesIO(content), filename='model.pt')
    assert node.sha256 == hashlib.sha256(content).hexdigest() and node.filename == 'model.pt'
    monkeypatch.chdir(model_file.parent)
    assert make(model_file.name).sha256 == node.sha256


def test_get_or_create_finds_existing(aiida_profile, model_file, tmp_path):
    before = orm.QueryBuilder().append(MlipModelData).count()
    first, created = MlipModelData.get_or_create(
        model_file, family='chgnet', model_name='chgnet-0.3.0', elements=['Cu', 'O']
    )
    assert created and first.is_stored
    copy = tmp_path / 'copy_of_model.pt'
    copy.write_bytes(model_file.read_bytes())
    second, created = MlipModelData.get_or_create(copy, family='CHGNet', model_name='other', elements=['Cu'])
    assert not created and second.pk == first.pk
    stream, created = MlipModelData.get_or_create(
        io.BytesIO(model_file.read_bytes()), family='chgnet', model_name='x', elements=['Cu']
    )
    assert not created and stream.pk == first.pk
    other_family, created = MlipModelData.get_or_create(
        model_file, family='mace', model_name='mace-x', elements=['Cu']
    )
    assert created and other_family.pk != first.pk
    assert orm.QueryBuilder().append(MlipModelData).count() == before + 2
    # match_name: the same file under another name is another node (the registry's models use it)
    named, created = MlipModelData.get_or_create(copy, family='chgnet', model_name='other', elements=['Cu'],
                                                 match_name=True)
    assert created and named.pk not in (first.pk, other_family.pk) and named.model_name == 'other'
    again, created = MlipModelData.get_or_create(model_file, family='chgnet', model_name='other', match_name=True)
    assert not created and again.pk == named.pk
    unstored, created = MlipModelData.get_or_create(
        io.BytesIO(uuid.uuid4().bytes), family='chgnet', model_name='y', elements=['Cu'], store=False
    )
    assert created and not unstored.is_stored


def test_covers_and_check_elements(aiida_profile, model_file):
    node = make(model_file)
    assert node.covers(['Cu', 'O']) == []
    assert node.covers(['Pt', 'Cu', 'Pt', 'N']) == ['Pt', 'N']
    assert node.covers([29, 78]) == ['Pt']
    assert node.covers('Cu') == []
    assert node.covers(molecule('CH4')) == ['C']
    assert node.covers(Frames.from_atoms([molecule('NH3')])) == ['N']
    node.check_elements(['H', 'O', 'Cu'])
    with pytest.raises(ValueError) as excinfo:
        node.check_elements(['Cu', 'Pt', 'O'])
    message = str(excinfo.value)
    assert 'Pt' in message and 'chgnet-0.3.0' in message
    dataset = LabelledDatasetData.from_atoms([molecule('CO')])
    with pytest.raises(ValueError, match=r"'chgnet-0.3.0' \(chgnet\) does not cover element\(s\) C;"):
        node.check_elements(dataset)


def test_provenance_uuids(aiida_profile, model_file):
    base = make(model_file).store()
    dataset = LabelledDatasetData.from_atoms([molecule('H2O')]).store()
    tuned = make(
        io.BytesIO(b'tuned'), model_name='chgnet-ft', base_model_uuid=base, training_dataset_uuid=dataset.uuid
    )
    assert tuned.base_model_uuid == base.uuid and tuned.training_dataset_uuid == dataset.uuid
    with pytest.raises(ValueError, match='base_model_uuid'):
        make(io.BytesIO(b'x'), base_model_uuid='not-a-uuid')


@pytest.mark.parametrize(
    'kwargs, message',
    [
        ({'family': ''}, 'family'),
        ({'model_name': None}, 'model_name'),
        ({'elements': ['Cu', 'Xx']}, 'invalid element symbols'),
        ({'elements': 'Cu'}, 'list of symbols'),
        ({'cutoff': -1.0}, 'cutoff'),
        ({'version': 3}, 'version'),
    ],
)
def test_invalid_metadata(aiida_profile, model_file, kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make(model_file, **kwargs)


def test_missing_file(aiida_profile, tmp_path):
    with pytest.raises(ValueError, match='does not exist'):
        make(tmp_path / 'nope.pt')
