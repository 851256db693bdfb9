"""H on a small Cu(111) slab with real pw.x (fast protocol): the hollow sites are more stable than top."""

import time

import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase.build import add_adsorbate, fcc111

from aiida_reactmlip.specs.builders import structures_from_atoms
from aiida_reactmlip.workflows.label import LabelWorkChain

pytestmark = [pytest.mark.pwx, pytest.mark.slow]

SERIAL = {"resources": {"num_machines": 1, "num_mpiprocs_per_machine": 1}, "withmpi": False}
#: Unrelaxed adsorption heights (Å) above the top Cu layer, near the PBE equilibria.
HEIGHTS = {"fcc": 0.95, "hcp": 0.95, "ontop": 1.52}


def h_on_cu111(site: str):
    slab = fcc111("Cu", size=(2, 2, 2), a=3.63, vacuum=5.0)
    add_adsorbate(slab, "H", HEIGHTS[site], site)
    slab.center(vacuum=5.0, axis=2)
    slab.info.update({"name": f"h_{site}", "site": site})
    return slab


def test_hollow_sites_beat_top(codes, pseudo_family):
    start = time.perf_counter()
    structures = structures_from_atoms([h_on_cu111(site) for site in HEIGHTS])
    _, node = run_get_node(LabelWorkChain, structures=structures, pw_code=codes["pw"],
                           pseudo_family=orm.Str(pseudo_family.label), protocol=orm.Str("fast"),
                           options=orm.Dict(SERIAL))
    wall = time.perf_counter() - start
    assert node.is_finished_ok, node.exit_message
    frames = node.outputs.dataset.frames
    energy = {info["site"]: e for info, e in zip(frames.info, frames.energies)}
    assert energy["fcc"] < energy["ontop"] - 0.1
    assert energy["hcp"] < energy["ontop"] - 0.1
    # fcc and hcp differ only in the second layer below: within 0.1 eV of each other.
    assert abs(energy["fcc"] - energy["hcp"]) < 0.1
    print(f"H/Cu(111) 2x2x2: E(fcc)-E(top) = {energy['fcc'] - energy['ontop']:.3f} eV, "
          f"E(hcp)-E(top) = {energy['hcp'] - energy['ontop']:.3f} eV, wall {wall:.1f} s")
