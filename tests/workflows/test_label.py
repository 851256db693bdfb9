"""reactmlip.label with real pw.x runs (fast protocol)."""

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase import Atoms

from aiida_reactmlip.workflows.label import LabelWorkChain

pytestmark = pytest.mark.pwx


def test_h2_scan_labels_have_minimum_near_0_75(h2_scan_label):
    node = h2_scan_label
    assert node.is_finished_ok, node.exit_message
    frames = node.outputs.dataset.frames
    assert len(frames) == 7
    distances = np.array([info["scan_coordinate"] for info in frames.info])
    energies = frames.energies
    # A parabola through the three lowest points locates the minimum between grid points.
    lowest = np.argsort(energies)[:3]
    a, b, _ = np.polyfit(distances[lowest], energies[lowest], 2)
    minimum = -b / (2 * a)
    assert abs(minimum - 0.75) < 0.03, minimum
    # Binding curve: the 0.55 Å and 1.10 Å frames lie about 1 eV above the minimum.
    assert 0.5 < energies[distances == 0.55][0] - energies.min() < 2.0
    assert 0.5 < energies[distances == 1.10][0] - energies.min() < 2.0


def test_h2_labels_forces_and_provenance(h2_scan_label):
    dataset = h2_scan_label.outputs.dataset
    frames = dataset.frames
    assert frames.forces.shape == (14, 3)
    # Newton's third law on a dimer, and the bond force: compressed pushes apart, stretched pulls together.
    pairs = frames.forces.reshape(7, 2, 3)
    np.testing.assert_allclose(pairs[:, 0], -pairs[:, 1], atol=1e-6)
    distances = np.array([info["scan_coordinate"] for info in frames.info])
    bond_axis_force_on_upper_atom = pairs[:, 1, 2]
    assert (bond_axis_force_on_upper_atom[distances < 0.7] > 0).all()
    assert (bond_axis_force_on_upper_atom[distances > 0.8] < 0).all()
    # No stress for a molecule in a box.
    assert not np.isfinite(frames.stress).any()
    # Every frame names the pw.x calculation that produced its label.
    for uuid in dataset.source_uuids:
        source = orm.load_node(uuid)
        assert source.process_type == "aiida.calculations:quantumespresso.pw"
        assert source.is_finished_ok
    assert len(set(dataset.source_uuids)) == 7
    assert dataset.creator.process_type == "aiida.calculations:reactmlip.build_dataset"


def test_missing_pseudopotential_is_refused_before_submission(codes, pseudo_family):
    structure = orm.StructureData(ase=Atoms("PtH", positions=[[0, 0, 0], [0, 0, 1.6]], cell=[8, 8, 8], pbc=True))
    before = orm.QueryBuilder().append(orm.WorkflowNode).count()
    with pytest.raises(ValueError, match=r"element\(s\) Pt with no pseudopotential in family 'reactmlip/debian-pbe'"):
        run_get_node(
            LabelWorkChain,
            structures={"pth": structure},
            pw_code=codes["pw"],
            pseudo_family=orm.Str(pseudo_family.label),
            protocol=orm.Str("fast"),
        )
    assert orm.QueryBuilder().append(orm.WorkflowNode).count() == before


def test_unknown_protocol_and_family_are_refused(codes, pseudo_family):
    structure = orm.StructureData(ase=Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]], cell=[8, 8, 8], pbc=True))
    with pytest.raises(ValueError, match="unknown protocol 'ultra'"):
        run_get_node(LabelWorkChain, structures={"h2": structure}, pw_code=codes["pw"],
                     pseudo_family=orm.Str(pseudo_family.label), protocol=orm.Str("ultra"))
    with pytest.raises(ValueError, match="pseudopotential family 'SSSP/1.3' not found"):
        run_get_node(LabelWorkChain, structures={"h2": structure}, pw_code=codes["pw"],
                     pseudo_family=orm.Str("SSSP/1.3"), protocol=orm.Str("fast"))
