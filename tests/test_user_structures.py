"""A user's own frames (role=slab|gas|minimum|initial|final|image|scan) -> the library's frame info."""

import json

import numpy as np
import pytest
from ase import Atoms
from ase.build import add_adsorbate, fcc100, fcc111, molecule
from ase.constraints import FixAtoms

from aiida_reactmlip.user_structures import (
    UserStructureError,
    adsorption_scheme,
    fixed_atoms_of,
    normalise_frames,
    parse_atom_list,
)


def gas(formula, **info):
    atoms = molecule(formula)
    atoms.cell = [10, 10, 10]
    atoms.pbc = True
    atoms.center()
    atoms.info.update(role="gas", **info)
    return atoms


def h_on_cu100():
    """What a user writes with ASE: a 2x2x3 Cu(100) slab, H on two sites, H2, a hop path between them."""
    slab = fcc100("Cu", size=(2, 2, 3), vacuum=6.0)
    slab.info.update(role="slab", name="slab")
    frames = [slab, gas("H2", name="h2")]
    for site in ("hollow", "bridge", "ontop"):
        atoms = slab.copy()
        atoms.info.update(role="minimum", name=f"h-{site}")
        add_adsorbate(atoms, "H", 1.0 if site == "hollow" else 1.5, site)
        frames.append(atoms)
    initial = frames[2].copy()
    initial.info = {"role": "initial", "name": "hop-a"}
    final = frames[2].copy()
    final.positions[-1, 0] += slab.cell[0, 0] / 2
    final.info = {"role": "final", "name": "hop-b"}
    return frames + [initial, final]


def test_slab_gas_minima_and_path():
    frames, notes = normalise_frames(h_on_cu100(), source="h-cu100")
    info = {a.info["name"]: a.info for a in frames}
    assert notes == []
    assert info["slab"]["kind"] == "slab" and info["slab"]["role"] == "reference"
    assert info["h2"]["kind"] == "molecule" and info["h2"]["role"] == "reference"
    assert [info[f"h-{s}"]["site"] for s in ("hollow", "bridge", "ontop")] == ["hollow", "bridge", "top"]
    for s in ("hollow", "bridge", "ontop"):
        assert info[f"h-{s}"]["adsorbate"] == "H" and info[f"h-{s}"]["minimum"] is True
        assert json.loads(info[f"h-{s}"]["adsorption_scheme"]) == {"H2": 0.5}
        assert info[f"h-{s}"]["system"] == "h-cu100"
    # the path lives in its own system (a system gives adsorption metrics or a path, not both)
    assert info["hop-a"]["system"] == info["hop-b"]["system"] == "h-cu100-path"
    # ASE's layer tags (1 top .. 3 bottom): the bottom layer fixed, tags cleared afterwards
    assert json.loads(info["slab"]["fixed_atoms"]) == [0, 1, 2, 3]
    assert json.loads(info["h-hollow"]["fixed_atoms"]) == [0, 1, 2, 3]
    assert not any(a.get_tags().any() for a in frames)
    assert "fixed_atoms" not in info["h2"]


def test_o_with_o2_reference_and_missing_gas_note():
    slab = fcc111("Ni", size=(2, 2, 3), vacuum=6.0)
    slab.info["role"] = "slab"
    o = slab.copy()
    o.info["role"] = "minimum"
    add_adsorbate(o, "O", 1.2, "fcc")
    frames, notes = normalise_frames([slab, o, gas("O2")], source="o-ni")
    assert json.loads(frames[1].info["adsorption_scheme"]) == {"O2": 0.5}
    assert frames[1].info["site"] == "fcc" and frames[1].info["name"] == "o-ni-001"
    frames, notes = normalise_frames([slab, o], source="o-ni")
    assert notes == ["o-ni: no adsorption energy of O: no gas reference for it (give e.g. H2O and H2 with role=gas)"]
    assert "adsorption_scheme" not in frames[1].info


def test_adsorption_scheme_choice():
    assert adsorption_scheme("O", ["H2", "H2O", "O2"]) == {"H2O": 1.0, "H2": -1.0}
    assert adsorption_scheme("N", ["N2"]) == {"N2": 0.5}
    assert adsorption_scheme("CO", ["H2"]) is None


