"""Pure tests of aiida_reactmlip.frames (no AiiDA)."""

import io

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.singlepoint import SinglePointCalculator

from aiida_reactmlip.frames import (
    ExtxyzFormatError,
    Frames,
    read_extxyz,
    read_frames,
    read_frames_npz,
    write_extxyz,
    write_frames_npz,
)

FLOAT_ARRAYS = ('positions', 'cells', 'energies', 'forces', 'stress')
ALL_ARRAYS = ('numbers', 'pbc', 'n_atoms', *FLOAT_ARRAYS)


def random_frames(seed=0):
    """Six frames of 1..7 atoms: periodic, slab-like (T T F), molecule with zero cell, missing labels."""
    rng = np.random.default_rng(seed)
    sizes = [3, 1, 7, 2, 5, 4]
    n = sum(sizes)
    scale = 10.0 ** rng.integers(-12, 4, size=(n, 3))  # floats of very different magnitudes
    positions = rng.normal(size=(n, 3)) * scale
    forces = rng.normal(size=(n, 3))
    cells = np.array([np.diag(rng.uniform(5, 12, 3)) + rng.normal(scale=0.3, size=(3, 3)) for _ in sizes])
    pbc = np.ones((len(sizes), 3), bool)
    # frame 2: non-periodic molecule with a zero cell; frame 3: slab; frame 5: non-periodic box
    cells[2] = 0.0
    pbc[2] = False
    pbc[3] = [True, True, False]
    pbc[5] = False
    energies = rng.normal(size=len(sizes)) * 100
    energies[1] = np.nan  # no energy
    stress = rng.normal(size=(len(sizes), 6)) * 1e-3
    stress[[2, 5]] = np.nan  # no stress
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    forces[offsets[4] : offsets[4] + sizes[4]] = np.nan  # frame 4: no forces
    forces[offsets[0] + 1, 2] = np.nan  # frame 0: one missing component
    info = [
        {'source_uuid': 'a5c5d6c3-1a2b-4c5d-8e9f-0123456789ab', 'system': 'Cu(111)+O', 'role': 'initial'},
        {'name': 'single atom', 'group': 3},
        {'name': 'H2O', 'weight': 0.1, 'selected': True},
        {'role': '123', 'empty': '', 'quote': 'say "hi"', 'back': 'a\\b'},
        {},
        {'system': 'T', 'big': 2**62, 'tiny': 1e-300},
    ]
    numbers = rng.integers(1, 90, size=n)
    return Frames(
        numbers=numbers,
        positions=positions,
        cells=cells,
        pbc=pbc,
        n_atoms=sizes,
        energies=energies,
        forces=forces,
        stress=stress,
        info=info,
    )


def assert_frames_equal(a, b):
    for name in ALL_ARRAYS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.shape == y.shape, name
        assert x.dtype == y.dtype, name
        assert np.array_equal(x, y, equal_nan=name in FLOAT_ARRAYS), name
    assert a.info == b.info
    for da, db in zip(a.info, b.info):
        assert [type(v) for v in da.values()] == [type(db[k]) for k in da]


def test_structure_and_masks():
    frames = random_frames()
    assert len(frames) == 6
    assert frames.offsets.tolist() == [0, 3, 4, 11, 13, 18]
    assert frames.atoms_slice(2) == slice(4, 11)
    assert frames.atoms_slice(-1) == slice(18, 22)
    assert frames.has_energy.tolist() == [True, False, True, True, True, True]
    assert frames.has_forces.tolist() == [True, True, True, True, False, True]
    assert frames.has_stress.tolist() == [True, True, False, True, True, False]
    assert frames.symbols_set() == sorted(frames.symbols_set())
    with pytest.raises(IndexError):
        frames.atoms_slice(6)


