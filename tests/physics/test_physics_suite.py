"""The default plan of checks for a study's elements and the all-in-one run (EMT, seconds)."""

import json

import numpy as np
import pytest
from ase.calculators.emt import EMT

from aiida_reactmlip.physics import DEFAULT_DISTANCES
from aiida_reactmlip.physics.protocol import NVE_PLAN, default_plan, pick_molecule, pick_slab, reaction_frames
from aiida_reactmlip.physics.suite import array_key, run_checks, summarize

SETTINGS = {
    "heteronuclear": True,
    "distances": list(DEFAULT_DISTANCES),
    "box": 20.0,
    "pbc": False,
    "fd_step": 0.002,
    "relax_steps": 50,
    "relax_fmax": 0.05,
    "seed": 0,
    "sample_every": 10,
    "check_every": 10,
    "friction_per_fs": 0.02,
    "overlap_distance": 0.5,
    "bond_factor": 1.3,
    "break_factor": 1.6,
    "sign_tolerance": 0.0,
}


def test_plan_picks_structures_of_the_study():
    plan = default_plan(["H", "Cu"])
    names = [a.info["name"] for a in plan["frames"]]
    assert names == ["molecule-H2", "h-cu111-fcc", "h2-on-cu111-initial", "h2-on-cu111-final"]
    s = plan["settings"]
    assert s["elements"] == ["H", "Cu"]
    assert [e["frame"] for e in s["nve"]] == ["molecule-H2", "h-cu111-fcc"]
    assert s["nve"][0]["timestep_fs"] == NVE_PLAN["molecule"]["timestep_fs"]
    assert s["reactions"][0]["dft_reaction_energy"] is None
    assert pick_molecule(["C", "O", "Cu"]).get_chemical_formula() == "CO"
    assert pick_molecule(["C", "H"]).get_chemical_formula() == "CH4"
    assert pick_molecule(["Cu"]) is None
    assert pick_slab(["C", "O", "Ni"]).info["name"] == "co-ni111-fcc"
    assert pick_slab(["Pt"]).get_chemical_formula() == "Pt12"
    assert pick_slab(["H", "O"]) is None
    only = default_plan(["H", "Cu"], checks=["diatomic"])
    assert only["frames"] == [] and only["settings"]["nve"] == []
    with pytest.raises(ValueError, match="unknown physics check"):
        default_plan(["H"], checks=["nope"])


def test_ch4_reaction_takes_dft_from_the_fixture():
    ends = reaction_frames("ch4-dissociation")
    # the fixture's pw.x energies of the 1.09 and 2.00 Å frames of the C-H scan
    assert ends["dft_reaction_energy"] == pytest.approx(-216.21529052484 + 219.66329886118, abs=1e-8)
    assert ends["initial"].get_distance(0, 1) == pytest.approx(1.09)
    assert ends["initial"].calc is None
    assert "ch4-dissociation-pool" in ends["dft_source"]


def test_run_checks_with_emt():
    plan = default_plan(["H", "Cu"])
    settings = {**plan["settings"], **SETTINGS}
    for entry in settings["nve"]:
        entry["duration_ps"] = 0.02
    for entry in settings["ramp"]:
        entry.update(duration_ps=0.02, allowed_breaks=None)
    frames = {a.info["name"]: a for a in plan["frames"]}
    results, arrays = run_checks(EMT(), frames, settings)
    json.dumps(results)  # plain JSON
    assert set(results["diatomic"]) == {"H-H", "Cu-Cu", "H-Cu"}
    assert len(results["nve"]) == 4 and len(results["ramp"]) == 2 and len(results["reactions"]) == 1
    assert results["nve"][0]["relax"]["converged"]
    np.testing.assert_array_equal(arrays[array_key("diatomic", "H-Cu", "distances")], DEFAULT_DISTANCES)
    assert arrays["nve_3_etot"].shape == arrays["nve_3_times_ps"].shape == (3,)  # 20 steps of 1 fs, every 10
    # the reaction energy is EMT's own difference of the two end states
    initial, final = frames["h2-on-cu111-initial"].copy(), frames["h2-on-cu111-final"].copy()
    initial.calc, final.calc = EMT(), EMT()
    expected = final.get_potential_energy() - initial.get_potential_energy()
    assert results["reactions"][0]["reaction_energy"] == pytest.approx(expected)
    summary = results["summary"]
    assert summary == summarize(results)
    assert summary["diatomic_pairs"] == 3 and summary["nve_runs"] == 4
    assert summary["nve_max_abs_drift"] == max(abs(r["drift_meV_per_atom_per_ps"]) for r in results["nve"])
    assert summary["reaction_with_dft"] == 0 and summary["reaction_sign_agrees"] is None
    with pytest.raises(KeyError, match="no frame named"):
        run_checks(EMT(), {}, {**settings, "elements": []})


def test_array_key():
    assert array_key("diatomic", "H-Cu", "fd_forces") == "diatomic_H_Cu_fd_forces"
    assert array_key("nve", 2, "etot") == "nve_2_etot"
