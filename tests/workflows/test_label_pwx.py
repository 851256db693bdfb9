"""reactmlip.label with real pw.x (fast protocol): O2 triplet, AiiDA caching, a configuration whose DFT fails."""

import time

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from aiida.manage.caching import enable_caching
from ase import Atoms

from aiida_reactmlip.systems.molecules import diatomic
from aiida_reactmlip.specs.builders import structures_from_atoms
from aiida_reactmlip.workflows.label import LabelWorkChain

pytestmark = pytest.mark.pwx

SERIAL = {"resources": {"num_machines": 1, "num_mpiprocs_per_machine": 1}, "withmpi": False}


def _label(codes, pseudo_family, structures, **kwargs):
    return run_get_node(
        LabelWorkChain,
        structures=structures,
        pw_code=codes["pw"],
        pseudo_family=orm.Str(pseudo_family.label),
        protocol=orm.Str("fast"),
        options=orm.Dict(SERIAL),
        **kwargs,
    )


def _pw_calculations(workchain):
    return [
        node
        for node in workchain.called_descendants
        if node.process_type == "aiida.calculations:quantumespresso.pw"
    ]


def test_o2_is_a_spin_polarised_triplet(codes, pseudo_family):
    """O2 from the systems library carries multiplicity 3: nspin 2 and 2 Bohr magnetons in total."""
    start = time.perf_counter()
    _, node = _label(codes, pseudo_family, structures_from_atoms([diatomic("O2")], ["o2"]))
    wall = time.perf_counter() - start
    assert node.is_finished_ok, node.exit_message
    (calc,) = _pw_calculations(node)
    assert calc.inputs.parameters["SYSTEM"]["nspin"] == 2
    output = calc.outputs.output_parameters.get_dict()
    assert output["total_magnetization"] == pytest.approx(2.0, abs=0.01)
    # Absolute magnetisation of a triplet O2: about 2 plus a little spin polarisation of the opposite sign.
    assert 2.0 <= output["absolute_magnetization"] < 3.0
    frames = node.outputs.dataset.frames
    assert frames.info[0]["multiplicity"] == 3
    print(f"O2 triplet: total magnetisation {output['total_magnetization']} Bohr mag/cell, "
          f"E = {frames.energies[0]:.4f} eV, wall {wall:.1f} s")


def test_relabelling_with_caching_enabled_costs_nothing(codes, pseudo_family):
    """The same structure with the same inputs, labelled again with caching on: the pw.x calculation is a cached copy."""

    def h2():
        atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.77]], cell=[7, 7, 7], pbc=True)
        atoms.center()
        return structures_from_atoms([atoms], ["h2_077"])

    with enable_caching():
        start = time.perf_counter()
        _, first = _label(codes, pseudo_family, h2())
        first_wall = time.perf_counter() - start
        start = time.perf_counter()
        _, second = _label(codes, pseudo_family, h2())
        second_wall = time.perf_counter() - start
    assert first.is_finished_ok and second.is_finished_ok
    (calc1,) = _pw_calculations(first)
    (calc2,) = _pw_calculations(second)
    assert not calc1.base.caching.is_created_from_cache
    assert calc2.base.caching.is_created_from_cache
    assert calc2.base.caching.get_cache_source() == calc1.uuid
    np.testing.assert_allclose(second.outputs.dataset.frames.energies, first.outputs.dataset.frames.energies)
    np.testing.assert_allclose(second.outputs.dataset.frames.forces, first.outputs.dataset.frames.forces)
    print(f"caching: first label {first_wall:.1f} s, cached relabel {second_wall:.1f} s")
    assert second_wall < first_wall


def test_failed_configuration_is_reported_and_the_others_kept(codes, pseudo_family):
    """One configuration gets one SCF step and no restart: it fails for real, the other is labelled."""
    atoms = [
        Atoms("H2", positions=[[0, 0, 0], [0, 0, d]], cell=[7, 7, 7], pbc=True, info={"name": name})
        for d, name in ((0.74, "good"), (0.80, "starved"))
    ]
    for a in atoms:
        a.center()
    structures = structures_from_atoms(atoms)
    _, node = _label(
        codes, pseudo_family, structures,
        frame_overrides=orm.Dict({"starved": {"ELECTRONS": {"electron_maxstep": 1}}}),
        max_iterations=orm.Int(1),
    )
    assert node.exit_status == LabelWorkChain.exit_codes.ERROR_SOME_LABELS_FAILED.status
    assert "starved" in node.exit_message
    assert node.outputs.failed.get_list() == ["starved"]
    failure = node.outputs.failures["starved"]
    assert failure["exit_status"] == 401  # PwBaseWorkChain: ERROR_MAXIMUM_ITERATIONS_EXCEEDED
    dataset = node.outputs.dataset
    assert dataset.frames.info[0]["name"] == "good" and len(dataset.frames) == 1
    assert dataset.base.extras.get("missing_labels") == {"starved": 401}