def test_subset_and_concatenate():
    frames = random_frames()
    sub = frames.subset([4, 0])
    assert sub.n_atoms.tolist() == [5, 3]
    assert np.array_equal(sub.positions[5:], frames.positions[:3])
    assert sub.info == [frames.info[4], frames.info[0]]
    mask = frames.subset(frames.has_stress)
    assert len(mask) == 4
    joined = Frames.concatenate([frames.subset([0, 1, 2]), frames.subset([3, 4, 5])])
    assert_frames_equal(joined, frames)
    sub.info[1]['system'] = 'changed'
    assert frames.info[0]['system'] == 'Cu(111)+O'


def test_extxyz_round_trip_exact(tmp_path):
    frames = random_frames()
    path = tmp_path / 'frames.extxyz'
    write_extxyz(frames, path)
    back = read_extxyz(path)
    assert_frames_equal(frames, back)
    assert frames.identical(back)
    # again through a file object, and a second generation is byte-identical
    buffer = io.StringIO()
    write_extxyz(back, buffer)
    assert buffer.getvalue() == path.read_text()


def test_npz_round_trip_exact_and_read_frames_by_suffix(tmp_path):
    frames = random_frames()
    archive = tmp_path / 'frames.npz'
    write_frames_npz(frames, archive)
    back = read_frames_npz(archive)
    assert_frames_equal(frames, back)
    assert frames.identical(back)  # NaN labels, info types (str, int, float, bool) included
    assert back.info == frames.info and type(back.info[0]['system']) is str
    buffer = io.BytesIO()  # a file object (what a CalcJob's folder hands out) works the same
    write_frames_npz(frames, buffer)
    buffer.seek(0)
    assert read_frames_npz(buffer).identical(frames)
    text = tmp_path / 'frames.extxyz'
    write_extxyz(frames, text)
    assert read_frames(archive).identical(read_frames(text))
    assert len(read_frames_npz(_npz(tmp_path / 'empty.npz', Frames.from_atoms([])))) == 0


def _npz(path, frames):
    write_frames_npz(frames, path)
    return path


def test_npz_that_is_not_a_frames_archive_is_named(tmp_path):
    not_zip = tmp_path / 'text.npz'
    not_zip.write_text('1 2 3')
    with pytest.raises(ValueError, match=r'text\.npz: not a frames archive'):
        read_frames(not_zip)
    other = tmp_path / 'other.npz'
    np.savez(other, numbers=np.zeros(3))
    with pytest.raises(ValueError, match=r'other\.npz: not a frames archive: entries positions, .* missing'):
        read_frames_npz(other)
    frames = random_frames()
    arrays = {name: getattr(frames, name) for name in ('numbers', 'positions', 'cells', 'pbc', 'n_atoms',
                                                       'energies', 'forces', 'stress')}
    wrong_format = tmp_path / 'wrong.npz'
    np.savez(wrong_format, **arrays, info=np.array('[]'), format=np.array('something-else'))
    with pytest.raises(ValueError, match="format 'something-else'"):
        read_frames_npz(wrong_format)
    inconsistent = tmp_path / 'inconsistent.npz'
    np.savez(inconsistent, **{**arrays, 'n_atoms': arrays['n_atoms'][:-1]}, info=np.array('[]'),
             format=np.array('reactmlip-frames-1'))
    with pytest.raises(ValueError, match='inconsistent.npz: inconsistent content'):
        read_frames_npz(inconsistent)


def test_extxyz_empty_and_no_lattice_for_zero_cell(tmp_path):
    frames = random_frames()
    path = tmp_path / 'f.xyz'
    write_extxyz(frames, path)
    lines = path.read_text().splitlines()
    comment_of_frame2 = lines[sum(frames.n_atoms[:2]) + 2 * 2 + 1]
    assert 'Lattice' not in comment_of_frame2 and 'pbc="F F F"' in comment_of_frame2
    empty = tmp_path / 'empty.xyz'
    write_extxyz(Frames.from_atoms([]), empty)
    assert len(read_extxyz(empty)) == 0


