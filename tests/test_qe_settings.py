"""Pure choices of pw.x inputs: dimensionality, cutoffs, k-points, occupations."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, fcc111, molecule

from aiida_reactmlip.qe_settings import available_protocols, dimensionality, load_protocol, pw_choices, vacuum_thickness


def test_protocols_available():
    assert available_protocols() == ["fast", "moderate", "precise"]
    with pytest.raises(ValueError, match="unknown protocol 'ultra'.*fast, moderate, precise"):
        load_protocol("ultra")


def test_dimensionality_of_molecule_slab_bulk():
    h2 = molecule("H2")
    h2.cell = [8, 8, 8]
    h2.pbc = True
    h2.center()
    assert dimensionality(h2) == 0
    slab = fcc111("Cu", size=(2, 2, 3), vacuum=6.0)
    assert dimensionality(slab) == 2
    slab.pbc = True  # a periodic slab with a vacuum gap is still a slab
    assert dimensionality(slab) == 2
    assert dimensionality(bulk("Cu", "fcc", a=3.6)) == 3


def test_vacuum_thickness_of_centred_molecule():
    atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]], cell=[8, 8, 10], pbc=True)
    atoms.center()
    gaps = vacuum_thickness(atoms)
    np.testing.assert_allclose(gaps, [8.0, 8.0, 10.0 - 0.74], atol=1e-9)


def test_fast_choices_for_h2_molecule():
    h2 = molecule("H2")
    h2.cell = [8, 8, 8]
    h2.pbc = True
    h2.center()
    choices = pw_choices(h2, load_protocol("fast"), (46.0, 201.0))
    assert choices["ecutwfc"] == pytest.approx(29.9)  # 65 % of H.pbe-kjpaw's suggested 46 Ry
    assert choices["ecutrho"] == pytest.approx(239.2)  # dual 8
    assert choices["kpoints_mesh"] == [1, 1, 1]
    assert choices["occupations"] == "fixed"
    assert choices["tstress"] is False


def test_moderate_choices_for_copper_bulk():
    cu = bulk("Cu", "fcc", a=3.61)
    choices = pw_choices(cu, load_protocol("moderate"), (47.0, 189.0))
    assert choices["ecutwfc"] == 47.0
    assert choices["ecutrho"] == 376.0
    assert choices["occupations"] == "smearing" and choices["smearing"] == "cold"
    assert choices["tstress"] is True
    # |b| = 2π·sqrt(3)/a for the fcc primitive cell; ceil(|b| / 0.3)
    expected = int(np.ceil(2 * np.pi * np.sqrt(3) / 3.61 / 0.3))
    assert choices["kpoints_mesh"] == [expected] * 3
