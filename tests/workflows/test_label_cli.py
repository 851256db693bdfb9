"""`reactmlip label GROUP_OR_FILE`: real pw.x labels from a user file, progress display, caching, bad input."""

import re

import ase.io
import numpy as np
import pytest
from aiida import orm
from ase import Atoms
from click.testing import CliRunner

import aiida_reactmlip.cli.cmd_label  # noqa: F401  registers `label` on cmd_root until root.py imports it
from aiida_reactmlip.cli import cmd_root
from aiida_reactmlip.data.dataset import LabelledDatasetData


def invoke(*args):
    return CliRunner().invoke(cmd_root, list(args), catch_exceptions=False, env={"COLUMNS": "200"})


def test_help_has_an_example():
    result = invoke("label", "--help")
    assert result.exit_code == 0
    assert "reactmlip label h2_scan.extxyz --protocol fast" in result.output


def test_neither_file_nor_group(aiida_profile):
    result = invoke("label", "no-such-file-or-group", "--protocol", "fast")
    assert result.exit_code != 0
    assert "'no-such-file-or-group' is neither a file nor an AiiDA group" in result.output


def test_element_without_pseudopotential_refused(codes, pseudo_family, tmp_path):
    path = tmp_path / "pt.xyz"
    ase.io.write(path, Atoms("PtH", positions=[[0, 0, 0], [0, 0, 1.6]], cell=[8, 8, 8], pbc=True))
    before = orm.QueryBuilder().append(orm.ProcessNode).count()
    result = invoke("label", str(path), "--protocol", "fast")
    assert result.exit_code != 0
    assert "element(s) Pt with no pseudopotential in family 'reactmlip/debian-pbe'" in result.output
    assert orm.QueryBuilder().append(orm.ProcessNode).count() == before


@pytest.mark.pwx
def test_label_a_user_file_then_again_from_cache(codes, pseudo_family, tmp_path):
    images = []
    for d in (0.72, 0.78):
        atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, d]], cell=[7, 7, 7], pbc=True)
        atoms.center()
        atoms.info["bond"] = d
        images.append(atoms)
    path = tmp_path / "h2_user.extxyz"
    ase.io.write(path, images, format="extxyz")
    out = tmp_path / "labels.extxyz"
    result = invoke("label", str(path), "--protocol", "fast", "-o", str(out), "--group", "cli-labels")
    assert result.exit_code == 0, result.output
    print(result.output)
    assert "2 structure(s) from" in result.output
    assert "pw.x labels" in result.output and "2/2" in result.output
    assert "2 labelled (0 from cache), 0 failed" in result.output
    pk = int(re.search(r"LabelledDatasetData<(\d+)>", result.output).group(1))
    dataset = orm.load_node(pk)
    assert isinstance(dataset, LabelledDatasetData) and dataset.n_frames == 2
    labelled = ase.io.read(out, index=":")
    energies = [a.get_potential_energy() for a in labelled]
    # 0.72 and 0.78 Å straddle the PBE minimum (0.75 Å): nearly equal energies, both within 0.1 eV.
    assert abs(energies[0] - energies[1]) < 0.1
    assert [a.info["origin"] for a in labelled] == ["h2_user.extxyz"] * 2
    group = orm.load_group("cli-labels")
    assert dataset.uuid in {n.uuid for n in group.nodes}

    # The same file again: both pw.x calculations come from the cache.
    result = invoke("label", str(path), "--protocol", "fast")
    assert result.exit_code == 0, result.output
    assert "2 labelled (2 from cache), 0 failed" in result.output
    second = orm.load_node(int(re.search(r"LabelledDatasetData<(\d+)>", result.output).group(1)))
    np.testing.assert_allclose(second.frames.energies, dataset.frames.energies)


@pytest.mark.pwx
def test_label_a_group(codes, pseudo_family):
    group = orm.Group(label="cli-label-group").store()
    for name, d in (("h2_a", 0.73), ("h2_b", 0.79)):
        atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, d]], cell=[7, 7, 7], pbc=True)
        atoms.center()
        node = orm.StructureData(ase=atoms)
        node.label = name
        group.add_nodes([node.store()])
    result = invoke("label", "cli-label-group", "--protocol", "fast", "--max-iterations", "1", "--no-cache")
    assert result.exit_code == 0, result.output
    assert "2 StructureData from group 'cli-label-group'" in result.output
    assert "2 labelled (0 from cache), 0 failed" in result.output
