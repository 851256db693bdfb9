"""reactmlip.label input choices without running pw.x: spin, dipole correction, bad input refused before submission."""

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase import Atoms
from ase.build import add_adsorbate, bulk, fcc111

from aiida_reactmlip.qe_settings import (
    dipole_settings,
    load_protocol,
    overlap_error,
    spin_settings,
    vacuum_thickness,
)
from aiida_reactmlip.specs.builders import get_label_builder, structures_from_atoms
from aiida_reactmlip.workflows.label import LabelWorkChain, pw_parameters


def test_spin_settings_triplet_and_parity():
    assert spin_settings(None) == {}
    assert spin_settings(1, 2) == {}
    triplet = spin_settings(3, 12, ["O"])
    assert triplet == {"nspin": 2, "tot_magnetization": 2.0, "starting_magnetization": {"O": 0.5}}
    assert spin_settings(2, 3, ["H"])["tot_magnetization"] == 1.0  # H3 radical: a doublet
    with pytest.raises(ValueError, match="multiplicity 2 .* impossible with 2 valence electrons"):
        spin_settings(2, 2)
    with pytest.raises(ValueError, match="needs 4 unpaired electrons but there are only 2"):
        spin_settings(5, 2)
    with pytest.raises(ValueError, match="positive integer"):
        spin_settings(0)
    with pytest.raises(ValueError, match="positive integer"):
        spin_settings(2.5)


def _asymmetric_slab():
    slab = fcc111("Cu", size=(1, 1, 3), vacuum=6.0)
    add_adsorbate(slab, "H", 1.0, "fcc")
    slab.center(vacuum=6.0, axis=2)
    return slab


def test_dipole_region_sits_in_the_vacuum():
    slab = _asymmetric_slab()
    settings = dipole_settings(slab)
    assert settings["CONTROL"] == {"tefield": True, "dipfield": True}
    system = settings["SYSTEM"]
    assert system["edir"] == 3 and system["eamp"] == 0.0
    c = slab.cell.lengths()[2]
    z = slab.get_scaled_positions()[:, 2]
    # The whole sawtooth region [emaxpos, emaxpos + eopreg] lies at least 2 Å away from every atom.
    region = (system["emaxpos"] + np.linspace(0, system["eopreg"], 11)) % 1.0
    gaps = np.abs(((region[:, None] - z[None, :]) + 0.5) % 1.0 - 0.5) * c
    assert gaps.min() > 2.0, gaps.min()
    # Centred in the vacuum: the region's middle is equally far from the top and the bottom of the slab.
    middle = (system["emaxpos"] + system["eopreg"] / 2) % 1.0
    to_top = ((middle - z.max()) % 1.0) * c
    to_bottom = ((z.min() - middle) % 1.0) * c
    assert to_top == pytest.approx(to_bottom, abs=1e-3)
    assert to_top + to_bottom == pytest.approx(vacuum_thickness(slab)[2], abs=1e-3)


def test_dipole_correction_refused_without_vacuum():
    with pytest.raises(ValueError, match="at least 5.0 Å of vacuum along c"):
        dipole_settings(bulk("Cu", "fcc", a=3.6, cubic=True))


def test_overlap_error_names_the_pair():
    atoms = Atoms("CuH", positions=[[0, 0, 0], [0.3, 0, 0]], cell=[6, 6, 6], pbc=True)
    message = overlap_error(atoms, "structure 'x'")
    assert "atoms 0 (Cu) and 1 (H) are 0.300 Å apart" in message
    # Minimum image: atoms at opposite faces of the cell are neighbours.
    atoms = Atoms("H2", positions=[[0.1, 0, 0], [5.8, 0, 0]], cell=[6, 6, 6], pbc=True)
    assert "0.300 Å apart" in overlap_error(atoms, "x")
    assert overlap_error(Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]], cell=[6, 6, 6], pbc=True), "x") is None


