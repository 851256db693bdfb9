"""Spin by default (aiida_reactmlip/spin.py): which configurations run spin-polarised, per mode and per frame info."""

import pytest
from ase import Atoms
from ase.build import bulk, fcc111, molecule

from aiida_reactmlip.spin import choose_spin, electron_count


def boxed(atoms):
    atoms = atoms.copy()
    atoms.cell = [10, 10, 10]
    atoms.pbc = True
    atoms.center()
    return atoms


def test_ni_slab_auto_on_off():
    slab = fcc111("Ni", size=(1, 1, 3), vacuum=6.0)
    auto = choose_spin(slab, "auto")
    assert auto.polarised and auto.free and auto.multiplicity is None and "Ni" in auto.reason
    assert not choose_spin(slab, "off").polarised
    assert choose_spin(slab, "on").free


def test_cu_slab_only_with_on():
    slab = fcc111("Cu", size=(2, 2, 3), vacuum=6.0)
    assert not choose_spin(slab, "auto").polarised
    assert choose_spin(slab, "on").free


def test_every_magnetic_element_in_bulk():
    for symbol in ("Cr", "Mn", "Fe", "Co", "Ni"):
        assert choose_spin(bulk(symbol, "bcc", a=2.9), "auto").free, symbol
    assert not choose_spin(bulk("Cu", "fcc", a=3.6), "auto").polarised


def test_molecules_and_atoms():
    h = boxed(Atoms("H"))
    assert electron_count(h) == 1
    assert (choose_spin(h, "auto").multiplicity, choose_spin(h, "auto").polarised) == (2, True)
    oh = boxed(molecule("OH"))
    assert choose_spin(oh, "auto").multiplicity == 2
    o2 = boxed(molecule("O2"))
    assert choose_spin(o2, "auto").multiplicity == 3 and "triplet" in choose_spin(o2, "auto").reason
    assert not choose_spin(o2, "off").polarised
    for closed in (boxed(molecule("H2")), boxed(molecule("H2O")), boxed(molecule("N2"))):
        choice = choose_spin(closed, "auto")
        assert not choice.polarised and choice.multiplicity is None
        assert not choose_spin(closed, "on").polarised  # a singlet: fixed occupations, no free moment


def test_odd_electron_molecule_stays_a_doublet_when_off():
    # Fixed occupations with an odd electron count have no closed-shell state: pw.x would refuse it.
    assert choose_spin(boxed(Atoms("H")), "off").multiplicity == 2


def test_o2_in_a_slab_cell_is_not_a_molecule():
    slab = fcc111("Cu", size=(2, 2, 3), vacuum=6.0)
    slab += Atoms("O2", positions=[[0, 0, slab.positions[:, 2].max() + 2.0], [0, 0, slab.positions[:, 2].max() + 3.2]])
    assert not choose_spin(slab, "auto").polarised


def test_frame_info_wins():
    slab = fcc111("Ni", size=(1, 1, 3), vacuum=6.0)
    slab.info["spin_polarised"] = False
    assert not choose_spin(slab, "auto").polarised
    assert not choose_spin(slab, "on").polarised
    cu = fcc111("Cu", size=(1, 1, 3), vacuum=6.0)
    assert choose_spin(cu, "off", info={"spin_polarised": True}).free
    o2 = boxed(molecule("O2"))
    assert choose_spin(o2, "auto", info={"multiplicity": 1}).polarised is False
    assert choose_spin(o2, "off", info={"multiplicity": 3}).multiplicity == 3
    n2 = boxed(molecule("N2"))
    assert choose_spin(n2, "off", info={"multiplicity": 3}).multiplicity == 3
    # info given explicitly replaces atoms.info
    slab.info["spin_polarised"] = False
    assert choose_spin(slab, "auto", info={}).free


def test_unknown_mode():
    with pytest.raises(ValueError, match="unknown spin mode 'yes'; choose one of auto, off, on"):
        choose_spin(Atoms("H"), "yes")