def test_ase_reads_labels_as_calculator_results(tmp_path):
    frames = random_frames()
    path = tmp_path / 'frames.extxyz'
    write_extxyz(frames, path)
    images = ase.io.read(path, index=':', format='extxyz')
    assert len(images) == len(frames)
    for i, atoms in enumerate(images):
        sl = frames.atoms_slice(i)
        assert np.array_equal(atoms.numbers, frames.numbers[sl])
        assert np.array_equal(atoms.positions, frames.positions[sl])
        assert np.array_equal(atoms.cell[:], frames.cells[i])
        assert np.array_equal(atoms.pbc, frames.pbc[i])
        results = atoms.calc.results if atoms.calc is not None else {}
        assert ('energy' in results) == frames.has_energy[i]
        assert ('forces' in results) == frames.has_forces[i]
        assert ('stress' in results) == frames.has_stress[i]
        if frames.has_energy[i]:
            assert atoms.get_potential_energy() == frames.energies[i]
        if frames.has_forces[i]:
            assert np.array_equal(results['forces'], frames.forces[sl], equal_nan=True)
        if frames.has_stress[i]:
            assert np.array_equal(atoms.get_stress(), frames.stress[i])
    assert images[2].cell.rank == 0 and not images[2].pbc.any()
    assert images[3].info['role'] == '123' and images[3].info['quote'] == 'say "hi"'
    assert images[0].info['system'] == 'Cu(111)+O'


def test_ase_atoms_round_trip_and_labels_from_info():
    slab = bulk('Cu', 'fcc', a=3.6, cubic=True)
    slab.calc = SinglePointCalculator(
        slab, energy=-14.5, forces=np.full((4, 3), 0.01), stress=np.arange(9.0).reshape(3, 3) + np.eye(3)
    )
    slab.info.update(system='Cu', step=np.int64(3), spacegroup_obj=[1, 2], free_energy=-1.0)
    water = molecule('H2O')
    water.info['energy'] = -3.25
    water.arrays['forces'] = np.ones((3, 3))
    water.info['stress'] = np.zeros(6)
    bare = Atoms('H', positions=[[0, 0, 0]])
    frames = Frames.from_atoms([slab, water, bare])
    assert frames.energies[:2].tolist() == [-14.5, -3.25] and np.isnan(frames.energies[2])
    assert frames.stress[0].tolist() == [1.0, 5.0, 9.0, 5.0, 2.0, 1.0]
    assert frames.info == [{'system': 'Cu', 'step': 3}, {}, {}]
    assert type(frames.info[0]['step']) is int
    assert frames.has_stress.tolist() == [True, True, False]
    images = frames.to_atoms()
    assert images[0].get_potential_energy() == -14.5
    assert np.array_equal(images[1].get_forces(), np.ones((3, 3)))
    assert images[2].calc is None
    assert images[0].info == {'system': 'Cu', 'step': 3}
    assert_frames_equal(Frames.from_atoms(images), frames)


@pytest.mark.parametrize(
    'change, message',
    [
        ({'n_atoms': [3, 2]}, 'n_atoms sums to 5'),
        ({'positions': np.zeros((4, 2))}, 'positions must have shape (4, 3)'),
        ({'stress': np.zeros((2, 3, 3))}, 'stress must have shape (2, 6)'),
        ({'numbers': [1, 1, 0, 8]}, 'invalid atomic number 0'),
        ({'pbc': [[True, True, True], [True, False, False]]}, 'frame 0 is periodic along axis 0'),
        ({'info': [{}]}, 'one dict per frame'),
        ({'info': [{'energy': 1.0}, {}]}, "'energy' is reserved"),
        ({'info': [{'bad key': 1}, {}]}, 'not an identifier'),
        ({'info': [{'x': [1, 2]}, {}]}, 'must be a python str/int/float/bool'),
        ({'info': [{'x': float('nan')}, {}]}, 'only finite floats'),
        ({'n_atoms': [4, 0]}, 'frame 1 has 0 atoms'),
    ],
)
def test_validate_errors(change, message):
    kwargs = dict(
        numbers=[1, 1, 8, 8],
        positions=np.arange(12.0).reshape(4, 3),
        cells=np.zeros((2, 3, 3)),
        pbc=np.zeros((2, 3), bool),
        n_atoms=[2, 2],
    )
    kwargs.update(change)
    with pytest.raises(ValueError, match=message.replace('(', r'\(').replace(')', r'\)')):
        Frames(**kwargs)


