"""A dipole correction with real pw.x: a polar water layer, asymmetric along c (fast protocol)."""

import re

import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase.build import molecule

from aiida_reactmlip.specs.builders import structures_from_atoms
from aiida_reactmlip.workflows.label import LabelWorkChain

pytestmark = pytest.mark.pwx

SERIAL = {"resources": {"num_machines": 1, "num_mpiprocs_per_machine": 1}, "withmpi": False}


def water_layer():
    """H2O with its dipole along +z in a 5.5 x 5.5 x 14 Å cell: periodic in-plane, 10+ Å of vacuum along c."""
    water = molecule("H2O")  # ASE puts the C2 axis along z: O above, both H below
    water.cell = [5.5, 5.5, 14.0]
    water.pbc = True
    water.center()
    water.info["dipole_correction"] = True
    return water


def test_dipole_corrected_water_layer(codes, pseudo_family):
    structures = structures_from_atoms([water_layer()], ["water_layer"])
    _, node = run_get_node(
        LabelWorkChain, structures=structures, pw_code=codes["pw"], pseudo_family=orm.Str(pseudo_family.label),
        protocol=orm.Str("fast"), options=orm.Dict(SERIAL),
    )
    assert node.is_finished_ok, node.exit_message
    (calc,) = [n for n in node.called_descendants if n.process_type == "aiida.calculations:quantumespresso.pw"]
    parameters = calc.inputs.parameters.get_dict()
    assert parameters["CONTROL"]["tefield"] and parameters["CONTROL"]["dipfield"]
    assert "assume_isolated" not in parameters["SYSTEM"]
    stdout = calc.outputs.retrieved.base.repository.get_object_content("aiida.out")
    # pw.x computed the slab dipole and applied the compensating sawtooth potential.
    dipoles = re.findall(r"Computed dipole along edir\(3\) :\s*\n\s*Elec\. dipole\s+([-0-9.Ee+]+) Ry au", stdout)
    assert "Adding external electric field" in stdout
    assert dipoles, stdout[-3000:]
    total = re.findall(r"\n\s+Dipole\s+[-0-9.]+ Ry au,\s+([-0-9.]+) Debye", stdout)
    debye = float(total[-1])
    # A water molecule's dipole is about 1.85 D (gas, experiment); it points from O to the H atoms, i.e. along -z
    # here. Neighbours 5.5 Å apart depolarise it a little.
    assert -2.2 < debye < -1.2, debye
    print(f"water layer dipole {debye} D")