def test_fixed_atoms_sources():
    slab = fcc111("Cu", size=(1, 1, 4), vacuum=6.0)
    assert fixed_atoms_of(slab) == [0, 1]  # 4 layers: the bottom two
    slab.set_constraint(FixAtoms(indices=[0]))
    assert fixed_atoms_of(slab) == [0]
    slab.info["fixed_atoms"] = "[0, 1, 2]"
    assert fixed_atoms_of(slab) == [0, 1, 2]
    assert parse_atom_list("3, 1 2", 4, "x") == [1, 2, 3]
    assert parse_atom_list(np.array([2, 0]), 4, "x") == [0, 2]
    with pytest.raises(UserStructureError, match=r"fixed_atoms \[7\] out of range for 4 atoms"):
        parse_atom_list([7], 4, "frame 0")
    untagged = fcc111("Cu", size=(1, 1, 3), vacuum=6.0)
    untagged.set_tags(0)
    assert fixed_atoms_of(untagged) == []


def test_frames_without_user_roles_pass_unchanged():
    h2 = gas("H2")
    h2.info.update(name="a", system="lib", role="reference", kind="molecule")
    frames, notes = normalise_frames([h2])
    assert frames[0].info == h2.info and notes == []


@pytest.mark.parametrize("change, message", [
    (lambda f: f[0].info.update(role="adsorbate"), "frame 0 (slab): unknown role 'adsorbate'; give one of slab, gas"),
    (lambda f: f[1].info.update(name="slab"), "frame names repeat: slab"),
    (lambda f: f[1].info.update(role="slab"), "frame 1 (h2): role slab, but it is not a slab"),
    (lambda f: f[0].info.update(role="gas"), "frame 0 (slab): role gas, but it is not an isolated molecule"),
    (lambda f: f.append(f[5].copy()) or f[-1].info.update(name="hop-c"), "path 'h-cu100-path' has 2 initial and 1 final frame"),
    (lambda f: f[6].pop(), "frame 6 (hop-b): the frames of path 'h-cu100-path' must have the same atoms"),
    (lambda f: [f[i].info.update(group="g") for i in (0, 2)], "group 'g' mixes compositions Cu12, HCu12"),
])
def test_refused(change, message):
    frames = h_on_cu100()
    change(frames)
    with pytest.raises(UserStructureError, match=message.replace("(", r"\(").replace(")", r"\)")):
        normalise_frames(frames, source="h-cu100")


def test_minimum_must_list_the_slab_first():
    slab = fcc111("Cu", size=(2, 2, 3), vacuum=6.0)
    slab.info["role"] = "slab"
    h = Atoms("H", positions=[[0, 0, slab.positions[:, 2].max() + 1.0]]) + slab
    h.cell, h.pbc = slab.cell, slab.pbc
    h.info = {"role": "minimum", "adsorbate": "H"}
    with pytest.raises(UserStructureError, match="must list the slab's 12 atoms first"):
        normalise_frames([slab, h, gas("H2")])


def test_metrics_use_the_file_own_gas_reference():
    """O on Ni(111) with only O2 as gas: the adsorption energy is referenced to 1/2 O2 (by_system reads it)."""
    from ase.calculators.singlepoint import SinglePointCalculator

    from aiida_reactmlip.frames import Frames
    from aiida_reactmlip.metrics.by_system import reactive_metrics_by_system

    slab = fcc111("Ni", size=(2, 2, 3), vacuum=6.0)
    slab.info.update(role="slab", name="ni")
    frames = [slab, gas("O2", name="o2")]
    for site in ("fcc", "hcp"):
        atoms = slab.copy()
        atoms.info.update(role="minimum", name=f"o-{site}")
        add_adsorbate(atoms, "O", 1.2, site)
        frames.append(atoms)
    frames, notes = normalise_frames(frames, "o-ni")
    energies = {"ni": -100.0, "o2": -10.0, "o-fcc": -106.0, "o-hcp": -105.8}
    for atoms in frames:
        atoms.calc = SinglePointCalculator(atoms, energy=energies[atoms.info["name"]], forces=np.zeros((len(atoms), 3)))
        atoms.info = {k: v for k, v in atoms.info.items() if isinstance(v, (str, int, float, bool))}
    labelled = Frames.from_atoms(frames)
    model = np.array([energies[n] for n in ("ni", "o2", "o-fcc", "o-hcp")]) + [0.0, 0.0, 0.1, 0.0]
    result = reactive_metrics_by_system(labelled, model)["o-ni"]
    assert result["kind"] == "adsorption" and "1/2 E(O2)" in result["definition"]
    assert result["dft_adsorption_energies_eV"] == pytest.approx([-1.0, -0.8])  # -106 + 100 + 5
    assert result["site_most_stable_agrees"] is True