GOOD = 'Properties=species:S:1:pos:R:3 pbc="F F F"'


@pytest.mark.parametrize(
    'text, line, message',
    [
        (f'2\n{GOOD}\nH 0 0 0\nH 0 0 1\nabc\n', 5, 'bad atom count line'),
        (f'2\n{GOOD}\nH 0 0 0\nH 0 0 1\n-1\n{GOOD}\n', 5, 'atom count must be positive'),
        (f'3\n{GOOD}\nH 0 0 0\nH 0 0 1\n', 5, 'too few atom lines'),
        (f'2\n{GOOD}\nH 0 0 0\n\n', 4, 'too few atom lines'),
        (f'2\n{GOOD}\nH 0 0 0\nH 0 0\n', 4, 'wrong number of columns: expected 4'),
        (f'2\n{GOOD}\nH 0 0 0\nH 0 0 1 7\n', 4, 'wrong number of columns'),
        (f'2\n{GOOD}\nH 0 x 0\nH 0 0 1\n', 3, "non-numeric value 'x' in column 3"),
        (f'1\n{GOOD}\nH 0 0 0\n2\n{GOOD}\nH 0 0 0\nO 1.0 2.0 1.5.2\n', 7, 'non-numeric value'),
        (
            '1\nProperties=species:S:1:pos:R:3:forces:R:3\nH 0 0 0 0.1 0.2 zz\n',
            3,
            "non-numeric value 'zz' in column 7 (forces",
        ),
        (f'1\n{GOOD}\nQq 0 0 0\n', 3, "unknown element 'Qq'"),
        (f'1\n{GOOD}\nH 0 0 0\n\n1\n{GOOD}\nH 0 0 0\n', 4, 'blank line between frames'),
        ('1\nLattice="1 0 0 0 1 0" pbc="T T T"\nH 0 0 0\n', 2, 'cannot parse the comment line'),
        ('1\n', 2, 'file ends before the comment line'),
    ],
)
def test_malformed_extxyz_names_file_and_line(tmp_path, text, line, message):
    path = tmp_path / 'bad.extxyz'
    path.write_text(text)
    with pytest.raises(ExtxyzFormatError) as excinfo:
        read_extxyz(path)
    assert str(excinfo.value).startswith(f'{path}: line {line}: ')
    assert message in str(excinfo.value)
    assert isinstance(excinfo.value, ValueError)


def test_read_extxyz_without_energy_keeps_nan(tmp_path):
    path = tmp_path / 'plain.xyz'
    path.write_text(f'2\n{GOOD} name=h2\nH 0 0 0\nH 0 0 0.74\n\n\n')
    frames = read_extxyz(path)
    assert np.isnan(frames.energies).all() and np.isnan(frames.forces).all() and np.isnan(frames.stress).all()
    assert frames.info == [{'name': 'h2'}]
    assert not frames.has_energy.any()


def test_overlapping_atoms():
    ok = molecule('H2O')
    close = Atoms('CO', positions=[[0, 0, 0], [0.3, 0, 0]])
    close.info['name'] = 'co-bad'
    frames = Frames.from_atoms([ok, close])
    frames.subset([0]).check_no_overlapping_atoms()
    with pytest.raises(ValueError) as excinfo:
        frames.check_no_overlapping_atoms(min_distance=0.5)
    msg = str(excinfo.value)
    assert 'frame 1' in msg and 'atoms 0 (C) and 1 (O)' in msg and '0.3000' in msg and 'co-bad' in msg
    # minimum image across the periodic boundary
    periodic = Atoms('Cu2', positions=[[0.1, 5, 5], [9.95, 5, 5]], cell=[10, 10, 10], pbc=True)
    with pytest.raises(ValueError, match=r'frame 0: atoms 0 \(Cu\) and 1 \(Cu\) are 0.1500'):
        Frames.from_atoms([periodic]).check_no_overlapping_atoms()
    periodic.pbc = False
    Frames.from_atoms([periodic]).check_no_overlapping_atoms()