def test_pw_parameters_for_o2_triplet_and_slab_dipole(pseudo_family):
    from aiida_reactmlip.systems.molecules import diatomic

    o2 = structures_from_atoms([diatomic("O2")], ["o2"])["o2"]
    assert o2.base.extras.get("multiplicity") == 3
    parameters, choices = pw_parameters("o2", o2, load_protocol("fast"), pseudo_family)
    assert parameters["SYSTEM"]["nspin"] == 2
    assert parameters["SYSTEM"]["tot_magnetization"] == 2.0
    assert parameters["SYSTEM"]["occupations"] == "fixed"
    assert parameters["SYSTEM"]["starting_magnetization"] == {"O": 0.5}
    assert choices["nspin"] == 2

    slab = orm.StructureData(ase=_asymmetric_slab()).store()
    parameters, choices = pw_parameters("slab", slab, load_protocol("fast"), pseudo_family)
    assert "tefield" not in parameters["CONTROL"]
    parameters, choices = pw_parameters("slab", slab, load_protocol("fast"), pseudo_family, dipole_correction=True)
    assert parameters["CONTROL"]["tefield"] and parameters["CONTROL"]["dipfield"]
    assert parameters["SYSTEM"]["edir"] == 3
    assert parameters["SYSTEM"]["occupations"] == "smearing"
    # The structure's extra wins over the workchain-wide default.
    slab.base.extras.set("dipole_correction", False)
    parameters, _ = pw_parameters("slab", slab, load_protocol("fast"), pseudo_family, dipole_correction=True)
    assert "tefield" not in parameters["CONTROL"]


def _nodes():
    return orm.QueryBuilder().append(orm.ProcessNode).count()


@pytest.mark.parametrize(
    ("atoms", "extras", "match"),
    [
        (Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]], cell=[8, 8, 8], pbc=True), {"multiplicity": 2},
         r"structure 'bad': multiplicity 2 .* impossible with 2 valence electrons"),
        (Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.2]], cell=[8, 8, 8], pbc=True), {},
         r"structure 'bad': atoms 0 \(H\) and 1 \(H\) are 0.200 Å apart, closer than 0.5 Å"),
        (bulk("Cu", "fcc", a=3.6), {"dipole_correction": True},
         r"structure 'bad' asks for a dipole correction: .* vacuum along c"),
    ],
)
def test_bad_structures_refused_before_submission(codes, pseudo_family, atoms, extras, match):
    structure = orm.StructureData(ase=atoms).store()
    structure.base.extras.set_many(extras)
    before = _nodes()
    with pytest.raises(ValueError, match=match):
        run_get_node(LabelWorkChain, structures={"bad": structure}, pw_code=codes["pw"],
                     pseudo_family=orm.Str(pseudo_family.label), protocol=orm.Str("fast"))
    assert _nodes() == before


def test_builder_from_group(codes, pseudo_family):
    group = orm.Group(label="test-label-inputs-group").store()
    h2 = orm.StructureData(ase=Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]], cell=[8, 8, 8], pbc=True))
    h2.label = "h2-eq"
    group.add_nodes([h2.store()])
    builder = get_label_builder(group.label, protocol="fast", pw_code=codes["pw"], pseudo_family=pseudo_family.label)
    assert list(builder.structures) == ["h2_eq"]
    with pytest.raises(ValueError, match="holds no StructureData"):
        get_label_builder(orm.Group(label="test-label-inputs-empty").store())


def test_free_spin_settings_magnetic_and_non_magnetic_kinds():
    from aiida_reactmlip.qe_settings import free_spin_settings

    ni_h = free_spin_settings([("Ni", "Ni"), ("H", "H")])
    assert ni_h == {"nspin": 2, "starting_magnetization": {"Ni": 0.5, "H": 0.0}}
    cu_o = free_spin_settings([("Cu", "Cu"), ("O", "O")], starting_magnetization=0.3)
    assert cu_o["starting_magnetization"] == {"Cu": 0.3, "O": 0.3}


def test_spin_polarised_extra_gives_free_magnetisation_on_ni_slab(pseudo_family):
    from aiida import orm
    from ase.build import fcc111

    from aiida_reactmlip.qe_settings import load_protocol
    from aiida_reactmlip.workflows.label import pw_parameters

    slab = fcc111("Ni", size=(1, 1, 3), vacuum=6.0)
    structure = orm.StructureData(ase=slab)
    structure.base.extras.set("spin_polarised", True)
    parameters, choices = pw_parameters("frame_0000", structure, load_protocol("fast"), pseudo_family)
    assert parameters["SYSTEM"]["nspin"] == 2
    # fcc111 tags the layers, so the kinds are Ni1..Ni3: each starts magnetic
    assert parameters["SYSTEM"]["starting_magnetization"] == {k.name: 0.5 for k in structure.kinds}
    assert len(structure.kinds) == 3
    assert "tot_magnetization" not in parameters["SYSTEM"]
    assert choices["nspin"] == 2
    plain = orm.StructureData(ase=slab)
    parameters, choices = pw_parameters("frame_0000", plain, load_protocol("fast"), pseudo_family)
    assert "nspin" not in parameters["SYSTEM"] and choices["nspin"] == 1
