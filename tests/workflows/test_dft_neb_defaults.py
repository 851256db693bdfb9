"""reactmlip.dft_neb defaults a user can trust: end states optimised, a slab's bottom layers fixed, and a band
whose highest image is an end state reported as an exit code, never as a barrier."""

import json

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase import Atoms
from ase.build import add_adsorbate, fcc111

from aiida_reactmlip.workflows.dft_neb import DftNebWorkChain, band_fixed_atoms, slab_bottom_layers

BOX = (6.0, 6.0, 9.0)


def h3(r_ab: float, r_bc: float) -> Atoms:
    centre = np.array(BOX) / 2
    return Atoms("H3", positions=centre + [[0, 0, -r_ab], [0, 0, 0], [0, 0, r_bc]], cell=BOX, pbc=True)


def stored(atoms, **extras):
    node = orm.StructureData(ase=atoms).store()
    node.base.extras.set_many(extras)
    return node


def test_defaults_optimise_end_states_and_follow_the_spin_of_labels():
    spec = DftNebWorkChain.spec().inputs
    assert spec["relax_end_states"].default().value is True
    assert spec["spin"].default().value == "auto"


def test_slab_bottom_layers_fixed_by_default(aiida_profile):
    slab = fcc111("Cu", size=(2, 2, 4), vacuum=6.0)
    add_adsorbate(slab, "H", 1.0, "fcc")
    slab.set_tags(0)
    bottom_two = sorted(int(i) for i in np.argsort(slab.positions[:12 + 4, 2])[:8])  # two of four Cu layers
    assert slab_bottom_layers(slab) == bottom_two
    structure = stored(slab)
    assert band_fixed_atoms(structure) == bottom_two
    assert band_fixed_atoms(stored(slab, fixed_atoms="[0, 1]")) == [0, 1]  # the extra wins
    assert band_fixed_atoms(structure, orm.List([3])) == [3]  # the input wins
    assert band_fixed_atoms(stored(h3(0.75, 2.0))) == []  # a molecule has no layers


def test_moved_default_fixed_atoms_are_named(codes, pseudo_family):
    slab = fcc111("Cu", size=(1, 1, 3), vacuum=6.0)
    slab.set_tags(0)
    moved = slab.copy()
    moved.positions[0, 0] += 0.3  # a bottom-layer atom moves between the end states
    with pytest.raises(ValueError, match=r"fixed atom\(s\) \[0\] \(the slab's bottom layers, fixed by default; give "
                                         r"`fixed_atoms` to choose\) sit at different positions"):
        run_get_node(DftNebWorkChain, initial=stored(slab), final=stored(moved), code=codes["neb"],
                     pseudo_family=orm.Str(pseudo_family.label), protocol=orm.Str("fast"))


@pytest.mark.pwx
def test_highest_image_at_an_end_state_is_an_exit_code(codes, pseudo_family):
    """A downhill 'path': H_A-H_B shortens from 1.1 Å to the bond length, H_C 2.2 Å away. The initial state is the
    highest image: exit 403 with the profile, and no barrier output anywhere (no number to be mistaken for one)."""
    initial, final = stored(h3(1.1, 2.2), multiplicity=2), stored(h3(0.75, 2.2), multiplicity=2)
    _, node = run_get_node(
        DftNebWorkChain, initial=initial, final=final, num_images=orm.Int(3), interpolation=orm.Str("linear"),
        relax_end_states=orm.Bool(False), code=codes["neb"], pseudo_family=orm.Str(pseudo_family.label),
        protocol=orm.Str("fast"), parameter_overrides=orm.Dict({"SYSTEM": {"ecutrho": 120.0}}),
        options=orm.Dict({"resources": {"num_machines": 1, "num_mpiprocs_per_machine": 1}, "withmpi": False}),
    )
    assert node.exit_status == DftNebWorkChain.exit_codes.ERROR_NO_INTERIOR_MAXIMUM.status, node.exit_message
    assert "the highest image is an end state (image 0 of 3)" in node.exit_message
    assert "barrier" not in node.outputs and "reverse_barrier" not in node.outputs
    profile = node.outputs.energy_profile
    energies = profile.get_array("relative_energies")
    assert profile.base.attributes.get("highest_image") == 0 and energies[-1] < energies[1] < 0
    (results,) = [n for n in node.called if n.process_label == "neb_results"]
    assert "barrier" not in results.outputs
    print(f"downhill band: relative energies {np.round(energies, 3).tolist()} eV, exit {node.exit_status}")


def test_shipped_growth_campaign_asks_for_its_dft_neb():
    from aiida_reactmlip.specs.campaign import load_campaign

    spec = load_campaign("workchains/cu-adatom-cu111.yaml")
    assert spec.dft_neb["initial"] == "cu-adatom-cu111-fcc" and spec.dft_neb["final"] == "cu-adatom-cu111-hcp"
    assert spec.dft_neb.get("relax_end_states", True) is True
    json.dumps(spec.dft_neb)
